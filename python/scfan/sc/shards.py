"""Cell shards for per-cell inference, and the fragments each shard needs.

A shard of ``scfan sc predict`` pools each of its cells over that cell's neighbours, so it needs the fragments of its
cells and of their neighbours, nothing else. Tabix queries are by position, though: a shard that reads the whole
fragments file of a sample parses every cell's fragments of each genomic chunk and drops the others. With many
shards that reading is repeated by each of them (docs/scaling.md). Two things remove it:

- **Neighbourhood order.** ``scfan sc neighbors`` stores ``obs['shard_rank']``, the rank of each cell in an order
  that keeps neighbourhoods together: by coarse Leiden community of the kNN graph, and within a community by the reverse
  Cuthill-McKee order of the pooling graph (a bandwidth-reducing order: a cell's neighbours sit close to it). Shard
  *i* of *n* takes the *i*-th contiguous block of cells in that order, so most of a shard's neighbourhoods stay
  inside the shard. A cells file without the column (written before it existed, or by another tool) is sharded in
  row order, as before.
- **One split per data set** (:func:`split_fragments`, ``scfan sc split-fragments``): one pass over each sample's
  fragments writes, for every shard, a bgzipped and tabix-indexed file holding only the fragments of the cells that
  shard's pooling uses. A shard given its own files predicts exactly what it would from the whole files (tested),
  and reads only its part.

Every shard count still gives the same activity matrix: a cell's result depends on its neighbours, not on which
shard computes it, and ``scfan sc merge-activity`` puts the cells back in the cells file's order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from scfan.errors import InputFileError, ScfanError

log = logging.getLogger(__name__)

#: obs column of ``cells_nn.h5ad`` with each cell's rank in the neighbourhood order
RANK_COLUMN = "shard_rank"
#: shard files written at once (one open bgzip writer each); more shards take more passes over the fragments
MAX_OPEN_WRITERS = 256
#: the file in each shard folder of :func:`split_fragments` that names its shard (``i/n``): the pipeline reads the
#: shard from it rather than from the folder's name
SHARD_SPEC_FILE = "shard.txt"


def parse_shard(spec: str) -> tuple[int, int]:
    """``"i/n"`` (1-based, ``1 <= i <= n``) → ``(i, n)``."""
    try:
        i_text, n_text = str(spec).split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise ScfanError(f"--shard {spec!r}: expected i/n, e.g. 2/8") from None
    if n < 1 or not 1 <= i <= n:
        raise ScfanError(f"--shard {spec!r}: expected 1 <= i <= n (shards are numbered from 1)")
    return i, n


def neighbourhood_order(pooling: sp.spmatrix, connectivities: sp.spmatrix | None = None, *,
                        seed: int = 0) -> np.ndarray:
    """Rank of every cell in an order that keeps neighbourhoods together (deterministic for a seed): by Leiden
    community of ``connectivities`` (each cell's strongest ``ORDER_EDGES_PER_CELL`` edges, ``ORDER_RESOLUTION``; largest
    community first) when given, and within a community (or overall) by the reverse Cuthill-McKee order of the
    symmetrised pooling graph."""
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    p = sp.csr_matrix(pooling)
    graph = sp.csr_matrix((p != 0).astype(np.int8))
    graph = sp.csr_matrix(graph + graph.T)
    graph.sort_indices()
    perm = np.asarray(reverse_cuthill_mckee(graph, symmetric_mode=True), dtype=np.int64)
    rank = np.empty(len(perm), dtype=np.int64)
    rank[perm] = np.arange(len(perm), dtype=np.int64)
    if connectivities is None:
        return rank
    from scfan.sc.cluster import leiden

    community = leiden(strongest_edges(connectivities, ORDER_EDGES_PER_CELL), resolution=ORDER_RESOLUTION,
                       seed=seed, n_iterations=2)
    order = np.lexsort((rank, community))
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank


#: edges per cell kept for the communities of the neighbourhood order (a 1M-cell graph at k = 100 would otherwise be
#: ~10^8 edges for igraph)
ORDER_EDGES_PER_CELL = 10
#: Leiden resolution of those communities: coarse ones (few boundaries) keep most neighbourhoods whole; on the test
#: preset 0.2 gave 4 communities and 1.20 / 1.48 / 2.27 pooled cells per cell for 2 / 4 / 8 shards, 1.0 gave 11
#: and 1.65 / 2.13 / 2.65
ORDER_RESOLUTION = 0.2


def strongest_edges(graph: sp.spmatrix, per_row: int) -> sp.csr_matrix:
    """``graph`` with only the ``per_row`` largest entries of each row (ties by column), symmetrised by maximum."""
    g = sp.csr_matrix(graph)
    g.sort_indices()
    rows = np.repeat(np.arange(g.shape[0]), np.diff(g.indptr))
    order = np.lexsort((g.indices, -g.data, rows))
    rank = np.arange(len(order)) - g.indptr[rows[order]]
    keep = order[rank < per_row]
    top = sp.csr_matrix((g.data[keep], (rows[keep], g.indices[keep])), shape=g.shape)
    return sp.csr_matrix(top.maximum(top.T))


def check_rank(rank: np.ndarray, n_cells: int, source: str | Path) -> np.ndarray:
    r = np.asarray(rank)
    if r.shape != (n_cells,) or not np.issubdtype(r.dtype, np.integer) or not np.array_equal(
            np.sort(r), np.arange(n_cells)):
        raise InputFileError(source, f"obs[{RANK_COLUMN!r}] is not a permutation of 0..{n_cells - 1}; re-run "
                             "`scfan sc neighbors` (or drop the column to shard in row order)")
    return r.astype(np.int64)


def shard_cells(n_cells: int, spec: str, rank: np.ndarray | None = None) -> np.ndarray:
    """Row indices (sorted) of the cells in shard ``spec``: the ``i``-th of ``n`` balanced contiguous blocks of the
    cells in ``rank`` order (row order without ``rank``), so that the shards cover every cell once."""
    i, n = parse_shard(spec)
    lo, hi = (i - 1) * n_cells // n, i * n_cells // n
    if rank is None:
        return np.arange(lo, hi, dtype=np.int64)
    return np.sort(np.flatnonzero((rank >= lo) & (rank < hi))).astype(np.int64)


def cells_used(pooling: sp.spmatrix, cells: np.ndarray) -> np.ndarray:
    """Sorted rows of the cells whose fragments the pooled tracks of ``cells`` use (themselves and neighbours)."""
    p = sp.csr_matrix(pooling)[cells]
    return np.unique(p.indices[p.data != 0]).astype(np.int64)


def shard_name(i: int, n: int) -> str:
    """``shard_<i>_of_<n>``: the one place a shard's name is built (split folders, activity files)."""
    return f"shard_{i}_of_{n}"


