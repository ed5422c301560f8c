"""Benchmark: which clustering finds the simulator's cell types, and which finds their driver TFs.

For each pipeline run (an ``--outdir`` of ``nextflow run . --simulate_preset <preset>``, made here with ``--run`` or
given with ``--outdir NAME=path``) one table row per method:

- **chromatin** — Leiden on the spectral embedding (the pipeline's answer); drivers from TF activity tested between
  its clusters;
- **TF activity** — Leiden on the activity matrix alone (scFAN's claim); drivers from the same matrix;
- **chromVAR** — Leiden on chromVAR deviations of the same TFs; drivers from the deviations;
- **chromatin + chromVAR drivers** — the chromatin clusters, drivers from chromVAR deviations tested between them
  (our activity vs the motif baseline on the same clusters);
- **LSI + k-means** — TF-IDF/LSI (``obsm['X_lsi']``) and k-means with k = the number of types (the field's plain
  baseline; needs the number of types, which the others do not).

ARI/NMI against the simulator's cell types; driver recovery = share of cell types (matched to the cluster holding most
of their cells) one of whose planted drivers is the top TF, or among the top 3, of the features higher in that
cluster; runtime and peak memory from the Nextflow trace of the tasks that make the method's matrix and clusters.

Usage: ``python benchmarks/bench_analysis.py --run test [--run hard] [--outdir NAME=path]`` → results/bench_analysis.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from bench_sc import machine  # noqa: E402

#: Trace processes behind each method (their realtime summed, peak RSS maxed).
PROCESSES = {
    "chromatin": ["SC_NEIGHBORS", "SC_CLUSTER_CHROMATIN"],
    "TF activity": ["SC_PREDICT", "SC_MERGE_ACTIVITY", "SC_CLUSTER_ACTIVITY"],
    "chromVAR": ["CHROMVAR_BASELINE", "SC_CLUSTER_CHROMVAR"],
    "chromatin + chromVAR drivers": ["SC_NEIGHBORS", "SC_CLUSTER_CHROMATIN", "CHROMVAR_BASELINE"],
    "LSI + k-means": ["SC_NEIGHBORS"],
}


def run_pipeline(preset: str, outdir: Path, seed: int) -> float:
    env = {**os.environ, "NXF_OFFLINE": "true", "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"}
    launch = outdir.parent / f"launch_{preset}"
    launch.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    subprocess.run([str(REPO / ".tools" / "bin" / "nextflow"), "run", str(REPO), "-profile", "test",
                    "--simulate_preset", preset, "--seed", str(seed), "--outdir", str(outdir)],
                   check=True, cwd=launch, env=env)
    return time.perf_counter() - t0


def _seconds(text: str) -> float:
    total = 0.0
    for value, unit in re.findall(r"([\d.]+)(ms|s|m|h|d)", str(text)):
        total += float(value) * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return total


def _gib(text: str) -> float:
    m = re.match(r"([\d.]+)\s*(B|KB|MB|GB|TB)", str(text))
    if not m:
        return float("nan")
    return float(m.group(1)) * {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}[m.group(2)] / 2**30


def trace_costs(outdir: Path) -> pd.DataFrame:
    traces = sorted((outdir / "pipeline_info").glob("execution_trace_*.txt"))
    tr = pd.read_csv(traces[-1], sep="\t")
    tr = tr[tr["status"].isin(["COMPLETED", "CACHED"])]
    tr["short"] = tr["process"].str.split(":").str[-1]
    tr["seconds"] = tr["realtime"].map(_seconds)
    tr["gib"] = tr["peak_rss"].map(_gib)
    return tr


def driver_recovery(clusters: pd.DataFrame, diff: pd.DataFrame, drivers: pd.DataFrame) -> tuple[float, float]:
    """Share of cell types with a driver ranked first / in the top 3 of their cluster's higher features."""
    first = top3 = 0
    types = sorted(drivers["cell_type"].unique())
    for t in types:
        cells = clusters[clusters["label"] == t]
        if cells.empty:
            continue
        cluster = cells["cluster"].value_counts().index[0]
        d = diff[(diff["cluster"].astype(str) == str(cluster)) & (diff["delta"] > 0)].sort_values("rank")
        ranked = list(dict.fromkeys(d["tf"].astype(str)))
        truth = set(drivers.loc[drivers["cell_type"] == t, "tf"])
        first += bool(ranked[:1] and ranked[0] in truth)
        top3 += bool(truth & set(ranked[:3]))
    return first / len(types), top3 / len(types)


