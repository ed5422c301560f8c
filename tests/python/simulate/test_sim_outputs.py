"""The `test` preset's files: layout of docs/data_contracts.md, opened by the standard tools, realistic content."""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import polars as pl
import pyBigWig
import pyfaidx
import pytest

from scfan.genome import Genome, read_chrom_sizes
from scfan.intervals import NarrowPeakSchema, read_bed
from scfan.samplesheet import read_samplesheet
from scfan.simulate.schemas import BoundSitesSchema, TruthCellsSchema, TruthDriversSchema

CONTRACT_FILES = ["genome.fa", "genome.fa.fai", "chrom.sizes", "blacklist.bed", "mappability.bw", "tfs.tsv",
                  "bulk_samplesheet.csv", "sc/peaks.bed", "sc_samplesheet.csv", "truth/cells.tsv",
                  "truth/drivers.tsv", "truth/bound_sites.parquet", "manifest.json"]


def test_layout_follows_the_data_contract(sim_view):
    root, man = sim_view.root, sim_view.manifest
    for rel in CONTRACT_FILES:
        assert (root / rel).is_file(), rel
    for line, tfs in man["lines"].items():
        assert (root / "bulk" / line / "atac.bw").is_file()
        assert {p.name for p in (root / "bulk" / line).glob("*.narrowPeak.gz")} == {f"{t}.narrowPeak.gz" for t in tfs}
    for sample in man["samples"]:
        assert (root / "sc" / sample / "fragments.tsv.gz.tbi").is_file()
    leftovers = [p.name for p in root.parent.iterdir() if ".tmp-" in p.name]
    assert leftovers == []


