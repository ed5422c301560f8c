"""Worker processes of bench_sc.py, one measurement per process so that peak memory is that measurement's own.

Each sub-command writes a JSON summary (timings) and, for ingest, the matrix as ``.npz`` (barcodes, peaks, CSR).
Runs under the project venv (scfan, reference, pooled) or under SnapATAC2's own venv (snapatac2).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def _save(out: Path, barcodes, peaks, matrix, timings: dict) -> None:
    import scipy.sparse as sp

    m = sp.csr_matrix(matrix)
    np.savez_compressed(out.with_suffix(".npz"), barcodes=np.asarray(barcodes, dtype=str),
                        peaks=np.asarray(peaks, dtype=str), data=m.data, indices=m.indices, indptr=m.indptr,
                        shape=np.array(m.shape))
    out.with_suffix(".json").write_text(json.dumps(timings))


def run_scfan(frag: str, peaks: str, sizes: str, out: str) -> None:
    from scfan.genome import read_chrom_sizes
    from scfan.sc.fragments import read_fragment_blocks
    from scfan.sc.ingest import build_cells, count_fragments
    from scfan.sc.peaks import PeakIndex, read_peak_set

    t0 = time.perf_counter()
    chrom_sizes = read_chrom_sizes(sizes)
    peak_df = read_peak_set(peaks, chrom_sizes=chrom_sizes)
    res = count_fragments(read_fragment_blocks(frag, chrom_sizes=chrom_sizes), PeakIndex(peak_df), label=frag)
    a = build_cells(res, peak_df, "s", min_fragments=200, whitelist=None, source=frag, sort_barcodes=True)
    t1 = time.perf_counter()
    _save(Path(out), a.obs["barcode"], a.var_names, a.X, {"total_s": t1 - t0})


def run_reference(frag: str, peaks: str, out: str) -> None:
    """Straightforward count: whole file in memory, every insertion looked up in the sorted peaks."""
    import polars as pl
    import scipy.sparse as sp

    t0 = time.perf_counter()
    df = pl.read_csv(frag, separator="\t", has_header=False, comment_prefix="#",
                     new_columns=["chrom", "start", "end", "barcode", "count"]).unique(
        subset=["chrom", "start", "end", "barcode"])
    n_frag = df.group_by("barcode").len()
    cells = n_frag.filter(pl.col("len") >= 200).sort("barcode")["barcode"].to_list()
    row_of = {b: i for i, b in enumerate(cells)}
    pk = pl.read_csv(peaks, separator="\t", has_header=False, new_columns=["chrom", "start", "end", "name"])
    df = df.filter(pl.col("barcode").is_in(cells))
    rows, cols = [], []
    for (chrom,), part in df.group_by("chrom"):
        p = pk.with_row_index("col").filter(pl.col("chrom") == chrom).sort("start")
        if not len(p):
            continue
        ps, pe, pc = p["start"].to_numpy(), p["end"].to_numpy(), p["col"].to_numpy()
        r = np.array([row_of[b] for b in part["barcode"].to_list()])
        for site in (part["start"].to_numpy(), part["end"].to_numpy() - 1):
            i = np.searchsorted(ps, site, side="right") - 1
            ok = (i >= 0) & (site < pe[np.maximum(i, 0)])
            rows.append(r[ok])
            cols.append(pc[i[ok]])
    r, c = np.concatenate(rows), np.concatenate(cols)
    m = sp.csr_matrix((np.ones(len(r), dtype=np.int32), (r, c)), shape=(len(cells), len(pk)))
    _save(Path(out), cells, pk["name"].to_list(), m, {"total_s": time.perf_counter() - t0})


def run_snapatac2(frag: str, peaks: str, sizes: str, out: str) -> None:
    import snapatac2 as snap

    chrom_sizes = {}
    for line in open(sizes):
        name, length = line.split("\t")[:2]
        chrom_sizes[name] = int(length)
    t0 = time.perf_counter()
    a = snap.pp.import_fragments(frag, chrom_sizes=chrom_sizes, min_num_fragments=200, sorted_by_barcode=False,
                                 chrM=[], n_jobs=2)
    t1 = time.perf_counter()
    names = [ln.split("\t")[3].strip() for ln in open(peaks)]
    m = snap.pp.make_peak_matrix(a, use_rep=names, counting_strategy="insertion")
    t2 = time.perf_counter()
    _save(Path(out), list(m.obs_names), list(m.var_names), m.X,
          {"import_s": t1 - t0, "matrix_s": t2 - t1, "total_s": t2 - t0, "version": snap.__version__})


def run_pooled(n_cells: str, out: str, k: str = "100", per_cell: str = "250", region: str = "2000000",
               per_cell_windows: str = "20") -> None:
    """Pooled-track throughput for ``n_cells`` synthetic cells on one chromosome (random k-neighbourhoods)."""
    import tempfile

    import polars as pl
    import pysam

    from scfan.sc.neighbors import pooling_matrix
    from scfan.sc.pooling import PooledTracks

    n, k_, per, L, windows_per_cell = int(n_cells), int(k), int(per_cell), int(region), int(per_cell_windows)
    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp(prefix="scfan-pool-"))
    starts = rng.integers(0, L - 600, n * per)
    lengths = rng.integers(50, 500, n * per)
    bcs = np.repeat(np.array([f"C{i:06d}-1" for i in range(n)]), per)
    df = pl.DataFrame({"chrom": "chr1", "start": starts, "end": starts + lengths, "barcode": bcs, "count": 1})
    df = df.sort("start")
    plain = tmp / "f.tsv"
    df.write_csv(plain, separator="\t", include_header=False)
    gz = str(plain) + ".gz"
    pysam.tabix_compress(str(plain), gz, force=True)
    pysam.tabix_index(gz, preset="bed", force=True)
    plain.unlink()
    nbrs = np.stack([np.r_[i, rng.choice(n - 1, k_ - 1, replace=False)] for i in range(n)])
    nbrs[:, 1:] += nbrs[:, 1:] >= np.arange(n)[:, None]
    pool = pooling_matrix(nbrs)
    cells = [f"s#C{i:06d}-1" for i in range(n)]
    with PooledTracks({"s": gz}, cells, pool, np.full(n, 2.0 * per * 1000), 3.0e9) as pt:
        # every cell scored on windows_per_cell windows spread over one 1 Mb chunk (what per-cell inference does)
        cell_idx = np.repeat(np.arange(n), windows_per_cell)
        centers = rng.integers(500, 1_000_000 - 500, len(cell_idx))
        t0 = time.perf_counter()
        w = pt.normalized_windows(cell_idx, "chr1", centers, chunk_bp=1_000_000)
        t_win = time.perf_counter() - t0
    Path(out).write_text(json.dumps({"n_cells": n, "windows": len(cell_idx), "windows_s": t_win,
                                     "windows_per_s": len(cell_idx) / t_win, "checksum": float(w.sum())}))


def _write_peak_rss() -> None:
    """This process's own peak RSS (VmHWM is per address space, reset at exec, so the parent's memory at fork
    time does not count, unlike ``ru_maxrss``), for bench_sc.run_worker."""
    target = os.environ.get("SCFAN_BENCH_RSS_FILE")
    if target:
        hwm_kib = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
        Path(target).write_text(str(hwm_kib))


if __name__ == "__main__":
    {"scfan": run_scfan, "reference": run_reference, "snapatac2": run_snapatac2, "pooled": run_pooled}[
        sys.argv[1]](*sys.argv[2:])
    _write_peak_rss()
