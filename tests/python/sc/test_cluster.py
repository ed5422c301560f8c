"""`scfan sc cluster` on planted matrices: clusters, differential features, scverse layout, bad input."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from sc_builders import run_cli

N_PER, N_FEAT = 60, 8


def planted(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Three groups of cells; group g is high in feature g (and only there); feature 7 is constant."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, size=(3 * N_PER, N_FEAT))
    groups = np.repeat(np.arange(3), N_PER)
    x[np.arange(3 * N_PER), groups] += 4.0
    x[:, 7] = 0.5
    cells = [f"cell{i:03d}" for i in range(3 * N_PER)]
    df = pd.DataFrame(x, columns=[f"TF{j}" for j in range(N_FEAT)])
    df.insert(0, "cell_id", cells)
    return df, groups


@pytest.fixture()
def planted_files(tmp_path):
    df, groups = planted()
    matrix = tmp_path / "m.tsv"
    df.to_csv(matrix, sep="\t", index=False)
    labels = tmp_path / "labels.tsv"
    pd.DataFrame({"cell_id": df["cell_id"], "cell_type": [f"type{g}" for g in groups]}).to_csv(
        labels, sep="\t", index=False)
    return matrix, labels, groups


def test_planted_groups_found_and_explained(planted_files, tmp_path, monkeypatch):
    import scanpy as sc

    matrix, labels, groups = planted_files
    out = tmp_path / "out"
    assert run_cli(monkeypatch, "sc", "cluster", "--matrix", str(matrix), "--labels", str(labels), "--tsne",
                   "--out-dir", str(out)) == 0
    summary = json.loads((out / "cluster.json").read_text())
    assert summary["ari"] > 0.95 and summary["nmi"] > 0.9, summary
    assert summary["n_clusters"] == 3
    assert summary["dropped_features"] == ["TF7"]  # constant column dropped and listed
    assert summary["resolution"] in summary["config"]["resolutions"]
    tab = pd.read_csv(out / "clusters.tsv", sep="\t")
    assert list(tab.columns) == ["cell_id", "cluster", "label", "umap1", "umap2"]
    diff = pd.read_csv(out / "differential_tfs.tsv", sep="\t")
    assert set(diff.columns) >= {"cluster", "rank", "feature", "score", "pval", "padj", "mean_in", "mean_out"}
    for c in range(3):
        planted_tf = "TF{}".format(np.bincount(groups[tab["cluster"].to_numpy() == c]).argmax())
        top = diff[(diff.cluster == c) & (diff["rank"] == 1)].iloc[0]
        assert top.feature == planted_tf and top.padj < 1e-10 and top.delta > 3
        # BH within a cluster: adjusted p-values are >= the raw ones and monotone in the raw ones
        d = diff[diff.cluster == c].sort_values("pval")
        assert np.all(d.padj.to_numpy() >= d.pval.to_numpy() - 1e-300)
        assert np.all(np.diff(d.padj.to_numpy()) >= -1e-12)
    a = ad.read_h5ad(out / "clustered.h5ad")
    assert list(a.obs["leiden"].astype(int)) == list(tab["cluster"])
    assert a.obsm["X_umap"].shape == (3 * N_PER, 2) and a.obsm["X_tsne"].shape == (3 * N_PER, 2)
    assert "TF7" not in a.var_names
    # scanpy's plotting reads what we wrote
    sc.pl.umap(a, color="leiden", show=False)
    sc.pl.rank_genes_groups(a, n_genes=3, show=False)


def test_same_seed_same_outputs(planted_files, tmp_path, monkeypatch):
    matrix, labels, _ = planted_files
    outs = [tmp_path / "a", tmp_path / "b"]
    for o in outs:
        assert run_cli(monkeypatch, "sc", "cluster", "--matrix", str(matrix), "--seed", "3", "--out-dir",
                       str(o)) == 0
    for name in ("clusters.tsv", "differential_tfs.tsv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()


def test_activity_layer_and_diff_matrix_from_h5ad(tmp_path, monkeypatch, capsys):
    """Clusters found on an embedding; TF activity (a named layer) tested between them; NaN column dropped."""
    df, groups = planted(1)
    values = df.iloc[:, 1:].to_numpy()
    act = ad.AnnData(np.zeros_like(values), obs=pd.DataFrame(
        {"cell_type": [f"t{g}" for g in groups]}, index=df["cell_id"].to_numpy()),
        var=pd.DataFrame({"model": "m1", "tf": [f"TF{j}" for j in range(N_FEAT)]},
                         index=[f"m1:TF{j}" for j in range(N_FEAT)]))
    prob = values.copy()
    prob[:, 6] = np.nan
    act.layers["mean_prob"] = prob
    act.obsm["X_emb"] = values[:, :3] + 0.1
    path = tmp_path / "act.h5ad"
    act.write_h5ad(path)
    out = tmp_path / "out"
    assert run_cli(monkeypatch, "sc", "cluster", "--matrix", str(path), "--obsm", "X_emb", "--diff-matrix",
                   str(path), "--diff-layer", "mean_prob", "--out-dir", str(out)) == 0
    summary = json.loads((out / "cluster.json").read_text())
    assert summary["ari"] > 0.95  # labels taken from obs['cell_type']
    assert summary["metric"] == "cosine" and not summary["scaled"]  # embedding: no z-scores
    assert set(summary["dropped_features"]) == {"m1:TF6", "m1:TF7"}
    diff = pd.read_csv(out / "differential_tfs.tsv", sep="\t")
    assert set(diff["model"]) == {"m1"} and diff["tf"].str.startswith("TF").all()
    assert "dropped 2 all-NaN or constant feature(s)" in capsys.readouterr().err


def test_more_neighbours_than_cells_and_one_label_class(tmp_path, monkeypatch, capsys):
    df, _ = planted()
    small = df.iloc[:10]
    matrix = tmp_path / "m.csv"
    small.to_csv(matrix, index=False)
    labels = tmp_path / "l.csv"
    pd.DataFrame({"cell_id": small["cell_id"], "cell_type": "same"}).to_csv(labels, index=False)
    out = tmp_path / "out"
    assert run_cli(monkeypatch, "sc", "cluster", "--matrix", str(matrix), "--labels", str(labels),
                   "--n-neighbors", "30", "--out-dir", str(out)) == 0
    summary = json.loads((out / "cluster.json").read_text())
    assert summary["n_neighbors"] == 9 and summary["ari"] is None
    assert "fewer than 2 label classes" in summary["metrics_note"]
    assert "only 10 cells" in capsys.readouterr().err


def test_label_column_missing_is_a_warning(planted_files, tmp_path, monkeypatch, capsys):
    matrix, _, _ = planted_files
    labels = tmp_path / "l.tsv"
    labels.write_text("cell_id\tx\ty\ncell000\ta\tb\n")
    out = tmp_path / "out"
    assert run_cli(monkeypatch, "sc", "cluster", "--matrix", str(matrix), "--labels", str(labels), "--out-dir",
                   str(out)) == 0
    assert json.loads((out / "cluster.json").read_text())["ari"] is None
    assert "no label column 'cell_type'" in capsys.readouterr().err


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda lines: lines[:5] + [lines[3]] + lines[5:], "line 6, record 'cell002': duplicate cell id (first seen "
                                                       "at line 4)"),
    (lambda lines: lines[:7] + [lines[7].replace(lines[7].split("\t")[3], "high", 1)] + lines[8:],
     "line 8, record 'cell006': column 'TF2': expected a number, got 'high'"),
    (lambda lines: lines[:1], "expected a header of feature names and one row per cell"),
])
def test_bad_matrix_is_one_line_error_and_no_output(planted_files, tmp_path, monkeypatch, capsys, edit, expected):
    matrix, _, _ = planted_files
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(edit(matrix.read_text().splitlines())) + "\n")
    out = tmp_path / "out"
    assert run_cli(monkeypatch, "sc", "cluster", "--matrix", str(bad), "--out-dir", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert any(expected in line and str(bad) in line for line in err), err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv", "labels.tsv", "m.tsv"]


def test_all_constant_matrix_is_refused(tmp_path, monkeypatch, capsys):
    m = tmp_path / "m.tsv"
    m.write_text("cell\ta\tb\n" + "".join(f"c{i}\t1\tnan\n" for i in range(20)))
    out = tmp_path / "out"
    assert run_cli(monkeypatch, "sc", "cluster", "--matrix", str(m), "--out-dir", str(out)) == 2
    assert "every feature is all-NaN or constant" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_layer_and_obsm(tmp_path, monkeypatch, capsys):
    a = ad.AnnData(np.random.default_rng(0).random((20, 3)))
    a.obs_names = [f"c{i}" for i in range(20)]
    p = tmp_path / "a.h5ad"
    a.write_h5ad(p)
    assert run_cli(monkeypatch, "sc", "cluster", "--matrix", str(p), "--layer", "nope", "--out-dir",
                   str(tmp_path / "o")) == 2
    assert "no layer 'nope'" in capsys.readouterr().err
    assert run_cli(monkeypatch, "sc", "cluster", "--matrix", str(p), "--obsm", "X_umap", "--out-dir",
                   str(tmp_path / "o")) == 2
    assert "no obsm['X_umap']" in capsys.readouterr().err


# --- small and degenerate inputs (issue 34): a documented fallback or a one-line error, never a traceback ----------


def _small_matrix(tmp_path, n: int):
    df, _ = planted(2)
    m = tmp_path / f"m{n}.tsv"
    df.iloc[[0, N_PER, 2 * N_PER][:n] if n <= 3 else slice(0, n)].to_csv(m, sep="\t", index=False)
    return m


@pytest.mark.parametrize("extra", [[], ["--tsne"], ["--resolution", "0.001"]])
def test_three_cells_give_results_with_logged_fallbacks(tmp_path, monkeypatch, capsys, extra):
    """Three cells (one per planted group): k clamped to 2, UMAP from random positions, t-SNE perplexity lowered;
    a resolution this low puts every cell in one cluster and leaves the differential table with its header only."""
    out = tmp_path / "out"
    code = run_cli(monkeypatch, "sc", "cluster", "--matrix", str(_small_matrix(tmp_path, 3)), "--out-dir", str(out),
                   *extra)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err and "only 3 cells: using 2" in err
    assert "UMAP starts from random positions" in err
    summary = json.loads((out / "cluster.json").read_text())
    assert summary["n_cells"] == 3 and summary["n_neighbors"] == 2 and summary["umap_init"] == "random"
    tab = pd.read_csv(out / "clusters.tsv", sep="\t")
    assert len(tab) == 3 and np.isfinite(tab[["umap1", "umap2"]].to_numpy()).all()
    diff = pd.read_csv(out / "differential_tfs.tsv", sep="\t")
    if "--tsne" in extra:
        assert summary["tsne_perplexity"] == pytest.approx(2 / 3) and "perplexity lowered" in err
        assert ad.read_h5ad(out / "clustered.h5ad").obsm["X_tsne"].shape == (3, 2)
    if "--resolution" in extra:
        assert summary["n_clusters"] == 1 and tab["cluster"].eq(0).all()
        assert diff.empty and list(diff.columns)[:3] == ["cluster", "rank", "feature"]
        assert "all 3 cells fall in one cluster" in err and "a single cluster: no differential test" in err
    else:
        # the silhouette is only defined for 2 clusters of 3 cells: one pair and one single cell, left untested
        assert summary["n_clusters"] == 2 and summary["diff_untested_clusters"] == ["1"]
        assert set(diff["cluster"].astype(str)) == {"0"} and "have a single cell: not tested" in err


@pytest.mark.parametrize("n", [1, 2])
def test_fewer_than_three_cells_is_one_line_error_and_no_output(tmp_path, monkeypatch, capsys, n):
    m = _small_matrix(tmp_path, n)
    out = tmp_path / "out"
    assert run_cli(monkeypatch, "sc", "cluster", "--matrix", str(m), "--tsne", "--out-dir", str(out)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"scfan: error: {m}: need at least 3 cells to cluster, got {n}"
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_single_cell_clusters_are_not_tested_but_stay_in_the_rest(caplog):
    from scfan.sc.cluster import differential

    values = np.array([[5.0, 0.0], [5.2, 0.1], [4.9, 0.2], [0.0, 5.0], [0.1, 5.1], [0.2, 4.8], [9.0, 9.0]])
    table, uns = differential(values, ["TFa", "TFb"], np.array([0, 0, 0, 1, 1, 1, 2]))
    assert sorted(set(table["cluster"])) == ["0", "1"] and len(table) == 4
    top0 = table[(table.cluster == "0") & (table["rank"] == 1)].iloc[0]
    assert top0.feature == "TFa" and top0.mean_out == pytest.approx(values[3:, 0].mean())  # rest includes cell 7
    assert set(uns["names"].dtype.names) == {"0", "1"}
    assert "cluster(s) 2 have a single cell" in caplog.text


def test_resolution_scan_shows_every_alternative(planted_files, tmp_path, monkeypatch):
    """cluster.json says how the resolution was chosen and lists every resolution of the grid: clusters, cluster
    sizes, silhouette, agreement with the other resolutions and (labels given) the ARI a reader can compare — the
    choice follows the consensus rule and does not change when the labels are left out."""
    from scfan.sc.cluster import SILHOUETTE_MARGIN, choose_resolution

    matrix, labels, _ = planted_files
    for name, extra in (("with", ["--labels", str(labels)]), ("without", [])):
        assert run_cli(monkeypatch, "sc", "cluster", "--matrix", str(matrix), *extra, "--out-dir",
                       str(tmp_path / name)) == 0
    with_l, without = (json.loads((tmp_path / n / "cluster.json").read_text()) for n in ("with", "without"))
    scan = with_l["resolution_scan"]
    assert [r["resolution"] for r in scan] == list(with_l["config"]["resolutions"])
    assert sum(r["chosen"] for r in scan) == 1
    chosen = next(r for r in scan if r["chosen"])
    assert chosen["resolution"] == with_l["resolution"] and chosen["n_clusters"] == with_l["n_clusters"] == 3
    assert chosen["ari"] == pytest.approx(with_l["ari"])
    multi = [r for r in scan if r["n_clusters"] >= 2]
    near = [r for r in multi if r["silhouette"] >= max(r["silhouette"] for r in multi) - SILHOUETTE_MARGIN]
    assert chosen in near and chosen["agreement"] == max(r["agreement"] for r in near)
    for r in scan:
        assert 1 <= r["smallest_cluster"] <= r["median_cluster_size"] and r["n_clusters"] >= 1
        assert -0.5 <= r["agreement"] <= 1.0
    assert with_l["resolution_rule"].startswith("consensus")
    assert "ari" not in without["resolution_scan"][0] and without["resolution"] == with_l["resolution"]
    assert choose_resolution(scan) == (with_l["resolution"], with_l["resolution_rule"])
    assert choose_resolution([dict(scan[0], n_clusters=1, silhouette=float("-inf"))]) == (
        scan[0]["resolution"], "one cluster at every resolution of the grid")
    fixed_dir = tmp_path / "fixed"
    assert run_cli(monkeypatch, "sc", "cluster", "--matrix", str(matrix), "--resolution", "0.3", "--out-dir",
                   str(fixed_dir)) == 0
    fixed = json.loads((fixed_dir / "cluster.json").read_text())
    assert fixed["resolution_rule"] == "fixed (--resolution)" and len(fixed["resolution_scan"]) == 1
    assert fixed["resolution_scan"][0]["agreement"] is None


def test_choose_resolution_screens_by_silhouette_then_takes_the_consensus():
    """A clearly separated partition (silhouette far above the rest) is kept even where finer ones agree more with
    each other; among partitions the silhouette cannot tell apart, the one most in agreement wins; the silhouette
    rule keeps the best silhouette alone."""
    from scfan.sc.cluster import choose_resolution

    def row(r, k, sil, agree):
        return {"resolution": r, "n_clusters": k, "silhouette": sil, "agreement": agree}

    separated = [row(0.1, 4, 0.89, 0.62), row(0.5, 7, 0.56, 0.74), row(1.0, 9, 0.38, 0.72)]
    assert choose_resolution(separated)[0] == 0.1
    overlapping = [row(0.1, 1, float("-inf"), 0.07), row(0.2, 2, 0.073, 0.33), row(0.8, 6, 0.061, 0.46),
                   row(1.0, 7, 0.057, 0.45), row(3.0, 51, 0.005, 0.17)]
    assert choose_resolution(overlapping)[0] == 0.8
    assert choose_resolution(overlapping, rule="silhouette")[0] == 0.2
    tie = [row(0.3, 5, 0.2, 0.5), row(0.4, 5, 0.2, 0.5)]
    assert choose_resolution(tie)[0] == 0.3  # ties to the lower resolution


def test_many_overlapping_populations_are_not_collapsed(tmp_path, monkeypatch):
    """Ten overlapping Gaussian populations of unequal sizes (Dirichlet weights): the silhouette rule collapses
    them to two or three clusters; the default (consensus) keeps most of them apart, with the labels unseen."""
    rng = np.random.default_rng(1)
    w = np.maximum(rng.dirichlet(np.full(10, 0.7)), 0.01)
    sizes = np.maximum(10, np.round(w / w.sum() * 1500).astype(int))
    lab = np.repeat(np.arange(10), sizes)
    x = rng.normal(0, 0.66, (10, 30))[lab] + rng.normal(0, 1, (len(lab), 30))
    df = pd.DataFrame(x, columns=[f"f{j}" for j in range(30)])
    df.insert(0, "cell_id", [f"c{i}" for i in range(len(lab))])
    matrix, labels = tmp_path / "m.tsv", tmp_path / "l.tsv"
    df.to_csv(matrix, sep="\t", index=False)
    pd.DataFrame({"cell_id": df["cell_id"], "cell_type": lab.astype(str)}).to_csv(labels, sep="\t", index=False)
    got = {}
    for rule in ("consensus", "silhouette"):
        assert run_cli(monkeypatch, "sc", "cluster", "--matrix", str(matrix), "--labels", str(labels),
                       "--resolution-rule", rule, "--out-dir", str(tmp_path / rule)) == 0
        got[rule] = json.loads((tmp_path / rule / "cluster.json").read_text())
    best = max(r["ari"] for r in got["consensus"]["resolution_scan"])
    print({k: (v["n_clusters"], round(v["ari"], 3)) for k, v in got.items()}, "best", round(best, 3))
    assert got["consensus"]["ari"] >= best - 0.05 and got["consensus"]["n_clusters"] >= 5
    assert got["consensus"]["ari"] > got["silhouette"]["ari"] + 0.2


def test_unknown_resolution_rule_is_refused(planted_files, tmp_path, monkeypatch, capsys):
    matrix, _, _ = planted_files
    out = tmp_path / "out"
    assert run_cli(monkeypatch, "sc", "cluster", "--matrix", str(matrix), "--resolution-rule", "best",
                   "--out-dir", str(out)) == 2
    err = capsys.readouterr().err
    assert "resolution rule 'best': expected one of consensus, silhouette" in err
    assert not out.exists()
