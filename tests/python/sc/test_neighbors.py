"""Neighbours on real count matrices (ingested through the counts path), LSI details, and clustering."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sc_builders import run_cli
from sklearn.metrics import adjusted_rand_score

from scfan.sc.cluster import leiden
from scfan.sc.neighbors import NeighborsConfig, compute_neighbors, knn, label_purity, lsi


def chance_purity(labels: np.ndarray) -> float:
    """Expected purity of random neighbours: mean over cells of the share of other cells with its label."""
    _, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return float(np.mean((counts[inv] - 1) / (len(labels) - 1)))


@pytest.mark.parametrize(("name", "k", "n_components", "min_gain", "min_ari"), [
    # hemato_atac: measured ARI 0.733 (5 clusters for 6 types; HSC/CMP merge); issue 11 asks 0.75 (not met yet)
    ("hemato_atac", 100, 30, 0.2, 0.70),
    ("chromvar_example", 10, 10, 0.2, 0.3),
])
def test_real_counts_ingest_and_neighbors(shared_data, tmp_path, monkeypatch, name, k, n_components, min_gain,
                                          min_ari):
    d = shared_data / name
    sheet = tmp_path / "sc.csv"
    sheet.write_text(f"sample,counts,peaks,barcodes\n{name},{d / 'counts.mtx.gz'},{d / 'peaks.bed'},"
                     f"{d / 'cells.tsv'}\n")
    cells, nn = tmp_path / "cells.h5ad", tmp_path / "cells_nn.h5ad"
    assert run_cli(monkeypatch, "sc", "ingest", "--samplesheet", str(sheet), "--sample", name, "--peaks",
                   str(d / "peaks.bed"), "--min-fragments", "0", "--out", str(cells)) == 0
    a = ad.read_h5ad(cells)
    meta = pd.read_csv(d / "cells.tsv", sep="\t")
    n_peaks = sum(1 for _ in open(d / "peaks.bed"))
    assert a.shape == (len(meta), n_peaks)
    assert list(a.obs["barcode"]) == list(meta["barcode"])
    np.testing.assert_array_equal(a.obs["n_fragments"], meta["depth"])  # taken from the cell table
    assert int(a.X.sum()) == int(np.asarray(a.X.sum(axis=1)).sum()) and a.X.nnz > 0
    assert a.uns["scfan"]["sources"][name]["kind"] == "counts"

    assert run_cli(monkeypatch, "sc", "neighbors", "--cells", str(cells), "--k", str(k), "--n-components",
                   str(n_components), "--seed", "0", "--out", str(nn)) == 0
    b = ad.read_h5ad(nn)
    pool = sp.csr_matrix(b.obsp["pooling"])
    assert b.obsm["X_lsi"].shape == (len(meta), n_components - 1)
    assert np.all(np.diff(pool.indptr) == k)
    np.testing.assert_allclose(np.asarray(pool.sum(axis=1)).ravel(), 1.0, rtol=1e-5)
    assert np.all(pool.diagonal() > 0)  # each row holds the cell itself
    assert abs(b.uns["lsi"]["dropped_depth_correlation"]) > 0.5
    assert json.loads((tmp_path / "cells_nn.config.json").read_text())["k"] == k
    labels = meta["cell_type"].to_numpy()
    purity = label_purity(pool, labels)
    assert purity > chance_purity(labels) + min_gain, purity

    # scverse layout: scanpy's own tools read the graph sc neighbors wrote
    import scanpy as sc

    assert b.uns["neighbors"]["connectivities_key"] == "connectivities"
    dist = sp.csr_matrix(b.obsp["distances"])
    assert np.all(np.diff(dist.indptr) == k - 1) and dist.diagonal().max() == 0
    assert dist.data.min() >= 0 and dist.data.max() <= 2
    sc.tl.leiden(b, flavor="igraph", n_iterations=2, directed=False, random_state=0)
    assert b.obs["leiden"].nunique() > 1

    labels_file = tmp_path / "labels.tsv"
    pd.DataFrame({"cell_id": b.obs_names, "cell_type": labels}).to_csv(labels_file, sep="\t", index=False)
    out = tmp_path / "clusters"
    assert run_cli(monkeypatch, "sc", "cluster", "--matrix", str(nn), "--obsm", "X_spectral", "--labels",
                   str(labels_file), "--out-dir", str(out)) == 0
    tab = pd.read_csv(out / "clusters.tsv", sep="\t")
    assert list(tab["cell_id"]) == list(b.obs_names)
    summary = json.loads((out / "cluster.json").read_text())
    assert summary["ari"] == pytest.approx(adjusted_rand_score(labels, tab["cluster"]))
    assert summary["ari"] > min_ari, summary["ari"]


def test_neighbors_deterministic_and_k_capped(shared_data, caplog):
    import gzip

    import scipy.io

    d = shared_data / "chromvar_example"
    with gzip.open(d / "counts.mtx.gz") as fh:
        X = sp.csr_matrix(scipy.io.mmread(fh).T, dtype=np.int32)
    runs = [compute_neighbors(ad.AnnData(X=X.copy()), NeighborsConfig(k=500, n_components=8, seed=3))
            for _ in range(2)]
    assert "k = 500 is more than the 50 cells" in caplog.text
    assert runs[0].uns["lsi"]["k"] == 50
    np.testing.assert_array_equal(runs[0].obsm["X_lsi"], runs[1].obsm["X_lsi"])
    assert (runs[0].obsp["pooling"] != runs[1].obsp["pooling"]).nnz == 0
    kept = compute_neighbors(ad.AnnData(X=X.copy()), NeighborsConfig(k=5, n_components=8, drop_depth_component=False))
    assert kept.obsm["X_lsi"].shape[1] == 8 and kept.uns["lsi"]["dropped_component"] == -1


@pytest.mark.slow  # pynndescent JIT compilation takes ~35 s
def test_exact_knn_agrees_with_pynndescent_and_puts_self_first():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 6))
    emb = np.repeat(centres, 150, axis=0) + 0.05 * rng.normal(size=(600, 6))
    exact = knn(emb.astype(np.float32), 10, seed=0)
    approx = knn(emb.astype(np.float32), 10, seed=0, exact_max_cells=10)
    assert np.all(exact[:, 0] == np.arange(600)) and np.all(approx[:, 0] == np.arange(600))
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx, strict=True)])
    assert overlap > 0.9
    groups = np.repeat(np.arange(4), 150)
    assert label_purity(exact, groups) == 1.0


def test_lsi_drops_depth_component_on_depth_driven_data():
    rng = np.random.default_rng(2)
    depth = rng.lognormal(5, 1, size=300)
    profile = rng.random(400)
    X = sp.csr_matrix(rng.poisson(np.outer(depth / depth.mean(), profile)))
    _, info = lsi(X, 10, drop_depth_component=True, seed=0)
    j = info["dropped_component"]
    assert abs(info["depth_correlation"][j]) == max(abs(c) for c in info["depth_correlation"])


def test_leiden_is_seeded_and_finds_planted_groups():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(3), 40)
    p = np.where(groups[:, None] == groups[None, :], 0.5, 0.02)
    upper = np.triu(rng.random(p.shape) < p, 1)
    g = sp.csr_matrix((upper | upper.T).astype(np.float32))
    a, b = leiden(g, seed=5), leiden(g, seed=5)
    np.testing.assert_array_equal(a, b)
    assert adjusted_rand_score(groups, a) > 0.95


def test_spectral_embedding_beats_lsi_on_real_hemato_and_is_deterministic(shared_data):
    import gzip

    import scipy.io

    from scfan.sc.neighbors import spectral

    d = shared_data / "hemato_atac"
    with gzip.open(d / "counts.mtx.gz") as fh:
        X = sp.csr_matrix(scipy.io.mmread(fh).T, dtype=np.int32)
    labels = pd.read_csv(d / "cells.tsv", sep="\t")["cell_type"].to_numpy()
    emb, info = spectral(X, 30, seed=0)
    again, _ = spectral(X, 30, seed=0)
    np.testing.assert_allclose(emb, again, rtol=1e-4, atol=1e-6)
    assert emb.shape == (600, 30) and info["eigenvalues"][0] == pytest.approx(1.0, abs=1e-6)  # trivial one dropped
    lsi_emb, _ = lsi(X, 30, drop_depth_component=True, seed=0)
    p_spec = label_purity(knn(emb, 15, seed=0), labels)
    p_lsi = label_purity(knn(lsi_emb, 15, seed=0), labels)
    ari = adjusted_rand_score(labels, leiden(compute_neighbors(ad.AnnData(X=X), NeighborsConfig(k=15)).obsp[
        "connectivities"], resolution=1.0, seed=0))
    print(f"hemato_atac k=15: purity spectral {p_spec:.3f} vs LSI {p_lsi:.3f}; Leiden ARI {ari:.3f}")
    assert p_spec > p_lsi + 0.05 and ari > 0.65


def _hemato(shared_data):
    import gzip

    import scipy.io

    d = shared_data / "hemato_atac"
    with gzip.open(d / "counts.mtx.gz") as fh:
        X = sp.csr_matrix(scipy.io.mmread(fh).T, dtype=np.int32)
    return X, pd.read_csv(d / "cells.tsv", sep="\t")["cell_type"].to_numpy()


def test_landmark_embeddings_with_every_cell_a_landmark_are_the_exact_ones(shared_data):
    """The Nyström extension is exact on the landmarks: with every cell a landmark (read in odd-sized row blocks)
    the spectral and LSI embeddings are those of the whole-matrix path."""
    from scfan.sc.neighbors import lsi_landmarks, spectral, spectral_landmarks

    X, _ = _hemato(shared_data)
    exact, _ = spectral(X, 30, seed=0)
    ext, info = spectral_landmarks(X, 30, n_landmarks=10**6, seed=0, block=97)
    assert info["method"] == "landmark" and info["n_landmarks"] == X.shape[0]
    np.testing.assert_allclose(ext, exact, atol=1e-6 * np.abs(exact).max())
    lsi_exact, _ = lsi(X, 30, drop_depth_component=True, seed=0)
    lsi_ext, _ = lsi_landmarks(X, 30, n_landmarks=10**6, drop_depth_component=True, seed=0, block=97)
    np.testing.assert_allclose(lsi_ext, lsi_exact, rtol=1e-5, atol=1e-4)


def test_landmark_path_of_compute_neighbors_on_real_cells(shared_data):
    """Above --max-exact-cells the neighbours come from half the cells as landmarks: recorded in uns, and the
    neighbourhoods keep most of their label purity (0.74 vs 0.78 measured on hemato_atac at k = 15)."""
    X, labels = _hemato(shared_data)
    exact = compute_neighbors(ad.AnnData(X=X), NeighborsConfig(k=15))
    big = compute_neighbors(ad.AnnData(X=X), NeighborsConfig(k=15, max_exact_cells=100, n_landmarks=300))
    assert big.uns["spectral"]["method"] == "landmark" and big.uns["lsi"]["n_landmarks"] == 300
    assert "method" not in exact.uns["spectral"]
    p_exact, p_big = (label_purity(a.obsp["pooling"], labels) for a in (exact, big))
    chance = chance_purity(labels)
    assert p_big > p_exact - 0.08 and p_big > chance + 0.4
    same = compute_neighbors(ad.AnnData(X=X), NeighborsConfig(k=15, max_exact_cells=100, n_landmarks=300))
    assert (same.obsp["pooling"] != big.obsp["pooling"]).nnz == 0  # seeded
    other = compute_neighbors(ad.AnnData(X=X), NeighborsConfig(k=15, max_exact_cells=100, n_landmarks=300, seed=1))
    assert (other.obsp["pooling"] != big.obsp["pooling"]).nnz > 0  # another landmark sample


def test_connectivities_by_row_blocks_equal_the_whole_product():
    from scfan.sc.neighbors import connectivities

    rng = np.random.default_rng(0)
    n, k = 300, 12
    nb = np.stack([np.concatenate([[i], rng.choice(np.delete(np.arange(n), i), k - 1, replace=False)])
                   for i in range(n)])
    whole, blocked = connectivities(nb, block=10**6), connectivities(nb, block=7)
    assert whole.nnz > n * (k - 1)  # symmetrised: more edges than kNN rows
    assert (whole != blocked).nnz == 0 and np.array_equal(whole.indices, blocked.indices)
    np.testing.assert_array_equal(whole.toarray(), whole.toarray().T)
    i, j = 5, nb[5, 3]
    shared = len(set(nb[i]) & set(nb[j]))
    assert whole[i, j] == pytest.approx(shared / (2 * k - shared))


def test_neighbors_refuses_too_few_landmarks():
    with pytest.raises(Exception, match="landmarks"):
        NeighborsConfig(n_landmarks=2)
