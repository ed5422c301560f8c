"""Interval files and genomes as ENCODE, UCSC and GRCh38 make them (issue 34): gzip narrowPeak and ENCFF….bed.gz
IDR peaks, UCSC track/browser lines, CRLF, contigs outside the primary chromosomes, and chromosome sets that
do not meet (a ``chr`` prefix, GRCh38 vs hg19)."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pytest

from scfan.errors import ChromosomeNameError, InputFileError, ScfanError
from scfan.genome import (
    ChromSelection,
    check_chrom_names,
    chrom_name_hint,
    genome_build,
    is_primary_chromosome,
    primary_chromosomes,
)
from scfan.intervals import read_bed, sniff_narrowpeak

# names of the GRCh38 UCSC analysis set .fai (a sample of its 195 contigs) and of Ensembl/Cell Ranger GRCh38
UCSC_GRCH38 = ([f"chr{i}" for i in range(1, 23)] + ["chrX", "chrY", "chrM", "chr1_KI270706v1_random",
               "chr14_GL000009v2_random", "chrUn_KI270302v1", "chrUn_GL000195v1", "chr1_KI270762v1_alt",
               "chr6_GL000251v2_alt", "chrEBV", "HLA-A*01:01:01:01", "HLA-DRB1*15:01:01:01"])
ENSEMBL_GRCH38 = [str(i) for i in range(1, 23)] + ["X", "Y", "MT", "KI270728.1", "GL000009.2", "KI270711.1"]
HG19_CHR1, GRCH38_CHR1 = 249_250_621, 248_956_422
TRACK = b'browser position chr14:106873418-106873927\r\ntrack name="CTCF GM12878" description="ENCODE" visibility=2\r\n'


def _encode_lines(shared_data: Path, n: int = 40) -> list[str]:
    with gzip.open(shared_data / "encode_tfbs" / "CTCF_GM12878.bed.gz", "rt") as fh:
        return [next(fh).rstrip("\n") for _ in range(n)]


def _narrowpeak_rows(lines: list[str]) -> list[str]:
    """IDR thresholded peaks as ENCODE serves them (bed narrowPeak: name '.', score, strand '.', signal, p, q,
    summit) on the real CTCF coordinates."""
    out = []
    for i, ln in enumerate(lines):
        c, s, e = ln.split("\t")[:3]
        summit = (int(e) - int(s)) // 2
        out.append(f"{c}\t{s}\t{e}\t.\t{1000 - i}\t.\t{40.5 - i / 4:.5f}\t-1\t{5.1 + i / 10:.5f}\t{summit}")
    return out


# --- 3. ENCODE / UCSC files ---------------------------------------------------------------------------------------

def test_real_encode_bed_with_ucsc_track_lines_and_crlf(shared_data, tmp_path):
    lines = _encode_lines(shared_data)
    plain = tmp_path / "plain.bed"
    plain.write_text("\n".join(lines) + "\n")
    ucsc = tmp_path / "ctcf_ucsc.bed.gz"
    with gzip.open(ucsc, "wb") as fh:
        fh.write(TRACK + "\r\n".join(lines).encode() + b"\r\n")
    got, want = read_bed(ucsc), read_bed(plain)
    assert got.equals(want) and len(got) == 40 and got["name"][0] == "CTCF_GM12878_1"
    assert not got["name"].str.contains("\r").any()
    assert not sniff_narrowpeak(ucsc)  # BED4: not narrowPeak


def test_encode_idr_thresholded_bed_gz_is_narrowpeak(shared_data, tmp_path):
    rows = _narrowpeak_rows(_encode_lines(shared_data))
    idr = tmp_path / "ENCFF002CEL.bed.gz"  # ENCODE's name for "conservative IDR thresholded peaks"
    with gzip.open(idr, "wt") as fh:
        fh.write("\n".join(rows) + "\n")
    assert sniff_narrowpeak(idr)
    df = read_bed(idr, narrowpeak=True)
    assert df.columns[-1] == "peak" and df["p_value"].to_list() == [-1.0] * 40 and df["strand"][0] == "."
    crlf = tmp_path / "CTCF.narrowPeak.gz"  # with a UCSC header and CRLF: the same table
    with gzip.open(crlf, "wb") as fh:
        fh.write(TRACK + "\r\n".join(rows).encode() + b"\r\n")
    assert sniff_narrowpeak(crlf) and read_bed(crlf, narrowpeak=True).equals(df)


# --- 4. GRCh38 contigs ---------------------------------------------------------------------------------------------

def test_primary_chromosomes_of_grch38_namings():
    assert primary_chromosomes(UCSC_GRCH38) == UCSC_GRCH38[:25]
    assert primary_chromosomes(ENSEMBL_GRCH38) == ENSEMBL_GRCH38[:25]
    assert primary_chromosomes({"chr2L": 1, "chr3R": 2}) == []  # not a human-style genome
    assert not any(is_primary_chromosome(c) for c in ("chrEBV", "EBV", "chrUn_KI270302v1", "HLA-A*01:01:01:01"))


def test_contigs_skipped_in_peaks_with_one_counted_warning(shared_data, tmp_path, caplog):
    lines = _encode_lines(shared_data, 6)
    bed = tmp_path / "peaks.bed"
    bed.write_text("\n".join(lines[:3] + ["chr1_KI270706v1_random\t100\t400\tx", "chrEBV\t10\t90\ty",
                                          "chrUn_KI270302v1\t5\t50\tz", "HLA-A*01:01:01:01\t1\t9\tw",
                                          "chr6_GL000251v2_alt\t7\t70\tv"] + lines[3:]) + "\n")
    sizes = {c: 10**9 for c in primary_chromosomes(UCSC_GRCH38)}
    with caplog.at_level(logging.WARNING, logger="scfan"):
        df = read_bed(bed, chrom_sizes=sizes, chroms=ChromSelection())
    assert len(df) == 6 and df["chrom"].is_in(list(sizes)).all()
    warns = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warns == [f"{bed}: 5 interval(s) on 5 contig(s) outside the primary chromosomes (chr1-22, X, Y, M) "
                     "skipped (chr1_KI270706v1_random, chrEBV, chrUn_KI270302v1, HLA-A*01:01:01:01, … (5 in all)); "
                     "--chroms all keeps them"]
    # without a selection they are records like any other, and the genome's sizes refuse them
    with pytest.raises(InputFileError, match=r"line 4: chromosome 'chr1_KI270706v1_random' is not in the genome"):
        read_bed(bed, chrom_sizes=sizes)
    only = tmp_path / "contigs.bed"
    only.write_text("chrEBV\t10\t90\n")
    with pytest.raises(InputFileError) as err:
        read_bed(only, chroms=ChromSelection())
    assert str(err.value) == (f"{only}: every interval is on a contig outside the primary chromosomes (chr1-22, X, "
                              "Y, M) (chrEBV); choose the contigs with --chroms (e.g. --chroms all)")


def test_chrom_selection_choices():
    assert ChromSelection("chr1,chr2")("chr2") and not ChromSelection("chr1,chr2")("chrX")
    assert ChromSelection("all")("chrEBV")
    sizes = dict.fromkeys(UCSC_GRCH38, 1000)
    assert list(ChromSelection().restrict(sizes, "GRCh38.fa.fai")) == UCSC_GRCH38[:25]
    assert ChromSelection().restrict({"chr2L": 5}, "dm6.fai") == {"chr2L": 5}  # nothing primary: all kept
    with pytest.raises(ChromosomeNameError, match="none of --chroms chr1,chr2 is in it"):
        ChromSelection("chr1,chr2").restrict({"1": 5}, "ensembl.fai")
    with pytest.raises(ScfanError, match="expected primary, all or a comma-separated list"):
        ChromSelection(" , ")


# --- 5. chromosome sets that do not meet --------------------------------------------------------------------------

def test_chr_prefix_message():
    with pytest.raises(ChromosomeNameError) as err:
        check_chrom_names(("GRCh38.fa", dict.fromkeys(UCSC_GRCH38, 1)), {"Homo_sapiens.GRCh38.bw": ENSEMBL_GRCH38})
    assert str(err.value) == (
        "Homo_sapiens.GRCh38.bw has chromosome(s) 1, 2, 3, 4, 5 … (28 in all) not in GRCh38.fa (no name in "
        "common), which has chr1, chr2, chr3, chr4, … (34 in all) — GRCh38.fa uses 'chr' prefixes: add them "
        "(e.g. sed 's/^/chr/')")
    with pytest.raises(ChromosomeNameError, match=r"peaks.bed has chromosome\(s\) chr1, chr2 not in genome.fa .*"
                       r"— genome.fa has no 'chr' prefix: strip it"):
        check_chrom_names(("genome.fa", ["1", "2"]), {"peaks.bed": ["chr1", "chr2"]})


def test_grch38_vs_hg19_by_chr1_length():
    grch38 = {"chr1": GRCH38_CHR1, "chr2": 242_193_529, "chr1_KI270706v1_random": 175_055}
    hg19 = {"chr1": HG19_CHR1, "chr2": 243_199_373, "chr1_gl000191_random": 106_433}
    assert genome_build(grch38) == "GRCh38" and genome_build({"1": HG19_CHR1}) == "hg19"
    with pytest.raises(ChromosomeNameError) as err:
        check_chrom_names(("GRCh38.fa", grch38), {"hg19.mappability.bw": hg19, "ok.bw": grch38})
    assert str(err.value) == ("hg19.mappability.bw is hg19 (chr1 249,250,621 bp) but GRCh38.fa is GRCh38 (chr1 "
                              "248,956,422 bp) — the genome builds differ: use files of one build (or convert with "
                              "liftOver)")
    # names only: hg19's contig names against a GRCh38 genome
    assert chrom_name_hint(["chr6_apd_hap1", "chrUn_gl000220"], grch38, "GRCh38.fa") == (
        " — the names are those of hg19, GRCh38.fa is GRCh38: use files of one genome build (or convert with "
        "liftOver)")


def test_peaks_of_another_build_beyond_chromosome_end(shared_data, tmp_path):
    """Real hg19 peaks (chromVAR example) checked against GRCh38 chr1: a peak ends beyond its end."""
    src = shared_data / "chromvar_example" / "peaks.bed"
    chr1 = [ln for ln in src.read_text().splitlines() if ln.startswith("chr1\t")]
    beyond = [ln for ln in chr1 if int(ln.split("\t")[2]) > GRCH38_CHR1]
    assert beyond  # the README: 276 peak ends lie beyond the hg38 ends
    bed = tmp_path / "hg19_chr1_peaks.bed"
    bed.write_text("\n".join(chr1) + "\n")
    c, s, e = beyond[0].split("\t")[:3]
    with pytest.raises(InputFileError) as err:
        read_bed(bed, chrom_sizes={"chr1": GRCH38_CHR1, "chr2": 242_193_529})
    assert str(err.value) == (f"{bed}, line {chr1.index(beyond[0]) + 1}: interval {c}:{s}-{e} ends beyond the "
                              f"chromosome end ({GRCH38_CHR1}); the genome is GRCh38: is this file of another build?")
