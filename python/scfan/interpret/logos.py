"""Logos (logomaker): a discovered motif's contribution weights beside its best JASPAR match."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scfan._io import atomic_path


def _frame(matrix: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(np.asarray(matrix, dtype=float).T, columns=list("ACGT"))


def information_matrix(ppm: np.ndarray) -> np.ndarray:
    """Per-base heights of an information-content logo: probability × (2 − entropy) bits."""
    p = np.clip(np.asarray(ppm, dtype=float), 1e-9, 1.0)
    ic = 2.0 + (p * np.log2(p)).sum(axis=0)
    return p * ic[None, :]


def reverse_complement(matrix: np.ndarray) -> np.ndarray:
    """The ``(4, W)`` matrix (rows A, C, G, T) of the other strand: bases complemented, columns reversed."""
    return np.asarray(matrix)[::-1, ::-1]


@dataclass(frozen=True)
class MatchAlignment:
    """A query and its TOMTOM match on one x axis of ``width`` columns: the query's first column at
    ``query_start``, the match's (``target``, oriented as it matched) at ``target_start``."""

    target: np.ndarray
    query_start: int
    target_start: int
    width: int

    def place(self, matrix: np.ndarray, start: int) -> np.ndarray:
        """``matrix (4, w)`` at ``start`` of the shared axis, empty (zero) columns elsewhere."""
        out = np.zeros((matrix.shape[0], self.width), dtype=float)
        out[:, start:start + matrix.shape[1]] = matrix
        return out


def align_match(query_width: int, target: np.ndarray, offset: int, strand: str) -> MatchAlignment:
    """Align a JASPAR ``target (4, W)`` to a query of ``query_width`` columns as TOMTOM matched them (memelite's
    ``offset``/strand: query column ``i`` faces column ``i + offset`` of the target, reverse-complemented when
    ``strand`` is ``-``)."""
    if strand not in ("+", "-"):
        raise ValueError(f"strand {strand!r}: expected '+' or '-'")
    oriented = reverse_complement(target) if strand == "-" else np.asarray(target)
    # shared column c holds query column c - query_start and target column c - target_start
    query_start = max(0, offset)
    target_start = query_start - offset
    width = max(query_start + query_width, target_start + oriented.shape[1])
    return MatchAlignment(oriented, query_start, target_start, width)


def motif_logo(motif, match, entry, path: str | Path, title: str = "") -> None:
    """Two panels on one x axis: the motif's CWM (the attribution it carries) and, when known, its JASPAR match in
    bits, reverse-complemented and shifted as TOMTOM aligned it."""
    import logomaker
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cwm = np.asarray(motif.cwm, dtype=float)
    aligned = align_match(cwm.shape[1], entry.ppm, match.offset, match.strand) if entry is not None else None
    width = aligned.width if aligned is not None else cwm.shape[1]
    n = 2 if entry is not None else 1
    fig, axes = plt.subplots(n, 1, figsize=(max(4.0, 0.35 * max(width, 8)), 1.8 * n), squeeze=False)
    logomaker.Logo(_frame(aligned.place(cwm, aligned.query_start) if aligned is not None else cwm), ax=axes[0, 0],
                   color_scheme="classic")
    axes[0, 0].set_title(f"{title} {motif.name}: {motif.n_seqlets} seqlets (contribution)", fontsize=8)
    axes[0, 0].set_xticks([])
    if aligned is not None:
        bits = aligned.place(information_matrix(aligned.target), aligned.target_start)
        logomaker.Logo(_frame(bits), ax=axes[1, 0], color_scheme="classic")
        axes[1, 0].set_ylim(0, 2)
        rc = ", reverse complement" if match.strand == "-" else ""
        axes[1, 0].set_title(f"JASPAR {match.matrix_id} {match.name} (q = {match.q_value:.2g}, bits{rc})",
                             fontsize=8)
        axes[1, 0].set_xticks([])
        for ax in axes[:, 0]:
            ax.set_xlim(-0.5, width - 0.5)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def attribution_track(contrib: np.ndarray, path: str | Path, title: str = "", offset: int = 0) -> None:
    """One window's attribution track: each base's DeepLIFT/SHAP contribution (observed bases only) as a logo,
    ``contrib (4, L)``; positions numbered from ``offset`` (bp from the model input's start)."""
    import logomaker
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = _frame(contrib)
    frame.index = np.arange(offset, offset + len(frame))
    fig, ax = plt.subplots(figsize=(10, 1.9))
    logomaker.Logo(frame, ax=ax, color_scheme="classic")
    ax.axhline(0, color="0.6", lw=0.5)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("bp from the model input's start", fontsize=7)
    ax.set_ylabel("contribution", fontsize=7)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
