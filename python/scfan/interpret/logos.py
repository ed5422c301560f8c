"""Logos (logomaker): a discovered motif's contribution weights beside its best JASPAR match."""

from __future__ import annotations

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


def motif_logo(motif, match, entry, path: str | Path, title: str = "") -> None:
    """Two panels: the motif's CWM (the attribution it carries) and, when known, its JASPAR match in bits."""
    import logomaker
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = 2 if entry is not None else 1
    fig, axes = plt.subplots(n, 1, figsize=(max(4.0, 0.35 * max(motif.cwm.shape[1], 8)), 1.8 * n), squeeze=False)
    logomaker.Logo(_frame(motif.cwm), ax=axes[0, 0], color_scheme="classic")
    axes[0, 0].set_title(f"{title} {motif.name}: {motif.n_seqlets} seqlets (contribution)", fontsize=8)
    axes[0, 0].set_xticks([])
    if entry is not None:
        logomaker.Logo(_frame(information_matrix(entry.ppm)), ax=axes[1, 0], color_scheme="classic")
        axes[1, 0].set_ylim(0, 2)
        axes[1, 0].set_title(f"JASPAR {match.matrix_id} {match.name} (q = {match.q_value:.2g}, bits)", fontsize=8)
        axes[1, 0].set_xticks([])
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
