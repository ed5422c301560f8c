"""PWM-scan baseline: the best JASPAR log-odds score of a TF's motif in each window (both strands)."""

from __future__ import annotations

import logging
import warnings
from functools import lru_cache

import numpy as np
import torch

from scfan.errors import ScfanError

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _jaspar():
    from pyjaspar import jaspardb

    return jaspardb()


def jaspar_counts(motif_id: str) -> np.ndarray:
    """Count matrix ``(4, W)`` (rows A, C, G, T) of a JASPAR matrix ID from the offline pyjaspar database."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = _jaspar().fetch_motif_by_id(motif_id)
    if m is None:
        raise ScfanError(f"JASPAR matrix {motif_id!r} not found in the offline database ({_jaspar().release})")
    return np.array([m.counts[b] for b in "ACGT"], dtype=np.float64)


def log_odds(counts: np.ndarray, pseudocount: float = 0.8, background: np.ndarray | None = None) -> np.ndarray:
    """Log2-odds PWM from counts, with a pseudocount split by the background (uniform by default)."""
    bg = np.full(4, 0.25) if background is None else np.asarray(background, dtype=np.float64)
    probs = (counts + pseudocount * bg[:, None]) / (counts.sum(axis=0, keepdims=True) + pseudocount)
    return np.log2(probs / bg[:, None]).astype(np.float32)


@torch.no_grad()
def max_pwm_scores(onehot: np.ndarray, pwm: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Max log-odds over every position and both strands of each sequence in ``onehot (N, 4, L)``."""
    w = torch.from_numpy(pwm)[None]  # (1, 4, W)
    w_rc = torch.from_numpy(np.ascontiguousarray(pwm[::-1, ::-1]))[None]
    weight = torch.cat([w, w_rc])  # (2, 4, W)
    out = []
    for i in range(0, len(onehot), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(onehot[i : i + batch_size], dtype=np.float32))
        s = torch.nn.functional.conv1d(x, weight)
        out.append(s.amax(dim=(1, 2)).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def motif_for_tf(tf: str, motif_id: str | None) -> str | None:
    """The JASPAR ID to use: the given one, else the oldest vertebrate JASPAR matrix named like the TF."""
    if motif_id:
        return motif_id
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Biopython warns when a name matches nothing
        hits = _jaspar().fetch_motifs_by_name(tf) or []
    hits = [m for m in hits if m.name.upper() == tf.upper()]
    if not hits:
        return None
    vert = [m for m in hits if str(getattr(m, "tax_group", "")).lower() == "vertebrates"] or hits
    best = min(vert, key=lambda m: (m.base_id, -int(m.version)))
    return f"{best.base_id}.{best.version}"
