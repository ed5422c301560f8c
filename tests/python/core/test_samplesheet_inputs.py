"""Samplesheets and the cross-input check (chromosome names, files, duplicates)."""

import gzip

import numpy as np
import pyBigWig
import pysam
import pytest
from typer.testing import CliRunner

from scfan.cli import app
from scfan.errors import ChromosomeNameError, InputFileError
from scfan.inputs import CheckInputsConfig, check_inputs
from scfan.samplesheet import read_samplesheet


def _bigwig(path, chroms):
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(chroms.items()))
    for c, n in chroms.items():
        bw.addEntries(c, 0, values=np.ones(n, dtype=np.float64).tolist(), span=1, step=1)
    bw.close()


@pytest.fixture()
def inputs(tmp_path):
    (tmp_path / "genome.fa").write_text(">chr1\n" + "ACGT" * 50 + "\n>chr2\n" + "GGCC" * 25 + "\n")
    _bigwig(tmp_path / "map.bw", {"chr1": 200, "chr2": 100})
    _bigwig(tmp_path / "atac.bw", {"chr1": 200, "chr2": 100})
    (tmp_path / "peaks").mkdir()
    with gzip.open(tmp_path / "peaks" / "A.narrowPeak.gz", "wt") as fh:
        fh.write("chr1\t10\t60\tp1\t500\t.\t7.5\t4.1\t2.2\t25\n")
    (tmp_path / "bulk.csv").write_text("line,tf,peaks,atac,motif\nL1,A,peaks/A.narrowPeak.gz,atac.bw,MA0139.1\n")
    frag = tmp_path / "frag.tsv"
    frag.write_text("chr1\t10\t50\tAAAC-1\t1\nchr2\t5\t40\tAAAC-1\t2\n")
    pysam.tabix_compress(str(frag), str(frag) + ".gz")
    pysam.tabix_index(str(frag) + ".gz", preset="bed")
    (tmp_path / "sc.csv").write_text("sample,fragments\nS1,frag.tsv.gz\n")
    return tmp_path


def test_relative_paths_resolve_against_the_samplesheet(inputs, tmp_path_factory):
    rows = read_samplesheet(inputs / "bulk.csv", "bulk")
    assert rows == [{"line": "L1", "tf": "A", "peaks": str(inputs / "peaks" / "A.narrowPeak.gz"),
                     "atac": str(inputs / "atac.bw"), "motif": "MA0139.1"}]
    # A symlinked samplesheet (as Nextflow stages it) resolves against its real location.
    elsewhere = tmp_path_factory.mktemp("staged")
    (elsewhere / "bulk.csv").symlink_to(inputs / "bulk.csv")
    assert read_samplesheet(elsewhere / "bulk.csv", "bulk") == rows


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("bulk", "line,tf,peaks,atac\nL1,A,peaks/A.narrowPeak.gz,atac.bw\nL1,A,peaks/A.narrowPeak.gz,atac.bw\n",
         "line 3: duplicate TF 'A' for line 'L1' (also on line 2)"),
        ("bulk", "line,tf,peaks,atac,colour\n", "line 1: unknown column(s) colour"),
        ("bulk", "line,tf,peaks,atac\nL1,A,peaks/missing.bed,atac.bw\n", "line 2: column 'peaks'"),
        ("bulk", "line,tf,peaks,atac\nL 1,A,peaks/A.narrowPeak.gz,atac.bw\n", "line 2: column 'line' value 'L 1'"),
        ("bulk", "line,tf,peaks,atac\n", "samplesheet has a header but no rows"),
        ("sc", "sample,fragments\nS1,frag.tsv.gz\nS1,frag.tsv.gz\n", "line 3: duplicate sample name 'S1'"),
        ("sc", "sample,fragments,bam\nS1,frag.tsv.gz,frag.tsv.gz\n", "line 2: column 'bam'"),
        ("sc", "sample\nS1\n", "line 2: sample 'S1': give exactly one of fragments, bam, counts (got none)"),
    ],
)
def test_samplesheet_errors_name_file_line_and_problem(inputs, kind, text, message):
    p = inputs / "sheet.csv"
    p.write_text(text)
    with pytest.raises(InputFileError) as err:
        read_samplesheet(p, kind)
    assert str(err.value).startswith(str(p))
    assert message in str(err.value)


def test_check_inputs_writes_absolute_samplesheets_and_builds_fai(inputs):
    out = inputs / "checked"
    cfg = CheckInputsConfig(genome=str(inputs / "genome.fa"), mappability=str(inputs / "map.bw"),
                            bulk_samplesheet=str(inputs / "bulk.csv"), sc_samplesheet=str(inputs / "sc.csv"))
    summary = check_inputs(cfg, out)
    assert (inputs / "genome.fa.fai").exists()
    assert summary["bulk_lines"] == ["L1"] and summary["sc_samples"] == ["S1"]
    bulk = read_samplesheet(out / "bulk_samplesheet.csv", "bulk")
    assert bulk[0]["peaks"] == str(inputs / "peaks" / "A.narrowPeak.gz")


