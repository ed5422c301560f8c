"""Bad bulk inputs: one clear line naming the file and the problem, exit code 2, no windows or model left behind."""

from __future__ import annotations

import gzip
import subprocess
import sys

import numpy as np
import pyBigWig
import pytest
from bulk_builders import CHROMS, write_narrowpeak


def _scfan(*args):
    return subprocess.run([sys.executable, "-m", "scfan", "bulk", *map(str, args)], capture_output=True, text=True)


def _prepare(tb, outdir, sheet=None):
    return _scfan("prepare", "--samplesheet", sheet or tb.samplesheet, "--line", "L1", "--genome", tb.genome,
                  "--mappability", tb.mappability, "--blacklist", tb.blacklist, "--valid-chroms", "chr2",
                  "--test-chroms", "chr1", "--outdir", outdir)


def _assert_clean_failure(r, outdir, *fragments):
    assert r.returncode == 2, (r.returncode, r.stderr)
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("scfan: error: "), r.stderr
    for frag in fragments:
        assert frag in last, (frag, last)
    assert not outdir.exists() or not any(outdir.rglob("*.parquet")) and not any(outdir.rglob("model.pt"))


def test_chromosome_names_differ_between_fasta_and_peaks(tiny_bulk, tmp_path):
    tb = tiny_bulk
    renamed = tb.root / "TFA_ensembl.narrowPeak.gz"
    write_narrowpeak(renamed, [(c.removeprefix("chr"), s, e) for c, s, e in tb.peak_sites["TFA"]])
    sheet = tb.root / "ensembl.csv"
    sheet.write_text(f"line,tf,peaks,atac,motif\nL1,TFA,{renamed.name},atac.bw,\nL1,TFB,{tb.peaks['TFB'].name},"
                     "atac.bw,\n")
    out = tmp_path / "prep"
    r = _prepare(tb, out, sheet)
    # names both files, the offending names, and how to fix them
    _assert_clean_failure(r, out, str(renamed), "genome.fa", "chromosome(s) 1, 2", "add them")


def test_peaks_beyond_the_chromosome_end(tiny_bulk, tmp_path):
    tb = tiny_bulk
    write_narrowpeak(tb.peaks["TFB"], [*tb.peak_sites["TFB"], ("chr2", CHROMS["chr2"] - 100, CHROMS["chr2"] + 400)])
    out = tmp_path / "prep"
    r = _prepare(tb, out)
    _assert_clean_failure(r, out, str(tb.peaks["TFB"]), f"chr2:{CHROMS['chr2'] - 100}-{CHROMS['chr2'] + 400}",
                          "beyond the chromosome end")


def test_duplicate_tf_names_in_the_samplesheet(tiny_bulk, tmp_path):
    tb = tiny_bulk
    sheet = tb.root / "dup.csv"
    sheet.write_text(f"line,tf,peaks,atac,motif\nL1,TFA,{tb.peaks['TFA'].name},atac.bw,\n"
                     f"L1,TFA,{tb.peaks['TFB'].name},atac.bw,\n")
    out = tmp_path / "prep"
    r = _prepare(tb, out, sheet)
    _assert_clean_failure(r, out, str(sheet), "line 3", "duplicate TF 'TFA'")


def test_tf_without_positives_on_training_chromosomes(tiny_bulk, tmp_path):
    tb = tiny_bulk
    # TFB's peaks only on the test chromosome: nothing to learn from
    write_narrowpeak(tb.peaks["TFB"], [p for p in tb.peak_sites["TFB"] if p[0] == "chr1"])
    out = tmp_path / "prep"
    r = _prepare(tb, out)
    _assert_clean_failure(r, out, "TFB", "no positive window on the training chromosomes", str(tb.peaks["TFB"]))


def test_empty_peak_file(tiny_bulk, tmp_path):
    tb = tiny_bulk
    with gzip.open(tb.peaks["TFA"], "wt"):
        pass
    out = tmp_path / "prep"
    r = _prepare(tb, out)
    _assert_clean_failure(r, out, str(tb.peaks["TFA"]), "empty")


def test_missing_fai_is_built_not_required(tiny_bulk, tmp_path):
    tb = tiny_bulk
    fai = tb.genome.with_suffix(".fa.fai")
    fai.unlink(missing_ok=True)
    r = _prepare(tb, tmp_path / "prep")
    assert r.returncode == 0, r.stderr
    assert fai.is_file() and fai.read_text().startswith("chr1\t24000\t")


def test_nan_in_the_atac_bigwig_stops_training_without_a_model(tiny_bulk, tmp_path):
    tb = tiny_bulk
    assert _prepare(tb, tmp_path / "prep").returncode == 0
    bad = tb.root / "nan.bw"
    bw = pyBigWig.open(str(bad), "w")
    bw.addHeader(list(CHROMS.items()))
    bw.addEntries(["chr1", "chr1"], [100, 5000], ends=[200, 5050], values=[1.0, float("nan")])
    bw.close()
    out = tmp_path / "train"
    r = _scfan("train", "--windows", tmp_path / "prep" / "windows.parquet", "--genome", tb.genome, "--atac", bad,
               "--mappability", tb.mappability, "--arch", "small", "--epochs", "1", "--max-train-windows", "50",
               "--outdir", out)
    _assert_clean_failure(r, out, str(bad), "chr1:5000-5050", "not a finite number")
    assert not (out / "model.pt").exists()


def test_mappability_outside_zero_one_or_wrong_file_type(tiny_bulk, tmp_path):
    tb = tiny_bulk
    assert _prepare(tb, tmp_path / "prep").returncode == 0
    not_bw = tb.root / "not_a.bw"
    not_bw.write_text("chr1\t0\t10\t1.0\n")
    out = tmp_path / "train"
    r = _scfan("train", "--windows", tmp_path / "prep" / "windows.parquet", "--genome", tb.genome, "--atac", not_bw,
               "--mappability", tb.mappability, "--arch", "small", "--epochs", "1", "--outdir", out)
    _assert_clean_failure(r, out, str(not_bw), "bigWig")


@pytest.mark.parametrize("missing", ["genome", "mappability"])
def test_missing_input_files_are_named(tiny_bulk, tmp_path, missing):
    tb = tiny_bulk
    gone = tmp_path / f"absent_{missing}"
    args = {"genome": tb.genome, "mappability": tb.mappability, missing: gone}
    out = tmp_path / "prep"
    r = _scfan("prepare", "--samplesheet", tb.samplesheet, "--line", "L1", "--genome", args["genome"],
               "--mappability", args["mappability"], "--valid-chroms", "chr2", "--test-chroms", "chr1",
               "--outdir", out)
    _assert_clean_failure(r, out, str(gone))


def test_windows_of_one_file_do_not_fit_another_model_input(tiny_bulk, tmp_path):
    """A parquet that is not a windows table is refused by name, not with a stack trace."""
    tb = tiny_bulk
    import polars as pl

    other = tmp_path / "other.parquet"
    pl.DataFrame({"a": np.arange(3)}).write_parquet(other)
    out = tmp_path / "train"
    r = _scfan("train", "--windows", other, "--genome", tb.genome, "--sequence-only", "--outdir", out)
    _assert_clean_failure(r, out, str(other), "scfan bulk prepare")
