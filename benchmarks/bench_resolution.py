"""How `scfan sc cluster` picks its Leiden resolution, measured against labels it never sees.

For each data set: the partition every resolution of the library's grid gives (clusters, ARI), the partition the
default rule keeps (``consensus``: of the partitions within 0.1 of the best silhouette, the one that agrees most
with the other resolutions' partitions; ``scfan.sc.cluster.choose_resolution``), the one the former default keeps
(the highest silhouette), a fixed 1.0 (scanpy's default) and, with ``--stability``, the candidate measured and
rejected before (subsample stability, in the manner of chooseR: the highest resolution whose partition Leiden
reproduces on seeded 80 % subsamples with their own kNN graph, mean pairwise ARI ≥ 0.85, among partitions whose
median cluster holds ≥ ``n_neighbors`` cells), side by side. Data sets:

* real counts from ``../shared/data`` (hemato_atac: 600 bone-marrow cells of 6 types; chromvar_example: 50 cells of
  2 lines), through ``sc ingest`` and ``sc neighbors`` with the pipeline's defaults, clustered on ``X_spectral``;
* with ``--test-run OUTDIR``: the three matrices a ``-profile test`` run clusters (``sc/cells.h5ad``'s
  ``X_spectral``, ``activity/tf_activity.h5ad``'s ``mean_prob``, ``analysis/chromvar.h5ad``), labels from
  ``simulate/truth/cells.tsv``, the run's seed;
* simulated matrices of 10, 15 and 20 populations of unequal sizes (Dirichlet weights, 30 features), well separated
  (spread 1.2), in between (0.8) and overlapping (0.66): the *design* set (3,000 cells, seeds 0–2: the one the rule
  was chosen on) and a *held-out* set (seeds 3, 4, 5 at 3,000, 1,000 and 8,000 cells) it never saw.

Run: ``python benchmarks/bench_resolution.py [--test-run OUTDIR] [--stability] [--out
benchmarks/results/bench_resolution.md]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(HERE))

from bench_sc import machine  # noqa: E402


def real_embedding(name: str, work: Path) -> tuple[Path, Path]:
    """(cells_nn.h5ad, labels.tsv) of a real count data set, made with the pipeline's commands and defaults."""
    from scfan.cli.main import app

    d = REPO.parent / "shared" / "data" / name
    sheet = work / f"{name}.csv"
    sheet.write_text(f"sample,counts,peaks,barcodes\n{name},{d / 'counts.mtx.gz'},{d / 'peaks.bed'},"
                     f"{d / 'cells.tsv'}\n")
    cells, nn = work / f"{name}.cells.h5ad", work / f"{name}.cells_nn.h5ad"
    n_cells = sum(1 for _ in open(d / "cells.tsv")) - 1
    k = min(100, n_cells // 5)  # the pipeline's k = 100 on data sets of at least 500 cells
    n_comp = 30 if n_cells >= 300 else 10
    for args in (["sc", "ingest", "--samplesheet", str(sheet), "--sample", name, "--peaks", str(d / "peaks.bed"),
                  "--min-fragments", "0", "--out", str(cells)],
                 ["sc", "neighbors", "--cells", str(cells), "--k", str(k), "--n-components", str(n_comp),
                  "--seed", "0", "--out", str(nn)]):
        try:
            app(args, standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                raise
    meta = pd.read_csv(d / "cells.tsv", sep="\t")
    labels = work / f"{name}.labels.tsv"
    pd.DataFrame({"cell_id": name + "#" + meta["barcode"], "cell_type": meta["cell_type"]}).to_csv(
        labels, sep="\t", index=False)
    return nn, labels


def simulated_matrix(n_types: int, seed: int, spread: float, n: int = 3000, dim: int = 30) -> tuple:
    """Cells × features of ``n_types`` Gaussian populations with Dirichlet(0.7) sizes (at least 10 cells each);
    ``spread`` scales the distances between population centres (1.2: well apart, 0.66: overlapping)."""
    rng = np.random.default_rng(seed)
    w = np.maximum(rng.dirichlet(np.full(n_types, 0.7)), 0.01)
    sizes = np.maximum(10, np.round(w / w.sum() * n).astype(int))
    centres = rng.normal(0, spread, (n_types, dim))
    lab = np.repeat(np.arange(n_types), sizes)
    return centres[lab] + rng.normal(0, 1, (len(lab), dim)), lab.astype(str), sizes


from scfan.sc.cluster import RESOLUTION_GRID as GRID  # noqa: E402

SPREADS = ((1.2, "apart"), (0.8, "in between"), (0.66, "overlapping"))
DESIGN = ((0, 3000), (1, 3000), (2, 3000))
HELD_OUT = ((3, 3000), (4, 1000), (5, 8000))
STABILITY_RUNS, STABILITY_FRACTION, STABILITY_MIN = 4, 0.8, 0.85


def subsample_stability(x: np.ndarray, metric: str, k: int, resolutions, seed: int) -> dict[float, float]:
    """Mean pairwise ARI of Leiden partitions of ``STABILITY_RUNS`` seeded subsamples (own kNN graphs), on the cells
    two subsamples share, per resolution."""
    import anndata as ad
    import scanpy as sc
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(seed)
    n = x.shape[0]
    m = int(STABILITY_FRACTION * n)
    subs = []
    for _ in range(STABILITY_RUNS):
        idx = np.sort(rng.choice(n, m, replace=False))
        sub = ad.AnnData(np.zeros((m, 0), dtype=np.float32))
        sub.obsm["X_rep"] = x[idx]
        sc.pp.neighbors(sub, n_neighbors=k, use_rep="X_rep", metric=metric, random_state=seed)
        subs.append((idx, sub))
    out = {}
    for r in resolutions:
        labels = []
        for idx, sub in subs:
            sc.tl.leiden(sub, resolution=r, flavor="igraph", n_iterations=2, directed=False, random_state=seed,
                         key_added="_l")
            full = np.full(n, -1)
            full[idx] = sub.obs["_l"].astype(int).to_numpy()
            labels.append(full)
        scores = []
        for i in range(len(labels)):
            for j in range(i + 1, len(labels)):
                both = (labels[i] >= 0) & (labels[j] >= 0)
                scores.append(adjusted_rand_score(labels[i][both], labels[j][both]))
        out[r] = float(np.mean(scores))
    return out


def run_case(fm, cfg, stability: bool) -> dict:
    from scfan.sc.cluster import choose_resolution, cluster_matrix

    t0 = time.perf_counter()
    res = cluster_matrix(fm, cfg)
    seconds = time.perf_counter() - t0
    s = res.summary
    scan = s["resolution_scan"]
    assert choose_resolution(scan)[0] == s["resolution"]
    by_res = {r["resolution"]: r for r in scan}
    sil = by_res[choose_resolution(scan, rule="silhouette")[0]]
    out = {"rule": (s["resolution"], s["n_clusters"], s["ari"]), "silhouette": (sil["resolution"],
           sil["n_clusters"], sil["ari"]), "r1": (1.0, by_res[1.0]["n_clusters"], by_res[1.0]["ari"]),
           "seconds": seconds, "scan": scan}
    best = max(scan, key=lambda r: r["ari"])
    out["best"] = (best["resolution"], best["n_clusters"], best["ari"])
    if stability:
        stab = subsample_stability(res.adata.obsm["X_cluster_rep"], s["metric"], s["n_neighbors"], GRID, cfg.seed)
        for row in scan:
            row["stability"] = stab[row["resolution"]]
        cand = [r for r in scan if r["n_clusters"] >= 2 and r["median_cluster_size"] >= s["n_neighbors"]]
        stable = [r for r in cand if r["stability"] >= STABILITY_MIN]
        pick = stable[-1] if stable else max(cand, key=lambda r: r["stability"])
        out["stability"] = (pick["resolution"], pick["n_clusters"], pick["ari"])
    return out


def pipeline_matrices(outdir: Path):
    """(name, FeatureMatrix, ClusterConfig kwargs, seed) of the three matrices a `-profile test` run clusters."""
    import json

    from scfan.sc.cluster import read_labels, read_matrix

    seed = int(json.loads((outdir / "pipeline_info" / "params.json").read_text())["seed"])
    labels = read_labels(outdir / "simulate" / "truth" / "cells.tsv", "cell_type")
    for name, path, kw in (("chromatin (X_spectral)", outdir / "sc" / "cells.h5ad", {"obsm": "X_spectral"}),
                           ("TF activity (mean_prob)", outdir / "activity" / "tf_activity.h5ad",
                            {"layer": "mean_prob"}),
                           ("chromVAR", outdir / "analysis" / "chromvar.h5ad", {})):
        fm = read_matrix(path, **kw)
        fm.labels = labels
        yield f"-profile test: {name}", fm, kw, seed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_resolution.md")
    ap.add_argument("--test-run", type=Path, default=None, help="outdir of a -profile test run")
    ap.add_argument("--stability", action="store_true", help="also the subsample-stability candidate (slow)")
    ap.add_argument("--quick", action="store_true", help="design seed 0 and held-out seed 4 only")
    args = ap.parse_args()

    from scfan.logging_utils import setup_logging
    from scfan.sc.cluster import ClusterConfig, FeatureMatrix, read_labels, read_matrix

    setup_logging(-1)
    rows = []  # (group, name, cells, types, result)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("hemato_atac", "chromvar_example"):
            nn, labels = real_embedding(name, work)
            fm = read_matrix(nn, obsm="X_spectral")
            fm.labels = read_labels(labels, "cell_type")
            r = run_case(fm, ClusterConfig(obsm="X_spectral", seed=0), args.stability)
            rows.append(("real", f"{name} (real counts, spectral embedding)", fm.values.shape[0],
                         len(set(fm.labels.dropna())), r))
            print(name, r["rule"], r["best"], flush=True)
    if args.test_run is not None:
        for name, fm, kw, seed in pipeline_matrices(args.test_run):
            r = run_case(fm, ClusterConfig(seed=seed, **kw), args.stability)
            rows.append(("real", name, fm.values.shape[0], len(set(fm.labels.dropna())), r))
            print(name, r["rule"], r["best"], flush=True)
    sets = (("design", DESIGN[:1] if args.quick else DESIGN), ("held-out", HELD_OUT[1:2] if args.quick else HELD_OUT))
    for group, seeds in sets:
        for n_types in (10, 15, 20):
            for spread, kind in SPREADS:
                for seed, n in seeds:
                    x, lab, sizes = simulated_matrix(n_types, seed, spread, n=n)
                    cells = [f"c{i}" for i in range(len(lab))]
                    fm = FeatureMatrix(cells, [f"f{j}" for j in range(x.shape[1])], x, Path(f"sim{n_types}"),
                                       labels=pd.Series(lab, index=cells))
                    r = run_case(fm, ClusterConfig(seed=seed), args.stability)
                    rows.append((group, f"{n_types} types {kind}, sizes {sizes.min()}–{sizes.max()}, seed {seed}",
                                 len(lab), n_types, r))
                    print(group, n_types, kind, seed, r["rule"], r["best"], flush=True)

    def cell(t):
        return f"{t[0]:g} → {t[1]}, {t[2]:.3f}"

    rules = [("rule", "default (consensus)"), ("silhouette", "silhouette alone (former default)")]
    if args.stability:
        rules.append(("stability", "subsample stability"))
    rules.append(("r1", "resolution 1.0"))
    lines = ["# Choosing the Leiden resolution without labels", "",
             f"Machine: {machine()}. Command: `python benchmarks/bench_resolution.py"
             f"{' --test-run OUTDIR' if args.test_run else ''}{' --stability' if args.stability else ''}"
             f"{' --quick' if args.quick else ''}`. Each cell: resolution → clusters, ARI against the labels "
             "(never seen by a rule).", "",
             f"Grid {', '.join(map(str, GRID))} (`scfan.sc.cluster.RESOLUTION_GRID`). Default rule (consensus): of "
             "the partitions of ≥ 2 clusters whose mean silhouette width is within 0.1 of the best, the one with the "
             "highest mean ARI against the partitions at every other resolution of the grid. Seconds: "
             "`cluster_matrix` (the default rule) alone. *design*: the simulated matrices the rule was chosen on; "
             "*held-out*: seeds and sizes it never saw; *real*: the real count data sets of ../shared/data and, with "
             "--test-run, the three matrices a `-profile test` run clusters (simulated cells through the whole "
             "pipeline).", "",
             "| set | data | cells | types | " + " | ".join(w for _, w in rules)
             + " | best on the grid | default − best | seconds |",
             "|---|---|---|---|" + "---|" * len(rules) + "---|---|---|"]
    for group, name, n, types, r in rows:
        lines.append(f"| {group} | {name} | {n} | {types} | " + " | ".join(cell(r[k]) for k, _ in rules) +
                     f" | {cell(r['best'])} | {r['rule'][2] - r['best'][2]:+.3f} | {r['seconds']:.1f} |")
    lines.append("")
    for group in ("design", "held-out", "real"):
        sub = [r for g, _, _, _, r in rows if g == group]
        if not sub:
            continue
        for key, what in rules:
            gaps = [r[key][2] - r["best"][2] for r in sub]
            lines.append(f"- {group}, {what}: within 0.05 ARI of the best resolution of the grid in "
                         f"{sum(g >= -0.05 for g in gaps)} of {len(gaps)}; worst gap {-min(gaps):.3f}, mean "
                         f"{-np.mean(gaps):.3f}.")
    lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