def evaluate(name: str, outdir: Path) -> list[dict]:
    import anndata as ad
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from scfan.sc.cluster import differential

    truth = pd.read_csv(outdir / "simulate" / "truth" / "cells.tsv", sep="\t").set_index("cell_id")
    drivers = pd.read_csv(outdir / "simulate" / "truth" / "drivers.tsv", sep="\t")
    tr = trace_costs(outdir)
    rows = []
    folders = {"chromatin": "chromatin", "TF activity": "activity", "chromVAR": "chromvar"}
    for method, folder in folders.items():
        d = outdir / "analysis" / folder
        s = json.loads((d / "cluster.json").read_text())
        cl = pd.read_csv(d / "clusters.tsv", sep="\t")
        diff = pd.read_csv(d / "differential_tfs.tsv", sep="\t")
        f1, f3 = driver_recovery(cl, diff, drivers)
        rows.append({"data": name, "method": method, "clusters": s["n_clusters"], "ari": s["ari"], "nmi": s["nmi"],
                     "driver_first": f1, "driver_top3": f3})
    # chromVAR deviations tested between the chromatin clusters
    cl = pd.read_csv(outdir / "analysis" / "chromatin" / "clusters.tsv", sep="\t")
    cv = ad.read_h5ad(outdir / "analysis" / "chromvar.h5ad")
    cv = cv[cl["cell_id"].to_numpy()]
    var = cv.var.copy()
    table, _ = differential(np.asarray(cv.X, dtype=float), list(map(str, cv.var_names)), cl["cluster"].to_numpy(),
                            var)
    f1, f3 = driver_recovery(cl, table, drivers)
    s = json.loads((outdir / "analysis" / "chromatin" / "cluster.json").read_text())
    rows.append({"data": name, "method": "chromatin + chromVAR drivers", "clusters": s["n_clusters"], "ari": s["ari"],
                 "nmi": s["nmi"], "driver_first": f1, "driver_top3": f3})
    # LSI + k-means with the true number of types
    cells = ad.read_h5ad(outdir / "sc" / "cells.h5ad")
    lab = truth.loc[cells.obs_names, "cell_type"].to_numpy()
    k = len(np.unique(lab))
    km = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(cells.obsm["X_lsi"])
    rows.append({"data": name, "method": "LSI + k-means", "clusters": k, "ari": adjusted_rand_score(lab, km),
                 "nmi": normalized_mutual_info_score(lab, km), "driver_first": float("nan"),
                 "driver_top3": float("nan")})
    for r in rows:
        sel = tr[tr["short"].isin(PROCESSES[r["method"]])]
        r["runtime_s"] = float(sel["seconds"].sum())
        r["peak_gib"] = float(sel["gib"].max())
        r["cells"] = int(cells.n_obs)
        r["types"] = k
    return rows


#: the resolutions shown in the grid table (a subset of the rule's grid, scfan.sc.cluster.RESOLUTION_GRID)
GRID_SHOWN = (0.05, 0.2, 0.5, 0.8, 1.0, 2.0)


def oracle_deviation(outdir: Path) -> tuple[list[str], np.ndarray]:
    """The best any cells × TFs summary of these counts could do: chromVAR-style deviations with the simulator's
    *true* bound sites as each TF's annotation (a peak is annotated with a TF when it holds a site bound in some
    type): per cell and TF, (open annotated peaks - expected) / sqrt(expected), expected from the cell's open peaks
    and the TF's share of all openings. No model, no motif scan."""
    import anndata as ad
    import polars as pl
    import scipy.sparse as sp

    cells = ad.read_h5ad(outdir / "sc" / "cells.h5ad")
    sites = pl.read_parquet(outdir / "simulate" / "truth" / "bound_sites.parquet")
    sites = sites.filter(pl.col("bound_types").list.len() > 0)
    tfs = sorted(set(sites["tf"].to_list()))
    var = cells.var.reset_index(drop=True)
    ann = np.zeros((cells.n_vars, len(tfs)))
    for chrom, g in var.groupby("chrom", observed=True):
        idx = g.index.to_numpy()
        order = np.argsort(g["start"].to_numpy())
        starts, ends = g["start"].to_numpy()[order], g["end"].to_numpy()[order]
        s = sites.filter(pl.col("chrom") == chrom)
        k = np.searchsorted(starts, s["start"].to_numpy(), side="right") - 1
        ok = (k >= 0) & (ends[np.maximum(k, 0)] >= s["end"].to_numpy())
        tf_col = np.array([tfs.index(t) for t in s["tf"].to_list()], dtype=int)
        ann[idx[order[k[ok]]], tf_col[ok]] = 1.0
    x = sp.csr_matrix(cells.X, dtype=np.float64)
    x.data[:] = 1.0
    observed = np.asarray(x @ ann)
    share = np.asarray(x.sum(axis=0)).ravel() @ ann / x.sum()
    expected = np.outer(np.asarray(x.sum(axis=1)).ravel(), share)
    return list(cells.obs_names), (observed - expected) / np.sqrt(expected + 1e-9)


