"""`scfan bulk prepare --atac ... --peaks TF=PATH --motif TF=ID`: the line's files without a samplesheet (what the
pipeline's BULK_PREPARE passes), giving the same windows as the samplesheet does."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import polars as pl
import pytest

from scfan.bulk.windows import sources_from_arguments, sources_from_samplesheet
from scfan.errors import InputFileError, ScfanError

COMMON = ["--line", "L1", "--valid-chroms", "chr2", "--test-chroms", "chr1"]


def _prepare(tb, outdir, *inputs):
    return subprocess.run([sys.executable, "-m", "scfan", "bulk", "prepare", *inputs, *COMMON, "--genome",
                           str(tb.genome), "--mappability", str(tb.mappability), "--blacklist", str(tb.blacklist),
                           "--outdir", str(outdir)], capture_output=True, text=True)


def test_arguments_give_the_samplesheets_sources(tiny_bulk):
    tb = tiny_bulk
    sheet = tb.root / "with_motif.csv"
    sheet.write_text("line,tf,peaks,atac,motif\n" f"L1,TFA,{tb.peaks['TFA'].name},atac.bw,MA0139.2\n"
                     f"L1,TFB,{tb.peaks['TFB'].name},atac.bw,\n")
    args = sources_from_arguments("L1", tb.atac, [f"TFA={tb.peaks['TFA']}", f"TFB={tb.peaks['TFB']}"],
                                  ["TFA=MA0139.2"])
    assert args == sources_from_samplesheet(sheet, "L1")


def test_staged_links_resolve_like_the_samplesheet(tiny_bulk, tmp_path):
    """Nextflow stages inputs as symlinks (peaks/01/<name>): both ways record the files they point to."""
    tb = tiny_bulk
    staged = tmp_path / "task"
    for i, path in enumerate(tb.peaks.values(), 1):
        (staged / "peaks" / f"{i:02d}").mkdir(parents=True)
        (staged / "peaks" / f"{i:02d}" / path.name).symlink_to(path)
    (staged / "atac.bw").symlink_to(tb.atac)
    peaks = [f"{tf}={staged / 'peaks' / f'{i:02d}' / p.name}" for i, (tf, p) in enumerate(tb.peaks.items(), 1)]
    sources = sources_from_arguments("L1", staged / "atac.bw", peaks)
    assert sources.atac == tb.atac.resolve()
    assert [(s.tf, s.peaks, s.motif) for s in sources.tfs] == [(tf, p.resolve(), None) for tf, p in tb.peaks.items()]


def test_cli_writes_the_same_windows_either_way(tiny_bulk, tmp_path):
    tb = tiny_bulk
    by_sheet = _prepare(tb, tmp_path / "sheet", "--samplesheet", str(tb.samplesheet))
    assert by_sheet.returncode == 0, by_sheet.stderr
    peaks = [x for tf, p in tb.peaks.items() for x in ("--peaks", f"{tf}={p}")]
    by_args = _prepare(tb, tmp_path / "args", "--atac", str(tb.atac), *peaks)
    assert by_args.returncode == 0, by_args.stderr
    a = pl.read_parquet(tmp_path / "sheet" / "windows.parquet")
    b = pl.read_parquet(tmp_path / "args" / "windows.parquet")
    assert a.equals(b) and a.height > 0
    summary_a = json.loads((tmp_path / "sheet" / "prepare.json").read_text())
    summary_b = json.loads((tmp_path / "args" / "prepare.json").read_text())
    for volatile in ("runtime_s", "elapsed_s", "created"):
        summary_a.pop(volatile, None)
        summary_b.pop(volatile, None)
    assert summary_a == summary_b


@pytest.mark.parametrize(
    ("peaks", "motifs", "expected"),
    [
        (["TFA"], [], "--peaks 'TFA': expected TF=PATH"),
        (["TFA={a}", "TFA={b}"], [], "--peaks: TF 'TFA' given twice"),
        (["TFA={a}"], ["TFB=MA0139.2"], "--motif for TF(s) without --peaks: TFB"),
        ([], [], "no --peaks"),
    ],
    ids=["no-equals", "duplicate", "motif-without-peaks", "none"],
)
def test_bad_arguments_are_named(tiny_bulk, peaks, motifs, expected):
    tb = tiny_bulk
    peaks = [p.format(a=tb.peaks["TFA"], b=tb.peaks["TFB"]) for p in peaks]
    with pytest.raises(ScfanError, match="^" + re.escape(expected)):
        sources_from_arguments("L1", tb.atac, peaks, motifs)


def test_missing_peaks_file_is_named(tiny_bulk):
    with pytest.raises(InputFileError, match="nope.bed: file does not exist"):
        sources_from_arguments("L1", tiny_bulk.atac, [f"TFA={tiny_bulk.root / 'nope.bed'}"])


def test_samplesheet_and_arguments_together_are_refused(tiny_bulk, tmp_path):
    r = _prepare(tiny_bulk, tmp_path / "out", "--samplesheet", str(tiny_bulk.samplesheet), "--atac",
                 str(tiny_bulk.atac))
    assert r.returncode == 2 and "give either --samplesheet or --atac" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
