"""The all-cells step at scale (issue 13; not a test): `scfan sc neighbors` exact vs landmark, 20k → 200k cells.

Cells × peaks count matrices come from a generator here (cell types with shared and private programs, depths
drawn per cell; about 1,500 non-zeros a cell over 40,000 peaks, as the issue's 50k-cell measurement). Each run is
the real command line under ``/usr/bin/time -v`` (wall time, peak resident memory of the whole process: reading the
file, the embeddings, kNN, graphs, writing). Agreement of the landmark path with the exact one where both run: the
overlap of each cell's neighbour set, and the ARI of Leiden clusters (`scfan.sc.cluster.leiden`, resolution 1) with
the generator's types and with each other. Writes benchmarks/results/bench_neighbors_scale.md.

Usage: ``.venv/bin/python benchmarks/bench_neighbors_scale.py [--sizes 20000 50000 200000] [--exact-up-to 50000]``
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(HERE))

from bench_bulk import machine  # noqa: E402


def generate(n_cells: int, n_peaks: int = 40_000, n_types: int = 8, seed: int = 0,
             median_insertions: float = 1_700.0, chunk: int = 10_000, fold: float = 1.5,
             shared_frac: float = 0.8) -> tuple[sp.csr_matrix, np.ndarray]:
    """Counts (cells × peaks, int32) and types. Peak base rates are log-normal; every type raises 10 % of the peaks
    4-fold, half of them shared with a sibling type (types 2j and 2j+1), so pairs are close but separable; depth is
    log-normal (sd 0.5) around ``median_insertions``."""
    rng = np.random.default_rng(seed)
    base = rng.lognormal(0.0, 1.0, n_peaks)
    profiles = np.tile(base, (n_types, 1))
    n_prog = n_peaks // 10
    for pair in range(0, n_types, 2):
        shared = rng.choice(n_peaks, int(n_prog * shared_frac), replace=False)
        for t in (pair, pair + 1):
            if t < n_types:
                own = rng.choice(n_peaks, n_prog - len(shared), replace=False)
                profiles[t, np.concatenate([shared, own])] *= fold
    cdf = np.cumsum(profiles / profiles.sum(axis=1, keepdims=True), axis=1)
    types = rng.integers(0, n_types, n_cells)
    parts = []
    for lo in range(0, n_cells, chunk):
        t = types[lo:lo + chunk]
        depth = rng.poisson(rng.lognormal(np.log(median_insertions), 0.5, len(t)))
        cell = np.repeat(np.arange(len(t)), depth)
        peak = np.empty(len(cell), dtype=np.int64)
        u = rng.random(len(cell))
        for k in range(n_types):
            sel = t[cell] == k
            peak[sel] = np.minimum(np.searchsorted(cdf[k], u[sel]), n_peaks - 1)
        m = sp.csr_matrix((np.ones(len(cell), dtype=np.int32), (cell, peak)), shape=(len(t), n_peaks))
        m.sum_duplicates()
        parts.append(m)
    return sp.vstack(parts, format="csr").astype(np.int32), types


def write_cells(path: Path, X: sp.csr_matrix, types: np.ndarray) -> None:
    n_peaks = X.shape[1]
    obs = pd.DataFrame({"sample": "s1", "cell_type": pd.Categorical([f"t{t}" for t in types])},
                       index=[f"s1#c{i}" for i in range(X.shape[0])])
    var = pd.DataFrame(index=[f"chr1:{i * 1000}-{i * 1000 + 500}" for i in range(n_peaks)])
    ad.AnnData(X=X, obs=obs, var=var).write_h5ad(path)


def run_neighbors(cells: Path, out: Path, *extra: str) -> dict:
    """`scfan sc neighbors` under /usr/bin/time -v: wall seconds and peak RSS (GiB)."""
    cmd = ["/usr/bin/time", "-v", str(REPO / ".venv" / "bin" / "scfan"), "sc", "neighbors", "--cells", str(cells),
           "--k", "100", "--out", str(out), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return {"wall_s": wall, "peak_gib": rss / 2**20}


def neighbour_sets(path: Path) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    a = ad.read_h5ad(path, backed="r")
    out = sp.csr_matrix(a.obsp["pooling"]), sp.csr_matrix(a.obsp["connectivities"])
    a.file.close()
    return out


def knn_overlap(p: sp.csr_matrix, q: sp.csr_matrix) -> float:
    """Mean share of a cell's neighbours (itself included) found by both pooling matrices."""
    both = p.multiply(q)
    return float(np.mean(np.diff(both.indptr) / np.maximum(np.diff(p.indptr), 1)))


