"""Benchmark of single-cell preparation; writes benchmarks/results/bench_sc.md.

1. Ingest time and peak memory on the simulator's ``bench`` fragments and on a larger synthetic file
   (>= 20 M fragments, 5,000 cells), next to SnapATAC2 ``pp.import_fragments`` + ``pp.make_peak_matrix`` on the
   same files (from its own venv; reported as "not installed" when absent), both checked against a
   straightforward in-memory reference count.
2. kNN label purity and Leiden ARI on the real hemato_atac and chromVAR example count matrices.
3. Pooled-track throughput and memory as the number of cells grows.

Usage: ``.venv/bin/python benchmarks/bench_sc.py [--quick] [--snap-python PATH] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKER = HERE / "sc_bench_workers.py"


def machine() -> str:
    from scfan.inference import cpu_description  # the model name and the flags that pick fast paths

    cpu = cpu_description()
    mem = next((int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal")), 0) / 2**20
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


def run_worker(python: str, *args: str) -> tuple[float, float]:
    """Run one worker; returns (wall seconds, peak RSS GiB) of that process alone."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".rss") as rss:
        t0 = time.perf_counter()
        proc = subprocess.run([python, str(WORKER), *args],
                              env={**os.environ, "PYTHONPATH": str(REPO / "python"), "SCFAN_BENCH_RSS_FILE": rss.name})
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(f"worker {args[0]} failed with exit code {proc.returncode}")
        return wall, int(Path(rss.name).read_text()) / 2**20


def load_matrix(path: Path):
    import scipy.sparse as sp

    z = np.load(path.with_suffix(".npz"))
    m = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    return list(z["barcodes"]), list(z["peaks"]), m


def compare(a: Path, b: Path) -> str:
    """'identical' or how the two matrices differ (on shared cells and peaks)."""
    ba, pa, ma = load_matrix(a)
    bb, pb, mb = load_matrix(b)
    cells = sorted(set(ba) & set(bb))
    peaks = sorted(set(pa) & set(pb))
    ia, ib = {x: i for i, x in enumerate(ba)}, {x: i for i, x in enumerate(bb)}
    ja, jb = {x: i for i, x in enumerate(pa)}, {x: i for i, x in enumerate(pb)}
    sa = ma[[ia[c] for c in cells]][:, [ja[p] for p in peaks]]
    sb = mb[[ib[c] for c in cells]][:, [jb[p] for p in peaks]]
    diff = (sa != sb).nnz
    same_sets = len(cells) == len(ba) == len(bb) and len(peaks) == len(pa) == len(pb)
    if diff == 0 and same_sets:
        return "identical"
    return f"{diff} differing entries on {len(cells)} shared cells ({len(ba)} vs {len(bb)} cells)"


