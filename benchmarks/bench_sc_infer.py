"""Per-cell inference benchmark: a naive scFAN-style loop vs `exact`, `fast` and `metacell`, model throughput, memory.

Usage::

    .venv/bin/python benchmarks/bench_sc_infer.py --workdir benchmarks/out/sc_infer [--sim-dir DIR] [--cells N]

With no ``--sim-dir`` the simulator's ``test`` preset is generated. The benchmark trains one small model per bulk
line (the test profile's settings), ingests the cells and builds neighbours with the CLI, then, on the same data:

(a) naive — per cell, build its pooled track window by window (one fragment fetch per cell and chromosome, as scFAN
    reads one bigWig per cell) and predict its windows — vs ``exact`` vs ``fast`` vs ``metacell``: (cell, window)
    pairs per second, Spearman ρ per feature of each mode against exact, and the ARI between the clusters of the
    matrices;
(b) windows/s of the small and full model on this CPU (forward + reverse complement, as in inference);
(c) peak RSS of one shard of a fixed number of cells as the data set grows (separate processes);
(d) per-cell AUROC of binding calls against the simulator's truth for the cell's type.

Results: benchmarks/results/bench_sc_infer.md. Absolute times mean little on 2 shared CPU cores; ratios measured
side by side in one run do.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCFAN = str(REPO / ".venv" / "bin" / "scfan")
sys.path.insert(0, str(HERE))
from bench_sc import machine  # noqa: E402


def sh(*args: str) -> None:
    subprocess.run([SCFAN, *args], check=True, cwd=REPO, stdout=subprocess.DEVNULL)


def default_sim(work: Path, sim: Path | None) -> Path:
    """``sim``, or the test preset (seed 7) simulated once into ``work``."""
    if sim is not None:
        return sim
    sim = work / "sim_test"
    if not (sim / "manifest.json").is_file():
        sh("simulate", "--preset", "test", "--seed", "7", "--outdir", str(sim))
    return sim


def train_line(sim: Path, work: Path, line: str, epochs: int, out: Path, *extra: str) -> Path:
    """One small model for a bulk line of ``sim`` (windows prepared once into ``work/bulk/<line>``), in ``out``;
    ``extra``: more `bulk train` options. Returns its model file."""
    manifest = json.loads((sim / "manifest.json").read_text())
    d = work / "bulk" / line
    if not (d / "prepare" / "windows.parquet").is_file():
        sh("bulk", "prepare", "--samplesheet", str(sim / "bulk_samplesheet.csv"), "--line", line, "--genome",
           str(sim / "genome.fa"), "--mappability", str(sim / "mappability.bw"), "--blacklist",
           str(sim / "blacklist.bed"), "--valid-chroms", ",".join(manifest["valid_chroms"]), "--test-chroms",
           ",".join(manifest["test_chroms"]), "--outdir", str(d / "prepare"))
    if not (out / "model.pt").is_file():
        sh("bulk", "train", "--windows", str(d / "prepare" / "windows.parquet"), "--genome",
           str(sim / "genome.fa"), "--atac", str(sim / "bulk" / line / "atac.bw"), "--mappability",
           str(sim / "mappability.bw"), "--arch", "small", "--epochs", str(epochs), "--max-train-windows",
           "6000", "--seed", "7", *extra, "--outdir", str(out))
    return out / "model.pt"


def prepare(sim: Path, work: Path, epochs: int,
            given: list[str] | None = None) -> tuple[list[str], Path, dict[str, str]]:
    """Models (NAME=path; ``given`` ones, or one trained per bulk line), cells_nn.h5ad and fragments of ``sim``,
    built once into ``work``."""
    manifest = json.loads((sim / "manifest.json").read_text())
    models = list(given or [])
    for line in [] if given else manifest["lines"]:
        models.append(f"{line}={train_line(sim, work, line, epochs, work / 'bulk' / line / 'train')}")
    samples = manifest["samples"]
    fragments = {s: str(sim / "sc" / s / "fragments.tsv.gz") for s in samples}
    cells = work / "cells_nn.h5ad"
    if not cells.is_file():
        parts = []
        for s in samples:
            parts.append(work / f"{s}.cells.h5ad")
            sh("sc", "ingest", "--samplesheet", str(sim / "sc_samplesheet.csv"), "--sample", s, "--peaks",
               str(sim / "sc" / "peaks.bed"), "--chrom-sizes", str(sim / "genome.fa.fai"), "--min-fragments", "100",
               "--out", str(parts[-1]))
        sh("sc", "merge", *map(str, parts), "--out", str(work / "cells.h5ad"))
        sh("sc", "neighbors", "--cells", str(work / "cells.h5ad"), "--k", "20", "--n-components", "15", "--seed",
           "7", "--out", str(cells))
    return models, cells, fragments


class Run:
    """Everything one inference needs, opened once."""

    def __init__(self, sim: Path, models: list[str], cells_path: Path, fragments: dict[str, str]):
        import torch

        from scfan.sc import predict as P
        from scfan.sc.cells_file import read_cells_for_inference

        torch.set_num_threads(2)
        self.P = P
        self.sim = sim
        self.models = P.load_models(models, torch.device("cpu"))
        # what fast and metacell mode run on this CPU (bfloat16 convolutions where it has native bfloat16)
        self.low = P.load_models(models, torch.device("cpu"), cpu_bf16=P.cpu_has_native_bf16())
        self.adata = read_cells_for_inference(cells_path)
        self.fragments = fragments

    def pairs(self, mode: str, cells: np.ndarray, metacell_size: int = 20, units=None):
        """All (cell, window, probs) of ``cells``, with the wall time (``units`` overrides the mode's units)."""
        from scfan.genome import Genome
        from scfan.sc.pooling import PooledTracks
        from scfan.sc.units import make_units
        from scfan.tracks import open_bigwig

        P, a = self.P, self.adata
        cfg = P.PredictConfig(mode=mode, metacell_size=metacell_size)
        models = self.low if cfg.reduced_precision else self.models
        t0 = time.perf_counter()
        with Genome(self.sim / "genome.fa") as g:
            sizes = dict(g.sizes)
            win = P.peak_windows(a.var_names, sizes, self.models.window, self.models.context)
            scored = P.scored_peaks(a.X, a.obsp["pooling"], cells, cfg.min_signal)
            units = units or make_units(mode, a.obsp["pooling"], cells, metacell_size)
            bw = open_bigwig(self.sim / "mappability.bw")
            tot = 2.0 * a.obs["n_fragments"].to_numpy(np.float64)
            with PooledTracks(self.fragments, list(a.obs_names), units.pooling, tot, sum(sizes.values())) as tr:
                out = list(P.iter_cell_predictions(models, tr, units, scored, win, g, bw, cfg, None))
            bw.close()
        dt = time.perf_counter() - t0
        return (np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out]),
                np.concatenate([o[2] for o in out]), win, dt, units.pooling.shape[0])

    def naive(self, cells: np.ndarray) -> tuple[int, float]:
        """scFAN's order of work: one cell at a time, its pooled track read per window, then its predictions."""
        import torch

        from scfan.bulk.inputs import codes_to_onehot, encode_codes
        from scfan.genome import Genome
        from scfan.sc.pooling import PooledTracks
        from scfan.tracks import open_bigwig

        P, a = self.P, self.adata
        cfg = P.PredictConfig()
        ctx, flank = self.models.context, (self.models.context - self.models.window) // 2
        n = 0
        t0 = time.perf_counter()
        with Genome(self.sim / "genome.fa") as g:
            sizes = dict(g.sizes)
            win = P.peak_windows(a.var_names, sizes, self.models.window, ctx)
            bw = open_bigwig(self.sim / "mappability.bw")
            tot = 2.0 * a.obs["n_fragments"].to_numpy(np.float64)
            peaks = win["peak"].to_numpy()
            chroms, starts = win["chrom"].to_numpy().astype(str), win["start"].to_numpy()
            with PooledTracks(self.fragments, list(a.obs_names), a.obsp["pooling"], tot, sum(sizes.values())) as tr:
                for c in cells:
                    sc = P.scored_peaks(a.X, a.obsp["pooling"], np.array([c]), cfg.min_signal)
                    w = np.flatnonzero(np.isin(peaks, sc.indices))
                    xs = []
                    for j in w:
                        cs = int(starts[j]) - flank
                        acc = tr.normalized_windows(np.array([c]), chroms[j], np.array([cs + ctx // 2]), ctx)
                        oh = codes_to_onehot(encode_codes(g.fetch(chroms[j], cs, cs + ctx))[None])
                        mp = np.nan_to_num(np.asarray(bw.values(chroms[j], cs, cs + ctx), np.float32))[None, None]
                        xs.append(np.concatenate([oh, acc[:, None], mp], axis=1))
                    if xs:
                        self.models.predict(torch.from_numpy(np.concatenate(xs)), 512, False)
                    n += len(w)
            bw.close()
        return n, time.perf_counter() - t0


def accumulate(P, n_cells: int, pc, pp) -> np.ndarray:
    acc = P.ActivityAccumulator(n_cells, pp.shape[1], 2, 0.5)
    acc.add(pc, pp)
    return acc.layers()


def relu_then_pool(m):
    """A copy of ``m`` with scFAN's ReLU-then-max-pool order (the same function; ScFANet now pools first)."""
    import copy

    import torch

    m = copy.deepcopy(m)
    layers = list(m.body)
    for i in range(len(layers) - 1):
        if isinstance(layers[i], torch.nn.MaxPool1d) and isinstance(layers[i + 1], torch.nn.ReLU):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    m.body = torch.nn.Sequential(*layers)
    return m


def previous_cpu_modules(models: list[str]) -> list:
    """What ``sc predict`` ran on a CPU before ChannelsLastNet: BatchNorm folded into 1-D convolutions."""
    from scfan.bulk.model import load_model
    from scfan.inference import fuse_for_inference

    return [fuse_for_inference(relu_then_pool(load_model(arg.partition("=")[2])[0])) for arg in models]


def model_throughput(n: int = 2048, reps: int = 5) -> list[str]:
    """Windows/s of the small and full model on this CPU, forward + RC averaged (``predict_batches``), for the module
    ``sc predict`` runs (:func:`~scfan.inference.prepare_for_inference`: ChannelsLastNet, float32) beside the CPU path
    it replaced (BatchNorm folded into 1-D convolutions, scFAN's ReLU-then-pool order), fast mode's bfloat16 module
    with oneDNN's kernels and with PyTorch's own (oneDNN off: the fallback issue 33 asks to measure), interleaved
    ``reps`` times, median; inputs like a pooled cell's (one-hot DNA, sparse accessibility, mappability 1). Then the
    runtime check of each path (:func:`~scfan.inference.checked_for_inference`): its verdict and its cost."""
    import statistics

    import torch

    from scfan.bulk.model import ArchConfig, ScFANet
    from scfan.inference import (
        checked_for_inference,
        cpu_has_native_bf16,
        fuse_for_inference,
        onednn_off,
        predict_batches,
        prepare_for_inference,
    )

    class OneDnnOff(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m
            self.head = m.head

        def forward(self, x):
            with onednn_off():
                return self.m(x)

    rows = [f"Median of {reps} interleaved repeats, same inputs; the first two modules give the same probabilities "
            "up to float rounding (max difference in the fifth column); the bfloat16 modules (fast mode's: bfloat16 "
            f"convolutions, float32 dense layers; this CPU has native bfloat16: {cpu_has_native_bf16()}) differ by "
            "bfloat16 rounding where the kernels are right. `oneDNN off`: the same bfloat16 module on PyTorch's own "
            "kernels.", "",
            "| model | previous CPU path (folded 1-D convolutions, ReLU then pool) windows/s | "
            "`prepare_for_inference` (ChannelsLastNet fp32, pool then ReLU) windows/s | ratio | max abs difference | "
            "fast mode's module (`cpu_bf16=True`) windows/s | × fp32 | max abs difference | "
            "bfloat16, oneDNN off windows/s | × fp32 | max abs difference |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    checks = ["", "Runtime check (`checked_for_inference`, 8 probe windows × 2 strands against float32 with oneDNN "
              "off), once per model and process:", "",
              "| model | asked | ran | max abs difference on the probe | tolerance | refused | seconds |",
              "|---|---|---|---|---|---|---|"]
    gen = torch.Generator().manual_seed(0)
    for arch in ("small", "full"):
        torch.manual_seed(0)
        m = ScFANet(6, 1000, 16, ArchConfig.preset(arch)).eval()
        k = n if arch == "small" else n // 8
        x = torch.zeros(k, 6, 1000)
        x[:, :4] = torch.nn.functional.one_hot(torch.randint(0, 4, (k, 1000), generator=gen), 4).permute(0, 2, 1)
        x[:, 4] = (torch.rand(k, 1000, generator=gen) < 0.02) * torch.rand(k, 1000, generator=gen) * 3
        x[:, 5] = 1.0
        mods = {"old": fuse_for_inference(relu_then_pool(m)), "new": prepare_for_inference(m, "cpu"),
                "bf16": prepare_for_inference(m, "cpu", cpu_bf16=True),
                "bf16_ref": OneDnnOff(prepare_for_inference(m, "cpu", cpu_bf16=True))}
        rates: dict[str, list[float]] = {name: [] for name in mods}
        probs = {}
        for mod in mods.values():
            predict_batches(mod, x[:64], 512)  # warm-up
        for _ in range(reps):
            for name, mod in mods.items():
                t0 = time.perf_counter()
                probs[name] = predict_batches(mod, x, 512)
                rates[name].append(k / (time.perf_counter() - t0))
        med = {name: statistics.median(r) for name, r in rates.items()}
        diff = {name: float(np.abs(probs[name] - probs["new"]).max()) for name in mods}
        new = med["new"]
        rows.append(f"| {arch} | {med['old']:,.0f} | {new:,.0f} | {new / med['old']:.2f} | {diff['old']:.1e} | "
                    f"{med['bf16']:,.0f} | {med['bf16'] / new:.2f} | {diff['bf16']:.1e} | "
                    f"{med['bf16_ref']:,.0f} | {med['bf16_ref'] / new:.2f} | {diff['bf16_ref']:.1e} |")
        for bf16 in (False, True):
            _, c = checked_for_inference(m, "cpu", 1000, cpu_bf16=bf16)
            checks.append(f"| {arch} | {c.asked} | {c.ran} | {c.max_abs_diff:.1e} | {c.tolerance:g} | "
                          f"{'; '.join(f'{n} ({d:.2g})' for n, d in c.refused) or 'none'} | {c.seconds:.2f} |")
    return rows + checks


def shard_memory(models: list[str], cells: Path, fragments: dict[str, str], sim: Path, work: Path,
                 totals: list[int], shard_cells: int) -> list[str]:
    import anndata as ad

    rows = ["Each row: `scfan sc predict --mode fast --shard 1/<shards>` in its own process.", "",
            "| cells in data set | shards | cells per shard | peak RSS of shard 1 (GiB) | time (s) |",
            "|---|---|---|---|---|"]
    full = ad.read_h5ad(cells)
    for n in totals:
        if n > full.n_obs:
            continue
        sub = full[:n].copy()
        pool = sub.obsp["pooling"]
        import scipy.sparse as sp

        s = np.asarray(pool.sum(axis=1)).ravel()
        sub.obsp["pooling"] = sp.csr_matrix(sp.diags(1 / np.maximum(s, 1e-12)) @ pool)
        from scfan.sc.shards import RANK_COLUMN, neighbourhood_order

        sub.obs[RANK_COLUMN] = neighbourhood_order(sub.obsp["pooling"])  # the subset's own shard order
        path = work / f"cells_{n}.h5ad"
        sub.write_h5ad(path)
        n_shards = max(1, n // shard_cells)
        args = ["sc", "predict", "--cells", str(path), "--genome", str(sim / "genome.fa"), "--mappability",
                str(sim / "mappability.bw"), "--shard", f"1/{n_shards}", "--mode", "fast", "--threads", "2", "--out",
                str(work / f"mem_{n}.h5ad")]
        for m in models:
            args += ["--model", m]
        for k, v in fragments.items():
            args += ["--fragments", f"{k}={v}"]
        # /usr/bin/time -v reports the command's own peak; getrusage in a child forked from this (large) process
        # would report this process's size too (Linux keeps the high-water mark across exec)
        t0 = time.perf_counter()
        err = subprocess.run(["/usr/bin/time", "-v", SCFAN, *args], check=True, capture_output=True, text=True,
                             cwd=REPO).stderr
        dt = time.perf_counter() - t0
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) / 2**20
        rows.append(f"| {n:,} | {n_shards} | {n // n_shards} | {rss:.2f} | {dt:.1f} |")
    return rows


def neighbours_with(work: Path, cells_nn: Path, k: int) -> Path:
    """The same cells with a kNN graph of ``k`` neighbours (the benchmark's graph has 20)."""
    out = work / f"cells_nn_k{k}.h5ad"
    if not out.is_file():
        sh("sc", "neighbors", "--cells", str(cells_nn.parent / "cells.h5ad"), "--k", str(k), "--n-components", "15",
           "--seed", "7", "--out", str(out))
    return out


def spearman_per_feature(a: dict[str, np.ndarray], b: dict[str, np.ndarray], layer: str) -> list[float]:
    from scipy.stats import spearmanr

    return [float(spearmanr(a[layer][:, j], b[layer][:, j])[0]) for j in range(a[layer].shape[1])]


def pipeline_clusters(x: np.ndarray) -> np.ndarray:
    """Clusters of a cells × features matrix the way `scfan sc cluster` makes them (z-scored features, kNN, Leiden
    at the silhouette rule's resolution; docs/analysis.md)."""
    from scfan.sc.cluster import ClusterConfig, FeatureMatrix, cluster_matrix

    fm = FeatureMatrix([f"c{i}" for i in range(x.shape[0])], [f"f{j}" for j in range(x.shape[1])],
                       np.asarray(x, dtype=np.float64), Path("bench"))
    res = cluster_matrix(fm, ClusterConfig(seed=0))
    return res.clusters["cluster"].to_numpy()


def cell_types(sim: Path, run: Run) -> np.ndarray:
    import polars as pl

    truth = pl.read_csv(sim / "truth" / "cells.tsv", separator="\t")
    ct = dict(zip(truth["cell_id"], truth["cell_type"], strict=True))
    return np.array([ct[c] for c in run.adata.obs_names])


def type_pseudobulk_units(types: np.ndarray, cells: np.ndarray):
    """Units that feed every cell its whole type's pseudo-bulk: the deep-track reference for the domain shift."""
    import scipy.sparse as sp

    from scfan.sc.units import Units

    names, of_cell = np.unique(types[cells], return_inverse=True)
    rows = [np.flatnonzero(types == t) for t in names]
    r = np.concatenate([np.full(len(x), i) for i, x in enumerate(rows)])
    c = np.concatenate(rows)
    w = np.concatenate([np.full(len(x), 1 / len(x)) for x in rows])
    return Units(sp.csr_matrix((w, (r, c)), shape=(len(names), len(types))), of_cell.astype(np.int64))


def truth_auroc(sim: Path, run: Run, cells: np.ndarray, pc, pw, pp, win) -> tuple[float, list[str]]:
    import polars as pl
    from sklearn.metrics import roc_auc_score

    from scfan.simulate.truth import bound_window_labels

    truth = pl.read_csv(sim / "truth" / "cells.tsv", separator="\t")
    ct = dict(zip(truth["cell_id"], truth["cell_type"], strict=True))
    types = np.array([ct[c] for c in run.adata.obs_names])
    sites = pl.read_parquet(sim / "truth" / "bound_sites.parquet")
    chrom, ws = win["chrom"].to_numpy().astype(str), win["start"].to_numpy()
    rows, aucs = [], []
    for j, f in enumerate(run.models.features):
        tf = f.split(":", 1)[1]
        y = np.zeros(len(pc), bool)
        for t in np.unique(types):
            lab = bound_window_labels(sites, chrom, ws, run.models.window, tf, t)
            sel = types[cells[pc]] == t
            y[sel] = lab[pw[sel]]
        if 0 < y.sum() < len(y):
            aucs.append(roc_auc_score(y, pp[:, j]))
            rows.append(f"| {f} | {y.mean():.3f} | {aucs[-1]:.3f} |")
    return float(np.mean(aucs)), rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=HERE / "out" / "sc_infer")
    ap.add_argument("--sim-dir", type=Path, default=None)
    ap.add_argument("--cells", type=int, default=200, help="cells scored by exact / fast (the first N: one shard)")
    ap.add_argument("--naive-cells", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--memory-totals", type=int, nargs="+", default=[100, 200, 400])
    ap.add_argument("--shard-cells", type=int, default=100)
    ap.add_argument("--stability-k", type=int, nargs="*", default=[15, 30],
                    help="neighbour counts of the exact runs that show the reference's own sensitivity")
    ap.add_argument("--models", nargs="+", default=None, metavar="NAME=PATH",
                    help="trained models to use instead of training one small model per bulk line")
    ap.add_argument("--no-history", action="store_true",
                    help="skip the two exact runs on the CPU paths of earlier versions (for large presets)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_sc_infer.md")
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M")
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    sim = default_sim(work, args.sim_dir)
    models, cells_path, fragments = prepare(sim, work, args.epochs, args.models)
    run = Run(sim, models, cells_path, fragments)
    from sklearn.metrics import adjusted_rand_score

    n_all = run.adata.n_obs
    # a contiguous block of cells, as one shard of `sc predict --shard` takes (metacells then stay whole)
    cells = np.arange(min(args.cells, n_all))
    types = cell_types(sim, run)[cells]
    pc, pw, pp, win, t_exact, _ = run.pairs("exact", cells)
    # the same exact run with every pair through the whole network (no motif scores shared between the cells that
    # score a window): what sc predict ran before WindowSharedNet
    history = []
    if not args.no_history:
        shared = run.P._shared
        run.P._shared = lambda m: None
        try:
            whole_c, _, whole_p, _, t_whole, _ = run.pairs("exact", cells)
        finally:
            run.P._shared = shared
        assert np.array_equal(whole_c, pc), "the two exact runs scored different (cell, window) pairs"
        whole_diff = float(np.abs(whole_p - pp).max())
        # the same exact run with the CPU module sc predict used before (folded 1-D convolutions, ReLU then pool)
        current = run.models.models
        run.models.models = previous_cpu_modules(models)
        prev_c, _, prev_p, _, t_prev, _ = run.pairs("exact", cells)
        run.models.models = current
        assert np.array_equal(prev_c, pc), "the two exact runs scored different (cell, window) pairs"
        prev_diff = float(np.abs(prev_p - pp).max())
        history = [
            ("exact, every pair through the whole network (before `WindowSharedNet`; probabilities within "
             f"{whole_diff:.0e} of exact's)", len(whole_c), t_whole),
            ("exact with the CPU module before ChannelsLastNet (folded 1-D convolutions, ReLU then pool; "
             f"probabilities within {prev_diff:.0e} of exact's)", len(prev_c), t_prev)]
    fc, fw, fp, _, t_fast, _ = run.pairs("fast", cells)
    assert np.array_equal(fc, pc) and np.array_equal(fw, pw), "fast mode scored other (cell, window) pairs"
    fast_diff = float(np.abs(fp - pp).max())
    mc, mw, mp, _, t_meta, n_units = run.pairs("metacell", cells)
    n_naive, t_naive = run.naive(cells[: args.naive_cells])
    naive_rate, exact_rate = n_naive / t_naive, len(pc) / t_exact
    fast_rate, meta_rate = len(fc) / t_fast, len(mc) / t_meta
    ex = accumulate(run.P, len(cells), pc, pp)
    ex_km = pipeline_clusters(ex["mean_prob"])
    precision = run.P.precision_of(run.low)
    # how much exact mode itself moves when only its neighbour count changes: the scale against which the
    # disagreement of fast with exact is read
    agree = [(f"fast ({precision})", len(cells), fast_rate, accumulate(run.P, len(cells), fc, fp),
              truth_auroc(sim, run, cells, fc, fw, fp, win)[0]),
             (f"metacell ({n_units} metacells of at most 20, {precision})", n_units, meta_rate,
              accumulate(run.P, len(cells), mc, mp), truth_auroc(sim, run, cells, mc, mw, mp, win)[0])]
    for k_nn in args.stability_k:
        other = Run(sim, models, neighbours_with(work, cells_path, k_nn), fragments)
        oc, ow, op, _, t_o, _ = other.pairs("exact", cells)
        agree.append((f"exact, k = {k_nn} neighbours", len(cells), len(oc) / t_o,
                      accumulate(run.P, len(cells), oc, op), truth_auroc(sim, other, cells, oc, ow, op, win)[0]))
    agree_rows = []
    for name, units_n, rate, lay, auc in agree:
        r_top, r_mean = spearman_per_feature(ex, lay, "top_k_freq"), spearman_per_feature(ex, lay, "mean_prob")
        r_bound = spearman_per_feature(ex, lay, "frac_bound")
        km = pipeline_clusters(lay["mean_prob"])
        agree_rows.append(
            f"| {name} | {units_n} | {rate:,.0f} | {np.nanmin(r_top):.3f} / {np.nanmedian(r_top):.3f} | "
            f"{np.nanmin(r_mean):.3f} / {np.nanmedian(r_mean):.3f} | "
            f"{np.nanmin(r_bound):.3f} / {np.nanmedian(r_bound):.3f} | {adjusted_rand_score(ex_km, km):.3f} | "
            f"{adjusted_rand_score(types, km):.3f} | {auc:.3f} |")
    mean_auc, auc_rows = truth_auroc(sim, run, cells, pc, pw, pp, win)
    agree_rows.insert(0, f"| exact, k = 20 neighbours (the reference, float32) | {len(cells)} | {exact_rate:,.0f} "
                         f"| 1 | 1 | 1 | 1 | {adjusted_rand_score(types, ex_km):.3f} | {mean_auc:.3f} |")
    dc, dw, dp, _, _, _ = run.pairs("exact", cells, units=type_pseudobulk_units(cell_types(sim, run), cells))
    deep_auc, deep_rows = truth_auroc(sim, run, cells, dc, dw, dp, win)
    mem_rows = shard_memory(models, cells_path, fragments, sim, work, args.memory_totals, args.shard_cells)
    thr_rows = model_throughput()
    cmd = " ".join(["benchmarks/bench_sc_infer.py", *sys.argv[1:]])
    lines = [
        "# Per-cell inference benchmark", "",
        f"Machine: {machine()}; no GPU. Run {started} with `{cmd}` on `{sim.name}` "
        f"({n_all} cells, {len(win)} windows, models {', '.join(run.models.names)}, "
        f"{len(run.models.features)} features).", "",
        "## (a) naive vs exact vs fast vs metacell (same cells, same models)", "",
        "| method | cells | (cell, window) pairs | time (s) | pairs/s | speed-up vs naive |",
        "|---|---|---|---|---|---|",
        f"| naive (per cell, per window) | {args.naive_cells} | {n_naive:,} | {t_naive:.1f} | {naive_rate:,.0f} "
        "| 1.0 |",
        f"| exact | {len(cells)} | {len(pc):,} | {t_exact:.1f} | {exact_rate:,.0f} | "
        f"{exact_rate / naive_rate:.1f} |",
        *(f"| {label} | {len(cells)} | {n:,} | {t:.1f} | {n / t:,.0f} | {n / t / naive_rate:.1f} |"
          for label, n, t in history),
        f"| fast: exact's pairs, {precision} (probabilities within {fast_diff:.2f} of exact's) | {len(cells)} | "
        f"{len(fc):,} | {t_fast:.1f} | {fast_rate:,.0f} | {fast_rate / naive_rate:.1f} |",
        f"| metacell ({n_units} metacells, {precision}) | {len(cells)} | {len(mc):,} | {t_meta:.1f} | "
        f"{meta_rate:,.0f} | {meta_rate / naive_rate:.1f} |", "",
        "Agreement with exact mode on the neighbour graph above (k = 20): Spearman ρ per feature over cells "
        "(min / median over features), the ARI between the clusters of each `mean_prob` matrix (made as `scfan sc "
        "cluster` makes them: z-scored, kNN, Leiden at the silhouette rule's resolution) and those of exact's, and "
        "against the simulator's cell types; per-cell AUROC of the binding calls against the truth of the cell's "
        "type, as in (d). The `exact, k = …` rows are exact mode on "
        "the same cells with another neighbour count: how much the reference itself moves when nothing but a "
        "reasonable parameter changes.", "",
        "| run | pooled tracks | pairs/s | ρ X (top_k_freq) | ρ mean_prob | ρ frac_bound | ARI vs exact | "
        "ARI vs truth | AUROC vs truth |",
        "|---|---|---|---|---|---|---|---|---|", *agree_rows, "",
        "## (b) model throughput on this CPU (forward + reverse complement)", "", *thr_rows, "",
        "## (c) peak memory of one shard as the data set grows", "", *mem_rows, "",
        "## (d) per-cell binding calls against the truth of the cell's type (exact)", "",
        f"Mean AUROC over features: {mean_auc:.3f} on each cell's pooled track (k-neighbourhood); {deep_auc:.3f} "
        "when every cell is given its whole type's pseudo-bulk instead (same windows, same models): the gap is what "
        "the sparser pooled input costs (the bulk → cell domain shift).", "",
        "| feature | positive rate | AUROC (pooled) |", "|---|---|---|", *auc_rows, "",
        "| feature | positive rate | AUROC (type pseudo-bulk) |", "|---|---|---|", *deep_rows, "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
