"""Pooled per-cell accessibility tracks, computed chunk by chunk without any per-cell file.

For a genomic chunk, the fragments are fetched once (one tabix query per sample) into a sparse cells × bp
matrix of Tn5 insertions, which the row-normalised pooling matrix turns into each cell's neighbourhood-average
track. Only the cells that some row of the pooling matrix uses are kept (a shard's cells and their neighbours),
and the query is parsed :attr:`PooledTracks.fetch_lines` lines at a time, so the memory of a chunk is bounded by
the shard's neighbourhood, not by the number of cells in the data set (``benchmarks/bench_memory.py``).
Normalisation puts it on the bulk model's scale
(:func:`scfan.tracks.normalize_track`)::

    x_norm = log1p(pooled / pooled_mean),   pooled_mean = (pooling @ total_insertions) / genome_size

``pooled`` is the mean insertions per base over the cell and its neighbours, and ``pooled_mean`` the same
neighbourhood's mean insertions per base genome-wide, exactly as a bulk track is divided by its own mean per
base; both are the same quantity for a pseudo-bulk of the neighbourhood, so the scales agree.
"""

from __future__ import annotations

import io
import itertools
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import polars as pl
import pysam
import scipy.sparse as sp

from scfan.errors import InputFileError, ScfanError
from scfan.sc.fragments import FRAGMENT_SCHEMA, check_fragments_index
from scfan.tn5 import fragment_insertions
from scfan.tracks import normalize_track

log = logging.getLogger(__name__)


