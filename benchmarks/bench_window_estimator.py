"""Window-sample estimators against exact mode (issue 36): Spearman ρ per feature of the plain sample mean and of the
regression estimator (:mod:`scfan.sc.window_estimate`) at several window shares, from one exact pass.

Usage::

    .venv/bin/python benchmarks/bench_window_estimator.py collect --shard 1/60 --pairs PAIRS.npz
    .venv/bin/python benchmarks/bench_window_estimator.py evaluate --pairs PAIRS.npz --shares 0.1 0.2 0.3 0.4

``collect`` runs one exact shard of the ``bench`` preset (models, cells and fragments as ``bench_sc_predict.py``
prepares them) through :func:`scfan.sc.predict.iter_cell_predictions` with ``proxies=True`` and no sample, so every
(cell, window) pair is predicted and each pair's window proxy is kept beside it. ``evaluate`` then draws the window
sample of each share (:func:`~scfan.sc.predict.sampled_windows`, the cells' minimum as ``sc predict``), feeds the
sampled pairs to the package's own accumulators (:class:`~scfan.sc.predict.ActivityAccumulator` for the plain mean,
:class:`~scfan.sc.window_estimate.RegressionAccumulator` for the regression) and compares each layer with exact's,
cells × features, without running the model again. The model work of a share is its sampled pairs, plus for the
regression one proxy per window scored by any cell of the shard (both counted, not timed: wall-clock rates of the
same rows are in ``bench_sc_predict.md``).

Why a share on 6k windows a cell says something of an atlas's 40k: the variance of a cell's estimate is the
finite-population-corrected ``(1 - s) σ² / (s N)`` for share ``s`` of ``N`` windows, so share 0.1 of 40,000 windows
has the variance of the share ``s'`` of this shard's ``N'`` windows with ``(1 - s') / (s' N') = 0.9 / 4,000``
(the same per-window variance σ² assumed); the results name that share.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def collect(shard: str, out: Path, workdir: Path, epochs: int) -> None:
    import polars as pl
    import torch

    sys.path.insert(0, str(HERE))
    from bench_sc_infer import prepare

    from scfan.genome import Genome
    from scfan.sc import predict as P
    from scfan.sc.cells_file import read_cells_for_inference
    from scfan.sc.pooling import PooledTracks
    from scfan.sc.shards import RANK_COLUMN, check_rank, shard_cells
    from scfan.tracks import open_bigwig

    torch.set_num_threads(2)
    sim = workdir / "sim_bench"
    model_args, cells_path, fragments = prepare(sim, workdir, epochs)
    models = P.load_models(model_args, torch.device("cpu"))
    a = read_cells_for_inference(cells_path)
    rank = check_rank(a.obs[RANK_COLUMN].to_numpy(), a.n_obs, cells_path) if RANK_COLUMN in a.obs else None
    cells = shard_cells(a.n_obs, shard, rank)
    cfg = P.PredictConfig(device="cpu")
    t0 = time.perf_counter()
    with Genome(sim / "genome.fa") as g:
        sizes = dict(g.sizes)
        win = P.peak_windows(a.var_names, sizes, models.window, models.context)
        scored = P.scored_peaks(a.rows, a.obsp["pooling"], cells, cfg.min_signal)
        units = P.make_units("exact", a.obsp["pooling"], cells, cfg.metacell_size)
        bw = open_bigwig(sim / "mappability.bw")
        tot = 2.0 * a.obs["n_fragments"].to_numpy(np.float64)
        with PooledTracks(fragments, list(a.obs_names), units.pooling, tot, sum(sizes.values())) as tr:
            mask = np.ones(len(P.scored_pairs(scored, win)[0]), dtype=bool)
            out_ = list(P.iter_cell_predictions(models, tr, units, scored, win, g, bw, cfg, None, pair_mask=mask,
                                                proxies=True))
        bw.close()
    print(f"collected in {time.perf_counter() - t0:.0f} s", flush=True)
    win = pl.DataFrame(win)
    np.savez(out, pc=np.concatenate([b.cells for b in out_]), pw=np.concatenate([b.windows for b in out_]),
             probs=np.concatenate([b.probs for b in out_]), q=np.concatenate([b.proxies.proxy for b in out_]),
             chrom=win["chrom"].to_numpy().astype(str), start=win["start"].to_numpy(), shard=shard)


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.stats import spearmanr

    return np.array([1.0 if np.ptp(a[:, j]) == 0 and np.ptp(b[:, j]) == 0 else float(spearmanr(a[:, j], b[:, j])[0])
                     for j in range(a.shape[1])])


def evaluate(pairs: Path, shares: list[float], out: Path, seed: int, min_windows: int, atlas_windows: int) -> None:
    import polars as pl
    from bench_sc import machine

    from scfan.sc import predict as P
    from scfan.sc.window_estimate import RegressionAccumulator

    d = np.load(pairs)
    pc, pw, probs, q = d["pc"], d["pw"], d["probs"], d["q"]
    windows = pl.DataFrame({"chrom": d["chrom"], "start": d["start"]})
    n_cells, n_feat = int(pc.max()) + 1, probs.shape[1]
    full = P.ActivityAccumulator(n_cells, n_feat, 2, 0.5)
    full.add(pc, probs)
    exact = full.layers()
    has = full.n_scored > 0
    n_windows = np.median(full.n_scored[has])
    w_union = len(np.unique(pw))
    rows = []
    for share in shares:
        in_sample = P.sampled_windows(windows, share, seed)
        mask, n_cand = P.sample_pairs(pc, pw, in_sample, n_cells, min_windows)
        plain = P.ActivityAccumulator(n_cells, n_feat, 2, 0.5)
        plain.add(pc[mask], probs[mask])
        reg = RegressionAccumulator(n_cells, n_feat, 2, 0.5)
        reg.add_all(pc, q)
        reg.add_sampled(pc[mask], probs[mask], q[mask])
        est, _se = reg.estimates()
        work = {"mean": mask.sum() / len(pc), "regression": (mask.sum() + w_union) / len(pc)}
        for name, layers in (("mean", plain.layers()), ("regression", est)):
            r = {k: spearman(exact[k][has], layers[k][has]) for k in ("mean_prob", "top_k_freq", "frac_bound")}
            rows.append((share, name, work[name], r))
        print(f"share {share}: done", flush=True)
    # the share here with the sampling variance of share 0.1 at atlas_windows windows a cell
    s_atlas = 0.1
    v = (1 - s_atlas) / (s_atlas * atlas_windows)
    s_equiv = 1.0 / (1.0 + v * n_windows)
    lines = [f"# Window-sample estimators against exact mode ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"Machine: {machine()}.", "",
             f"Pairs: `{pairs.name}`, exact mode on shard {d['shard'] if 'shard' in d else '1/60'} of the `bench` "
             f"preset ({int(has.sum())} cells with scored windows, median {int(n_windows):,} scored windows a cell, "
             f"{len(pc):,} pairs, {n_feat} features, {w_union:,} windows scored by any cell). Command: "
             f"`.venv/bin/python benchmarks/bench_window_estimator.py {' '.join(sys.argv[1:])}`.", "",
             "Model work: pairs predicted (and, for the regression, one proxy per window of the shard) over exact "
             "mode's. ρ: Spearman per feature over the cells against exact (median / minimum); ≥ 0.98: features "
             "whose ρ reaches 0.98.", "",
             "| share | estimator | model work × exact | ρ mean_prob | mean_prob features ≥ 0.98 | ρ X (top-k freq.) | "
             "ρ frac_bound |", "|---|---|---|---|---|---|---|"]
    for share, name, work, r in rows:
        m, x, b = r["mean_prob"], r["top_k_freq"], r["frac_bound"]
        lines.append(f"| {share:g} | {name} | {work:.3f} | {np.median(m):.4f} / {np.nanmin(m):.4f} | "
                     f"{int(np.sum(m >= 0.98))} / {len(m)} | {np.nanmedian(x):.4f} / {np.nanmin(x):.4f} | "
                     f"{np.nanmedian(b):.4f} / {np.nanmin(b):.4f} |")
    lines += ["", f"A cell of {atlas_windows:,} windows sampled at share 0.1 has the sampling variance of share "
              f"{s_equiv:.2f} on this shard's {int(n_windows):,} windows (finite-population corrected, the same "
              "per-window variance assumed); read the row nearest that share for an atlas."]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--shard", default="1/60")
    c.add_argument("--pairs", type=Path, required=True)
    c.add_argument("--workdir", type=Path, default=HERE / "out" / "sc_predict")
    c.add_argument("--epochs", type=int, default=2)
    e = sub.add_parser("evaluate")
    e.add_argument("--pairs", type=Path, required=True)
    e.add_argument("--shares", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4])
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--min-sampled-windows", type=int, default=100)
    e.add_argument("--atlas-windows", type=int, default=40_000)
    e.add_argument("--out", type=Path, default=HERE / "results" / "bench_window_estimator.md")
    args = ap.parse_args()
    if args.cmd == "collect":
        collect(args.shard, args.pairs, args.workdir, args.epochs)
    else:
        sys.path.insert(0, str(HERE))
        evaluate(args.pairs, args.shares, args.out, args.seed, args.min_sampled_windows, args.atlas_windows)


if __name__ == "__main__":
    main()