def make_large(workdir: Path, n_fragments: int, n_cells: int, seed: int = 0) -> tuple[Path, Path, Path]:
    """Synthetic coordinate-sorted fragments (bgzip + tabix) with peaks and chrom sizes; cached in ``workdir``."""
    import polars as pl
    import pysam

    tag = f"large_{n_fragments}_{n_cells}_{seed}"
    frag, peaks, sizes = workdir / f"{tag}.tsv.gz", workdir / f"{tag}.peaks.bed", workdir / f"{tag}.sizes"
    if frag.exists() and Path(str(frag) + ".tbi").exists():
        return frag, peaks, sizes
    rng = np.random.default_rng(seed)
    chroms = {f"chr{i}": 150_000_000 - 10_000_000 * i for i in range(1, 11)}
    sizes.write_text("".join(f"{c}\t{n}\n" for c, n in chroms.items()))
    n_peaks = 100_000
    names = list(chroms)
    weights = np.array(list(chroms.values()), dtype=float) / sum(chroms.values())
    pc = rng.choice(len(names), n_peaks, p=weights)
    ps = np.concatenate([np.sort(rng.choice(np.arange(1, chroms[c] // 1000 - 2), (pc == i).sum(), replace=False))
                         * 1000 for i, c in enumerate(names)])
    pc = np.sort(pc)
    with open(peaks, "w") as fh:
        for i, s in zip(pc, ps, strict=True):
            fh.write(f"{names[i]}\t{s}\t{s + 500}\t{names[i]}:{s}-{s + 500}\n")
    depth = rng.lognormal(0, 0.6, n_cells)
    cell = rng.choice(n_cells, n_fragments, p=depth / depth.sum())
    in_peak = rng.random(n_fragments) < 0.5
    k = rng.integers(0, n_peaks, n_fragments)
    chrom_idx = np.where(in_peak, pc[k], rng.choice(len(names), n_fragments, p=weights))
    sizes_arr = np.array(list(chroms.values()))
    start = np.where(in_peak, ps[k] + rng.integers(-200, 500, n_fragments),
                     (rng.random(n_fragments) * (sizes_arr[chrom_idx] - 1000)).astype(np.int64))
    start = np.maximum(start, 0)
    length = rng.integers(40, 600, n_fragments)
    df = pl.DataFrame({"c": chrom_idx, "start": start, "end": start + length,
                       "barcode": pl.Series([f"BC{i:07d}-1" for i in range(n_cells)])[cell],
                       "count": rng.integers(1, 4, n_fragments)}).sort("c", "start")
    df = df.with_columns(chrom=pl.Series(names)[df["c"]]).select("chrom", "start", "end", "barcode", "count")
    plain = workdir / f"{tag}.tsv"
    df.write_csv(plain, separator="\t", include_header=False)
    del df
    pysam.tabix_compress(str(plain), str(frag), force=True)
    pysam.tabix_index(str(frag), preset="bed", force=True)
    plain.unlink()
    return frag, peaks, sizes


def bench_ingest(files: dict[str, tuple[Path, Path, Path]], workdir: Path, snap_python: str | None) -> list[str]:
    lines = ["| data | fragments | tool | time (s) | peak RSS (GiB) | matrix vs reference |",
             "|---|---|---|---|---|---|"]
    py = sys.executable
    for label, (frag, peaks, sizes) in files.items():
        n_frag = sum(1 for _ in __import__("gzip").open(frag, "rt") if not _.startswith("#"))
        ref = workdir / f"{label}.reference"
        t_ref, m_ref = run_worker(py, "reference", str(frag), str(peaks), str(ref))
        ours = workdir / f"{label}.scfan"
        t, m = run_worker(py, "scfan", str(frag), str(peaks), str(sizes), str(ours))
        lines.append(f"| {label} | {n_frag:,} | scfan sc ingest | {t:.1f} | {m:.2f} | {compare(ours, ref)} |")
        if snap_python:
            snap = workdir / f"{label}.snap"
            try:
                t_s, m_s = run_worker(snap_python, "snapatac2", str(frag), str(peaks), str(sizes), str(snap))
                info = json.loads(snap.with_suffix(".json").read_text())
                lines.append(f"| {label} | {n_frag:,} | SnapATAC2 {info['version']} import_fragments "
                             f"({info['import_s']:.1f} s) + make_peak_matrix ({info['matrix_s']:.1f} s) | {t_s:.1f} "
                             f"| {m_s:.2f} | {compare(snap, ref)} |")
                lines.append(f"| {label} | | speed-up (SnapATAC2 / scfan, wall incl. start-up) | **{t_s / t:.1f}×** "
                             f"| memory ratio {m / m_s:.2f} | |")
            except RuntimeError as exc:
                lines.append(f"| {label} | {n_frag:,} | SnapATAC2 | failed: {exc} | | |")
        else:
            lines.append(f"| {label} | {n_frag:,} | SnapATAC2 | not installed | | |")
        lines.append(f"| {label} | {n_frag:,} | reference (polars, all in memory) | {t_ref:.1f} | {m_ref:.2f} | – |")
    return lines


def bench_neighbors(shared: Path) -> list[str]:
    import gzip

    import anndata as ad
    import pandas as pd
    import scipy.io
    import scipy.sparse as sp
    from sklearn.metrics import adjusted_rand_score

    from scfan.sc.cluster import leiden
    from scfan.sc.neighbors import NeighborsConfig, compute_neighbors, label_purity

    lines = ["| data set | cells × peaks | k | kNN label purity (chance) | Leiden res. 1.0: clusters, ARI | "
             "best ARI over res. 0.2–2.0 (res.) | time (s) |", "|---|---|---|---|---|---|---|"]
    for name, k, n_comp in (("hemato_atac", 100, 30), ("hemato_atac", 15, 30), ("chromvar_example", 10, 10)):
        d = shared / name
        with gzip.open(d / "counts.mtx.gz") as fh:
            X = sp.csr_matrix(scipy.io.mmread(fh).T, dtype=np.int32)
        labels = pd.read_csv(d / "cells.tsv", sep="\t")["cell_type"].to_numpy()
        t0 = time.perf_counter()
        a = compute_neighbors(ad.AnnData(X=X), NeighborsConfig(k=k, n_components=n_comp, seed=0))
        cl = leiden(a.obsp["connectivities"], resolution=1.0, seed=0)
        dt = time.perf_counter() - t0
        purity = label_purity(a.obsp["pooling"], labels)
        _, inv, cnt = np.unique(labels, return_inverse=True, return_counts=True)
        chance = float(np.mean((cnt[inv] - 1) / (len(labels) - 1)))
        grid = [(adjusted_rand_score(labels, leiden(a.obsp["connectivities"], resolution=r, seed=0)), r)
                for r in (0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0)]
        best = max(grid)
        lines.append(f"| {name} | {X.shape[0]} × {X.shape[1]} | {k} | {purity:.3f} ({chance:.3f}) | "
                     f"{len(set(cl.tolist()))}, {adjusted_rand_score(labels, cl):.3f} | {best[0]:.3f} ({best[1]}) | "
                     f"{dt:.1f} |")
    return lines


def bench_pooled(cell_counts: list[int], workdir: Path) -> list[str]:
    lines = ["| cells | k | (cell, 1 kb window) pairs | time (s) | cell-windows/s | time per cell (ms) "
             "| peak RSS (GiB) |",
             "|---|---|---|---|---|---|---|"]
    for n in cell_counts:
        out = workdir / f"pooled_{n}.json"
        _, rss = run_worker(sys.executable, "pooled", str(n), str(out))
        r = json.loads(out.read_text())
        lines.append(f"| {n:,} | 100 | {r['windows']:,} | {r['windows_s']:.1f} | {r['windows_per_s']:,.0f} | "
                     f"{1000 * r['windows_s'] / n:.2f} | {rss:.2f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/scfan-bench-sc"))
    ap.add_argument("--sim-dir", type=Path, default=None, help="existing `scfan simulate --preset bench` output")
    ap.add_argument("--snap-python", default=None, help="python of a venv with snapatac2 (default: "
                    "benchmarks/.venv-snap or /tmp/venv-snap if present)")
    ap.add_argument("--large-fragments", type=int, default=20_000_000)
    ap.add_argument("--large-cells", type=int, default=5_000)
    ap.add_argument("--pooled-cells", default="1000,5000,20000")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_sc.md")
    args = ap.parse_args()
    if args.quick:
        args.large_fragments, args.large_cells, args.pooled_cells = 500_000, 500, "500,1000"
    args.workdir.mkdir(parents=True, exist_ok=True)
    snap = args.snap_python or next((str(p) for p in (HERE / ".venv-snap/bin/python", Path("/tmp/venv-snap/bin/python"))
                                     if p.exists()), None)
    if snap and not (Path(snap).exists()
                     and subprocess.run([snap, "-c", "import snapatac2"], capture_output=True).returncode == 0):
        snap = None
    sys.path.insert(0, str(REPO / "python"))

    files: dict[str, tuple[Path, Path, Path]] = {}
    sim = args.sim_dir or args.workdir / "sim_bench"
    if not (sim / "sc_samplesheet.csv").exists() and not args.quick:
        subprocess.run([str(REPO / ".venv/bin/scfan"), "simulate", "--preset", "bench", "--seed", "7", "--outdir",
                        str(sim)], check=True)
    if (sim / "sc_samplesheet.csv").exists():
        first = sorted((sim / "sc").glob("*/fragments.tsv.gz"))[0]
        files[f"simulator bench ({first.parent.name})"] = (first, sim / "sc" / "peaks.bed", sim / "chrom.sizes")
    files[f"synthetic {args.large_cells:,} cells"] = make_large(args.workdir, args.large_fragments, args.large_cells)

    started = time.strftime("%Y-%m-%d %H:%M")
    ingest = bench_ingest(files, args.workdir, snap)
    neighbors = bench_neighbors(REPO.parent / "shared" / "data")
    pooled = bench_pooled([int(x) for x in args.pooled_cells.split(",")], args.workdir)
    cmd = "python benchmarks/bench_sc.py " + " ".join(sys.argv[1:])
    text = "\n".join([
        "# Single-cell preparation benchmark", "",
        f"Machine: {machine()}. Run {started} with `{cmd.strip()}`.", "",
        "## Ingest (fragments → cells × peaks, min 200 fragments)", "",
        "Each tool runs in its own process; time is wall clock including start-up, memory is that process's peak "
        "RSS. `matrix vs reference` compares with a straightforward in-memory count (every insertion of every "
        "unique fragment looked up in the peaks).", "", *ingest, "",
        "## Neighbours on real data (counts path)", "", *neighbors, "",
        "Anchor: SnapATAC2 reaches ARI 0.717 on hemato_atac.", "",
        "## Pooled tracks as the number of cells grows", "",
        "Synthetic cells with 250 fragments each on a 2 Mb chromosome, random k = 100 neighbourhoods; every "
        "cell scored on 20 random 1 kb windows of one 1 Mb chunk with `PooledTracks.normalized_windows` "
        "(fragments fetched once per chunk, then pooled 2,048 cells at a time). Linear scaling = constant time "
        "per cell.", "", *pooled, "",
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
