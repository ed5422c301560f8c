"""`bulk prepare` on files as ENCODE and GRCh38 make them (issue 34): ChIP peaks read by the reader of `sc ingest`
(narrowPeak by content, `track` and `#` lines, gzip), and `--chroms all|primary|LIST` choosing the chromosomes
tiled among a FASTA with extra contigs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from bulk_builders import CHROMS, TinyBulk, run_cli, write_fasta, write_narrowpeak

from scfan.bulk.windows import BulkSources, PrepareConfig, TFSource, _peak_tables
from scfan.errors import InputFileError, ScfanError
from scfan.genome import ChromSelection
from scfan.sc.peaks import read_peak_set

CONTIGS = {"chr1_KI270706v1_random": 6_000, "chrEBV": 5_000}  # GRCh38 contigs beside the primary chromosomes
HEADER = ('track type=narrowPeak name="CTCF GM12878" description="ENCODE IDR thresholded peaks"\n'
          "# chrom\tchromStart\tchromEnd\tname\tscore\tstrand\tsignalValue\tpValue\tqValue\tpeak\n")


def _encode_narrowpeak(shared_data: Path, path: Path, n: int = 60, header: str = HEADER) -> list[str]:
    """The first ``n`` real GM12878 CTCF peaks as an ENCODE narrowPeak.gz (MACS2-style scores above 1000 included),
    with a UCSC ``track`` line and a ``#`` header line; returns the records."""
    with gzip.open(shared_data / "encode_tfbs" / "CTCF_GM12878.bed.gz", "rt") as fh:
        coords = [next(fh).split("\t")[:3] for _ in range(n)]
    rows = [f"{c}\t{s}\t{e}\t.\t{3000 - 10 * i}\t.\t{40.5 - i / 4:.5f}\t{120.3 - i:.5f}\t{5.1 + i / 10:.5f}\t"
            f"{(int(e) - int(s)) // 2}" for i, (c, s, e) in enumerate(coords)]
    with gzip.open(path, "wt") as fh:
        fh.write(header + "\n".join(rows) + "\n")
    return rows


def _sources(*paths: Path) -> BulkSources:
    return BulkSources("GM12878", Path("atac.bw"), [TFSource(f"TF{i}", p) for i, p in enumerate(paths)])


@pytest.mark.parametrize("name", ["ENCFF796WRU.bed.gz", "CTCF_GM12878.narrowPeak.gz"])  # ENCODE's, MACS2's
def test_encode_narrowpeak_with_track_and_header_lines_is_read_as_sc_ingest_reads_it(shared_data, tmp_path, name):
    path = tmp_path / name
    rows = _encode_narrowpeak(shared_data, path)
    got = _peak_tables(_sources(path), ChromSelection("all"), {})["TF0"]
    assert len(got) == len(rows) and got["chrom"][0] == rows[0].split("\t")[0]
    assert got.select("chrom", "start", "end").equals(read_peak_set(path).select("chrom", "start", "end"))
    assert got["start"].to_list() == [int(r.split("\t")[1]) for r in rows]


@pytest.mark.parametrize(
    ("bad", "expected"),
    [("chr1\t100\t300\t.\t500\t.\t4.0\t-1", "line 5: expected narrowPeak (10 tab-separated columns), found 8"),
     ("chr1\t100\tend\t.\t500\t.\t4.0\t-1\t2.0\t50", "line 5: start/end '100'/'end' are not integers")],
    ids=["truncated", "not-an-integer"],
)
def test_a_malformed_peak_line_is_named_with_its_file_and_line(shared_data, tmp_path, bad, expected):
    path = tmp_path / "CTCF.narrowPeak.gz"
    rows = _encode_narrowpeak(shared_data, path, n=6)
    with gzip.open(path, "wt") as fh:  # track and header on lines 1-2, the bad record on line 5
        fh.write(HEADER + "\n".join([*rows[:2], bad, *rows[2:]]) + "\n")
    with pytest.raises(InputFileError) as bulk:
        _peak_tables(_sources(path), ChromSelection("all"), {})
    assert str(bulk.value).startswith(f"{path}, {expected}")
    with pytest.raises(InputFileError) as sc:
        read_peak_set(path)
    assert str(sc.value) == str(bulk.value)  # the same one line on both sides


def test_prepare_names_the_malformed_line_of_a_peak_file(tiny_bulk, monkeypatch, capsys, tmp_path):
    tb = tiny_bulk
    write_narrowpeak(tb.peaks["TFB"], tb.peak_sites["TFB"])
    with gzip.open(tb.peaks["TFB"], "rt") as fh:
        rows = fh.read().splitlines()
    with gzip.open(tb.peaks["TFB"], "wt") as fh:
        fh.write(HEADER + "\n".join([*rows[:3], "chr2\t500", *rows[3:]]) + "\n")
    out = tmp_path / "prep"
    assert _prepare(monkeypatch, tb, out) == 2
    assert _error(capsys) == (f"scfan: error: {tb.peaks['TFB']}, line 6: expected narrowPeak (10 tab-separated "
                              "columns), found 2 column(s)")
    assert not out.exists() or not any(out.iterdir())


