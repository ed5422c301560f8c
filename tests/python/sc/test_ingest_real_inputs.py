"""`scfan sc ingest` on inputs as real tools write them (issue 34): an Excel samplesheet, a Cell Ranger fragments
file with its ``#`` header and a broken line, and a log free of library notices."""

from __future__ import annotations

import gzip
import logging
import warnings

import anndata as ad
import pandas as pd
import pysam
import pytest
from sc_builders import ingest_cli, run_cli

BOM = b"\xef\xbb\xbf"
N_HEADER = 51  # '#' lines of the real Cell Ranger ATAC 2.0 file (README of the shared data)


_ingest = ingest_cli


def test_excel_samplesheet_is_read_by_ingest(cellranger, tmp_path, monkeypatch, capsys):
    """UTF-8 BOM + CRLF + quoted fields + empty-cell and blank trailing lines: Excel's "CSV UTF-8"."""
    sheet = tmp_path / "samplesheet.csv"
    sheet.write_bytes(BOM + b'"sample","fragments","whitelist"\r\n"S1","fragments_header.tsv.gz",""\r\n'
                      b",,\r\n\r\n")
    out = tmp_path / "cells.h5ad"
    assert _ingest(monkeypatch, "--samplesheet", str(sheet), "--peaks", str(cellranger["peaks"]),
                   "--out", str(out)) == 0, capsys.readouterr().err
    a = ad.read_h5ad(out)
    assert a.n_obs == 54 and a.obs["sample"].astype(str).eq("S1").all()  # the 54 barcodes of the real file


@pytest.mark.parametrize("chunk_bytes", [16 << 20, 200])
def test_empty_barcode_names_file_real_line_and_column(shared_data, tmp_path, monkeypatch, capsys, chunk_bytes):
    """A Cell Ranger file (51 '#' lines, real fragments), then a fragment with an empty 4th column."""
    from scfan.errors import InputFileError
    from scfan.sc.fragments import read_fragment_blocks

    with gzip.open(shared_data / "cellranger_fragments" / "fragments_header.tsv.gz", "rt") as fh:
        lines = fh.read().splitlines(keepends=True)
    assert sum(ln.startswith("#") for ln in lines) == N_HEADER
    bad_at = N_HEADER + 5  # index of the inserted line: five real fragments come before it
    assert lines[bad_at - 1].split("\t")[1] == "235723" and lines[bad_at].split("\t")[1] == "237741"
    lines.insert(bad_at, "chr1\t236000\t236150\t\t1\n")
    plain = tmp_path / "fragments.tsv"
    plain.write_text("".join(lines))
    frag = tmp_path / "fragments.tsv.gz"
    pysam.tabix_compress(str(plain), str(frag), force=True)
    pysam.tabix_index(str(frag), preset="bed", force=True, meta_char="#")
    expected = f"{frag}, line {bad_at + 1}: the barcode (4th column) is empty; expected a cell barcode"

    with pytest.raises(InputFileError) as err:
        for _ in read_fragment_blocks(frag, chunk_bytes=chunk_bytes):
            pass
    assert str(err.value) == expected

    peaks = tmp_path / "peaks.bed"
    peaks.write_text("chr1\t10000\t1000000\tchr1:10000-1000000\n")
    out = tmp_path / "cells.h5ad"
    assert _ingest(monkeypatch, "--fragments", str(frag), "--peaks", str(peaks), "--out", str(out)) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert err_lines[-1] == f"scfan: error: {expected}"
    assert not out.exists() and not list(tmp_path.glob(".cells.h5ad*"))


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_ingest_and_merge_print_no_anndata_notice(cellranger, tmp_path, monkeypatch, capfd):
    """AnnData's "... storing 'chrom' as categorical" goes to stderr through its own (non-propagating) logger;
    no warning of any library either."""
    notices = _Records()
    anndata_log = logging.getLogger("anndata")
    anndata_log.addHandler(notices)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outs = []
            for sample in ("S1", "S2"):  # the same barcodes in both: merged obs 'barcode' repeats values
                out = tmp_path / f"{sample}.h5ad"
                assert run_cli(monkeypatch, "sc", "ingest", "--sample", sample, "--min-fragments", "0",
                               "--fragments", str(cellranger["fragments"]), "--peaks", str(cellranger["peaks"]),
                               "--out", str(out)) == 0
                outs.append(str(out))
            merged = tmp_path / "merged.h5ad"
            assert run_cli(monkeypatch, "sc", "merge", "--out", str(merged), *outs) == 0
    finally:
        anndata_log.removeHandler(notices)
    err = capfd.readouterr().err
    assert not [str(w.message) for w in caught]
    assert not [m for m in notices.messages if "storing" in m], notices.messages
    assert "storing" not in err and "Warning" not in err, err
    # what AnnData would have converted is categorical all the same
    a = ad.read_h5ad(outs[0])
    assert isinstance(a.var["chrom"].dtype, pd.CategoricalDtype)
    assert list(a.var["chrom"].cat.categories) == ["chr1"]
    m = ad.read_h5ad(merged)
    assert m.n_obs == 108 and isinstance(m.obs["barcode"].dtype, pd.CategoricalDtype)