def resolution_grid(name: str, outdir: Path) -> list[str]:
    """Each representation clustered at every resolution of the rule's grid, and by k-means told the number of
    types: tells a resolution-rule failure (a good partition exists on the grid) from a representation limit (none
    does). Same preprocessing as ``scfan sc cluster`` (clean, z-score matrices, PCA when wide, 15 neighbours)."""
    import warnings

    import anndata as ad
    import scanpy as sc
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from scfan.sc.cluster import (
        RESOLUTION_GRID,
        ClusterConfig,
        FeatureMatrix,
        _by_size,
        clean_features,
        read_matrix,
        representation,
    )

    truth = pd.read_csv(outdir / "simulate" / "truth" / "cells.tsv", sep="\t").set_index("cell_id")["cell_type"]
    reps = [("spectral embedding (chromatin)", outdir / "sc" / "cells.h5ad", {"obsm": "X_spectral"}),
            ("TF activity `mean_prob`, z-scored", outdir / "activity" / "tf_activity.h5ad", {"layer": "mean_prob"}),
            ("TF activity X (top-2 frequency), z-scored", outdir / "activity" / "tf_activity.h5ad", {"layer": None}),
            ("chromVAR deviations, z-scored", outdir / "analysis" / "chromvar.h5ad", {"layer": None})]
    lines = [f"`{name}`: each representation at every resolution (Leiden, 15 neighbours, seed 0; clusters, ARI) "
             "and k-means told the number of types:", "",
             "| representation | " + " | ".join(map(str, GRID_SHOWN)) + " | best on the grid | k-means |",
             "|---|" + "---|" * (len(GRID_SHOWN) + 2)]
    oracle_cells, oracle = oracle_deviation(outdir)
    reps.append(("*oracle*: deviations on the true bound sites, z-scored", None, {}))
    for label, path, kw in reps:
        embedding = "obsm" in kw
        if path is None:
            fm = FeatureMatrix(oracle_cells, [f"f{j}" for j in range(oracle.shape[1])], oracle, Path("oracle"))
        else:
            fm = read_matrix(path, **kw)
        fm = clean_features(fm)
        x, _ = representation(fm.values, ClusterConfig(**kw), embedding=embedding)
        b = ad.AnnData(x)
        b.obsm["X_rep"] = x
        sc.pp.neighbors(b, n_neighbors=15, use_rep="X_rep", metric="cosine" if embedding else "euclidean",
                        random_state=0)
        y = truth.reindex(fm.cells).to_numpy()
        cells, best = {}, (-1.0, None)
        for r in RESOLUTION_GRID:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sc.tl.leiden(b, resolution=r, flavor="igraph", n_iterations=2, directed=False, random_state=0,
                             key_added="_l")
            lab = _by_size(b.obs["_l"].astype(int).to_numpy())
            a = adjusted_rand_score(y, lab)
            cells[r] = f"{lab.max() + 1}, {a:.3f}"
            best = max(best, (a, r))
        km = KMeans(len(np.unique(y)), n_init=10, random_state=0).fit_predict(x)
        lines.append(f"| {label} | " + " | ".join(cells[r] for r in GRID_SHOWN)
                     + f" | {best[0]:.3f} (res. {best[1]}) | {adjusted_rand_score(y, km):.3f} |")
    return lines


