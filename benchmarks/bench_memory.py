"""Bounded memory under load: peak RSS of `scfan sc ingest` and of one `scfan sc predict` shard as the data set grows.

Usage::

    .venv/bin/python benchmarks/bench_memory.py [--totals 2000 10000 50000] [--shard-cells 200] [--keep 0.1]

Data: the simulator's ``test`` preset and its two small bulk models, built as ``bench_sc_infer.py`` builds them
(into ``--workdir``, reused when there). Its sample ``sample1`` is scaled up to N cells: copy ``r`` of every cell is
a new barcode (``<barcode>.<r>``) holding each of the cell's fragments with probability ``--keep`` (seeded per
copy), so the copies differ, all fragments lie on the same 2.4 Mb genome and the density of fragments per base grows
with N — the worst case for a task that reads a genomic chunk of every cell. Each copy's neighbourhoods are those of
the original cells within the same copy (the original ``obsp['pooling']``, block-diagonal): the neighbours step has
its own benchmark at this scale (``bench_neighbors_scale.py``).

Each step runs as the real command line under ``/usr/bin/time -v`` (wall time, peak resident memory of the whole
process, Python and torch included): ``sc ingest`` of the whole sample, then ``sc predict --shard 1/<N/shard-cells>``
(exact mode, 2 threads), then ``sc split-fragments`` for all shards and the same shard on its own split file.
Results: ``benchmarks/results/bench_memory.md``.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
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
from bench_sc_infer import prepare  # noqa: E402

from scfan.sc.shards import RANK_COLUMN, neighbourhood_order  # noqa: E402

log = logging.getLogger("bench_memory")


def timed(*args: str) -> dict:
    """One scfan command under /usr/bin/time -v: wall seconds, peak RSS (GiB) and its log (stderr)."""
    cmd = ["/usr/bin/time", "-v", SCFAN, *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return {"wall_s": wall, "peak_gib": rss / 2**20, "log": proc.stderr}


def scale_fragments(src: Path, barcodes: list[str], copies: int, keep: float, seed: int, out: Path) -> int:
    """Write ``copies`` thinned, renamed copies of the cells' fragments (bgzip + tabix); returns the line count."""
    import polars as pl
    import pysam

    from scfan.sc.fragments import FRAGMENT_SCHEMA

    base = pl.read_csv(src, separator="\t", has_header=False, comment_prefix="#", schema=FRAGMENT_SCHEMA,
                       quote_char=None).filter(pl.col("barcode").is_in(barcodes))
    parts = []
    for r in range(copies):
        mask = np.random.default_rng([seed, r]).random(base.height) < keep
        parts.append(base.filter(pl.Series(mask)).with_columns(pl.col("barcode") + f".{r}"))
    frags = pl.concat(parts).sort(["chrom", "start", "end", "barcode"])
    plain = out.with_suffix("")
    frags.write_csv(plain, separator="\t", include_header=False)
    pysam.tabix_compress(str(plain), str(out), force=True)
    plain.unlink()
    pysam.tabix_index(str(out), preset="bed", force=True)
    return frags.height