def activity_file_name(spec: str) -> str:
    """The file ``scfan sc predict --out <folder>`` writes shard ``spec`` (``i/n``) to:
    ``activity_shard_<i>_of_<n>.h5ad``."""
    i, n = parse_shard(spec)
    return f"activity_{shard_name(i, n)}.h5ad"


@dataclass
class SplitResult:
    n_shards: int
    lines_read: dict[str, int]
    lines_written: dict[str, int]  # summed over shards

    @property
    def replication(self) -> float:
        """Fragments written per fragment of a used cell read (1.0 when neighbourhoods never cross shards)."""
        read, written = sum(self.lines_read.values()), sum(self.lines_written.values())
        return written / read if read else 0.0


HEADER_PREFIX = "# scfan split-fragments"


def split_header(spec: str, mode: str, metacell_size: int) -> str:
    """First line of a shard's fragments file: what it holds, checked by `sc predict` (:func:`check_split_header`)."""
    return f"{HEADER_PREFIX} shard={spec} mode={mode} metacell_size={metacell_size}\n"


def check_split_header(path: str | Path, spec: str, mode: str, metacell_size: int) -> None:
    """Refuse a shard's fragments file written for another shard, mode or metacell size: it would lack fragments
    that this shard's pooled tracks use. Files without the header (whole fragments files) pass."""
    import gzip

    try:
        with gzip.open(path, "rt") as fh:
            first = fh.readline()
    except (OSError, EOFError, UnicodeDecodeError):
        return  # the readers report unreadable files in their own words
    if not first.startswith(HEADER_PREFIX):
        return
    fields = dict(f.split("=", 1) for f in first[len(HEADER_PREFIX):].split() if "=" in f)
    want = {"shard": spec, "mode": mode} | ({"metacell_size": str(metacell_size)} if mode == "metacell" else {})
    got = dict(fields)
    if {got.get("mode"), mode} <= {"exact", "fast"}:
        got["mode"] = mode  # exact and fast pool the same neighbourhoods (every cell's own): one split serves both
    bad = [f"{k} {fields.get(k)!r} (expected {v!r})" for k, v in want.items() if got.get(k) != v]
    if bad:
        raise InputFileError(path, "split for another shard or mode: " + ", ".join(bad) + "; re-run `scfan sc "
                             "split-fragments` with this shard count and mode, or give the whole fragments file")


