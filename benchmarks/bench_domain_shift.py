#!/usr/bin/env python
"""Bulk → cell domain shift: what a sparse pooled neighbourhood costs a bulk-trained model, with and without the
remedy (training on the bulk ATAC thinned to a neighbourhood's depth, ``scfan bulk train --thin-min-keep``).

One run, same simulated data, same cells, same windows per condition:

* the depth of each cell's pooled track as a share of the bulk library's (the effective insertions of the weighted
  neighbourhood: pooled mean / Σ w², over the bulk mean per base);
* per-cell AUROC of the binding calls against the simulator's truth of the cell's type (as bench_sc_infer's (d)),
  on pooled tracks of k = 20 and sparser ones (k = 5, k = 1) and on each cell's whole-type pseudo-bulk (the deep
  reference), for the plain models and the thinned-trained ones (same seed, same windows, same epochs);
* the mean probability on the truth's bound and unbound pairs (a shift in level shows up here before it shows in a
  rank statistic such as AUROC, and it moves ``frac_bound``, a count of probabilities crossing 0.5);
* each model's validation AUPRC on the bulk (the remedy must not cost the bulk).

Not a test. ``python benchmarks/bench_domain_shift.py --workdir W`` (test preset, seed 7, all its cells).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_sc import machine  # noqa: E402
from bench_sc_infer import (  # noqa: E402  (a sibling script, imported from its folder)
    Run,
    cell_types,
    default_sim,
    neighbours_with,
    prepare,
    train_line,
    truth_auroc,
    type_pseudobulk_units,
)

from scfan.bulk.train_config import TrainConfig  # noqa: E402


def train_set(sim: Path, work: Path, epochs: int, min_keep: float) -> list[str]:
    """One small model per bulk line, as bench_sc_infer's ``prepare`` trains them, with ``--thin-min-keep
    min_keep`` (1: the plain model, trained on the bulk alone)."""
    lines = json.loads((sim / "manifest.json").read_text())["lines"]
    models = []
    for line in lines:
        out = work / f"bulk_keep{min_keep:g}" / line / "train"
        models.append(f"{line}={train_line(sim, work, line, epochs, out, '--thin-min-keep', f'{min_keep:g}')}")
    return models


def valid_auprc(models: list[str]) -> float:
    """Mean over models of the best validation AUPRC that `bulk train` recorded (bulk windows, never thinned)."""
    vals = []
    for m in models:
        summary = json.loads((Path(m.split("=", 1)[1]).parent / "train.json").read_text())
        vals.append(float(summary["best_valid_mean_auprc"]))
    return float(np.mean(vals))


def effective_keep(run: Run) -> np.ndarray:
    """Per cell, its pooled track's depth over the bulk's: effective insertions of the weighted neighbourhood
    (pooled mean per base / Σ w², a Poisson count's depth) over the bulk library's mean per base."""
    import scipy.sparse as sp

    a = run.adata
    pool = sp.csr_matrix(a.obsp["pooling"])
    totals = 2.0 * a.obs["n_fragments"].to_numpy(dtype=np.float64)
    from scfan.genome import Genome

    with Genome(run.sim / "genome.fa") as g:
        genome = float(sum(g.sizes.values()))
    pooled_mean = (pool @ totals) / genome
    w2 = np.asarray(pool.multiply(pool).sum(axis=1)).ravel()
    bulk = float(np.mean([s.track_norm.mean_per_base for s in run.models.specs]))
    return pooled_mean / w2 / bulk


def level(sim: Path, run: Run, cells: np.ndarray, pc, pw, pp, win) -> tuple[float, float]:
    """Mean probability over the truth's bound and unbound (cell, window, feature) triples."""
    import polars as pl

    from scfan.simulate.truth import bound_window_labels

    types = cell_types(sim, run)
    sites = pl.read_parquet(sim / "truth" / "bound_sites.parquet")
    chrom, ws = win["chrom"].to_numpy().astype(str), win["start"].to_numpy()
    pos, neg = [], []
    for j, f in enumerate(run.models.features):
        tf = f.split(":", 1)[1]
        y = np.zeros(len(pc), bool)
        for t in np.unique(types):
            sel = types[cells[pc]] == t
            y[sel] = bound_window_labels(sites, chrom, ws, run.models.window, tf, t)[pw[sel]]
        pos.append(pp[y, j])
        neg.append(pp[~y, j])
    return float(np.mean(np.concatenate(pos))), float(np.mean(np.concatenate(neg)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=HERE / "out" / "domain_shift")
    ap.add_argument("--sim-dir", type=Path, default=None)
    ap.add_argument("--cells", type=int, default=400, help="cells scored (the first N)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--thin-min-keep", type=float, default=0.01)
    ap.add_argument("--k", type=int, nargs="+", default=[20, 5, 1], help="neighbour counts of the pooled tracks")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_domain_shift.md")
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M")
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    sim = default_sim(work, args.sim_dir)
    plain = train_set(sim, work, args.epochs, 1.0)
    thinned = train_set(sim, work, args.epochs, args.thin_min_keep)
    _, cells_path, fragments = prepare(sim, work, args.epochs, plain)
    sets = {"plain (--thin-min-keep 1: bulk alone)": plain,
            f"thinned (--thin-min-keep {args.thin_min_keep:g}"
            f"{', the default' if args.thin_min_keep == TrainConfig().thin_min_keep else ''})": thinned}
    graphs = {k: cells_path if k == 20 else neighbours_with(work, cells_path, k) for k in args.k}

    depth_rows, rows = [], []
    for k, path in graphs.items():
        run = Run(sim, plain, path, fragments)
        keep = effective_keep(run)
        depth_rows.append(f"| {k} | {np.quantile(keep, 0.1):.4f} | {np.median(keep):.4f} | "
                          f"{np.quantile(keep, 0.9):.4f} |")
    for name, models in sets.items():
        auprc = valid_auprc(models)
        for k, path in graphs.items():
            run = Run(sim, models, path, fragments)
            cells = np.arange(min(args.cells, run.adata.n_obs))
            pc, pw, pp, win, _, _ = run.pairs("exact", cells)
            auc, _ = truth_auroc(sim, run, cells, pc, pw, pp, win)
            lp, ln = level(sim, run, cells, pc, pw, pp, win)
            rows.append(f"| {name} | {auprc:.3f} | pooled, k = {k} | {len(pc):,} | {auc:.3f} | {lp:.3f} | "
                        f"{ln:.3f} |")
            if k == 20:
                units = type_pseudobulk_units(cell_types(sim, run), cells)
                dc, dw, dp, _, _, _ = run.pairs("exact", cells, units=units)
                dauc, _ = truth_auroc(sim, run, cells, dc, dw, dp, win)
                dlp, dln = level(sim, run, cells, dc, dw, dp, win)
                rows.append(f"| {name} | {auprc:.3f} | type pseudo-bulk (k = 20's windows) | {len(dc):,} | "
                            f"{dauc:.3f} | {dlp:.3f} | {dln:.3f} |")
            print(rows[-1], flush=True)
    cmd = " ".join(["benchmarks/bench_domain_shift.py", *sys.argv[1:]])
    lines = [
        "# Bulk → cell domain shift, with and without the thinning remedy", "",
        f"Machine: {machine()}; no GPU. Run {started} with `{cmd}` on `{sim.name}` ({run.adata.n_obs} cells; "
        f"the first {min(args.cells, run.adata.n_obs)} scored; small models, {args.epochs} epochs, seed 7).", "",
        "## Depth of the pooled tracks against the bulk library", "",
        "Per cell: effective insertions of its weighted neighbourhood (pooled mean per base / Σ w²) over the bulk "
        "library's mean per base — the share of the bulk's insertions its pooled track carries.", "",
        "| neighbours k | 10th percentile | median | 90th percentile |", "|---|---|---|---|", *depth_rows, "",
        "## Per-cell binding calls against the truth of the cell's type (exact mode)", "",
        "AUROC: mean over features of the per-(cell, window) AUROC against the truth of the cell's type; the mean "
        "probability over the truth's bound and unbound (cell, window, feature) triples. Validation AUPRC: the bulk "
        "model's best (bulk windows, never thinned), mean over the bulk lines.", "",
        "| models | bulk valid AUPRC | input | (cell, window) pairs | AUROC vs truth | mean prob, bound | "
        "mean prob, unbound |",
        "|---|---|---|---|---|---|---|", *rows, "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