def sibling_auroc(name: str, outdir: Path) -> list[str]:
    """Per cell: does a type's own driver TF (one its siblings lack; siblings = types sharing another driver with
    it) separate it from its siblings? AUROC of that TF's ``mean_prob`` activity, one row per (type, feature)."""
    import anndata as ad
    from sklearn.metrics import roc_auc_score

    truth = pd.read_csv(outdir / "simulate" / "truth" / "cells.tsv", sep="\t").set_index("cell_id")["cell_type"]
    drivers = pd.read_csv(outdir / "simulate" / "truth" / "drivers.tsv", sep="\t")
    own = {t: set(g["tf"]) for t, g in drivers.groupby("cell_type")}
    a = ad.read_h5ad(outdir / "activity" / "tf_activity.h5ad")
    y = truth.reindex(a.obs_names).to_numpy()
    m = np.asarray(a.layers["mean_prob"])
    rows = []
    for t, tfs in sorted(own.items()):
        sibs = [u for u in own if u != t and own[u] & tfs]
        for tf in sorted(tfs - set().union(*(own[u] for u in sibs))) if sibs else []:
            for j, feat in enumerate(map(str, a.var_names)):
                sel = np.isin(y, [t, *sibs])
                if feat.endswith(f":{tf}") and 0 < (y[sel] == t).sum() < sel.sum():
                    rows.append(f"| {t} | {', '.join(sibs)} | {feat} | {roc_auc_score(y[sel] == t, m[sel, j]):.3f} |")
    if not rows:
        return []
    return [f"`{name}`: per cell, a type's own driver against its siblings (types sharing another driver), "
            "AUROC of that TF's `mean_prob` activity:", "", "| type | siblings | feature | AUROC |",
            "|---|---|---|---|", *rows]


def provenance(name: str, outdir: Path) -> str:
    """One line saying which pipeline run a data set's rows come from (its recorded parameters)."""
    p = json.loads((outdir / "pipeline_info" / "params.json").read_text())
    keys = ("simulate_preset", "seed", "infer_mode", "arch", "epochs", "knn", "n_components", "activity_layer",
            "cluster_resolution", "cluster_neighbors")
    return f"- `{name}`: " + ", ".join(f"{k} {p.get(k)}" for k in keys) + "."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", nargs="*", default=[], help="simulator presets to run the pipeline on (-profile test)")
    ap.add_argument("--outdir", nargs="*", default=[], help="NAME=path of finished pipeline runs to read")
    ap.add_argument("--workdir", type=Path, default=HERE / "out" / "analysis")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_analysis.md")
    ap.add_argument("--note", action="append", default=[], help="a line added under the table (e.g. what was not run)")
    args = ap.parse_args()
    runs: list[tuple[str, Path, float | None]] = []
    for preset in args.run:
        out = args.workdir / preset
        runs.append((preset, out, run_pipeline(preset, out, args.seed)))
    for item in args.outdir:
        name, _, path = item.partition("=")
        runs.append((name, Path(path), None))
    rows = [r for name, out, _ in runs for r in evaluate(name, out)]
    df = pd.DataFrame(rows)
    fmt = df.copy()
    for c in ("ari", "nmi"):
        fmt[c] = fmt[c].map(lambda v: f"{v:.3f}")
    for c in ("driver_first", "driver_top3"):
        fmt[c] = fmt[c].map(lambda v: "–" if pd.isna(v) else f"{v:.0%}")
    fmt["runtime_s"] = fmt["runtime_s"].map(lambda v: f"{v:.0f}")
    fmt["peak_gib"] = fmt["peak_gib"].map(lambda v: f"{v:.2f}")
    cols = ["data", "cells", "types", "method", "clusters", "ari", "nmi", "driver_first", "driver_top3",
            "runtime_s", "peak_gib"]
    lines = ["# Clustering and driver TFs: TF activity vs chromVAR vs chromatin (LSI/spectral)", "",
             f"Machine: {machine()}; no GPU. Seed {args.seed}. Command: `python benchmarks/bench_analysis.py "
             + " ".join(f"--run {p}" for p in args.run) + (" --outdir " + " ".join(args.outdir) if args.outdir else "")
             + "` (an `--outdir` is the results folder of `nextflow run . -profile test --simulate_preset <preset> "
             "--seed <seed>`).", "",
             "Runtime = summed task realtime, peak = the largest task peak RSS, from the Nextflow trace (2 CPUs, "
             "tasks sharing the machine with other work: compare ratios, not absolute times).", "",
             *[provenance(name, out) for name, out, _ in runs], "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in fmt[cols].itertuples(index=False)]
    for name, _, wall in runs:
        if wall is not None:
            lines.append(f"\nPipeline wall time on `{name}`: {wall / 60:.1f} min.")
    for name, out, _ in runs:
        lines += ["", *resolution_grid(name, out)]
        sib = sibling_auroc(name, out)
        lines += ["", *sib] if sib else []
    lines += ["", *args.note] if args.note else []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