class PooledTracks:
    """Pooled Tn5-insertion tracks of every cell, queried by genomic chunk.

    Parameters
    ----------
    fragments
        ``{sample: fragments.tsv.gz}`` (bgzip + tabix); opened once here.
    cell_ids
        Cell ids ``<sample>#<barcode>`` in the row order of ``pooling``.
    pooling
        Row-normalised units × cells matrix: ``obsp['pooling']`` (a unit per cell), or rows that average
        groups of cells (metacells).
    total_insertions
        Genome-wide insertions per cell (2 × unique fragments), for the normalisation.
    genome_size
        Bases over which the mean per base is taken; must be the definition used for the bulk track.
    """

    #: fragment lines parsed at once from a tabix query; only the rows of pooled cells are kept between batches
    fetch_lines: int = 262_144

    def __init__(self, fragments: Mapping[str, str | Path], cell_ids: Sequence[str], pooling: sp.spmatrix,
                 total_insertions: np.ndarray, genome_size: float):
        self.n_cells = len(cell_ids)
        pooling = sp.csr_matrix(pooling, dtype=np.float64)
        if pooling.shape[1] != self.n_cells:
            raise ScfanError(f"pooling matrix is {pooling.shape}, expected (units) × {self.n_cells} cells")
        self.pooling = pooling
        self._tabix: dict[str, pysam.TabixFile] = {}
        self._cells: dict[str, pl.DataFrame] = {}
        samples = np.array([c.partition("#")[0] for c in cell_ids])
        barcodes = np.array([c.partition("#")[2] for c in cell_ids])
        used = np.zeros(self.n_cells, dtype=bool)
        used[pooling.indices[pooling.data != 0]] = True
        for sample in dict.fromkeys(samples[used].tolist()):  # samples none of whose cells is used: not opened
            if sample not in fragments:
                raise ScfanError(f"no fragments file for sample {sample!r} (have {', '.join(fragments)})")
            check_fragments_index(fragments[sample])
            self._tabix[sample] = pysam.TabixFile(str(fragments[sample]))
            sel = np.flatnonzero((samples == sample) & used)
            self._cells[sample] = pl.DataFrame({"barcode": barcodes[sel], "row": sel.astype(np.int64)})
        totals = np.asarray(total_insertions, dtype=np.float64)
        self.pooled_mean = (pooling @ totals) / float(genome_size)
        if np.any(self.pooled_mean <= 0):
            raise ScfanError("a cell's pooled library has no insertions; cannot normalise its track")

    @classmethod
    def from_anndata(cls, adata: ad.AnnData, fragments: Mapping[str, str | Path], genome_size: float,
                     ) -> PooledTracks:
        """Build from a ``cells_nn.h5ad`` (``obsp['pooling']``, ``obs['n_fragments']``)."""
        if "pooling" not in adata.obsp:
            raise ScfanError("cells AnnData has no obsp['pooling']; run `scfan sc neighbors` first")
        totals = 2.0 * adata.obs["n_fragments"].to_numpy(dtype=np.float64)
        return cls(fragments, list(adata.obs_names), adata.obsp["pooling"], totals, genome_size)

    def close(self) -> None:
        for tf in self._tabix.values():
            tf.close()
        self._tabix.clear()

    def __enter__(self) -> PooledTracks:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fetch(self, sample: str, chrom: str, start: int, end: int) -> Iterator[pl.DataFrame]:
        """The fragments of pooled cells of ``sample`` in the region, parsed ``fetch_lines`` lines at a time."""
        tf = self._tabix[sample]
        cells = self._cells[sample]
        if chrom not in tf.contigs or not len(cells):
            return
        try:
            lines = tf.fetch(chrom, start, end)
            while batch := list(itertools.islice(lines, self.fetch_lines)):
                df = pl.read_csv(io.BytesIO("\n".join(batch).encode()), separator="\t", has_header=False,
                                 quote_char=None, schema=FRAGMENT_SCHEMA)
                del batch
                yield df.select("start", "end", "barcode").join(cells, on="barcode", how="inner",
                                                                 maintain_order="left")
        except (OSError, ValueError) as exc:
            raise InputFileError(tf.filename.decode(), f"cannot read {chrom}:{start}-{end} ({exc})") from exc

    def insertions(self, chrom: str, start: int, end: int) -> sp.csr_matrix:
        """Raw Tn5 insertions of the pooled cells in ``[start, end)``: a cells × (end - start) CSR (float32).

        Rows of cells that no pooling row uses are empty, as are those of barcodes that are not cells; repeated
        identical rows count once.
        """
        if end <= start:
            raise ValueError(f"empty region {chrom}:{start}-{end}")
        width = end - start
        rows, cols = [], []
        for sample in self._cells:
            parts = list(self._fetch(sample, chrom, start, end))
            if not parts:
                continue
            df = pl.concat(parts).unique(maintain_order=True)
            del parts
            r = df["row"].to_numpy()
            for pos in fragment_insertions(df["start"].to_numpy(), df["end"].to_numpy()):
                ok = (pos >= start) & (pos < end)
                rows.append(r[ok])
                cols.append(pos[ok] - start)
        if not rows:
            return sp.csr_matrix((self.n_cells, width), dtype=np.float32)
        r, c = np.concatenate(rows), np.concatenate(cols)
        m = sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(self.n_cells, width))
        m.sum_duplicates()
        return m

    def pooled(self, chrom: str, start: int, end: int, cells: np.ndarray | None = None) -> sp.csr_matrix:
        """Pooled insertions ``pooling @ insertions`` in ``[start, end)`` (rows: all cells, or ``cells``)."""
        pool = self.pooling if cells is None else self.pooling[np.asarray(cells)]
        out = sp.csr_matrix(pool @ self.insertions(chrom, start, end).astype(np.float64))
        out.sort_indices()
        return out

    def normalized_windows(self, cell_idx: np.ndarray, chrom: str, centers: np.ndarray, context: int = 1000,
                           chunk_bp: int = 1_000_000, cell_block: int = 2048) -> np.ndarray:
        """Normalised pooled signal of (cell, window) pairs: an ``(n, context)`` float32 array.

        Window ``q`` covers ``[centers[q] - context // 2, centers[q] - context // 2 + context)`` of ``chrom``
        for cell ``cell_idx[q]``; bases outside the chromosome are zero. Queries are grouped into genomic
        chunks of about ``chunk_bp``; each chunk fetches fragments once, then pools ``cell_block`` cells at a
        time, so memory is bounded by ``cell_block`` × chunk whatever the number of cells (neither parameter
        changes a number).
        """
        cell_idx = np.asarray(cell_idx, dtype=np.int64)
        lo = np.asarray(centers, dtype=np.int64) - context // 2
        if cell_idx.shape != lo.shape:
            raise ValueError("cell_idx and centers must have the same length")
        out = np.zeros((len(lo), context), dtype=np.float32)
        if len(lo) == 0:
            return out
        order = np.argsort(lo, kind="stable")
        group = (lo[order] - lo[order][0]) // max(chunk_bp, 1)
        for g in np.unique(group):
            q = order[group == g]
            a, b = int(max(lo[q].min(), 0)), int(lo[q].max() + context)
            if b <= a:
                continue
            cells, inverse = np.unique(cell_idx[q], return_inverse=True)
            ins = self.insertions(chrom, a, b).astype(np.float64)
            for s in range(0, len(cells), max(cell_block, 1)):
                sel = (inverse >= s) & (inverse < s + cell_block)
                pooled = sp.csr_matrix(self.pooling[cells[s : s + cell_block]] @ ins)
                pooled.sort_indices()
                out[q[sel]] = _extract_windows(pooled, inverse[sel] - s, lo[q[sel]] - a, context)
        return normalize_track(out, self.pooled_mean[cell_idx][:, None])


def _extract_windows(m: sp.csr_matrix, rows: np.ndarray, offsets: np.ndarray, width: int) -> np.ndarray:
    """Dense ``(n, width)`` slices ``m[rows[q], offsets[q]:offsets[q] + width]`` (columns outside are 0)."""
    n_cols = m.shape[1]
    keys = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) * (n_cols + 1) + m.indices
    base = rows.astype(np.int64) * (n_cols + 1)
    first = np.searchsorted(keys, base + np.clip(offsets, 0, n_cols))
    last = np.searchsorted(keys, base + np.clip(offsets + width, 0, n_cols))
    n = last - first
    q = np.repeat(np.arange(len(rows)), n)
    k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + np.repeat(first, n)
    out = np.zeros((len(rows), width), dtype=np.float32)
    out[q, m.indices[k] - offsets[q]] = m.data[k]
    return out