def scaled_pooling(base_pool, base_names: list[str], names: list[str], copies: int):
    """The base cells' pooling within each copy, in the row order of ``names`` (``scaled#<barcode>.<r>``);
    neighbours a copy lost to thinning are dropped and the rows renormalised."""
    import scipy.sparse as sp

    pos = {n.partition("#")[2]: i for i, n in enumerate(base_names)}
    idx = np.full((copies, len(base_names)), -1, dtype=np.int64)
    for i, n in enumerate(names):
        bc, _, r = n.partition("#")[2].rpartition(".")
        idx[int(r), pos[bc]] = i
    coo = sp.coo_matrix(base_pool)
    rows = idx[:, coo.row].ravel()
    cols = idx[:, coo.col].ravel()
    vals = np.tile(coo.data, copies)
    ok = (rows >= 0) & (cols >= 0)
    m = sp.csr_matrix((vals[ok], (rows[ok], cols[ok])), shape=(len(names), len(names)))
    s = np.asarray(m.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(s, 1e-300)) @ m)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=HERE / "out" / "memory")
    ap.add_argument("--totals", type=int, nargs="+", default=[2_000, 10_000, 50_000])
    ap.add_argument("--shard-cells", type=int, default=200)
    ap.add_argument("--keep", type=float, default=0.1, help="fraction of a cell's fragments in each copy")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_memory.md")
    ap.add_argument("--note", action="append", default=[], help="a line added under the table")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import anndata as ad

    started = time.strftime("%Y-%m-%d %H:%M")
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    sim = work / "sim_test"
    if not (sim / "manifest.json").is_file():
        subprocess.run([SCFAN, "simulate", "--preset", "test", "--seed", "7", "--outdir", str(sim)], check=True,
                       cwd=REPO, stdout=subprocess.DEVNULL)
    models, cells_path, fragments = prepare(sim, work, 12)
    full = ad.read_h5ad(cells_path)
    s1 = np.flatnonzero(full.obs["sample"].astype(str).to_numpy() == "sample1")
    base_pool = full.obsp["pooling"][s1][:, s1]
    base_names = list(full.obs_names[s1])
    barcodes = [n.partition("#")[2] for n in base_names]
    peaks = sim / "sc" / "peaks.bed"
    rows, split_rows = [], []
    for total in args.totals:
        copies = max(1, round(total / len(s1)))
        d = work / f"mem_{total}"
        d.mkdir(exist_ok=True)
        frags = d / "fragments.tsv.gz"
        t0 = time.perf_counter()
        n_frag = scale_fragments(Path(fragments["sample1"]), barcodes, copies, args.keep, args.seed, frags)
        log.info("%d cells: %s fragments written in %.0f s", total, f"{n_frag:,}", time.perf_counter() - t0)
        ing = timed("sc", "ingest", "--fragments", str(frags), "--sample", "scaled", "--peaks", str(peaks),
                    "--chrom-sizes", str(sim / "genome.fa.fai"), "--min-fragments", "10", "--out",
                    str(d / "cells.h5ad"))
        cells = ad.read_h5ad(d / "cells.h5ad")
        cells.obsp["pooling"] = scaled_pooling(base_pool, base_names, list(cells.obs_names), copies)
        cells.obs[RANK_COLUMN] = neighbourhood_order(cells.obsp["pooling"])  # as `sc neighbors` stores it
        cells.write_h5ad(d / "cells_nn.h5ad")
        n_cells, nnz = cells.n_obs, int(cells.X.nnz)
        n_shards = max(1, n_cells // args.shard_cells)
        pred_args = ["sc", "predict", "--cells", str(d / "cells_nn.h5ad"), "--fragments", f"scaled={frags}",
                     "--genome", str(sim / "genome.fa"), "--mappability", str(sim / "mappability.bw"), "--shard",
                     f"1/{n_shards}", "--mode", "exact", "--device", "cpu", "--threads", "2",
                     "--out", str(d / "activity_shard1.h5ad")]
        for m in models:
            pred_args += ["--model", m]
        pred = timed(*pred_args)
        shard_n = ad.read_h5ad(d / "activity_shard1.h5ad", backed="r").n_obs
        # the same shard on its own fragments, split once for all shards
        split = timed("sc", "split-fragments", "--cells", str(d / "cells_nn.h5ad"), "--fragments", f"scaled={frags}",
                      "--shards", str(n_shards), "--mode", "exact", "--out-dir", str(d / "split"))
        copies_each = float(re.search(r"\(([0-9.]+) copies each\)", split["log"]).group(1))
        own = d / "split" / f"shard_1_of_{n_shards}" / "scaled.fragments.tsv.gz"
        pred_own_args = [a if a != f"scaled={frags}" else f"scaled={own}" for a in pred_args]
        pred_own_args[pred_own_args.index("--out") + 1] = str(d / "activity_shard1_split.h5ad")
        pred_own = timed(*pred_own_args)
        a1 = ad.read_h5ad(d / "activity_shard1.h5ad")
        a2 = ad.read_h5ad(d / "activity_shard1_split.h5ad")
        same = bool(np.array_equal(a1.X, a2.X) and np.array_equal(a1.layers["mean_prob"], a2.layers["mean_prob"]))
        rows.append(f"| {n_cells:,} | {n_frag:,} | {ing['wall_s']:.0f} | {ing['peak_gib']:.2f} | "
                    f"{nnz:,} | {n_shards} | {shard_n} | {pred['wall_s']:.0f} | {pred['peak_gib']:.2f} |")
        split_rows.append(f"| {n_cells:,} | {n_shards} | {split['wall_s']:.0f} | {split['peak_gib']:.2f} | "
                          f"{copies_each:.2f} | {pred['wall_s']:.0f} | {pred_own['wall_s']:.0f} | "
                          f"{pred_own['peak_gib']:.2f} | {'yes' if same else '**no**'} |")
        log.info("%d cells: ingest %.2f GiB, predict shard 1 %.2f GiB (%.0f s; %.0f s on its split fragments)",
                 n_cells, ing["peak_gib"], pred["peak_gib"], pred["wall_s"], pred_own["wall_s"])
        shutil.rmtree(d / "split", ignore_errors=True)
        for p in (frags, Path(f"{frags}.tbi"), d / "cells.h5ad", d / "cells_nn.h5ad"):
            p.unlink(missing_ok=True)
    lines = [
        "# Memory under load: ingest and one inference shard as the data set grows", "",
        f"Machine: {machine()}. Run {started} with `python benchmarks/bench_memory.py "
        f"--workdir {work} --totals {' '.join(map(str, args.totals))} --shard-cells {args.shard_cells} "
        f"--keep {args.keep}`.", "",
        f"Data: the simulator's `test` preset (2.4 Mb genome, {len(s1)} cells in sample1, models of "
        f"`bench_sc_infer.py`), sample1 copied up to N cells, each copy holding each fragment with probability "
        f"{args.keep} (so fragments per base grow with N); neighbourhoods of the original cells within each copy. "
        "Peak RSS is that of the whole process (`/usr/bin/time -v`), Python, numpy, torch and the models included.",
        "",
        "| cells | fragments | ingest (s) | ingest peak RSS (GiB) | counts nnz | shards | cells in shard 1 | "
        "predict shard 1 (s) | predict peak RSS (GiB) |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows, "", *[f"Note: {n}" for n in args.note], *([""] if args.note else []),
        "How to read it: a shard's peak memory is its own cells and their neighbours' fragments in one genomic chunk "
        "(`PooledTracks` keeps only the fragments of pooled cells and parses a tabix query 262,144 lines at a time), "
        "the models and the shard's (cell, window) pairs — not the data set. Its *time* grows with the fragments "
        "per base when it is given the whole fragments file, because it then reads every fragment of its chunks "
        "(tabix queries are by position); the split below removes that. "
        "Ingest keeps one block of fragments and the counts it has made, so its peak grows with the output matrix "
        "(nnz), not with the number of fragments read.", "",
        "## The fragments split once per shard (`sc split-fragments`, `SC_SPLIT_FRAGMENTS`)", "",
        "Cells in the neighbourhood order `sc neighbors` stores (`obs['shard_rank']`); one pass over the fragments "
        "writes every shard the fragments of the cells its pooled tracks use; then shard 1 runs on its own file. "
        "*Copies* = fragments written over fragments read (1.0 when no neighbourhood crosses a shard boundary). "
        "*Same* = shard 1's activity on its split file is identical to that on the whole file.", "",
        "| cells | shards | split (s) | split peak RSS (GiB) | copies | predict shard 1, whole file (s) | "
        "predict shard 1, its split file (s) | its peak RSS (GiB) | same |",
        "|---|---|---|---|---|---|---|---|---|",
        *split_rows,
    ]
    args.out.write_text("\n".join(lines) + "\n")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