def split_fragments(cells_path: str | Path, fragments: Mapping[str, str | Path], n_shards: int,
                    outdir: str | Path, *, mode: str = "exact", metacell_size: int = 20,
                    chunk_bytes: int = 16 << 20) -> SplitResult:
    """Write ``outdir/shard_<i>_of_<n>/<sample>.fragments.tsv.gz`` (+ ``.tbi``, and ``shard.txt`` naming the shard
    ``i/n``; folder names from :func:`shard_name`) for every shard and every sample of
    ``fragments`` (all of the cells file's, or some: the pipeline splits each sample in its own task): the
    fragments of the cells whose insertions that shard's pooled tracks use (in ``mode``: its cells' neighbourhoods,
    or in metacell mode its metacells' seed neighbourhoods), in the input's order (so still sorted), after a header line
    naming shard and mode. The folder appears only when every file is written."""
    from scfan._io import atomic_path
    from scfan.sc.cells_file import read_cells_for_inference
    from scfan.sc.fragments import check_fragments_index, parse_fragment_text, read_text_chunks
    from scfan.sc.units import check_mode, make_units

    if n_shards < 1:
        raise ScfanError(f"--shards {n_shards}: expected >= 1")
    check_mode(mode)
    if metacell_size < 1:
        raise ScfanError(f"--metacell-size {metacell_size}: expected >= 1")
    with read_cells_for_inference(cells_path) as cells:
        pooling, obs = cells.obsp["pooling"], cells.obs
    n_cells = len(obs)
    rank = check_rank(obs[RANK_COLUMN].to_numpy(), n_cells, cells_path) if RANK_COLUMN in obs else None
    ids = [str(c) for c in obs.index]
    samples = np.array([c.partition("#")[0] for c in ids])
    barcodes = np.array([c.partition("#")[2] for c in ids])
    unknown = [s for s in fragments if s not in set(samples.tolist())]
    if unknown:
        raise ScfanError(f"{cells_path}: no cell of sample(s) {', '.join(unknown)} in the cells file (it has "
                         f"{', '.join(dict.fromkeys(samples.tolist()))})")
    # which shards use each cell: a cells × shards incidence matrix
    rows, cols = [], []
    for i in range(1, n_shards + 1):
        units = make_units(mode, pooling, shard_cells(n_cells, f"{i}/{n_shards}", rank), metacell_size)
        used = cells_used(units.pooling, np.arange(units.pooling.shape[0]))
        rows.append(used)
        cols.append(np.full(len(used), i - 1, dtype=np.int64))
    r, c = np.concatenate(rows), np.concatenate(cols)
    member = sp.csr_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n_cells, n_shards))
    member.sort_indices()
    result = SplitResult(n_shards, {}, {})
    out = Path(outdir)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for i in range(1, n_shards + 1):
            (tmp / shard_name(i, n_shards)).mkdir()
            (tmp / shard_name(i, n_shards) / SHARD_SPEC_FILE).write_text(f"{i}/{n_shards}\n")
        for sample in fragments:
            path = Path(fragments[sample])
            check_fragments_index(path, content=False)
            sel = np.flatnonzero(samples == sample)
            lookup = pl.DataFrame({"barcode": barcodes[sel], "row": sel.astype(np.int64)})
            read = written = 0
            for first in range(0, n_shards, MAX_OPEN_WRITERS):
                group = range(first, min(n_shards, first + MAX_OPEN_WRITERS))
                targets = {s: tmp / shard_name(s + 1, n_shards) / f"{sample}.fragments.tsv.gz" for s in group}
                headers = {s: split_header(f"{s + 1}/{n_shards}", mode, metacell_size) for s in group}
                r_, w_ = _split_pass(path, lookup, member, targets, headers, chunk_bytes, parse_fragment_text,
                                     read_text_chunks)
                read = r_
                written += w_
            if read == 0:
                raise InputFileError(path, f"no fragment of any cell of sample {sample!r} in the cells file; expected "
                                     "the fragments the cells were counted from")
            result.lines_read[sample], result.lines_written[sample] = read, written
            log.info("%s: %d fragments of cells in use, %d written into %d shard file(s) (%.2f copies each)",
                     sample, read, written, n_shards, written / read if read else 0.0)
    return result


