"""Real TF motifs from JASPAR (offline, via pyjaspar): position-weight sampling of sites and log-odds scoring."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from scfan.errors import ParamsError

log = logging.getLogger(__name__)

#: (TF, JASPAR matrix id) in the order TFs are taken; the first is active in every context (like CTCF).
TF_CATALOG: tuple[tuple[str, str], ...] = (
    ("CTCF", "MA0139.2"), ("GATA1", "MA2388.1"), ("SPI1", "MA0080.7"), ("CEBPB", "MA0466.4"),
    ("FOXA1", "MA0148.5"), ("HNF4A", "MA1494.2"), ("NRF1", "MA0506.3"), ("REST", "MA0138.3"),
    ("EBF1", "MA0154.5"), ("IRF4", "MA1419.2"), ("RUNX1", "MA0002.3"), ("PAX5", "MA0014.4"),
    ("ELK1", "MA0028.3"), ("TP53", "MA0106.3"), ("NFE2", "MA0841.2"), ("USF1", "MA0093.4"),
    ("E2F1", "MA0024.3"), ("GFI1B", "MA0483.2"), ("STAT3", "MA0144.3"), ("TCF7L2", "MA0523.2"),
    ("ESRRA", "MA0592.4"), ("YY1", "MA0095.4"), ("KLF4", "MA0039.5"), ("SP1", "MA0079.5"),
)

#: Uniform background for log-odds scores.
BACKGROUND = np.full(4, 0.25)


@dataclass(frozen=True)
class Motif:
    """A JASPAR matrix as base probabilities ``prob`` of shape ``(4, L)`` (rows A, C, G, T)."""

    tf: str
    jaspar_id: str
    jaspar_name: str
    prob: np.ndarray

    @property
    def length(self) -> int:
        return self.prob.shape[1]

    @property
    def information_content(self) -> float:
        p = self.prob
        return float((2.0 + (p * np.log2(p)).sum(axis=0)).sum())

    def log_odds(self) -> np.ndarray:
        """``(4, L)`` log2-odds against the uniform background."""
        return np.log2(self.prob / BACKGROUND[:, None])


def counts_to_prob(counts: np.ndarray, pseudocount: float = 0.8) -> np.ndarray:
    """Column-normalised base probabilities with ``pseudocount`` spread evenly over the four bases."""
    c = np.asarray(counts, dtype=np.float64) + pseudocount / 4.0
    return c / c.sum(axis=0, keepdims=True)


def load_motifs(n_tfs: int, release: str) -> list[Motif]:
    """The first ``n_tfs`` catalogue TFs with their matrices from the offline JASPAR ``release``."""
    from pyjaspar import jaspardb

    try:
        db = jaspardb(release=release)
    except Exception as exc:  # pyjaspar raises bare errors for unknown releases
        raise ParamsError(f"jaspar_release: {release!r} is not available offline ({exc})") from exc
    motifs = []
    for tf, mid in TF_CATALOG[:n_tfs]:
        m = db.fetch_motif_by_id(mid)
        if m is None:
            raise ParamsError(f"JASPAR {release} has no matrix {mid} for {tf}")
        counts = np.array([m.counts[b] for b in "ACGT"], dtype=np.float64)
        motifs.append(Motif(tf=tf, jaspar_id=mid, jaspar_name=str(m.name), prob=counts_to_prob(counts)))
    log.debug("loaded %d JASPAR %s motifs", len(motifs), release)
    return motifs


def sample_sites(rng: np.random.Generator, prob: np.ndarray, n: int) -> np.ndarray:
    """Draw ``n`` site sequences by position-weight sampling: base codes ``(n, L)`` (0..3 = A, C, G, T)."""
    cum = np.cumsum(prob, axis=0)  # (4, L)
    u = rng.random((n, prob.shape[1]))
    codes = (u[:, None, :] > cum[None, :3, :]).sum(axis=1)
    return codes.astype(np.uint8)


def flatten(prob: np.ndarray, keep: float) -> np.ndarray:
    """A weakened matrix: ``keep * prob + (1 - keep) * background`` (for bound sites with weak motifs)."""
    return keep * prob + (1.0 - keep) * BACKGROUND[:, None]


def reverse_complement_codes(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of base codes along the last axis (A<->T, C<->G); N (4) stays N."""
    rc = np.where(codes < 4, 3 - codes.astype(np.int16), 4).astype(np.uint8)
    return np.ascontiguousarray(rc[..., ::-1])


def best_scores(codes: np.ndarray, log_odds: np.ndarray) -> np.ndarray:
    """Best log-odds score of each row of ``codes`` ``(n, W)`` over all offsets and both strands.

    ``W`` must be at least the motif length; positions with ``N`` (code 4) score 0.
    """
    n, width = codes.shape
    length = log_odds.shape[1]
    if width < length:
        raise ValueError(f"sequence width {width} is shorter than the motif ({length})")
    padded = np.vstack([log_odds, np.zeros((1, length))])
    best = np.full(n, -np.inf)
    for strand_codes in (codes, reverse_complement_codes(codes)):
        for off in range(width - length + 1):
            window = strand_codes[:, off:off + length]
            s = padded[window, np.arange(length)].sum(axis=1)
            np.maximum(best, s, out=best)
    return best
