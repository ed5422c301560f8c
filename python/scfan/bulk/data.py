"""Windows → model inputs: in-memory genome and tracks, per-epoch negative resampling, jitter, RC augmentation;
and the models' predictions for windows from those inputs (:func:`predict_windows`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from scfan.bulk.inputs import (
    FlatGenome,
    PackedCodes,
    RunLengthTrack,
    code_rows,
    codes_to_onehot,
    gather,
    load_genome_codes,
    read_track,
)
from scfan.errors import InputFileError, ScfanError
from scfan.genome import Genome, check_chrom_names
from scfan.inference import encode_inputs, predict_batches, reverse_complement_inputs
from scfan.logging_utils import progress_enabled
from scfan.tracks import TrackNorm

if TYPE_CHECKING:  # polars is needed only to read a windows table, not to train on arrays
    import polars as pl
    from torch import nn

    from scfan.bulk.model import ModelSpec

log = logging.getLogger(__name__)


@dataclass
class InputSource:
    """The genome (and optionally the two tracks) of one bulk line, held in memory as flat arrays."""

    layout: FlatGenome
    codes: np.ndarray | PackedCodes  # read rows with :meth:`code_rows`
    accessibility: np.ndarray | None = None  # already normalised
    mappability: np.ndarray | None = None
    track_norm: TrackNorm | None = None
    atac_path: str | None = None  # where ``accessibility`` came from, for error messages
    genome_sizes: dict[str, int] | None = None  # every chromosome of the FASTA (``layout`` may hold a subset)
    #: compact forms (``load(..., compact=True)``), in place of ``accessibility`` / ``mappability``: raw insertion
    #: counts (uint8 / uint16) normalised per batch, and uint8 codes into a float32 table of mappability values
    acc_counts: np.ndarray | None = None
    map_codes: np.ndarray | None = None
    map_table: np.ndarray | None = None
    #: ``load(..., packed=True)``: a piecewise-constant mappability track as runs, in place of ``map_codes``
    map_runs: RunLengthTrack | None = None

    @classmethod
    def load(cls, genome_fa: str | Path, atac: str | Path | None, mappability: str | Path | None,
             track_norm: TrackNorm | None = None, chroms: Sequence[str] | None = None,
             compact: bool = False, packed: bool = False) -> InputSource:
        """Read FASTA and bigWigs once. ``track_norm`` defaults to the ATAC track's own genome-wide mean.

        Parameters
        ----------
        genome_fa, atac, mappability : str or Path
            The FASTA and the two tracks (both or neither; a BAM for ``atac`` is turned into insertions).
        track_norm : TrackNorm, optional
            The model's normalisation; only compared with the track's own mean (which is the one applied).
        chroms : sequence of str, optional
            Keep only these chromosomes in memory (those scored or trained on); names not in the FASTA are
            skipped. The normalisation mean is still taken over the whole genome, and every chromosome of the
            tracks is still checked, so the values kept are those of a full load. ``None`` keeps all.
        compact : bool
            Hold a whole-number ATAC track as its raw counts (1 or 2 bytes a base, normalised batch by batch) and a
            mappability track of at most 256 distinct values as 1-byte codes, instead of 4-byte floats; batches are
            bitwise the same. Falls back to float32 for a track that does not fit. The arrays are then
            ``acc_counts`` / ``map_codes`` and ``accessibility`` / ``mappability`` are None: read rows with
            :meth:`accessibility_rows` and :meth:`mappability_rows`.
        packed : bool
            Also hold the DNA at 2 bits a base (:class:`~scfan.bulk.inputs.PackedCodes`, read with
            :meth:`code_rows`) and a mappability track with fewer runs of equal values than 1 in 12 bases as runs
            (:class:`~scfan.bulk.inputs.RunLengthTrack`, in ``map_runs``); batches are bitwise the same. For a genome
            whose 3 bytes a base matter (``bulk train``); decoding costs some speed per batch.
        """
        with Genome(genome_fa) as genome:
            sizes = dict(genome.sizes)
            wanted = None if chroms is None else {str(c) for c in chroms}
            keep = list(sizes) if wanted is None else [c for c in sizes if c in wanted]
            layout, codes = load_genome_codes(genome, keep, packed=packed)
        if atac is None and mappability is None:
            return cls(layout, codes, genome_sizes=sizes)
        if atac is None or mappability is None:
            raise ValueError("give both --atac and --mappability, or neither (sequence-only)")
        from scfan.tracks import bigwig_chroms

        others = {str(p): list(bigwig_chroms(p)) for p in (atac, mappability) if Path(p).suffix.lower() != ".bam"}
        check_chrom_names((str(genome_fa), sizes), others)
        acc, total = read_track(atac, layout, sizes, "counts" if compact else "float32")
        mean = float(total / max(int(sum(sizes.values())), 1))
        if mean <= 0:
            raise InputFileError(atac, "the ATAC track is all zero; expected Tn5 insertions per base")
        own = TrackNorm(mean_per_base=mean)
        if track_norm is not None and abs(track_norm.mean_per_base - mean) > 1e-3 * track_norm.mean_per_base:
            log.info("%s: mean insertions per base %.4g (model trained on %.4g); normalising by the track's own mean",
                     atac, mean, track_norm.mean_per_base)
        counts = None
        if acc.dtype == np.float32:
            own.apply_inplace(acc)  # no normalised copy beside the raw track
        else:
            counts, acc = acc, None
        mapp, _ = read_track(mappability, layout, sizes, "runs" if packed else "codebook" if compact else "float32")
        map_codes = map_table = map_runs = None
        if isinstance(mapp, RunLengthTrack):
            map_runs, mapp = mapp, None
        elif isinstance(mapp, tuple):
            (map_codes, map_table), mapp = mapp, None
        map_form = ("float32" if map_codes is None and map_runs is None else
                    f"{map_runs.n_runs} runs" if map_runs is not None else f"uint8 codes of {len(map_table)} values")
        log.info("tracks held as: ATAC %s, mappability %s (%.1f Mb)",
                 "normalised float32" if counts is None else f"{counts.dtype} counts", map_form, layout.total / 1e6)
        return cls(layout, codes, acc, mapp, own, str(atac), genome_sizes=sizes, acc_counts=counts,
                   map_codes=map_codes, map_table=map_table, map_runs=map_runs)

    @property
    def uses_tracks(self) -> bool:
        return self.accessibility is not None or self.acc_counts is not None

    def accessibility_rows(self, flat: np.ndarray, length: int) -> np.ndarray:
        """Normalised accessibility ``(N, length)`` float32 from flat starts, whichever form the track is held in."""
        if self.acc_counts is not None:
            from scfan.tracks import normalize_track_inplace

            return normalize_track_inplace(gather(self.acc_counts, flat, length).astype(np.float32),
                                           self.track_norm.mean_per_base)
        return gather(self.accessibility, flat, length)

    def code_rows(self, flat: np.ndarray, length: int) -> np.ndarray:
        """DNA codes ``(N, length)`` uint8 from flat starts, whichever form the genome is held in."""
        return code_rows(self.codes, flat, length)

    def mappability_rows(self, flat: np.ndarray, length: int) -> np.ndarray:
        """Mappability ``(N, length)`` float32 from flat starts, whichever form the track is held in."""
        if self.map_runs is not None:
            return self.map_runs.rows(flat, length)
        if self.map_codes is not None:
            return self.map_table[gather(self.map_codes, flat, length)]
        return gather(self.mappability, flat, length)

    def batch(self, chroms: np.ndarray, context_starts: np.ndarray, length: int,
              reverse: np.ndarray | None = None, keep: np.ndarray | None = None,
              rng: np.random.Generator | None = None) -> torch.Tensor:
        """Encoded inputs ``(N, C, length)`` for contexts starting at ``context_starts``; optional per-row RC.

        ``keep`` (one fraction in (0, 1] per row, with ``rng``) thins each row's accessibility to that fraction of its
        insertions (:func:`thin_accessibility`)."""
        flat = self.layout.flat_starts(chroms, context_starts)
        onehot = codes_to_onehot(self.code_rows(flat, length))
        acc = self.accessibility_rows(flat, length) if self.uses_tracks else None
        if keep is not None and acc is not None:
            if rng is None or self.track_norm is None:
                raise ValueError("thinning needs an rng and the track's normalisation")
            acc = thin_accessibility(acc, self.track_norm.mean_per_base, keep, rng)
        mapp = self.mappability_rows(flat, length) if self.uses_tracks else None
        x = encode_inputs(onehot, acc, mapp)
        if reverse is not None and reverse.any():
            r = torch.from_numpy(np.asarray(reverse, dtype=bool))
            x[r] = reverse_complement_inputs(x[r])
        return x


def thin_accessibility(acc: np.ndarray, mean_per_base: float, keep: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """Normalised accessibility rows (``log1p(x / mean)``) as if each row's library had kept only a ``keep[i]``
    share of its insertions: every insertion survives independently (binomial thinning of the counts), and the
    thinned counts are normalised by the thinned library's mean (``keep[i] × mean``), as a pooled neighbourhood's
    track is by its own (docs/single_cell.md). The expected normalised signal is unchanged; its noise grows as the
    depth falls, which is what a sparse neighbourhood looks like to a model trained on bulk."""
    keep = np.asarray(keep, dtype=np.float64)
    if keep.shape != (acc.shape[0],) or not np.all((keep > 0) & (keep <= 1)):
        raise ValueError("keep: one fraction in (0, 1] per row")
    counts = np.rint(np.expm1(acc.astype(np.float64)) * mean_per_base).astype(np.int64)
    thinned = rng.binomial(counts, keep[:, None])
    return np.log1p(thinned / (keep[:, None] * mean_per_base)).astype(np.float32)


def check_insertion_counts(src: InputSource, sample: int = 1_000_000) -> None:
    """Thinning draws from counts: refuse an ATAC track whose values are not whole numbers of insertions (a CPM or
    fold-change bigWig)."""
    if not src.uses_tracks or src.track_norm is None:
        raise ScfanError("thinning the ATAC track (--thin-min-keep) needs --atac: a sequence-only model has none")
    if src.accessibility is None:
        return  # held as raw counts: whole numbers by construction
    acc = src.accessibility
    nz = np.flatnonzero(acc)
    pick = nz[:: max(1, len(nz) // sample)]
    vals = np.expm1(acc[pick].astype(np.float64)) * src.track_norm.mean_per_base
    off = np.abs(vals - np.rint(vals)) > 1e-3 * np.maximum(1.0, np.abs(vals))
    if off.any():
        k = int(np.flatnonzero(off)[0])
        chrom, pos = src.layout.locate(int(pick[k]))
        raise InputFileError(src.atac_path or "the ATAC track",
                             f"value {vals[k]:g} is not a whole number; thinning the ATAC track (--thin-min-keep) "
                             "needs Tn5 insertion counts per base, not a scaled signal (give the BAM or a count "
                             "bigWig, or --thin-min-keep 1 to train without thinning)", record=f"{chrom}:{pos}")


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


def windows_arrays(df: pl.DataFrame, tf_names: list[str],
                   labels_dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``chroms``, ``starts`` (int64) and labels ``(N, n_tfs)`` (float32, or ``labels_dtype``) of a windows table.

    ``chroms`` is an object array whose items are one shared ``str`` per chromosome (the categories of the column,
    indexed by each window's code): 8 bytes a window, where a fixed-width numpy string array takes 4 bytes per
    character of the longest name (88 with GRCh38's ``chr1_KI270706v1_random``). It compares, sorts and indexes
    like the string array it replaces. Labels are filled one column at a time (no ``(N, n_tfs)`` temporary of
    another dtype); ``np.uint8`` keeps them at 1 byte a label, converted batch by batch by the training loop.
    """
    labels = np.empty((len(df), len(tf_names)), dtype=labels_dtype)
    for j, tf in enumerate(tf_names):
        labels[:, j] = df[tf].to_numpy()
    return chrom_array(df["chrom"]), df["start"].to_numpy().astype(np.int64), labels


