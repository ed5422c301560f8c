"""Fixtures of the report tests: two clusterings of planted groups with the step outputs around them, a
``scfan bulk interpret`` and a ``scfan sc interpret`` folder, and the ``scfan report`` arguments for them."""

from __future__ import annotations

import base64
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from scfan.sc.cluster import ClusterConfig, FeatureMatrix, cluster_matrix, write_result


def _save_png(path: Path, y: tuple[float, float]) -> str:
    """A tiny line plot saved as PNG at ``path``; its base64 (as embedded in the page)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], list(y))
    fig.savefig(path, format="png")
    plt.close(fig)
    return base64.b64encode(path.read_bytes()).decode("ascii")


@pytest.fixture(scope="session")
def analyses(tmp_path_factory) -> dict[str, Path]:
    """Two clusterings of 3 planted groups: GATA1 high in group 0, SPI1 in 1, CEBPB in 2; with the activity (also
    the cells' QC), metrics of one bulk line, the known drivers, versions and params of the run."""
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(1)
    tfs = ["GATA1", "SPI1", "CEBPB", "CTCF"]
    groups = np.repeat(np.arange(3), 50)
    x = rng.normal(0, 1, (150, 4))
    x[np.arange(150), groups] += 3
    cells = [f"s{1 + i % 2}#c{i}" for i in range(150)]
    labels = pd.Series([f"type{g}" for g in groups], index=cells)
    obs = pd.DataFrame({"sample": [c.split("#")[0] for c in cells], "n_fragments": rng.integers(500, 5000, 150),
                        "frac_in_peaks": rng.uniform(0.2, 0.6, 150), "n_peaks": rng.integers(100, 900, 150),
                        "n_scored_windows": rng.integers(10, 90, 150), "no_scored_windows": False}, index=cells)
    act = ad.AnnData(x.astype(np.float32), obs=obs, var=pd.DataFrame(
        {"model": "lineA", "tf": tfs}, index=[f"lineA:{t}" for t in tfs]))
    act.uns["scfan_activity"] = {"config": {"mode": "exact"}}
    act.write_h5ad(root / "tf_activity.h5ad")
    out = {}
    for name, values in (("chromatin", x + rng.normal(0, 0.3, x.shape)), ("activity", x)):
        fm = FeatureMatrix(cells, tfs if name == "activity" else [f"c{i}" for i in range(4)], values,
                           root / f"{name}.h5ad", labels=labels)
        diff = FeatureMatrix(cells, list(act.var_names), x, root / "tf_activity.h5ad", adata=act.copy())
        res = cluster_matrix(fm, ClusterConfig(), diff=diff)
        write_result(res, root / name)
        out[name] = root / name
    metrics = root / "metrics.tsv"
    pd.DataFrame({"model": "lineA", "tf": tfs * 2, "method": ["scfan"] * 4 + ["pwm"] * 4,
                  "auroc": [0.9, 0.8, 0.85, 0.95, 0.7, 0.7, 0.7, 0.7],
                  "auprc": [0.3, 0.2, 0.25, 0.5, 0.2, 0.2, 0.2, 0.2]}).to_csv(metrics, sep="\t", index=False)
    drivers = root / "drivers.tsv"
    drivers.write_text("cell_type\ttf\ntype0\tGATA1\ntype1\tSPI1\ntype2\tCEBPB\n")
    versions = root / "versions.yml"
    versions.write_text('"SCFAN:SC_PREDICT":\n    scfan: "0.1.0"\n    torch: "2.5"\n'
                        '"SCFAN:REPORT":\n    scfan: "0.1.0"\n')
    params = root / "params.json"
    params.write_text('{"seed": 7, "simulate_preset": "test"}')
    return {"root": root, **out, "activity_file": root / "tf_activity.h5ad", "metrics": metrics,
            "drivers": drivers, "versions": versions, "params": params}


@pytest.fixture(scope="session")
def report_args():
    """``report_args(analyses, out, *extra)``: the ``scfan report`` arguments for every input of ``analyses``."""

    def args(a: dict[str, Path], out: Path, *extra: str) -> list[str]:
        return ["report", "--analysis", f"chromatin={a['chromatin']}", "--analysis",
                f"TF activity={a['activity']}", "--metrics", f"lineA={a['metrics']}", "--activity",
                str(a["activity_file"]), "--cells", str(a["activity_file"]), "--drivers", str(a["drivers"]),
                "--versions", str(a["versions"]), "--params", str(a["params"]), "--out", str(out), *extra]

    return args


@pytest.fixture
def interpret_folder(tmp_path):
    """A tiny `scfan bulk interpret` folder: CTCF recovered in both parts, GATA1 not (one row with the command's
    note, one without), a logo and an attribution track for CTCF."""
    folder = tmp_path / "interpret"
    (folder / "logos").mkdir(parents=True)
    (folder / "tracks").mkdir()
    note = "top motif matches SPI1 (MA0080.7), not GATA1's own: a model to distrust"
    folder.joinpath("summary.tsv").write_text(
        "tf\tpart\tn_windows\ttop_motif\ttop_jaspar_id\ttop_jaspar_name\ttop_q_value\town_motif_recovered\t"
        "best_own_q_value\taccessibility_share\tattribution_sum\tnote\n"
        'CTCF\tnetwork\t100\tpattern_0\tMA1929.2\tCTCF\t0.000001\ttrue\t0.000001\t0.125\t1.7\t""\n'
        'CTCF\tmodel\t100\tpattern_0\tMA1929.2\tCTCF\t0.000000\ttrue\t0.000000\t0.250\t3.8\t""\n'
        f"GATA1\tnetwork\t100\tpattern_0\tMA0080.7\tSPI1\t0.001\tfalse\tNaN\t0.600\t0.9\t{note}\n"
        'GATA1\tmodel\t12\t""\t""\t""\tNaN\tfalse\tNaN\tNaN\tNaN\t""\n')
    pngs = {name: _save_png(folder / name, (0, 1 if "logos" in name else 0))
            for name in ("logos/CTCF_model_pattern_0.png", "tracks/CTCF_model.png")}
    return folder, pngs, note


@pytest.fixture
def cell_interpret_folder(tmp_path):
    """A tiny `scfan sc interpret` folder: cluster 0 explained for two TFs (one mostly on accessibility, one mostly on
    sequence), cluster 1 for one TF without a share; an attribution track for cluster 0's GATA1."""
    folder = tmp_path / "sc_interpret"
    (folder / "tracks").mkdir(parents=True)
    folder.joinpath("clusters.tsv").write_text(
        "cluster\tfeature\tmodel\ttf\tn_windows\tmean_probability\taccessibility_share\tn_instances\t"
        "n_own_motif_instances\ttop_instance_motifs\n"
        "0\tlineA:GATA1\tlineA\tGATA1\t30\t0.912\t0.75\t21\t18\tGATA1 ×18; TAL1::GATA1 ×3\n"
        "0\tlineA:CTCF\tlineA\tCTCF\t30\t0.99\t0.2\t25\t24\tCTCF ×24; ZNF ×1\n"
        "1\tlineA:SPI1\tlineA\tSPI1\t30\t0.5\t\t0\t0\t\n")
    png = _save_png(folder / "tracks" / "0_lineA_GATA1.png", (1, 0))
    return folder, png
