"""Device-side assembly of the per-cell model inputs (``scfan sc predict --assembly device``).

What runs where, and why. For each genomic chunk the fragments are parsed on the CPU into a cells × positions CSR
of Tn5 insertions (:meth:`~scfan.sc.pooling.PooledTracks.insertions`: tabix queries, text parsing and barcode joins,
work that has no place on an accelerator). Everything after that is arithmetic on arrays, which numpy and scipy on
the host run at about 2k (cell, window) pairs per second and core, far below what a GPU predicts (about 266k pairs
per second on an H200): on the host the model would wait for its inputs. :class:`DeviceAssembler` therefore moves
what the inputs are made of to the model's device and builds them there with torch operations:

- once per run: the pooling matrix (units × cells CSR) and each unit's ``pooled_mean``;
- once per chunk: the insertions (the CSR arrays of the rows that hold any; float32 counts, made float64 there), the
  windows' first columns in the chunk, and the windows' DNA + mappability ``xw (W, C, L)`` (accessibility channel
  empty); the insertions between windows are dropped on the device (they enter no window);
- once per block of units: the pooling product ``pooling[units] @ insertions``, as a gather of every neighbour's
  insertions, a stable sort by (unit, position) and sums taken in the pooling matrix's order: the order scipy's
  product adds in, so the float64 sums are the host path's, and no atomic addition makes a run differ from the next;
- per batch of pairs: each pair's ``context`` columns (0 outside the chunk, as
  :func:`~scfan.sc.pooling._extract_windows`) scaled as :func:`scfan.tracks.normalize_track` does
  (``log1p(x / mean)`` in float32, the mean rounded to float32). The DNA and mappability channels are ``xw`` indexed
  by window on the device (:meth:`scfan.sc.predict.ModelSet.predict_pairs`), so no pair's input crosses the bus.

On CUDA the uploads go through pinned host memory with non-blocking copies on the current stream (the caching host
allocator keeps a pinned buffer alive until its copy is done), so the host goes on while they run. On a CPU the same
code runs on device ``cpu``: the tests compare it there with the host path. It is not faster than scipy on a CPU,
which is why ``--assembly auto`` takes it on CUDA only.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def _ranges(starts: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every element of the ranges ``[starts[i], starts[i] + counts[i])``, range after range: ``(i, element)``."""
    dev = counts.device
    total = int(counts.sum()) if len(counts) else 0
    owner = torch.repeat_interleave(torch.arange(len(counts), device=dev), counts, output_size=total)
    shift = starts - (torch.cumsum(counts, 0) - counts)
    return owner, torch.arange(total, device=dev) + shift[owner]