def test_manifest_has_parameters_and_splits_without_paths_or_times(sim_view):
    man, text = sim_view.manifest, (sim_view.root / "manifest.json").read_text()
    assert man["seed"] == 7 and man["preset"] == "test"
    assert man["test_chroms"] == ["chr1"] and man["valid_chroms"] == ["chr2"]
    assert man["config"]["n_cells"] == 400 and man["config"]["noise"] == 1.0
    assert str(sim_view.root) not in text and "/tmp" not in text
    assert not re.search(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", text)
    assert "manifest.json" not in man["files"] and "genome.fa" in man["files"]


def test_genome_opens_with_pyfaidx_and_matches_chrom_sizes(sim_view):
    root = sim_view.root
    fa = pyfaidx.Fasta(str(root / "genome.fa"))
    sizes = read_chrom_sizes(root / "chrom.sizes")
    assert list(fa.keys()) == list(sizes) == ["chr1", "chr2", "chr3", "chrX"]
    assert {k: len(fa[k]) for k in fa.keys()} == sizes
    assert 2_000_000 <= sum(sizes.values()) <= 3_000_000
    seq = str(fa["chr2"][100_000:300_000])
    upper = seq.upper()
    gc = (upper.count("G") + upper.count("C")) / len(seq)
    assert 0.33 < gc < 0.5
    cpg_ratio = upper.count("CG") / (upper.count("C") * upper.count("G") / len(seq))
    assert cpg_ratio < 0.5  # CpG depletion, as in mammalian genomes
    assert any(c.islower() for c in seq)  # soft-masked repeats
    assert str(fa["chr1"][0:100]) == "N" * 100  # telomere gap
    fa.close()
    with Genome(root / "genome.fa") as g:
        raw = pyfaidx.Fasta(str(root / "genome.fa"))
        assert g.fetch("chrX", 10_000, 10_010) == str(raw["chrX"][10_000:10_010]).upper()
        raw.close()


def test_gc_varies_between_isochores(sim_view):
    with Genome(sim_view.root / "genome.fa") as g:
        gcs = []
        for chrom, size in g.sizes.items():
            for s in range(20_000, size - 70_000, 50_000):
                seq = g.fetch(chrom, s, s + 50_000)
                gcs.append((seq.count("G") + seq.count("C")) / 50_000)
    assert np.std(gcs) > 0.015


def test_mappability_bigwig_has_low_stretches(sim_view):
    bw = pyBigWig.open(str(sim_view.root / "mappability.bw"))
    try:
        chroms = bw.chroms()
        assert list(chroms) == ["chr1", "chr2", "chr3", "chrX"]
        vals = np.concatenate([bw.values(c, 0, n, numpy=True) for c, n in chroms.items()])
    finally:
        bw.close()
    assert not np.isnan(vals).any()
    assert vals.min() >= 0 and vals.max() <= 1
    assert 0.005 < (vals < 0.5).mean() < 0.2 and (vals == 1).mean() > 0.8


def test_blacklist_is_bed3_inside_chromosomes_and_unmappable(sim_view):
    root = sim_view.root
    sizes = read_chrom_sizes(root / "chrom.sizes")
    bl = read_bed(root / "blacklist.bed", chrom_sizes=sizes)
    assert bl.columns == ["chrom", "start", "end"] and len(bl) >= len(sizes)
    bw = pyBigWig.open(str(root / "mappability.bw"))
    try:
        for r in bl.iter_rows(named=True):
            assert bw.stats(r["chrom"], r["start"] + 500, r["end"] - 500)[0] < 0.1
    finally:
        bw.close()


@pytest.mark.parametrize("line", ["lineA", "lineB"])
def test_bulk_atac_is_insertions_per_base(sim_view, line):
    bw = pyBigWig.open(str(sim_view.root / "bulk" / line / "atac.bw"))
    try:
        vals = bw.values("chr2", 0, bw.chroms()["chr2"], numpy=True)
        header = bw.header()
    finally:
        bw.close()
    assert not np.isnan(vals).any() and (vals >= 0).all() and np.array_equal(vals, np.round(vals))
    total_bp = sum(sim_view.manifest["chrom_sizes"].values())
    assert header["nBasesCovered"] == total_bp
    mean = header["sumData"] / total_bp
    assert 0.05 < mean < 0.2
    assert vals.max() > 20 * mean  # peaks stand out of the background


def test_narrowpeaks_pass_the_schema_and_look_like_chip(sim_view):
    sizes = read_chrom_sizes(sim_view.root / "chrom.sizes")
    for line, tfs in sim_view.manifest["lines"].items():
        for tf in tfs:
            path = sim_view.root / "bulk" / line / f"{tf}.narrowPeak.gz"
            with open(path, "rb") as fh:
                assert fh.read(10)[4:8] == b"\x00\x00\x00\x00"  # gzip mtime 0
            df = read_bed(path, narrowpeak=True, chrom_sizes=sizes)
            NarrowPeakSchema.validate(df)
            width = (df["end"] - df["start"]).to_numpy()
            assert 150 <= np.median(width) <= 600 and len(df) >= 30
            assert ((df["peak"] >= 0) & (df["peak"] < df["end"] - df["start"])).all()
            assert df["signal_value"].min() > 0 and df["name"].n_unique() == len(df)


def test_samplesheets_validate_with_relative_paths(sim_view):
    bulk = read_samplesheet(sim_view.root / "bulk_samplesheet.csv", "bulk")
    sc = read_samplesheet(sim_view.root / "sc_samplesheet.csv", "sc")
    expected = {(ln, t) for ln, ts in sim_view.manifest["lines"].items() for t in ts}
    assert {(r["line"], r["tf"]) for r in bulk} == expected
    assert all(re.fullmatch(r"MA\d{4}\.\d+", r["motif"]) for r in bulk)
    assert [r["sample"] for r in sc] == sim_view.manifest["samples"]
    raw = (sim_view.root / "bulk_samplesheet.csv").read_text() + (sim_view.root / "sc_samplesheet.csv").read_text()
    assert str(sim_view.root) not in raw


def test_tfs_table_lists_jaspar_matrices(sim_view):
    tfs = pl.read_csv(sim_view.root / "tfs.tsv", separator="\t")
    assert tfs.columns[:2] == ["tf", "jaspar_id"] and len(tfs) == 8
    assert tfs.filter(pl.col("tf") == "CTCF")["jaspar_id"][0].startswith("MA0139.")


def test_fragments_are_tabix_queryable_sorted_10x_files(sim_view, tabix_open, sim_fragments):
    sample = sim_view.manifest["samples"][0]
    path = sim_view.root / "sc" / sample / "fragments.tsv.gz"
    with open(path, "rb") as fh:
        head = fh.read(18)
    assert head[:4] == b"\x1f\x8b\x08\x04" and head[12:14] == b"BC"  # BGZF block
    tbx = tabix_open(path)
    assert set(tbx.contigs) == {"chr1", "chr2", "chr3", "chrX"}
    rows = [r.split("\t") for r in tbx.fetch("chr2", 200_000, 260_000)]
    assert rows and all(r[0] == "chr2" and int(r[2]) > 200_000 and int(r[1]) < 260_000 for r in rows)
    with gzip.open(path, "rt") as fh:
        lines = fh.read().splitlines()
    chrom_rank = {c: i for i, c in enumerate(["chr1", "chr2", "chr3", "chrX"])}
    keys = [(chrom_rank[p[0]], int(p[1])) for p in (ln.split("\t") for ln in lines)]
    assert keys == sorted(keys)
    assert all(len(ln.split("\t")) == 5 for ln in lines[:1000])
    f = sim_fragments
    assert f["barcode"].str.contains(r"^[ACGT]{16}-1$").all()
    assert f["count"].min() == 1 and 0.02 < (f["count"] > 1).mean() < 0.3


def test_fragment_lengths_show_nucleosome_pattern(sim_fragments):
    length = (sim_fragments["end"] - sim_fragments["start"]).to_numpy()
    nfr = (length < 147).mean()
    mono = ((length >= 147) & (length < 261)).mean()
    assert 0.35 < nfr < 0.8 and 0.15 < mono < 0.5
    hist = np.bincount(length, minlength=700)
    assert hist[180:220].mean() > 3 * hist[140:150].mean() / 2  # a mono-nucleosome bump
    assert hist[40:100].mean() > hist[180:220].mean()


def test_cells_truth_depth_and_low_quality(sim_view, sim_fragments):
    cells = sim_view.cells
    assert cells.columns == ["sample", "barcode", "cell_id", "cell_type", "quality"]
    assert len(cells) == 400 and cells["cell_id"].n_unique() == 400
    assert set(cells["cell_type"]) == {"type1", "type2", "type3", "type4"}
    low = (cells["quality"] == "low").mean()
    assert 0.02 < low < 0.1
    per_cell = sim_fragments.group_by("cell_id").agg(pl.len().alias("n")).join(cells, on="cell_id")
    good = per_cell.filter(pl.col("quality") == "good")["n"]
    bad = per_cell.filter(pl.col("quality") == "low")["n"]
    assert 3000 <= good.median() <= 5000 and bad.median() < good.median() / 5
    assert good.quantile(0.9) > 1.5 * good.quantile(0.1)  # depth varies between cells


def test_union_peaks_are_bed4_with_region_ids(sim_view):
    sizes = read_chrom_sizes(sim_view.root / "chrom.sizes")
    peaks = read_bed(sim_view.root / "sc" / "peaks.bed", chrom_sizes=sizes)
    assert peaks.columns == ["chrom", "start", "end", "name"] and 300 < len(peaks) < 5000
    assert (peaks["name"] == peaks["chrom"] + ":" + peaks["start"].cast(str) + "-" + peaks["end"].cast(str)).all()


def test_truth_tables(sim_view):
    sites = sim_view.sites
    assert sites.columns[:10] == ["site_id", "chrom", "start", "end", "strand", "tf", "motif_score", "decoy",
                                  "bound_lines", "bound_types"]
    assert sites["site_id"].n_unique() == len(sites)
    decoys = sites.filter(pl.col("decoy"))
    assert len(decoys) > 0 and (decoys["bound_lines"].list.len() == 0).all()
    assert (decoys["bound_types"].list.len() == 0).all()
    # some bound sites have weak motifs, some REs hold two TFs (co-binding)
    bound = sites.filter(pl.col("bound_lines").list.len() > 0)
    assert bound["weak_motif"].any() and sites["re_id"].is_duplicated().any()
    drivers = sim_view.drivers
    assert drivers.columns == ["cell_type", "tf"] and "CTCF" not in drivers["tf"].to_list()
    assert set(drivers["cell_type"]) == set(sim_view.cells["cell_type"])
    BoundSitesSchema.validate(sites)
    TruthCellsSchema.validate(sim_view.cells)
    TruthDriversSchema.validate(drivers)
    json.dumps(sim_view.manifest)  # serialisable
