"""One signal scale for accessibility tracks, shared by bulk training and per-cell inference.

The model never sees raw counts. Every accessibility track (a bulk ATAC bigWig, or a cell's pooled
Tn5 insertions) is divided by its own genome-wide mean per base and passed through ``log1p``:

    x_norm = log1p(x / mean_per_base)

so a bulk library of 50 M insertions and a pooled neighbourhood of 1 M insertions land on the same
scale (1.0 = average accessibility). The method and the bulk track's mean are stored in the model file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from scfan.errors import InputFileError

NORM_METHOD = "mean_scaled_log1p"


@dataclass(frozen=True)
class TrackNorm:
    """How a track was scaled: ``log1p(x / mean_per_base)``."""

    mean_per_base: float
    method: str = NORM_METHOD

    def apply(self, x: np.ndarray) -> np.ndarray:
        return normalize_track(x, self.mean_per_base)

    def apply_inplace(self, x: np.ndarray) -> np.ndarray:
        """:meth:`apply` overwriting a float32 ``x`` (no copy of a genome-length track); returns ``x``."""
        return normalize_track_inplace(x, self.mean_per_base)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrackNorm:
        if d.get("method", NORM_METHOD) != NORM_METHOD:
            raise ValueError(f"unknown track normalisation {d.get('method')!r}; expected {NORM_METHOD!r}")
        return cls(mean_per_base=float(d["mean_per_base"]))


def normalize_track(x: np.ndarray, mean_per_base: float | np.ndarray) -> np.ndarray:
    """``log1p(x / mean)``; ``mean`` may be a scalar or broadcastable per row (one per cell)."""
    mean = np.asarray(mean_per_base, dtype=np.float64)
    if np.any(mean <= 0):
        raise ValueError("track mean per base must be > 0")
    return np.log1p(np.asarray(x, dtype=np.float32) / mean.astype(np.float32))


def normalize_track_inplace(x: np.ndarray, mean_per_base: float) -> np.ndarray:
    """:func:`normalize_track` of a float32 array, written over it; the same float32 values, no temporary array.

    Parameters
    ----------
    x : numpy.ndarray
        float32 track (raw counts), overwritten.
    mean_per_base : float
        The scale, > 0.

    Returns
    -------
    numpy.ndarray
        ``x``, now ``log1p(x / mean_per_base)``.
    """
    if x.dtype != np.float32:
        raise TypeError(f"in-place normalisation needs a float32 track, not {x.dtype}")
    if not mean_per_base > 0:
        raise ValueError("track mean per base must be > 0")
    np.divide(x, np.float32(mean_per_base), out=x)
    np.log1p(x, out=x)
    return x


def bigwig_chroms(path: str | Path) -> dict[str, int]:
    """Chromosome sizes declared in a bigWig header."""
    bw = open_bigwig(path)
    try:
        return dict(bw.chroms())
    finally:
        bw.close()


def open_bigwig(path: str | Path):
    """Open a bigWig for reading, or raise :class:`InputFileError` naming the file."""
    import pyBigWig  # here, not at import: the model code (and GPU benchmarks) must not need it

    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "bigWig not found")
    try:
        bw = pyBigWig.open(str(p))
    except RuntimeError as exc:
        raise InputFileError(p, "cannot open as bigWig") from exc
    if bw is None or not bw.isBigWig():
        raise InputFileError(p, "not a bigWig file")
    return bw