def main() -> None:
    from sklearn.metrics import adjusted_rand_score

    from scfan.sc.cluster import leiden

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 50_000, 200_000])
    ap.add_argument("--exact-up-to", type=int, default=50_000, help="largest size also run on the exact path")
    ap.add_argument("--landmarks", type=int, default=20_000)
    ap.add_argument("--workdir", type=Path, default=HERE / "out" / "neighbors_scale")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_neighbors_scale.md")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    rows = []
    for n in args.sizes:
        cells = args.workdir / f"cells_{n}.h5ad"
        t0 = time.perf_counter()
        X, types = generate(n)
        write_cells(cells, X, types)
        gen_s = time.perf_counter() - t0
        nnz = X.nnz
        del X
        print(f"{n} cells: {nnz / 1e6:.0f} M non-zeros, generated in {gen_s:.0f} s", flush=True)
        res = {}
        paths = {}
        methods = (["exact"] if n <= args.exact_up_to else []) + ["landmark"]
        for method in methods:
            paths[method] = args.workdir / f"nn_{n}_{method}.h5ad"
            n_land = min(args.landmarks, n // 4)
            extra = ["--max-exact-cells", str(n if method == "exact" else n - 1), "--landmarks", str(n_land)]
            res[method] = run_neighbors(cells, paths[method], *extra)
            pool, conn = neighbour_sets(paths[method])
            res[method]["ari_types"] = adjusted_rand_score(types, leiden(conn, resolution=1.0, seed=0))
            res[method]["pool"] = pool
            print(f"  {method}: {res[method]['wall_s']:.0f} s, {res[method]['peak_gib']:.2f} GiB, ARI "
                  f"{res[method]['ari_types']:.3f}", flush=True)
        for method in methods:
            r = res[method]
            row = {"cells": n, "nnz_m": nnz / 1e6, "method": method if method == "exact" else
                   f"landmark ({min(args.landmarks, n // 4):,})", "wall_s": r["wall_s"], "peak_gib": r["peak_gib"],
                   "ari_types": r["ari_types"], "knn_overlap": float("nan"), "ari_vs_exact": float("nan")}
            if method != "exact" and "exact" in res:
                row["knn_overlap"] = knn_overlap(res["exact"]["pool"], r["pool"])
            rows.append(row)
        if "exact" in res:
            conn_e = neighbour_sets(paths["exact"])[1]
            conn_l = neighbour_sets(paths["landmark"])[1]
            rows[-1]["ari_vs_exact"] = adjusted_rand_score(leiden(conn_e, resolution=1.0, seed=0),
                                                           leiden(conn_l, resolution=1.0, seed=0))
        for p in paths.values():
            p.unlink(missing_ok=True)
        cells.unlink(missing_ok=True)
    lines = ["# `scfan sc neighbors` at scale: exact vs landmark (Nyström) embeddings", "",
             f"Machine: {machine()}. Started {started}. Command: `.venv/bin/python "
             f"benchmarks/bench_neighbors_scale.py --sizes {' '.join(map(str, args.sizes))} --exact-up-to "
             f"{args.exact_up_to} --landmarks {args.landmarks}`.",
             "", "Synthetic counts over 40,000 peaks, 8 cell types in 4 sibling pairs (`generate`); k = 100, spectral "
             "embedding, 30 components; landmarks: --landmarks, at most a quarter of the cells. *wall*, *peak*: the "
             "whole `scfan sc neighbors` process (`/usr/bin/time -v`). "
             "*kNN overlap*: mean share of a cell's 100 neighbours that the exact path also finds. *ARI types*: Leiden "
             "(resolution 1) on the SNN graph against the generated types; *ARI vs exact*: the two paths' Leiden "
             "clusters against each other.", "",
             "| cells | non-zeros (M) | path | wall (s) | peak (GiB) | ARI types | kNN overlap | ARI vs exact |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def f(v, fmt):
            return "–" if v != v else format(v, fmt)
        lines.append(f"| {r['cells']:,} | {r['nnz_m']:.0f} | {r['method']} | {r['wall_s']:.0f} | "
                     f"{r['peak_gib']:.2f} | {r['ari_types']:.3f} | {f(r['knn_overlap'], '.3f')} | "
                     f"{f(r['ari_vs_exact'], '.3f')} |")
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
