"""Per-cell inference modes and what each predicts: one unit per cell (``exact``, ``fast``) or per metacell
(``metacell``), with the pooling rows that make each unit's track. Shared by ``sc predict`` and ``sc split-fragments``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from scfan.errors import ScfanError

MODES = ("exact", "fast", "metacell")


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`, else a one-line error naming ``--mode``."""
    if mode not in MODES:
        raise ScfanError(f"--mode {mode!r}: expected one of {', '.join(MODES)}")
    return mode


def greedy_metacells(pooling: sp.spmatrix, size: int) -> np.ndarray:
    """Metacell id of every cell: in cell order, each unassigned cell opens a metacell and takes its unassigned
    neighbours of highest pooling weight (ties by index) until ``size`` members. Deterministic, O(cells × k)."""
    P = sp.csr_matrix(pooling)
    n = P.shape[0]
    assign = np.full(n, -1, dtype=np.int64)
    next_id = 0
    for c in range(n):
        if assign[c] >= 0:
            continue
        idx, w = P.indices[P.indptr[c] : P.indptr[c + 1]], P.data[P.indptr[c] : P.indptr[c + 1]]
        order = np.lexsort((idx, -w))
        cand = idx[order]
        cand = cand[(assign[cand] < 0) & (cand != c)][: size - 1]
        assign[c] = next_id
        assign[cand] = next_id
        next_id += 1
    return assign


@dataclass
class Units:
    """What gets a pooled track: one unit per cell (exact, fast) or per metacell (metacell)."""

    pooling: sp.csr_matrix  # units × all cells, rows sum to 1
    of_cell: np.ndarray  # unit of each shard cell
    members: np.ndarray | None = None  # metacell id of every cell (metacell mode)


def make_units(mode: str, pooling: sp.spmatrix, cells: np.ndarray, metacell_size: int) -> Units:
    P = sp.csr_matrix(pooling, dtype=np.float64)
    if mode != "metacell":
        return Units(sp.csr_matrix(P[cells]), np.arange(len(cells), dtype=np.int64))
    assign = greedy_metacells(P, metacell_size)
    ids, of_cell = np.unique(assign[cells], return_inverse=True)
    # a metacell is predicted on its seed's pooled track (the first cell of the metacell in cell order): the same
    # depth as any cell's own pooled track, so metacell mode sees no denser input than exact mode
    seed_of = np.full(assign.max() + 1, -1, dtype=np.int64)
    for c in range(len(assign) - 1, -1, -1):
        seed_of[assign[c]] = c
    unit_pool = sp.csr_matrix(P[seed_of[ids]])
    unit_pool.sort_indices()
    return Units(unit_pool, of_cell.astype(np.int64), assign)

