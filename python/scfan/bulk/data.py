"""Windows → model inputs: in-memory genome and tracks, per-epoch negative resampling, jitter, RC augmentation."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from scfan.bulk.inputs import FlatGenome, codes_to_onehot, gather, load_genome_codes, load_track, mean_per_base
from scfan.bulk.model import encode_inputs
from scfan.errors import InputFileError
from scfan.genome import Genome, check_chrom_names
from scfan.tracks import TrackNorm

if TYPE_CHECKING:  # polars is needed only to read a windows table, not to train on arrays
    import polars as pl

log = logging.getLogger(__name__)


@dataclass
class InputSource:
    """The genome (and optionally the two tracks) of one bulk line, held in memory as flat arrays."""

    layout: FlatGenome
    codes: np.ndarray
    accessibility: np.ndarray | None = None  # already normalised
    mappability: np.ndarray | None = None
    track_norm: TrackNorm | None = None

    @classmethod
    def load(cls, genome_fa: str | Path, atac: str | Path | None, mappability: str | Path | None,
             track_norm: TrackNorm | None = None) -> InputSource:
        """Read FASTA and bigWigs once. ``track_norm`` defaults to the ATAC track's own genome-wide mean."""
        with Genome(genome_fa) as genome:
            layout, codes = load_genome_codes(genome)
        if atac is None and mappability is None:
            return cls(layout, codes)
        if atac is None or mappability is None:
            raise ValueError("give both --atac and --mappability, or neither (sequence-only)")
        from scfan.tracks import bigwig_chroms

        others = {str(p): list(bigwig_chroms(p)) for p in (atac, mappability) if Path(p).suffix.lower() != ".bam"}
        check_chrom_names((str(genome_fa), layout.sizes), others)
        raw = load_track(atac, layout)
        mean = mean_per_base(raw, layout)
        if mean <= 0:
            raise InputFileError(atac, "the ATAC track is all zero; expected Tn5 insertions per base")
        own = TrackNorm(mean_per_base=mean)
        if track_norm is not None and abs(track_norm.mean_per_base - mean) > 1e-3 * track_norm.mean_per_base:
            log.info("%s: mean insertions per base %.4g (model trained on %.4g); normalising by the track's own mean",
                     atac, mean, track_norm.mean_per_base)
        acc = own.apply(raw)
        mapp = load_track(mappability, layout)
        return cls(layout, codes, acc, mapp, own)

    @property
    def uses_tracks(self) -> bool:
        return self.accessibility is not None

    def batch(self, chroms: np.ndarray, context_starts: np.ndarray, length: int,
              reverse: np.ndarray | None = None) -> torch.Tensor:
        """Encoded inputs ``(N, C, length)`` for contexts starting at ``context_starts``; optional per-row RC."""
        flat = self.layout.flat_starts(chroms, context_starts)
        onehot = codes_to_onehot(gather(self.codes, flat, length))
        acc = gather(self.accessibility, flat, length) if self.uses_tracks else None
        mapp = gather(self.mappability, flat, length) if self.uses_tracks else None
        x = encode_inputs(onehot, acc, mapp)
        if reverse is not None and reverse.any():
            from scfan.bulk.model import reverse_complement_inputs

            r = torch.from_numpy(np.asarray(reverse, dtype=bool))
            x[r] = reverse_complement_inputs(x[r])
        return x


def positive_mask(labels: np.ndarray) -> np.ndarray:
    """Windows positive for at least one TF."""
    return labels.any(axis=1)


def negative_pool(chroms: np.ndarray, starts: np.ndarray, window: int, is_pos: np.ndarray, margin: int) -> np.ndarray:
    """Indices of all-negative windows lying more than ``margin`` bp from every positive window."""
    keep = ~is_pos
    for chrom in np.unique(chroms):
        on = chroms == chrom
        pos_starts = np.sort(starts[on & is_pos])
        if not len(pos_starts):
            continue
        s = starts[on]
        i = np.searchsorted(pos_starts, s)
        left = pos_starts[np.clip(i - 1, 0, len(pos_starts) - 1)]
        right = pos_starts[np.clip(i, 0, len(pos_starts) - 1)]
        # gap between [s, s+window) and a positive [p, p+window): |s - p| - window
        gap = np.minimum(np.abs(s - left), np.abs(right - s)) - window
        keep[np.flatnonzero(on)[gap <= margin]] = False
    return np.flatnonzero(keep)