def sum_by_key(key: torch.Tensor, val: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted distinct keys and, per key, the sum of its values added one by one in their order in ``val``
    (``0 + v0 + v1 + …``: what a sequential loop computes, bit for bit). The values of the r-th term of every key
    are added in one step, so no step adds twice to one key (no atomic addition, the same numbers every run); the
    number of steps is the most terms any key has (a few neighbours with an insertion at one position)."""
    key, order = torch.sort(key, stable=True)
    val = val[order]
    keys, seg, counts = torch.unique_consecutive(key, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(keys), dtype=val.dtype, device=val.device)
    if not len(key):
        return keys, sums
    rank = torch.arange(len(key), device=key.device) - (torch.cumsum(counts, 0) - counts)[seg]
    by_rank = torch.argsort(rank, stable=True)
    lo = 0
    for hi in torch.cumsum(torch.bincount(rank), 0).tolist():
        idx = by_rank[lo:hi]
        s = seg[idx]
        sums[s] = sums[s] + val[idx]  # distinct keys within one rank
        lo = hi
    return keys, sums


class DeviceAssembler:
    """Builds the accessibility channel of (unit, window) pairs on ``device`` (see the module docstring).

    Use: :meth:`load_chunk` once per chunk, :meth:`pool` once per block of units, then :meth:`accessibility` for
    batches of the block's pairs.

    Parameters
    ----------
    pooling
        Units × cells pooling matrix (``PooledTracks.pooling``), moved to the device once.
    pooled_mean
        Each unit's mean insertions per base (``PooledTracks.pooled_mean``), all > 0.
    context
        Columns of a model input.
    device
        Where the inputs are built (the models' device).
    """

    def __init__(self, pooling: sp.spmatrix, pooled_mean: np.ndarray, context: int, device: torch.device | str):
        self.device = torch.device(device)
        self.context = int(context)
        p = sp.csr_matrix(pooling, dtype=np.float64)
        mean = np.asarray(pooled_mean, dtype=np.float64)
        if mean.shape != (p.shape[0],):
            raise ValueError(f"pooled_mean has shape {mean.shape}, expected ({p.shape[0]},)")
        if np.any(mean <= 0):
            raise ValueError("track mean per base must be > 0")
        self.n_units = int(p.shape[0])
        self._p_ptr = self.put(p.indptr.astype(np.int64))
        self._p_cell = self.put(p.indices.astype(np.int64))
        self._p_weight = self.put(p.data)
        self._mean = self.put(mean.astype(np.float32))  # normalize_track divides by the float32 mean
        self.width = 0
        self._cells: torch.Tensor | None = None  # the chunk's rows with insertions (load_chunk)
        self._units: torch.Tensor | None = None  # the block's units (pool)

    def put(self, a: np.ndarray | torch.Tensor) -> torch.Tensor:
        """A host array on the device: from pinned memory without blocking on CUDA, as is on a CPU."""
        if isinstance(a, torch.Tensor):
            t = a
        else:
            a = np.ascontiguousarray(a)
            t = torch.from_numpy(a if a.flags.writeable else a.copy())
        if self.device.type == "cuda" and t.device.type == "cpu":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def load_chunk(self, insertions: sp.spmatrix, offsets: np.ndarray, xw: torch.Tensor | np.ndarray,
                   ) -> torch.Tensor:
        """Move one chunk to the device: its insertions (cells × positions CSR, as parsed), the first column of each
        window in it (``offsets``) and the windows ``xw (W, C, L)``; returns ``xw`` on the device."""
        ins = sp.csr_matrix(insertions)
        rows = np.flatnonzero(np.diff(ins.indptr))
        self.width = int(ins.shape[1])
        self._offsets = self.put(np.asarray(offsets, dtype=np.int64))
        self._cells = self.put(rows.astype(np.int64))
        start, end = self.put(ins.indptr[rows].astype(np.int64)), self.put(ins.indptr[rows + 1].astype(np.int64))
        col, val = self.put(ins.indices.astype(np.int32)).long(), self.put(ins.data.astype(np.float32)).double()
        # only the insertions inside some window: positions covered by [offset, offset + context)
        n = self.width
        cover = (torch.bincount(self._offsets.clamp(0, n), minlength=n + 1)
                 - torch.bincount((self._offsets + self.context).clamp(0, n), minlength=n + 1))
        keep = (torch.cumsum(cover, 0)[:-1] > 0)[col]
        kept = torch.cat([keep.new_zeros(1, dtype=torch.int64), torch.cumsum(keep, 0)])
        self._start, self._end = kept[start], kept[end]
        self._col, self._val = col[keep], val[keep]
        self._units = None
        return self.put(torch.as_tensor(xw, dtype=torch.float32))

    def _insertions_of(self, cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """First element and number of the chunk's (kept) insertions of each of ``cell``."""
        if not len(self._cells):
            return torch.zeros_like(cell), torch.zeros_like(cell)
        pos = torch.searchsorted(self._cells, cell).clamp_(max=len(self._cells) - 1)
        start = self._start[pos]
        return start, torch.where(self._cells[pos] == cell, self._end[pos] - start, 0)

    def pool(self, units: np.ndarray) -> None:
        """Pool the chunk's insertions over a block of units (sorted distinct ids): ``pooling[units] @ insertions``,
        kept on the device as sorted (row, position) keys and float64 sums, rows following ``units``."""
        if self._cells is None:
            raise RuntimeError("pool() before load_chunk()")
        u = self.put(np.asarray(units, dtype=np.int64))
        row, k = _ranges(self._p_ptr[u], self._p_ptr[u + 1] - self._p_ptr[u])  # the units' pooling entries, in order
        start, count = self._insertions_of(self._p_cell[k])
        term, j = _ranges(start, count)
        key = row[term] * (self.width + 1) + self._col[j]
        self._keys, self._sums = sum_by_key(key, self._p_weight[k][term] * self._val[j])
        self._units = u

    def raw_windows(self, units: np.ndarray, windows: np.ndarray) -> torch.Tensor:
        """Pooled insertions ``(n, context)`` float32 of pairs (unit ``units[i]``, one of the last :meth:`pool`
        block, on window ``windows[i]`` of the chunk); columns outside the chunk are 0."""
        if self._units is None:
            raise RuntimeError("raw_windows() before pool()")
        u, w = self.put(np.asarray(units, dtype=np.int64)), self.put(np.asarray(windows, dtype=np.int64))
        n, ctx = self.width, self.context
        base = torch.searchsorted(self._units, u) * (n + 1)
        off = self._offsets[w]
        first = torch.searchsorted(self._keys, base + off.clamp(0, n))
        last = torch.searchsorted(self._keys, base + (off + ctx).clamp(0, n))
        pair, k = _ranges(first, last - first)
        out = torch.zeros((len(u), ctx), dtype=torch.float32, device=self.device)
        out[pair, self._keys[k] - base[pair] - off[pair]] = self._sums[k].to(torch.float32)
        return out

    def accessibility(self, units: np.ndarray, windows: np.ndarray) -> torch.Tensor:
        """The accessibility channel ``(n, context)`` of the pairs on the device: :meth:`raw_windows` on the bulk
        scale, ``log1p(x / pooled_mean)`` as :func:`scfan.tracks.normalize_track` computes it."""
        raw = self.raw_windows(units, windows)
        mean = self._mean[self.put(np.asarray(units, dtype=np.int64))]
        return torch.log1p(raw / mean[:, None])
