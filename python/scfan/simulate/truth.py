"""Reading the simulator's truth back: which model windows hold a bound site of a TF in a cell type or line."""

from __future__ import annotations

import numpy as np
import polars as pl


def bound_window_labels(bound_sites: pl.DataFrame, chroms: np.ndarray, starts: np.ndarray, window: int, tf: str,
                        context: str, *, kind: str = "type") -> np.ndarray:
    """``True`` for each window ``[start, start + window)`` that contains the centre of a (non-decoy) site of ``tf``
    bound in ``context``: a cell type (``kind="type"``, column ``bound_types``) or a bulk line (``kind="line"``)."""
    if kind not in ("type", "line"):
        raise ValueError(f"kind {kind!r}: expected 'type' or 'line'")
    column = "bound_lines" if kind == "line" else "bound_types"
    sites = bound_sites.filter((pl.col("tf") == tf) & ~pl.col("decoy") & pl.col(column).list.contains(context))
    chroms = np.asarray(chroms).astype(str)
    starts = np.asarray(starts, dtype=np.int64)
    out = np.zeros(len(starts), dtype=bool)
    for chrom in np.unique(chroms):
        on_chrom = sites.filter(pl.col("chrom") == chrom)
        mid = np.sort(((on_chrom["start"] + on_chrom["end"]) // 2).to_numpy())
        on = np.flatnonzero(chroms == chrom)
        out[on] = np.searchsorted(mid, starts[on] + window) > np.searchsorted(mid, starts[on])
    return out