def split_arrays(df: pl.DataFrame, tf_names: list[str], splits: Sequence[str],
                 labels_dtype: type = np.uint8) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`windows_arrays` of the rows of each split (in table order), without a filtered copy of the table; labels
    as ``uint8`` by default (1 byte a label where float32 takes 4)."""
    out = []
    for name in splits:
        rows = (df["split"] == name).arg_true().to_numpy().astype(np.int64)
        labels = np.empty((len(rows), len(tf_names)), dtype=labels_dtype)
        for j, tf in enumerate(tf_names):
            labels[:, j] = df[tf].to_numpy()[rows]
        out.append((chrom_array(df["chrom"].gather(rows)), df["start"].to_numpy()[rows].astype(np.int64), labels))
    return out


def read_split_arrays(path: str | Path, splits: Sequence[str], batch_rows: int = 1 << 18
                      ) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], list[str], dict]:
    """:func:`split_arrays` of :func:`~scfan.bulk.windows.read_windows` ``(path, splits)``, the names of the
    chromosomes of those rows and the table's metadata, without ever holding the table.

    The arrays are allocated once (from a count of the ``split`` column) and filled from one validated batch of
    ``batch_rows`` rows at a time, so the peak is the arrays plus one batch (issue 34: the whole table beside its
    arrays was ~1.1 GiB for 10M windows).
    """
    from scfan.bulk.windows import count_split_rows, iter_windows, windows_metadata

    meta = windows_metadata(path)
    tf_names = list(meta["tf_names"])
    sizes = count_split_rows(path, splits, batch_rows)
    out = [(np.empty(n, dtype=object), np.empty(n, dtype=np.int64), np.empty((n, len(tf_names)), dtype=np.uint8))
           for n in sizes]
    filled = [0] * len(splits)
    shared: dict[str, str] = {}  # one str object per chromosome over all batches
    for batch in iter_windows(path, splits, batch_rows):
        for k, name in enumerate(splits):
            rows = (batch["split"] == name).arg_true().to_numpy().astype(np.int64)
            chroms, starts, labels = out[k]
            lo, hi = filled[k], filled[k] + len(rows)
            if hi > len(starts):
                raise InputFileError(path, "changed while it was read (more rows than counted)")
            chroms[lo:hi] = chrom_array(batch["chrom"].gather(rows), shared)
            starts[lo:hi] = batch["start"].to_numpy()[rows]
            for j, tf in enumerate(tf_names):
                labels[lo:hi, j] = batch[tf].to_numpy()[rows]
            filled[k] = hi
    if filled != sizes:
        raise InputFileError(path, "changed while it was read (fewer rows than counted)")
    return out, list(shared), meta


def chrom_array(chrom: pl.Series, shared: dict[str, str] | None = None) -> np.ndarray:
    """A string column as an object array of shared ``str`` (one object per distinct name), see
    :func:`windows_arrays`; ``shared`` (name → object, filled as names are met) keeps one object per name over
    several calls."""
    import polars as pl

    names = chrom.unique(maintain_order=True)
    codes = chrom.replace_strict(names, pl.int_range(len(names), eager=True), return_dtype=pl.UInt32).to_numpy()
    table = np.empty(len(names), dtype=object)
    table[:] = names.to_list() if shared is None else [shared.setdefault(n, n) for n in names.to_list()]
    return table[np.asarray(codes, dtype=np.intp)]


def window_mean_accessibility(src: InputSource, chroms: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Mean normalised bulk accessibility over each labelled window (not its whole context)."""
    if not src.uses_tracks:
        raise ValueError("this input source has no accessibility track")
    flat = src.layout.flat_starts(chroms, starts)
    out = [src.accessibility_rows(flat[i : i + 8192], window).mean(axis=1) for i in range(0, len(flat), 8192)]
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
    # ``np.setdiff1d(neg_pool, hard, assume_unique=True)``, by a lookup table (the size of the index range) instead
    # of its sort of both arrays: the same windows in the same order, without ~4 int64 copies of the pool
    rest_pool = neg_pool[np.isin(neg_pool, hard, invert=True, kind="table")]
    n_rest = min(len(rest_pool), n_neg - n_hard)
    rest = rng.choice(rest_pool, size=n_rest, replace=False) if n_rest else np.zeros(0, dtype=np.int64)
    idx = np.concatenate([pos_idx, hard, rest]).astype(np.int64)
    rng.shuffle(idx)
    if max_windows is not None and len(idx) > max_windows:
        idx = idx[:max_windows]
    return idx


def predict_windows(model: nn.Module, spec: ModelSpec, src: InputSource, chroms: np.ndarray, starts: np.ndarray,
                    batch_size: int = 256, chunk: int = 8192) -> np.ndarray:
    """Model probabilities ``(N, n_tfs)`` for bulk windows, built chunk by chunk from the in-memory inputs."""
    cs = np.asarray(starts, dtype=np.int64) - (spec.context - spec.window) // 2
    out = []
    chunks = range(0, len(starts), chunk)
    if progress_enabled():
        from tqdm import tqdm

        chunks = tqdm(chunks, desc="predict", unit="chunk", leave=False)
    for i in chunks:
        x = src.batch(chroms[i : i + chunk], cs[i : i + chunk], spec.context)
        out.append(predict_batches(model, x, batch_size))
    return np.concatenate(out) if out else np.zeros((0, len(spec.tf_names)), np.float32)
