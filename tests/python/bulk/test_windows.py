"""Window tiling, blacklist padding, label thresholds and the prepare step on tiny files written here."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from scfan.bulk.windows import (
    PrepareConfig,
    blacklist_keep,
    label_windows,
    prepare_bulk,
    read_windows,
    sources_from_samplesheet,
    tile_starts,
)
from scfan.genome import Genome


@pytest.mark.parametrize("size", [999, 1000, 1001, 1049, 1050, 1051, 5_000, 5_037])
def test_tiles_keep_the_whole_context_on_the_chromosome(size):
    window, step, context = 200, 50, 1000
    flank = (context - window) // 2
    starts = tile_starts(size, window, step, context)
    assert np.all(starts % step == 0)
    assert np.all(starts - flank >= 0)
    assert np.all(starts + window + flank <= size)
    # no admissible tile is missed: the next/previous multiple of step would leave the chromosome
    all_tiles = np.arange(0, size, step)
    ok = all_tiles[(all_tiles - flank >= 0) & (all_tiles + window + flank <= size)]
    np.testing.assert_array_equal(starts, ok)


def test_tiles_at_exact_fit_and_too_short_chromosome():
    assert tile_starts(1000, 200, 50, 1000).tolist() == [400]
    assert tile_starts(999, 200, 50, 1000).size == 0
    assert tile_starts(1050, 200, 50, 1000).tolist() == [400, 450]


def test_blacklist_padding_is_exact():
    starts = np.arange(0, 9_801, 50)
    keep = blacklist_keep(starts, 200, np.array([5000]), np.array([5100]), 10_000, pad=1000)
    kept = starts[keep]
    # window [s, s+200) must not touch [4000, 6100)
    assert np.all((kept + 200 <= 4000) | (kept >= 6100))
    assert 3800 in kept and 3850 not in kept and 6100 in kept and 6050 not in kept
    assert blacklist_keep(starts, 200, np.array([], int), np.array([], int), 10_000, 1000).all()


@pytest.mark.parametrize(("overlap", "label"), [(99, 0), (100, 0), (101, 1), (102, 1), (200, 1)])
def test_label_threshold_at_100_and_101_bp(overlap, label):
    starts = np.array([1000])
    # peak overlapping the window's right end by `overlap` bp
    lab = label_windows(starts, 200, np.array([1200 - overlap]), np.array([1500]), 5000, min_overlap=101)
    assert lab.tolist() == [label]
    # the same from the left end
    lab = label_windows(starts, 200, np.array([500]), np.array([1000 + overlap]), 5000, min_overlap=101)
    assert lab.tolist() == [label]


def test_label_uses_the_union_of_overlapping_peaks():
    starts = np.array([1000])
    # two abutting 60 bp + 60 bp peaks inside the window: 120 bp of peak in all
    lab = label_windows(starts, 200, np.array([1020, 1080]), np.array([1080, 1140]), 5000, min_overlap=101)
    assert lab.tolist() == [1]
    # two overlapping peaks covering the same 80 bp never count twice
    lab = label_windows(starts, 200, np.array([1020, 1030]), np.array([1100, 1100]), 5000, min_overlap=101)
    assert lab.tolist() == [0]


def test_prepare_writes_windows_schema_and_metadata(tiny_bulk):
    cfg = PrepareConfig(valid_chroms=("chr2",), test_chroms=("chr1",))
    out = tiny_bulk.root / "prep"
    summary = prepare_bulk(sources_from_samplesheet(tiny_bulk.samplesheet, "L1"), tiny_bulk.genome,
                           tiny_bulk.mappability, tiny_bulk.blacklist, cfg, out)
    df, meta = read_windows(out / "windows.parquet")
    assert df.columns == ["chrom", "start", "end", "split", "TFA", "TFB"]
    assert df["TFA"].dtype == pl.UInt8
    assert meta["tf_names"] == ["TFA", "TFB"] and meta["window"] == 200 and meta["context"] == 1000
    assert meta["chrom_sizes"]["chr3"] == 40_000
    assert dict(zip(*np.unique(df["split"].to_numpy(), return_counts=True), strict=True)) == \
        summary["windows_per_split"]
    assert set(df.filter(pl.col("split") == "test")["chrom"].unique()) == {"chr1"}
    # the blacklist on chr3 [20000, 20500) ± 1 kb removes windows there
    c3 = df.filter(pl.col("chrom") == "chr3")
    assert not ((c3["end"] > 19_000) & (c3["start"] < 21_500)).any()
    # every planted TFA site yields positive windows that overlap it by ≥ 101 bp, and only those
    for chrom, s, e in tiny_bulk.peak_sites["TFA"]:
        near = df.filter((pl.col("chrom") == chrom) & (pl.col("end") > s) & (pl.col("start") < e))
        ov = np.minimum(near["end"].to_numpy(), e) - np.maximum(near["start"].to_numpy(), s)
        if len(near):
            np.testing.assert_array_equal(near["TFA"].to_numpy(), (ov >= 101).astype(np.uint8))
    js = (out / "prepare.json").read_text()
    assert '"positives"' in js and '"windows_per_split"' in js


def test_missing_fai_is_built(tiny_bulk):
    fai = tiny_bulk.genome.with_name("genome.fa.fai")
    if fai.exists():
        fai.unlink()
    with Genome(tiny_bulk.genome) as g:
        assert g.sizes["chr2"] == 16_000
    assert fai.exists()


def test_windows_parquet_metadata_is_readable_with_pyarrow(tiny_bulk):
    cfg = PrepareConfig(valid_chroms=("chr2",), test_chroms=("chr1",), window=100, step=100, min_overlap=51,
                        context=500)
    prepare_bulk(sources_from_samplesheet(tiny_bulk.samplesheet, "L1"), tiny_bulk.genome, tiny_bulk.mappability,
                 None, cfg, tiny_bulk.root / "p2")
    md = pq.read_schema(tiny_bulk.root / "p2" / "windows.parquet").metadata
    assert b"scfan" in md
    df, meta = read_windows(tiny_bulk.root / "p2" / "windows.parquet")
    assert (df["end"] - df["start"]).unique().to_list() == [100] and meta["step"] == 100