def test_check_inputs_reports_mismatched_chromosome_names(inputs):
    _bigwig(inputs / "map.bw", {"1": 200, "2": 100})
    cfg = CheckInputsConfig(genome=str(inputs / "genome.fa"), mappability=str(inputs / "map.bw"),
                            bulk_samplesheet=str(inputs / "bulk.csv"))
    with pytest.raises(ChromosomeNameError) as err:
        check_inputs(cfg, inputs / "checked")
    assert f"{inputs / 'map.bw'} has chromosome(s) 1, 2 not in {inputs / 'genome.fa'}" in str(err.value)
    assert "add them" in str(err.value)
    assert not (inputs / "checked" / "bulk_samplesheet.csv").exists()


def test_check_inputs_cli_unindexed_fragments(inputs):
    (inputs / "frag.tsv.gz.tbi").unlink()
    res = CliRunner().invoke(app, ["check-inputs", "--genome", str(inputs / "genome.fa"), "--mappability",
                                   str(inputs / "map.bw"), "--bulk-samplesheet", str(inputs / "bulk.csv"),
                                   "--sc-samplesheet", str(inputs / "sc.csv"), "--outdir", str(inputs / "o")])
    assert res.exit_code != 0
    assert "tabix -p bed" in str(res.exception)


# --- spreadsheet conventions (issue 34): an Excel "CSV UTF-8" file is a valid samplesheet ---------------------------

BOM = b"\xef\xbb\xbf"
EXCEL_SC = (BOM + b'"sample","fragments","whitelist"\r\n'
            b'"S1","frag.tsv.gz",""\r\n'
            b'"S2","frag, copy.tsv.gz",\r\n'
            b",,\r\n\r\n\r\n")


@pytest.mark.parametrize(("name", "data"), [
    ("BOM before the header", BOM + b"sample,fragments\nS1,frag.tsv.gz\n"),
    ("CRLF line ends", b"sample,fragments\r\nS1,frag.tsv.gz\r\n"),
    ("quoted fields", b'"sample","fragments"\n"S1","frag.tsv.gz"\n'),
    ("trailing blank lines", b"sample,fragments\nS1,frag.tsv.gz\n\n\r\n  \n"),
    ("trailing lines of empty cells", b"sample,fragments\nS1,frag.tsv.gz\n,\n,\n"),
    ("empty cells after the last column", b"sample,fragments,,\nS1,frag.tsv.gz,,\n"),
])
def test_spreadsheet_conventions_are_read(inputs, name, data):
    p = inputs / "sheet.csv"
    p.write_bytes(data)
    assert read_samplesheet(p, "sc") == [{"sample": "S1", "fragments": str(inputs / "frag.tsv.gz")}], name


def test_excel_samplesheet_with_bom_crlf_quotes_and_blank_lines(inputs):
    """All conventions at once, as Excel writes them; a quoted path holds a comma."""
    for ext in ("", ".tbi"):
        (inputs / f"frag, copy.tsv.gz{ext}").write_bytes((inputs / f"frag.tsv.gz{ext}").read_bytes())
    (inputs / "sheet.csv").write_bytes(EXCEL_SC)
    assert read_samplesheet(inputs / "sheet.csv", "sc") == [
        {"sample": "S1", "fragments": str(inputs / "frag.tsv.gz")},
        {"sample": "S2", "fragments": str(inputs / "frag, copy.tsv.gz")}]


@pytest.mark.parametrize(("data", "message"), [
    # the line of the file, blank lines and a line break inside quotes counted
    (BOM + b"sample,fragments\r\n\r\nS1,frag.tsv.gz\r\n\r\nS1,frag.tsv.gz\r\n",
     "line 5: duplicate sample name 'S1' (also on line 3)"),
    (b'sample,fragments\n"S1",frag.tsv.gz\n"S\n2",frag.tsv.gz\n', "line 3: column 'sample' value 'S\\n2'"),
    (b'sample,fragments\n"S1","frag.tsv.gz"x\n', "line 2: not valid CSV"),
    (b"sample,fragments\nS1,frag.tsv.gz,extra\n", "line 2: more fields than the 2 header columns"),
    (b'sample,fragments\nS1,"frag.tsv.gz\n', "line 2: not valid CSV"),
    (b"\r\n\r\n", "empty samplesheet; expected a header line"),
    (BOM + b"sample,,fragments\n", "line 1: unknown column(s) (empty name of column 2)"),
])
def test_spreadsheet_samplesheet_errors_name_the_file_line(inputs, data, message):
    p = inputs / "sheet.csv"
    p.write_bytes(data)
    with pytest.raises(InputFileError) as err:
        read_samplesheet(p, "sc")
    assert str(err.value).startswith(str(p)) and message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)
