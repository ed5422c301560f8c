"""Genome access, interval reading and chromosome-name checks (sequence encoding: tests/python/bulk/test_model.py)."""

import gzip

import numpy as np
import pytest

from scfan.errors import ChromosomeNameError, InputFileError
from scfan.genome import Genome, check_chrom_names
from scfan.intervals import merge_intervals, parse_region_id, read_bed, region_id


def test_genome_fetch_pads_beyond_chromosome_ends(tmp_path):
    fa = tmp_path / "g.fa"
    fa.write_text(">chr1\nACGTACGTAC\n>chr2\nGGGG\n")
    with Genome(fa) as g:  # builds the missing .fai
        assert g.sizes == {"chr1": 10, "chr2": 4}
        assert g.fetch("chr1", -2, 3) == "NNACG"
        assert g.fetch("chr2", 2, 7) == "GGNNN"
        with pytest.raises(ChromosomeNameError, match="no chromosome '1'"):
            g.fetch("1", 0, 2)
    assert (tmp_path / "g.fa.fai").exists()


def test_real_chip_sequences_roundtrip(shared_data):
    fa = shared_data / "chip_sequences" / "ctcf_gm12878.fa"
    first = fa.read_text().split("\n", 2)
    name, seq = first[0][1:], first[1]
    import shutil
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        local = Path(d) / "ctcf.fa"
        shutil.copy(fa, local)
        with Genome(local) as g:
            assert len(g.sizes) == 500
            assert g.fetch(name, 0, 200) == seq.upper()


def test_read_bed_real_encode_peaks(shared_data):
    df = read_bed(shared_data / "encode_tfbs" / "EZH2_GM12878.bed.gz")
    assert len(df) == 2472
    assert ((df["end"] - df["start"]) == 321).all()
    assert df.columns == ["chrom", "start", "end", "name"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("chr1\t5\n", "line 1: expected BED with ≥ 3 columns"),
        ("chr1\t10\t20\nchr1\tx\t30\n", "line 2: start/end 'x'/'30' are not integers"),
        ("chr1\t20\t10\n", "line 1: interval chr1:20-10 must have 0 <= start < end"),
        ("chr1\t5\t200\n", "line 1: interval chr1:5-200 ends beyond the chromosome end (100)"),
        ("chrZ\t5\t20\n", "line 1: chromosome 'chrZ' is not in the genome"),
        ("", "no intervals (empty file)"),
    ],
)
def test_read_bed_errors_name_file_and_line(tmp_path, content, message):
    p = tmp_path / "x.bed"
    p.write_text(content)
    with pytest.raises(InputFileError) as err:
        read_bed(p, chrom_sizes={"chr1": 100})
    assert str(err.value).startswith(str(p))
    assert message in str(err.value)


def test_read_narrowpeak_gz_and_schema(tmp_path):
    p = tmp_path / "x.narrowPeak.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("chr1\t10\t60\tp1\t500\t.\t7.5\t4.1\t2.2\t25\n")
    df = read_bed(p, narrowpeak=True)
    assert df["signal_value"][0] == 7.5 and df["peak"][0] == 25
    bad = tmp_path / "bad.narrowPeak"
    bad.write_text("chr1\t10\t60\tp1\t5000\t.\t7.5\t4.1\t2.2\t25\n")
    with pytest.raises(InputFileError, match="NarrowPeakSchema"):
        read_bed(bad, narrowpeak=True)


def test_check_chrom_names_suggests_prefix_fix():
    with pytest.raises(ChromosomeNameError) as err:
        check_chrom_names(("genome.fa", ["chr1", "chr2"]), {"peaks.bed": ["1", "2"], "ok.bw": ["chr1"]})
    msg = str(err.value)
    assert "peaks.bed has chromosome(s) 1, 2 not in genome.fa" in msg and "add them" in msg
    assert "ok.bw" not in msg


def test_region_ids_and_merge():
    assert parse_region_id(region_id("chr1", 5, 10)) == ("chr1", 5, 10)
    s, e = merge_intervals(np.array([10, 0, 4, 30]), np.array([20, 5, 9, 31]))
    np.testing.assert_array_equal(s, [0, 10, 30])
    np.testing.assert_array_equal(e, [9, 20, 31])