def sample_epoch(pos_idx: np.ndarray, neg_pool: np.ndarray, neg_ratio: float, max_windows: int | None,
                 rng: np.random.Generator) -> np.ndarray:
    """One epoch's window indices: all positives + ``neg_ratio``× as many fresh negatives, shuffled, capped."""
    n_neg = min(len(neg_pool), int(round(neg_ratio * len(pos_idx))))
    neg = rng.choice(neg_pool, size=n_neg, replace=False) if n_neg else np.zeros(0, dtype=np.int64)
    idx = np.concatenate([pos_idx, neg])
    rng.shuffle(idx)
    if max_windows is not None and len(idx) > max_windows:
        idx = idx[:max_windows]
    return idx


def context_starts(starts: np.ndarray, window: int, context: int) -> np.ndarray:
    return starts - (context - window) // 2


def jittered_context_starts(chroms: np.ndarray, starts: np.ndarray, window: int, context: int, jitter: int,
                            layout: FlatGenome, rng: np.random.Generator) -> np.ndarray:
    """Context starts shifted by a uniform ±``jitter`` bp, clipped so the context stays on the chromosome."""
    cs = context_starts(starts, window, context)
    if jitter <= 0:
        return cs
    shifted = cs + rng.integers(-jitter, jitter + 1, size=len(cs))
    sizes = np.array([layout.sizes[str(c)] for c in chroms], dtype=np.int64) if len(chroms) else np.zeros(0, int)
    return np.clip(shifted, 0, sizes - context)


def windows_arrays(df: pl.DataFrame, tf_names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``chroms`` (str array), ``starts`` (int64) and labels ``(N, n_tfs)`` float32 of a windows table."""
    labels = df.select(tf_names).to_numpy().astype(np.float32) if tf_names else np.zeros((len(df), 0), np.float32)
    return df["chrom"].to_numpy().astype(str), df["start"].to_numpy().astype(np.int64), labels


def window_mean_accessibility(src: InputSource, chroms: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Mean normalised bulk accessibility over each labelled window (not its whole context)."""
    if not src.uses_tracks:
        raise ValueError("this input source has no accessibility track")
    flat = src.layout.flat_starts(chroms, starts)
    out = [gather(src.accessibility, flat[i : i + 8192], window).mean(axis=1) for i in range(0, len(flat), 8192)]
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0, np.float64)


def open_negative_pool(neg_pool: np.ndarray, accessibility: np.ndarray, quantile: float) -> np.ndarray:
    """The hard negatives: windows of ``neg_pool`` open in the bulk ATAC yet bound by no TF.

    Open here means a mean normalised accessibility above the ``quantile`` of ``accessibility`` (one value per window
    of the split, so the threshold is the line's own). Windows bound by another TF need no pool of their own: in the
    multi-task model every positive window is already a negative for the TFs that do not bind it.
    """
    if not len(accessibility):
        return neg_pool[:0]
    threshold = np.quantile(accessibility, quantile)
    return neg_pool[accessibility[neg_pool] > threshold]


def sample_epoch_hard(pos_idx: np.ndarray, neg_pool: np.ndarray, open_pool: np.ndarray, neg_ratio: float,
                      hard_frac: float, max_windows: int | None, rng: np.random.Generator) -> np.ndarray:
    """Like :func:`sample_epoch`, but a ``hard_frac`` share of the negatives comes from ``open_pool``.

    The rest are drawn uniformly from the other windows of ``neg_pool``; when ``open_pool`` is smaller than its share
    every open negative is taken.
    """
    n_neg = min(len(neg_pool), int(round(neg_ratio * len(pos_idx))))
    n_hard = min(len(open_pool), int(round(hard_frac * n_neg)))
    hard = rng.choice(open_pool, size=n_hard, replace=False) if n_hard else np.zeros(0, dtype=np.int64)
    rest_pool = np.setdiff1d(neg_pool, hard, assume_unique=True)
    n_rest = min(len(rest_pool), n_neg - n_hard)
    rest = rng.choice(rest_pool, size=n_rest, replace=False) if n_rest else np.zeros(0, dtype=np.int64)
    idx = np.concatenate([pos_idx, hard, rest]).astype(np.int64)
    rng.shuffle(idx)
    if max_windows is not None and len(idx) > max_windows:
        idx = idx[:max_windows]
    return idx