# --------------------------------------------------------------------------------------------------- --chroms


@pytest.fixture
def with_contigs(tiny_bulk: TinyBulk) -> TinyBulk:
    """The tiny genome plus two GRCh38 contigs (as in an analysis-set FASTA), with TFA peaks on them."""
    tb = tiny_bulk
    seqs = dict(tb.seqs) | {c: ("ACGTTGCA" * (n // 8 + 1))[:n] for c, n in CONTIGS.items()}
    write_fasta(tb.genome, seqs)
    tb.genome.with_suffix(".fa.fai").unlink(missing_ok=True)
    extra = [(c, 2000, 2300) for c in CONTIGS] + [("chrEBV", 3000, 3300)]
    write_narrowpeak(tb.peaks["TFA"], tb.peak_sites["TFA"] + extra)
    return tb


def _prepare(monkeypatch, tb: TinyBulk, outdir: Path, *extra: str) -> int:
    return run_cli(monkeypatch, "bulk", "prepare", "--samplesheet", str(tb.samplesheet), "--line", "L1",
                   "--genome", str(tb.genome), "--mappability", str(tb.mappability), "--blacklist",
                   str(tb.blacklist), "--valid-chroms", "chr2", "--test-chroms", "chr1", "--outdir", str(outdir),
                   *extra)


def test_default_tiles_every_contig_of_the_fasta(with_contigs, monkeypatch, tmp_path):
    assert _prepare(monkeypatch, with_contigs, tmp_path / "default") == 0
    df = pl.read_parquet(tmp_path / "default" / "windows.parquet")
    assert set(df["chrom"]) == set(CHROMS) | set(CONTIGS)
    assert df.filter(pl.col("chrom") == "chrEBV")["TFA"].sum() > 0
    assert PrepareConfig().chroms == "all"
    prep = json.loads((tmp_path / "default" / "prepare.json").read_text())
    assert prep["config"]["chroms"] == "all" and prep["chroms"] == [*CHROMS, *CONTIGS]


@pytest.mark.parametrize("spec", ["primary", "chr3,chr1,chr2"])
def test_chroms_keeps_only_those_chromosomes(with_contigs, monkeypatch, capsys, tmp_path, spec):
    out = tmp_path / "kept"
    assert _prepare(monkeypatch, with_contigs, out, "--chroms", spec) == 0
    df = pl.read_parquet(out / "windows.parquet")
    assert set(df["chrom"]) == set(CHROMS)
    prep = json.loads((out / "prepare.json").read_text())
    assert prep["chroms"] == list(CHROMS) and prep["config"]["chroms"] == spec  # FASTA order, whatever asked
    ignored = [ln for ln in capsys.readouterr().err.splitlines() if "ignored" in ln]
    assert len(ignored) == 1 and " INFO " in ignored[0], ignored
    assert "3 peak(s) on 2 chromosome(s) outside" in ignored[0]
    # the same windows as the genome without the contigs gives by default
    write_fasta(with_contigs.genome, with_contigs.seqs)
    with_contigs.genome.with_suffix(".fa.fai").unlink()
    write_narrowpeak(with_contigs.peaks["TFA"], with_contigs.peak_sites["TFA"])
    assert _prepare(monkeypatch, with_contigs, tmp_path / "plain") == 0
    assert pl.read_parquet(tmp_path / "plain" / "windows.parquet").equals(df)


def _error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("scfan: error: "), lines
    return lines[-1]


def test_a_listed_chromosome_not_in_the_fasta_is_one_line(with_contigs, monkeypatch, capsys, tmp_path):
    out = tmp_path / "prep"
    assert _prepare(monkeypatch, with_contigs, out, "--chroms", "chr1,chr2,chr9") == 2
    msg = _error(capsys)
    assert "--chroms: chromosome(s) chr9 not in" in msg and str(with_contigs.genome) in msg
    assert not out.exists() or not any(out.iterdir())


def test_split_chromosomes_outside_the_kept_set_are_one_line(with_contigs, monkeypatch, capsys, tmp_path):
    out = tmp_path / "prep"
    assert _prepare(monkeypatch, with_contigs, out, "--chroms", "chr2,chr3") == 2
    msg = _error(capsys)
    assert "validation/test chromosome(s) chr1 not among the chromosomes kept by --chroms chr2,chr3" in msg
    assert not out.exists() or not any(out.iterdir())


def test_an_empty_chroms_is_refused_before_reading():
    with pytest.raises(ScfanError, match="expected primary, all or a comma-separated list"):
        PrepareConfig(chroms=" , ")
