"""Pooled per-cell tracks: raw insertions, pooling algebra, chunk-size independence, and the bulk scale."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyBigWig
import pytest
import scipy.sparse as sp
from sc_builders import CHROM_SIZES, random_fragments, write_fragments

from scfan.genome import read_chrom_sizes
from scfan.sc.ingest import IngestConfig, ingest_sample, merge_cells, write_cells
from scfan.sc.neighbors import NeighborsConfig, compute_neighbors, pooling_matrix
from scfan.sc.pooling import PooledTracks
from scfan.tracks import normalize_track

GENOME = float(sum(CHROM_SIZES.values()))


def per_base(rows, cells: list[str], chrom: str, start: int, end: int) -> np.ndarray:
    """Reference: dense cells × bp insertion counts from a plain loop over fragment rows."""
    out = np.zeros((len(cells), end - start))
    idx = {c: i for i, c in enumerate(cells)}
    for c, s, e, bc, _ in set(rows):
        cid = f"s1#{bc}"
        if c != chrom or cid not in idx:
            continue
        for site in (s, e - 1):
            if start <= site < end:
                out[idx[cid], site - start] += 1
    return out


@pytest.fixture()
def tiny(tmp_path):
    rows = random_fragments(seed=11, n_cells=10, per_cell=400)
    rows = sorted(rows + rows[:25], key=lambda r: (r[0], r[1]))  # repeated rows must not count twice
    frag = write_fragments(tmp_path / "fragments.tsv.gz", rows)
    cells = [f"s1#AAAC{c:04d}-1" for c in range(10) if c != 3]  # barcode 3 is not a cell
    totals = np.array([2.0 * sum(1 for r in set(rows) if f"s1#{r[3]}" == c) for c in cells])
    return rows, {"s1": frag}, cells, totals


def test_k1_pooling_equals_own_insertions(tiny):
    rows, frags, cells, totals = tiny
    eye = sp.identity(len(cells), format="csr")
    with PooledTracks(frags, cells, eye, totals, GENOME) as pt:
        raw = pt.insertions("chr1", 0, CHROM_SIZES["chr1"])
        pooled = pt.pooled("chr1", 0, CHROM_SIZES["chr1"])
    ref = per_base(rows, cells, "chr1", 0, CHROM_SIZES["chr1"])
    np.testing.assert_array_equal(raw.toarray(), ref)
    np.testing.assert_array_equal(pooled.toarray(), ref)
    assert ref[:, -1].sum() >= 1  # the fragment ending at the chromosome end is seen


def test_pooled_matches_dense_product_and_windows_do_not_depend_on_chunking(tiny):
    rows, frags, cells, totals = tiny
    rng = np.random.default_rng(0)
    neighbours = np.stack([np.r_[i, rng.choice(np.delete(np.arange(len(cells)), i), 3, replace=False)]
                           for i in range(len(cells))])
    pool = pooling_matrix(neighbours)
    np.testing.assert_allclose(np.asarray(pool.sum(axis=1)).ravel(), 1.0, rtol=1e-6)
    with PooledTracks(frags, cells, pool, totals, GENOME) as pt:
        start, end = 2_000, 9_000
        dense = pool.toarray().astype(np.float64) @ per_base(rows, cells, "chr1", start, end)
        np.testing.assert_allclose(pt.pooled("chr1", start, end).toarray(), dense, rtol=1e-6)
        # queries with windows past both chromosome ends, repeated cells, unsorted centres
        n_q = 60
        cell_idx = rng.integers(0, len(cells), n_q)
        centers = rng.integers(-300, CHROM_SIZES["chr1"] + 300, n_q)
        centers[:3] = [0, 499, CHROM_SIZES["chr1"] - 1]
        results = [pt.normalized_windows(cell_idx, "chr1", centers, context=1000, chunk_bp=c, cell_block=b)
                   for c in (1, 777, 5_000, 10**9) for b in (1, 3, 2048)]
        full = pool.toarray().astype(np.float64) @ per_base(rows, cells, "chr1", 0, CHROM_SIZES["chr1"])
        padded = np.pad(full, ((0, 0), (1000, 1000)))
        expected = np.stack([padded[c, x - 500 + 1000: x + 500 + 1000] for c, x in zip(cell_idx, centers,
                                                                                       strict=True)])
        mean = (pool @ totals) / GENOME
        expected = normalize_track(expected, mean[cell_idx][:, None])
        for r in results:
            np.testing.assert_allclose(r, expected, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(r, results[0])  # chunking and cell blocks change no number
        assert results[0].shape == (n_q, 1000) and results[0].dtype == np.float32
        assert np.all(results[0][0, :500] == 0)  # left of the chromosome start


def test_missing_sample_or_bad_pooling_shape(tiny):
    _, frags, cells, totals = tiny
    with pytest.raises(Exception, match="no fragments file for sample 'other'"):
        PooledTracks(frags, ["other#A-1"], sp.identity(1, format="csr"), np.ones(1), GENOME)
    with pytest.raises(Exception, match="pooling matrix"):
        PooledTracks(frags, cells, sp.identity(2, format="csr"), totals, GENOME)


def test_simulated_pooled_signal_matches_pseudobulk_and_bulk_scale(sim_test, tmp_path):
    sizes = read_chrom_sizes(sim_test / "chrom.sizes")
    genome = float(sum(sizes.values()))
    sheet = pd.read_csv(sim_test / "sc_samplesheet.csv")
    parts = []
    for s in sheet["sample"]:
        a = ingest_sample(IngestConfig(samplesheet=str(sim_test / "sc_samplesheet.csv"), sample=s,
                                       peaks=str(sim_test / "sc" / "peaks.bed"),
                                       chrom_sizes=str(sim_test / "genome.fa.fai")))
        write_cells(a, tmp_path / f"{s}.h5ad", IngestConfig(samplesheet="x", sample=s, peaks="p"))
        parts.append(tmp_path / f"{s}.h5ad")
    merged = merge_cells(parts)
    # the merged matrix does not depend on the order the files are given in (Nextflow's order is not stable)
    backwards = merge_cells(parts[::-1])
    assert list(backwards.obs_names) == list(merged.obs_names) and (backwards.X != merged.X).nnz == 0
    assert list(merged.obs["sample"].cat.categories) == sorted(sheet["sample"])
    assert merged.obs["sample"].iloc[0] == sorted(sheet["sample"])[0]
    cells = compute_neighbors(merged, NeighborsConfig(k=30, seed=0))
    truth = pd.read_csv(sim_test / "truth" / "cells.tsv", sep="\t").set_index("cell_id").loc[cells.obs_names]
    frags = {s: sim_test / f for s, f in zip(sheet["sample"], sheet["fragments"], strict=True)}
    peaks = pd.read_csv(sim_test / "sc" / "peaks.bed", sep="\t", header=None)
    chrom = peaks[0].iloc[0]
    centers = ((peaks[1] + peaks[2]) // 2)[peaks[0] == chrom].to_numpy()[:120]
    centers = centers[(centers > 500) & (centers < sizes[chrom] - 500)]
    # independent pseudo-bulk per cell type, read straight from the fragments files
    frames = []
    for s, f in frags.items():
        df = pd.read_csv(f, sep="\t", header=None, comment="#", names=["chrom", "start", "end", "bc", "n"])
        frames.append(df.assign(cid=s + "#" + df["bc"]).drop_duplicates(["chrom", "start", "end", "bc"]))
    allf = pd.concat(frames)
    allf = allf[allf["cid"].isin(set(cells.obs_names))]
    allf["type"] = truth.loc[allf["cid"], "cell_type"].to_numpy()
    with PooledTracks.from_anndata(cells, frags, genome) as pt:
        pooled_means = []
        for t, sub in allf.groupby("type"):
            on = sub[sub["chrom"] == chrom]
            track = np.bincount(np.r_[on["start"], on["end"] - 1], minlength=sizes[chrom])
            bulk_norm = normalize_track(track, 2 * len(sub) / genome)
            pb = np.stack([bulk_norm[c - 500:c + 500] for c in centers]).mean(axis=1)
            members = np.flatnonzero(truth["cell_type"].to_numpy() == t)[:30]
            q_cell, q_center = np.repeat(members, len(centers)), np.tile(centers, len(members))
            w = pt.normalized_windows(q_cell, chrom, q_center).reshape(len(members), len(centers), -1)
            per_window = w.mean(axis=(0, 2))
            assert np.corrcoef(per_window, pb)[0, 1] > 0.9, t
            # linear scale: pooled / its mean equals pseudo-bulk / its mean (expm1 undoes log1p)
            ratio = np.expm1(w).mean() / np.expm1(np.stack([bulk_norm[c - 500:c + 500] for c in centers])).mean()
            assert 0.85 < ratio < 1.15, (t, ratio)
            pooled_means.append(w.mean())
    # same scale as the normalised bulk ATAC track at the same peaks
    for bw_path in sorted((sim_test / "bulk").glob("*/atac.bw")):
        bw = pyBigWig.open(str(bw_path))
        total = sum(bw.stats(c, type="sum", exact=True)[0] or 0.0 for c in sizes)
        values = np.nan_to_num(np.asarray(bw.values(chrom, 0, sizes[chrom])))
        bw.close()
        bulk = normalize_track(values, total / genome)
        bulk_mean = np.stack([bulk[c - 500:c + 500] for c in centers]).mean()
        assert 0.5 < np.mean(pooled_means) / bulk_mean < 2.0
