"""`scfan sc interpret`: a cluster's pooled input, its explained windows and region queries, and clear errors."""

from __future__ import annotations

import anndata as ad
import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from sc_builders import run_cli
from test_predict import _write_model, tiny_sc  # noqa: F401 (tiny_sc is a fixture)

from scfan.interpret.cells import cluster_pooling


@pytest.fixture(scope="module")
def clustered(tiny_sc):  # noqa: F811
    a = ad.read_h5ad(tiny_sc["cells"])
    path = tiny_sc["root"] / "clusters.tsv"
    pl.DataFrame({"cell_id": list(a.obs_names), "cluster": [str(i % 2) for i in range(a.n_obs)]}).write_csv(
        path, separator="\t")
    return {**tiny_sc, "clusters": path}


def _interpret(monkeypatch, t, out, *extra, models=None) -> int:
    args = ["sc", "interpret", "--cells", str(t["cells"]), "--clusters", str(t["clusters"]), "--fragments",
            f"s1={t['fragments']}", "--genome", str(t["fasta"]), "--mappability", str(t["mapp"]), "--device", "cpu",
            "--threads", "1", "--n-shuffles", "3", "--out-dir", str(out), *extra]
    for m in models or [f"lineA={t['models'][0]}"]:
        args += ["--model", m]
    return run_cli(monkeypatch, *args)


def test_cluster_pooling_rows_are_the_mean_of_their_cells_rows():
    pool = sp.random(6, 6, density=0.6, random_state=1, format="csr") + sp.identity(6, format="csr")
    pool = sp.csr_matrix(sp.diags(1 / np.asarray(pool.sum(axis=1)).ravel()) @ pool)
    of = np.array([0, 1, 0, 2, 1, 0])
    got = cluster_pooling(pool, of, 3).toarray()
    dense = pool.toarray()
    for k in range(3):
        np.testing.assert_allclose(got[k], dense[of == k].mean(axis=0))
    np.testing.assert_allclose(got.sum(axis=1), 1.0)


def test_region_query_gives_each_clusters_probabilities_and_tracks(clustered, tmp_path, monkeypatch):
    out = tmp_path / "region"
    assert _interpret(monkeypatch, clustered, out, "--features", "lineA:TF1,lineA:TF3", "--region",
                      "chr1:2,500-4,500") == 0
    reg = pl.read_csv(out / "region.tsv", separator="\t", schema_overrides={"cluster": pl.Utf8})
    assert set(reg["cluster"]) == {"0", "1"} and set(reg["feature"]) == {"lineA:TF1", "lineA:TF3"}
    assert reg["probability"].is_between(0, 1).all()
    assert reg["start"].min() >= 0 and reg["end"].max() <= 20_000
    # windows tile the region; the two clusters see the same windows but their own accessibility
    w0 = reg.filter((pl.col("cluster") == "0") & (pl.col("feature") == "lineA:TF1")).sort("start")
    w1 = reg.filter((pl.col("cluster") == "1") & (pl.col("feature") == "lineA:TF1")).sort("start")
    assert w0["start"].to_list() == w1["start"].to_list() and len(w0) >= 10
    assert not np.allclose(w0["probability"].to_numpy(), w1["probability"].to_numpy())
    cl = pl.read_csv(out / "clusters.tsv", separator="\t", schema_overrides={"cluster": pl.Utf8})
    assert cl.height == 4 and cl["accessibility_share"].is_between(0, 1).all()
    for c in ("0", "1"):
        for f in ("TF1", "TF3"):
            assert (out / "region" / f"{c}_lineA_{f}.png").stat().st_size > 1000
    npz = np.load(out / "attributions.npz")
    assert npz["0/lineA:TF1/hypothetical"].shape == (1, 4, 1000)


def test_top_windows_of_each_cluster_are_explained(clustered, tmp_path, monkeypatch):
    out = tmp_path / "top"
    assert _interpret(monkeypatch, clustered, out, "--features", "lineA:TF2", "--n-windows", "3") == 0
    cl = pl.read_csv(out / "clusters.tsv", separator="\t", schema_overrides={"cluster": pl.Utf8})
    assert cl["cluster"].to_list() == ["0", "1"] and cl["n_windows"].to_list() == [3, 3]
    assert set(pl.read_csv(out / "instances.tsv", separator="\t").columns) >= {"cluster", "feature", "window",
                                                                               "jaspar_id", "p_value"}
    assert not (out / "region.tsv").exists()


@pytest.mark.parametrize("extra,expect", [
    (["--clusters-only", "7"], "--clusters: cluster '7' is not in"),
    (["--region", "chr1:19000-25000"], "outside chr1 (0-20000)"),
    (["--region", "chrZ:1-500"], "chromosome 'chrZ' is not in the genome FASTA"),
    (["--region", "chr1:500"], "expected chrom:start-end"),
    (["--features", "lineA:TF9"], "--features: 'lineA:TF9' is not a feature of the models"),
    (["--part", "head"], "--part 'head': expected one of network, model"),
])
def test_bad_requests_exit_2_with_one_line_and_write_nothing(clustered, tmp_path, monkeypatch, capsys, extra, expect):
    out = tmp_path / "bad"
    assert _interpret(monkeypatch, clustered, out, *extra) == 2
    err = capsys.readouterr().err
    assert expect in err, err
    assert not out.exists()


def test_a_sequence_only_model_is_refused(clustered, tmp_path, monkeypatch, capsys):
    seq = _write_model(tmp_path / "seq.pt", ("TF1",), 3, tracks=False)
    assert _interpret(monkeypatch, clustered, tmp_path / "out", models=[f"seq={seq}"]) == 2
    assert "a sequence-only model" in capsys.readouterr().err