def _split_pass(path: Path, lookup: pl.DataFrame, member: sp.csr_matrix, targets: dict[int, Path],
                headers: dict[int, str], chunk_bytes: int, parse, chunks) -> tuple[int, int]:
    """One pass over ``path``: every fragment of a used cell to the files of the shards in ``targets`` using it."""
    import pysam

    lo, hi = min(targets), max(targets) + 1
    sub = member[:, lo:hi].tocsr()
    writers = {s: pysam.BGZFile(str(p), "wb") for s, p in targets.items()}
    read = written = 0
    try:
        for s, w in writers.items():
            w.write(headers[s].encode())
        for text, first_line in chunks(path, chunk_bytes):
            df = parse(path, text, first_line).join(lookup, on="barcode", how="inner", maintain_order="left")
            if not df.height:
                continue
            read += df.height
            cell_rows = df["row"].to_numpy()
            counts = np.diff(sub.indptr)[cell_rows]
            line_idx = np.repeat(np.arange(df.height), counts)
            starts = sub.indptr[cell_rows]
            offs = np.arange(len(line_idx)) - np.repeat(np.cumsum(counts) - counts, counts)
            shard = sub.indices[np.repeat(starts, counts) + offs] + lo
            order = np.lexsort((line_idx, shard))  # by shard, fragments in input order within it
            shard, line_idx = shard[order], line_idx[order]
            bounds = np.flatnonzero(np.diff(shard)) + 1
            body = df.drop("row")
            for part_s, part_l in zip(np.split(shard, bounds), np.split(line_idx, bounds), strict=True):
                if not len(part_s):
                    continue
                data = body[part_l].write_csv(separator="\t", include_header=False, quote_style="never")
                writers[int(part_s[0])].write(data.encode())
                written += len(part_l)
    finally:
        for w in writers.values():
            w.close()
    for p in targets.values():
        pysam.tabix_index(str(p), preset="bed", force=True)
    return read, written


def merge_order(cell_rows: list[np.ndarray]) -> np.ndarray:
    """Permutation that puts the shards' cells (concatenated in shard order) back in the cells file's order."""
    rows = np.concatenate(cell_rows) if cell_rows else np.zeros(0, dtype=np.int64)
    return np.argsort(rows, kind="stable")
