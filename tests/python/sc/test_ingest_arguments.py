"""`scfan sc ingest --fragments | --bam | --counts ...`: one sample's files without a samplesheet (what the
pipeline's SC_INGEST passes), giving the same cells as the samplesheet row does."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from sc_builders import random_fragments, reference_counts, run_cli, write_bam, write_fragments, write_mtx, write_peaks

from scfan.errors import InputFileError
from scfan.samplesheet import sc_row


def _ingest(monkeypatch, tmp_path, peaks, out_name, *inputs):
    out = tmp_path / out_name
    code = run_cli(monkeypatch, "sc", "ingest", "--sample", "S", "--peaks", str(peaks), "--min-fragments", "0",
                   *inputs, "--out", str(out))
    return code, out


def test_each_input_kind_as_arguments_gives_the_samplesheets_cells(tmp_path, tiny_peaks, monkeypatch):
    rows = random_fragments(seed=4, n_cells=8, per_cell=120)
    frag = write_fragments(tmp_path / "fragments.tsv.gz", rows)
    bam = write_bam(tmp_path / "cells.bam", rows, tag="CR")
    barcodes = sorted({r[3] for r in rows})
    ref = reference_counts(rows, tiny_peaks, barcodes)
    mtx, mpeaks, mcells = write_mtx(tmp_path, ref, tiny_peaks, barcodes)
    peaks = write_peaks(tmp_path / "peaks.bed", tiny_peaks)
    cases = {
        "fragments": (f"S,{frag.name},,,,,\n", ["--fragments", str(frag)]),
        "bam": (f"S,,{bam.name},CR,,,\n", ["--bam", str(bam), "--barcode-tag", "CR"]),
        "counts": (f"S,,,,{mtx.name},{mpeaks.name},{mcells.name}\n",
                   ["--counts", str(mtx), "--count-peaks", str(mpeaks), "--barcodes", str(mcells)]),
    }
    for kind, (row, args) in cases.items():
        sheet = tmp_path / f"{kind}.csv"
        sheet.write_text("sample,fragments,bam,barcode_tag,counts,peaks,barcodes\n" + row)
        code, by_sheet = _ingest(monkeypatch, tmp_path, peaks, f"{kind}_sheet.h5ad", "--samplesheet", str(sheet))
        assert code == 0, kind
        code, by_args = _ingest(monkeypatch, tmp_path, peaks, f"{kind}_args.h5ad", *args)
        assert code == 0, kind
        a, b = ad.read_h5ad(by_sheet), ad.read_h5ad(by_args)
        assert a.obs.equals(b.obs) and a.var.equals(b.var), kind
        np.testing.assert_array_equal(a.X.toarray(), b.X.toarray(), err_msg=kind)
        assert a.uns["scfan"]["sources"] == b.uns["scfan"]["sources"]
        # the record names what was read: the samplesheet, or the files given
        assert b.uns["scfan"]["config"]["ingest"]["samplesheet"] is None
        assert b.uns["scfan"]["config"]["ingest"]["files"][kind] == str(args[1])


def test_staged_link_resolves_like_the_samplesheet(tmp_path):
    frag = write_fragments(tmp_path / "fragments.tsv.gz", random_fragments(seed=1))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "fragments.tsv.gz").symlink_to(frag)
    assert sc_row("S", {"fragments": str(tmp_path / "data" / "fragments.tsv.gz")}) == {"sample": "S",
                                                                                      "fragments": str(frag)}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, "give exactly one of fragments, bam, counts (got none)"),
        ({"fragments": "{frag}", "counts": "{frag}"}, "counts '"),  # the schema: a counts file is .h5ad or .mtx
        ({"fragments": "{missing}"}, "fragments: file {missing} does not exist"),
        ({"counts": "{mtx}"}, "a MatrixMarket counts file needs its peaks and barcodes"),
        ({"bam": "{bam}", "barcode_tag": "C-B"}, "barcode_tag 'C-B'"),
    ],
    ids=["none", "two-kinds", "missing", "mtx-alone", "bad-tag"],
)
def test_bad_files_are_named(tmp_path, files, expected):
    paths = {"frag": tmp_path / "f.tsv.gz", "missing": tmp_path / "nope.tsv.gz", "mtx": tmp_path / "c.mtx.gz",
             "bam": tmp_path / "x.bam"}
    for key in ("frag", "mtx", "bam"):
        paths[key].write_text("")
    files = {k: v.format(**paths) for k, v in files.items()}
    with pytest.raises(InputFileError) as err:
        sc_row("S", files)
    assert str(err.value).startswith("sample 'S' (arguments): ")
    assert expected.format(**paths) in str(err.value)


def test_samplesheet_and_files_together_or_neither_are_refused(tmp_path, tiny_peaks, monkeypatch, capsys):
    peaks = write_peaks(tmp_path / "peaks.bed", tiny_peaks)
    frag = write_fragments(tmp_path / "fragments.tsv.gz", random_fragments(seed=2))
    sheet = tmp_path / "sc.csv"
    sheet.write_text(f"sample,fragments\nS,{frag.name}\n")
    for args in (["--samplesheet", str(sheet), "--fragments", str(frag)], []):
        code, out = _ingest(monkeypatch, tmp_path, peaks, "o.h5ad", *args)
        assert code == 2
        assert "give either --samplesheet or the sample's files" in capsys.readouterr().err
        assert not out.exists()
