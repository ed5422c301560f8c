"""End-to-end `sc predict` benchmark (issue 36): (cell, window) pairs/s of one shard for each mode and window share,
the share of its time in parsing, assembly and the model, agreement with exact mode, and a projection to atlas size.

Usage::

    .venv/bin/python benchmarks/bench_sc_predict.py [--sim-dir DIR] [--cells 150] [--shares 0.2 0.1]

With no ``--sim-dir`` the simulator's ``bench`` preset (seed 7; 6,000 cells) is generated into the work folder. One
small model per bulk line is trained as in ``bench_sc_infer.py``; cells are ingested and neighbours built with the
CLI. Every row runs :func:`scfan.sc.predict.predict_activity` (what ``scfan sc predict --shard 1/n`` runs: loading
the models, reading the cells file, the whole shard) in this process on the same first shard, so the rows compare
side by side:

- ``exact`` and ``exact`` as it ran before the pooling product skipped the insertions between windows (the same
  numbers, bit for bit: asserted); ``exact`` with ``--assembly device`` (the inputs built by torch on the model's
  device, here the CPU; ``mean_prob`` within 1e-5 of exact's: asserted);
- ``fast`` (only on a CPU with native bfloat16: elsewhere it runs exact's float32) and ``metacell``;
- ``exact`` with ``--window-share`` s: the activity layers from a share s of the windows, with Spearman ρ per feature
  against exact and the coverage of the stated standard errors (the share of (cell, feature) values within 1.96 SE
  of exact's value), for each ``--window-estimator`` (``mean``, ``regression``: :mod:`scfan.sc.window_estimate`);
- with ``--large-shard-cells``, the window-share rows again on a larger shard, where the regression estimator's
  per-window proxies are shared by more cells.

Time is split by wrapping the fragment reader (parsing: tabix query, insertions), the models (window scores and pair
predictions) and counting the rest of the shard as assembly and set-up (pooling product, windows, normalisation,
accumulation, reading the cells file, model loading). Results: benchmarks/results/bench_sc_predict.md. Ratios
measured side by side in one run are what matter on 2 shared CPU cores.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
import sys  # noqa: E402

sys.path.insert(0, str(HERE))
from bench_sc import machine  # noqa: E402
from bench_sc_infer import prepare, sh  # noqa: E402


class Timers:
    """Seconds spent in the fragment reader and in the models during one run."""

    def __init__(self):
        self.parse = 0.0
        self.model = 0.0
        self.proxy = 0.0  # the regression estimator's per-window proxies (also counted in model)

    @contextmanager
    def installed(self):
        from scfan.sc import predict as P
        from scfan.sc.pooling import PooledTracks

        saved = PooledTracks.insertions, P.ModelSet.window_scores, P.ModelSet.predict_pairs
        saved_proxies = P._WindowMeans.proxies

        def timed(fn, slot):
            def wrapper(*a, **kw):
                t0 = time.perf_counter()
                try:
                    return fn(*a, **kw)
                finally:
                    setattr(self, slot, getattr(self, slot) + time.perf_counter() - t0)
            return wrapper

        PooledTracks.insertions = timed(saved[0], "parse")
        P.ModelSet.window_scores = timed(saved[1], "model")
        P.ModelSet.predict_pairs = timed(saved[2], "model")
        P._WindowMeans.proxies = timed(saved_proxies, "proxy")
        try:
            yield self
        finally:
            PooledTracks.insertions, P.ModelSet.window_scores, P.ModelSet.predict_pairs = saved
            P._WindowMeans.proxies = saved_proxies


def run_shard(sim: Path, models: list[str], cells: Path, fragments: dict[str, str], shard: str, threads: int,
              **cfg_kw):
    """One shard end to end; returns (AnnData, wall seconds, Timers)."""
    from scfan.sc import predict as P

    cfg = P.PredictConfig(shard=shard, device="cpu", num_threads=threads, **cfg_kw)
    timers = Timers()
    with timers.installed():
        t0 = time.perf_counter()
        out = P.predict_activity(cells, models, fragments, sim / "genome.fa", sim / "mappability.bw", cfg)
        wall = time.perf_counter() - t0
    return out, wall, timers


def spearman_per_feature(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.stats import spearmanr

    out = []
    for j in range(a.shape[1]):
        x, y = a[:, j], b[:, j]
        out.append(1.0 if np.ptp(x) == 0 and np.ptp(y) == 0 else float(spearmanr(x, y)[0]))
    return np.asarray(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=HERE / "out" / "sc_predict")
    ap.add_argument("--sim-dir", type=Path, default=None, help="a simulated data set (default: --preset, seed 7)")
    ap.add_argument("--preset", default="bench", help="simulator preset made when no --sim-dir is given")
    ap.add_argument("--cells", type=int, default=150, help="cells of the shard (the first shard of n_cells / this)")
    ap.add_argument("--shares", type=float, nargs="+", default=[0.2, 0.1])
    ap.add_argument("--estimators", nargs="+", default=["mean", "regression"], choices=["mean", "regression"],
                    help="--window-estimator of the window-share rows")
    ap.add_argument("--no-other-modes", action="store_true",
                    help="only exact and the window-share rows (no 'before', device assembly or metacell rows)")
    ap.add_argument("--large-shard-cells", type=int, default=0,
                    help="also run the window-share rows on a shard of this many cells (no exact there: its rate "
                         "is compared with the small shard's exact rate), where the proxies' cost is shared by "
                         "more cells")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_sc_predict.md")
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M")
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    sim = args.sim_dir or work / f"sim_{args.preset}"
    if not (sim / "manifest.json").is_file():
        sh("simulate", "--preset", args.preset, "--seed", "7", "--outdir", str(sim))
    models, cells_path, fragments = prepare(sim, work, args.epochs)
    import anndata as ad

    n_all = ad.read_h5ad(cells_path, backed="r").n_obs
    shard = f"1/{math.ceil(n_all / args.cells)}"
    results = {}

    def row(name: str, adata, wall: float, timers: Timers) -> None:
        pairs = int(adata.obs["n_scored_windows"].sum())
        covered = int(adata.obs["n_candidate_windows"].sum()) if "n_candidate_windows" in adata.obs else pairs
        results[name] = (adata, wall, timers, pairs, covered)
        print(f"{name}: {pairs} pairs in {wall:.1f} s", flush=True)

    exact, wall, tm = run_shard(sim, models, cells_path, fragments, shard, args.threads)
    row("exact", exact, wall, tm)
    if not args.no_other_modes:
        other_modes(sim, models, cells_path, fragments, shard, args, exact, row)
    for s in args.shares:
        for est in args.estimators:
            a, wall, tm = run_shard(sim, models, cells_path, fragments, shard, args.threads, window_share=s,
                                    window_estimator=est)
            row(f"exact, --window-share {s:g}, --window-estimator {est}", a, wall, tm)
    large = {}
    if args.large_shard_cells:
        big = f"1/{math.ceil(n_all / args.large_shard_cells)}"
        for s in args.shares:
            for est in args.estimators:
                a, wall, tm = run_shard(sim, models, cells_path, fragments, big, args.threads, window_share=s,
                                        window_estimator=est)
                large[f"shard {big} ({a.n_obs} cells), --window-share {s:g}, --window-estimator {est}"] = (
                    a, wall, tm, int(a.obs["n_scored_windows"].sum()), int(a.obs["n_candidate_windows"].sum()))
                print(f"large shard {est} {s}: {wall:.1f} s", flush=True)
    write_tables(args, started, sim, models, n_all, shard, exact, results, large)


def other_modes(sim, models, cells_path, fragments, shard, args, exact, row) -> None:
    """The rows beside exact: the pooling product before the column skip, device assembly, fast, metacell."""
    from scfan.inference import cpu_has_native_bf16
    from scfan.sc import predict as P

    saved = P._only_columns
    P._only_columns = lambda m, offsets, width: m
    try:
        before, wall, tm = run_shard(sim, models, cells_path, fragments, shard, args.threads)
    finally:
        P._only_columns = saved
    for layer in ("mean_prob", "frac_bound"):
        assert np.array_equal(before.layers[layer], exact.layers[layer]), "skipping columns changed a number"
    assert np.array_equal(before.X, exact.X)
    row("exact, the pooling product over every insertion of the chunk (before)", before, wall, tm)
    dev, wall, tm = run_shard(sim, models, cells_path, fragments, shard, args.threads, assembly="device")
    np.testing.assert_allclose(dev.layers["mean_prob"], exact.layers["mean_prob"], rtol=0, atol=1e-5)
    row(f"exact, inputs assembled by torch ({dev.uns['scfan_activity']['assembly']})", dev, wall, tm)
    if cpu_has_native_bf16():
        fast, wall, tm = run_shard(sim, models, cells_path, fragments, shard, args.threads, mode="fast")
        row(f"fast ({fast.uns['scfan_activity']['precision']})", fast, wall, tm)
    meta, wall, tm = run_shard(sim, models, cells_path, fragments, shard, args.threads, mode="metacell")
    row(f"metacell ({meta.uns['scfan_activity']['precision']})", meta, wall, tm)


def write_tables(args, started, sim, models, n_all, shard, exact, results, large) -> None:
    """The results file: the rows side by side, the projection, the error against the cells' window counts."""
    ex_rate = results["exact"][4] / results["exact"][1]
    has = exact.obs["n_scored_windows"].to_numpy() > 0
    lines = [f"# `sc predict` end to end: modes, window sampling, where the time goes ({started})", "",
             f"Machine: {machine()}; {args.threads} threads.", "",
             f"Data: simulator `{json.loads((sim / 'manifest.json').read_text()).get('preset', sim.name)}` preset "
             f"({n_all} cells), one small model per bulk line ({len(models)} models, "
             f"{exact.n_vars} features); shard {shard} ({exact.n_obs} cells, median "
             f"{int(np.median(exact.obs['n_scored_windows']))} scored windows a cell in exact mode). Command: "
             f"`.venv/bin/python benchmarks/bench_sc_predict.py {' '.join(sys.argv[1:])}`.", "",
             "Pairs covered: the (cell, window) pairs the activity stands for (for a window sample, every pair of "
             "the cells' scored windows, of which only the sample is predicted). ρ: Spearman per feature over the "
             "shard's cells against exact (median / minimum over features). SE coverage: share of (cell, feature) "
             "values of `mean_prob` within 1.96 standard errors of exact's.", "",
             "| run | pairs predicted | pairs covered | wall s | covered pairs/s | × exact | parsing | model "
             "(proxies) | assembly + set-up | ρ X (median / min) | ρ mean_prob (median / min) | ρ frac_bound "
             "(median / min) | mean_prob features at ρ ≥ 0.98 | SE coverage |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, (a, wall, tm, pairs, covered) in results.items():
        rate = covered / wall
        other = wall - tm.parse - tm.model
        rho_x = spearman_per_feature(np.asarray(exact.X)[has], np.asarray(a.X)[has])
        rho_m = spearman_per_feature(exact.layers["mean_prob"][has], a.layers["mean_prob"][has])
        rho_b = spearman_per_feature(exact.layers["frac_bound"][has], a.layers["frac_bound"][has])
        cover = ""
        if "mean_prob_se" in a.layers:
            diff = np.abs(a.layers["mean_prob"] - exact.layers["mean_prob"])[has]
            se = a.layers["mean_prob_se"][has]
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(diff == 0, 0.0, diff / se)
            cover = f"{np.mean(z <= 1.96):.3f}"
        lines.append(f"| {name} | {pairs:,} | {covered:,} | {wall:.1f} | {rate:,.0f} | {rate / ex_rate:.2f} | "
                     f"{tm.parse / wall:.0%} | {tm.model / wall:.0%} ({tm.proxy / wall:.0%}) | {other / wall:.0%} | "
                     f"{np.median(rho_x):.4f} / {np.nanmin(rho_x):.4f} | {np.median(rho_m):.4f} / "
                     f"{np.nanmin(rho_m):.4f} | {np.nanmedian(rho_b):.4f} / {np.nanmin(rho_b):.4f} | "
                     f"{int(np.sum(rho_m >= 0.98))} / {len(rho_m)} | {cover} |")
    if large:
        lines += ["", "## The window sample in a larger shard", "",
                  "The regression estimator's proxies cost one model run per window of the shard, shared by the "
                  "shard's cells that score the window: their share of the work falls as shards grow. × exact: "
                  "against exact mode's rate in the small shard above (exact was not run on this shard).", "",
                  "| run | pairs predicted | pairs covered | wall s | covered pairs/s | × exact | model (proxies) |",
                  "|---|---|---|---|---|---|---|"]
        for name, (_a, wall, tm, pairs, covered) in large.items():
            rate = covered / wall
            lines.append(f"| {name} | {pairs:,} | {covered:,} | {wall:.1f} | {rate:,.0f} | {rate / ex_rate:.2f} | "
                         f"{tm.model / wall:.0%} ({tm.proxy / wall:.0%}) |")
        results = {**results, **large}
    lines += ["", "## Projection (extrapolated from the rates above, not run at that size)", "",
              "CPU core-hours = pairs covered / (covered pairs/s ÷ threads) / 3600; a real atlas scores ~10k "
              "(`--min-signal 3`) to ~40k windows a cell (docs/scaling.md).", "",
              "| run | 100k cells × 10k windows | 100k × 40k | 1M × 10k | 1M × 40k |", "|---|---|---|---|---|"]
    for name, (_a, wall, _tm, _pairs, covered) in results.items():
        per_core = covered / wall / args.threads
        cells_ = [f"{n * w / per_core / 3600:,.0f}" for n in (1e5, 1e6) for w in (1e4, 4e4)]
        lines.append(f"| {name} | {cells_[0]} | {cells_[1]} | {cells_[2]} | {cells_[3]} |")
    sampled = [k for k in results if "--window-share" in k]
    if sampled:
        a = results[sampled[0]][0]
        n_c = a.obs["n_candidate_windows"].to_numpy()
        lines += ["", "## Sampling error against the number of windows a cell has", "",
                  f"`{sampled[0]}`: median relative standard error of `mean_prob` (SE / value) by the cell's "
                  "number of scored windows. The standard error falls as 1/√(sampled windows), so a real atlas's "
                  "~40k windows a cell give a smaller error at the same share than this preset.", "",
                  "| cells' scored windows | cells | median relative SE of mean_prob |", "|---|---|---|"]
        edges = np.quantile(n_c[n_c > 0], [0, 0.25, 0.5, 0.75, 1.0])
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            sel = (n_c >= lo) & (n_c <= hi) & (n_c > 0)
            se, val = a.layers["mean_prob_se"][sel], a.layers["mean_prob"][sel]
            ok = np.isfinite(se) & (val > 0)
            lines.append(f"| {int(lo):,}–{int(hi):,} | {int(sel.sum())} | {np.median(se[ok] / val[ok]):.4f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
