"""Genome and track arrays held in memory: every input file is read once per process, batches are gathered by index.

The genome is stored as one flat ``uint8`` code array (A, C, G, T = 0..3, anything else = 4) with per-chromosome
offsets; tracks (bulk ATAC insertions per base, mappability) as flat arrays with the same offsets (``float32``, or
the exact compact forms of :class:`TrackStore`), so a batch of windows from any chromosomes is one fancy-indexing
operation. Where memory matters more (``bulk train`` on a large genome), the genome is held at 2 bits a base
(:class:`PackedCodes`) and mappability as runs (:class:`RunLengthTrack`), decoded batch by batch to the same
values. Only the chromosomes a command scores or trains on need be held; the genome-wide sums that scale a track
are taken while reading, one chunk at a time.

Why this module is long: it holds every reader of the models' inputs (genome codes, mappability, ATAC
coverage from bigWig or BAM) with the compact in-memory forms they share; each reader is its own small function.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scfan.errors import InputFileError
from scfan.genome import Genome
from scfan.tn5 import read_insertion
from scfan.tracks import open_bigwig

log = logging.getLogger(__name__)

_CODE_LUT = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate("ACGT"):
    _CODE_LUT[ord(_b)] = _i
    _CODE_LUT[ord(_b.lower())] = _i
# Row k is the one-hot column of code k; code 4 (N) is all zero.
_ONEHOT_TABLE = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), dtype=np.float32)])


def encode_codes(seq: str | bytes) -> np.ndarray:
    """DNA text → ``uint8`` codes (A, C, G, T = 0..3; N and anything else = 4)."""
    raw = np.frombuffer(seq.encode() if isinstance(seq, str) else seq, dtype=np.uint8)
    return _CODE_LUT[raw]


def codes_to_onehot(codes: np.ndarray) -> np.ndarray:
    """``(N, L)`` codes → ``(N, 4, L)`` float32 one-hot (rows A, C, G, T; N and other codes all zero)."""
    return np.ascontiguousarray(_ONEHOT_TABLE[codes].transpose(0, 2, 1))


@dataclass
class FlatGenome:
    """Chromosomes concatenated into flat arrays; ``offsets[chrom]`` is where a chromosome begins."""

    sizes: dict[str, int]
    offsets: dict[str, int]

    @classmethod
    def from_sizes(cls, sizes: Mapping[str, int]) -> FlatGenome:
        offsets, pos = {}, 0
        for chrom, size in sizes.items():
            offsets[chrom] = pos
            pos += int(size)
        return cls(dict(sizes), offsets)

    @property
    def total(self) -> int:
        return int(sum(self.sizes.values()))

    def flat_starts(self, chroms: Sequence[str] | np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Flat positions of ``starts`` on ``chroms`` (vectorised)."""
        chroms = np.asarray(chroms)
        out = np.asarray(starts, dtype=np.int64).copy()
        for chrom in np.unique(chroms):
            out[chroms == chrom] += self.offsets[str(chrom)]
        return out

    def locate(self, flat: int) -> tuple[str, int]:
        """The (chromosome, 0-based position) of a flat position."""
        for chrom, off in self.offsets.items():
            if off <= flat < off + self.sizes[chrom]:
                return chrom, flat - off
        raise IndexError(f"flat position {flat} is outside the genome ({self.total} bp)")


# Row b: the four 2-bit codes of byte b, lowest bits first (the order :meth:`PackedCodes.put` packs them in).
_UNPACK = ((np.arange(256, dtype=np.uint16)[:, None] >> (2 * np.arange(4, dtype=np.uint16))[None, :]) & 3).astype(
    np.uint8)


class PackedCodes:
    """DNA codes at 2 bits a base (4 bases a byte), for a genome too large to hold at 1 byte a base.

    A, C, G, T (0..3) are packed in place; every other base (code 4, N) is kept as sorted, non-overlapping runs of
    flat positions ``[n_starts[i], n_ends[i])`` (hg38 has a few hundred), so :meth:`rows` gives back the very
    ``uint8`` codes of :func:`load_genome_codes`. Filled in order by :meth:`put`, chunk by chunk.
    """

    def __init__(self, n: int):
        self.n = int(n)
        self.packed = np.zeros((self.n + 3) // 4, dtype=np.uint8)
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []
        self.n_starts = self.n_ends = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return self.n

    @property
    def nbytes(self) -> int:
        return self.packed.nbytes + self.n_starts.nbytes + self.n_ends.nbytes

    def put(self, offset: int, codes: np.ndarray) -> None:
        """Store ``uint8`` codes (0..4) at flat ``offset``; each position is put once, in increasing order."""
        codes = np.asarray(codes, dtype=np.uint8)
        is_n = codes > 3
        if is_n.any():
            edges = np.flatnonzero(np.diff(np.concatenate([[False], is_n, [False]]).astype(np.int8)))
            self._runs.append((offset + edges[0::2], offset + edges[1::2]))
            self.n_starts = np.concatenate([r[0] for r in self._runs]).astype(np.int64)
            self.n_ends = np.concatenate([r[1] for r in self._runs]).astype(np.int64)
        bases = codes & 3  # N is stored as 0 and restored from its run
        head = min(len(bases), -offset % 4)  # bases before the first whole byte
        for i in range(head):
            p = offset + i
            self.packed[p >> 2] |= bases[i] << (2 * (p & 3))
        body = bases[head:]
        first = (offset + head) >> 2
        whole = len(body) // 4
        if whole:
            b = body[: 4 * whole].reshape(whole, 4)
            self.packed[first : first + whole] = b[:, 0] | (b[:, 1] << 2) | (b[:, 2] << 4) | (b[:, 3] << 6)
        for i in range(4 * whole, len(body)):  # a byte shared with the next chunk
            self.packed[first + whole] |= body[i] << (2 * i - 8 * whole)

    def rows(self, flat_starts: np.ndarray, length: int) -> np.ndarray:
        """Codes ``(N, length)`` of the rows starting at ``flat_starts``, as :func:`gather` of the unpacked array."""
        starts = np.asarray(flat_starts, dtype=np.int64)
        # the bytes spanning each row, unpacked 4 bases a byte by table, then each row's bases from its offset
        n_bytes = (length + 3) // 4 + 1
        first = starts >> 2
        byte_idx = np.minimum(first[:, None] + np.arange(n_bytes, dtype=np.int64)[None, :], len(self.packed) - 1)
        bases = _UNPACK[self.packed[byte_idx]].reshape(len(starts), 4 * n_bytes)
        out = np.empty((len(starts), length), dtype=np.uint8)
        offset = starts & 3
        for o in range(4):
            rows = np.flatnonzero(offset == o)
            out[rows] = bases[rows, o : o + length]
        if len(self.n_starts) and len(starts):
            # rows overlapping an N run: a run ending after the row's start and beginning before its end
            lo = np.searchsorted(self.n_ends, starts, side="right")
            hi = np.searchsorted(self.n_starts, starts + length, side="left")
            hit = np.flatnonzero(hi > lo)
            if len(hit):
                sub = starts[hit, None] + np.arange(length, dtype=np.int64)[None, :]
                k = np.searchsorted(self.n_starts, sub, side="right") - 1
                in_n = (k >= 0) & (sub < self.n_ends[np.maximum(k, 0)])
                out[hit] = np.where(in_n, np.uint8(4), out[hit])
        return out


class RunLengthTrack:
    """A piecewise-constant flat track (mappability) as runs: ``values[k]`` from flat ``starts[k]`` to the next start.

    12 bytes a run instead of 1 to 4 bytes a base; :meth:`rows` gives back the very float32 values put in. Filled in
    order by :meth:`put`; bases never put are 0.
    """

    def __init__(self, n: int):
        self.n = int(n)
        self._starts: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
        self._bits: list[np.ndarray] = [np.zeros(1, dtype=np.uint32)]  # float32 bit patterns: +0.0 first
        self._last = np.uint32(0)
        self._end = 0
        self.n_runs = 1
        self.starts = np.zeros(0, dtype=np.int64)
        self.values = np.zeros(0, dtype=np.float32)

    @property
    def nbytes(self) -> int:
        return 12 * self.n_runs

    @property
    def filled(self) -> int:
        """Where the last :meth:`put` ended."""
        return self._end

    def put(self, offset: int, vals: np.ndarray) -> None:
        """Store float32 ``vals`` at flat ``offset`` (>= the end of the previous put; the gap is 0)."""
        bits = np.asarray(vals, dtype=np.float32).view(np.uint32)
        if offset > self._end and self._last != 0:
            self._add(np.array([self._end], dtype=np.int64), np.zeros(1, dtype=np.uint32))
        if not len(bits):
            return
        change = np.flatnonzero(bits[1:] != bits[:-1]) + 1
        if bits[0] != (self._last if offset == self._end else 0):
            change = np.concatenate([[0], change])
        self._add(offset + change.astype(np.int64), bits[change])
        self._last, self._end = bits[-1], offset + len(bits)

    def _add(self, starts: np.ndarray, bits: np.ndarray) -> None:
        if len(starts):
            self._starts.append(starts)
            self._bits.append(bits)
            self.n_runs += len(starts)
            self._last = bits[-1]

    def finish(self) -> RunLengthTrack:
        """Join the runs put so far (call once every value is in)."""
        if self._end < self.n and self._last != 0:
            self._add(np.array([self._end], dtype=np.int64), np.zeros(1, dtype=np.uint32))
        self._end = self.n
        self.starts = np.concatenate(self._starts)
        self.values = np.concatenate(self._bits).view(np.float32)
        self._starts, self._bits = [self.starts], [self.values.view(np.uint32)]
        return self

    def rows(self, flat_starts: np.ndarray, length: int) -> np.ndarray:
        """float32 ``(N, length)`` of the rows starting at ``flat_starts``, as :func:`gather` of the dense track."""
        starts = np.asarray(flat_starts, dtype=np.int64)
        first = np.searchsorted(self.starts, starts, side="right") - 1
        last = np.searchsorted(self.starts, starts + (length - 1), side="right") - 1
        out = np.empty((len(starts), length), dtype=np.float32)
        out[:] = self.values[first][:, None]  # most rows lie inside one run
        split = np.flatnonzero(last > first)
        if len(split):
            idx = starts[split, None] + np.arange(length, dtype=np.int64)[None, :]
            out[split] = self.values[np.searchsorted(self.starts, idx, side="right") - 1]
        return out

    def dense(self) -> np.ndarray:
        """The whole track as one float32 array."""
        return np.repeat(self.values, np.diff(np.append(self.starts, self.n)))


# Bases of FASTA text decoded per call (the text and its bytes are ~2 bytes a base beside the codes).
_FASTA_CHUNK = 1 << 24


def load_genome_codes(genome: Genome, chroms: Sequence[str] | None = None,
                      packed: bool = False) -> tuple[FlatGenome, np.ndarray | PackedCodes]:
    """Read the chosen chromosomes of an opened genome once into a flat code array (``packed``: a
    :class:`PackedCodes`, 2 bits a base)."""
    chroms = list(genome.sizes) if chroms is None else list(chroms)
    layout = FlatGenome.from_sizes({c: genome.sizes[c] for c in chroms})
    codes = PackedCodes(layout.total) if packed else np.empty(layout.total, dtype=np.uint8)
    for chrom in chroms:
        o, n = layout.offsets[chrom], layout.sizes[chrom]
        for s in range(0, n, _FASTA_CHUNK):  # bounded text temporaries, whatever the chromosome's length
            e = min(n, s + _FASTA_CHUNK)
            if packed:
                codes.put(o + s, encode_codes(genome.fetch(chrom, s, e)))
            else:
                codes[o + s : o + e] = encode_codes(genome.fetch(chrom, s, e))
    log.info("%s: %d chromosome(s), %.1f Mb loaded", genome.path, len(chroms), layout.total / 1e6)
    return layout, codes


def code_rows(codes: np.ndarray | PackedCodes, flat_starts: np.ndarray, length: int) -> np.ndarray:
    """``uint8`` codes ``(N, length)`` from a flat code array or a :class:`PackedCodes`."""
    if isinstance(codes, PackedCodes):
        return codes.rows(flat_starts, length)
    return gather(codes, flat_starts, length)


# Bases read from a bigWig per call: bounds the temporary arrays of a chromosome that is only summed, not kept.
_BIGWIG_CHUNK = 1 << 24


def load_track(path: str | Path, layout: FlatGenome) -> np.ndarray:
    """A bigWig (or a BAM, turned into Tn5 insertions per base) as a flat float32 array on ``layout``.

    Bases without data are 0. A stored NaN or infinite value is an error naming the record.
    """
    return read_track(path, layout, layout.sizes)[0]


def read_track(path: str | Path, layout: FlatGenome, genome_sizes: Mapping[str, int],
               store: str = "float32") -> tuple[np.ndarray | tuple[np.ndarray, np.ndarray], float]:
    """A track on the chromosomes of ``layout``, and its sum over every chromosome of ``genome_sizes``.

    Every chromosome of ``genome_sizes`` is read and checked (a NaN, infinite or negative value is an error naming
    the record, whichever chromosomes are kept), one bounded chunk at a time, but only those of ``layout`` are kept,
    so the genome-wide mean per base of :class:`scfan.tracks.TrackNorm` needs no array the length of the genome.
    A bigWig is read with ``pyBigWig``'s numpy arrays (no Python object per interval).

    Parameters
    ----------
    path : str or Path
        bigWig, or ATAC BAM (:func:`bam_insertions`).
    layout : FlatGenome
        The chromosomes to keep, a subset of ``genome_sizes``.
    genome_sizes : Mapping[str, int]
        Every chromosome of the genome, in FASTA order.
    store : {"float32", "counts", "codebook", "runs"}
        How the kept values are held (each exact, see :class:`TrackStore`): ``counts`` as ``uint8`` / ``uint16``
        while every value is a whole number that fits, ``codebook`` as ``uint8`` codes into a table of at most 256
        distinct values; either falls back to float32 as soon as a value does not fit. ``runs`` (bigWig only): a
        :class:`RunLengthTrack`, 12 bytes a run of equal values, while that is less than 1 byte a base; then as
        ``codebook``.

    Returns
    -------
    tuple
        The track on ``layout`` (0 where there is no data: a flat array, ``(codes, table)`` for a codebook, or a
        :class:`RunLengthTrack`) and
        the float64 sum of the track over ``genome_sizes``: the sum of each chromosome's float32 values, which for
        insertion counts is exactly the sum over one genome-wide array.
    """
    p = Path(path)
    if p.suffix.lower() == ".bam":
        whole = FlatGenome.from_sizes(genome_sizes)
        full = bam_insertions(p, whole)
        total = float(np.sum(full, dtype=np.float64))
        if store == "float32" and list(layout.sizes) == list(whole.sizes):
            return full, total
        kept = TrackStore(layout.total, "codebook" if store == "runs" else store)
        for chrom, size in layout.sizes.items():
            w = whole.offsets[chrom]
            kept.put(layout.offsets[chrom], full[w : w + size])
        return kept.result(), total
    bw = open_bigwig(p)
    out = RunLengthTrack(layout.total) if store == "runs" else TrackStore(layout.total, store)
    total = 0.0
    try:
        bw_sizes = bw.chroms()
        for chrom, size in genome_sizes.items():
            if chrom not in bw_sizes:
                continue  # a chromosome with no signal at all
            n = min(int(size), int(bw_sizes[chrom]))
            kept = chrom in layout.offsets
            for s in range(0, n, _BIGWIG_CHUNK):
                e = min(n, s + _BIGWIG_CHUNK)
                vals = _bigwig_values(bw, p, chrom, s, e, n)
                total += float(np.sum(vals, dtype=np.float64))
                if kept:
                    out.put(layout.offsets[chrom] + s, vals)
                    if isinstance(out, RunLengthTrack) and out.nbytes > layout.total:
                        out = _runs_to_codebook(out)  # too many runs: 1 byte a base is less
    finally:
        bw.close()
    return (out.finish() if isinstance(out, RunLengthTrack) else out.result()), total


def _runs_to_codebook(runs: RunLengthTrack, chunk: int = 1 << 22) -> TrackStore:
    """The values put into ``runs`` so far, moved into a ``codebook`` :class:`TrackStore` (which may itself turn
    into float32), to go on filling that instead."""
    end = runs.filled
    runs.finish()
    out = TrackStore(runs.n, "codebook")
    for s in range(0, end, chunk):
        out.put(s, runs.rows(np.array([s]), min(chunk, end - s))[0])
    log.info("a track of more than %d runs is held as 1-byte codes instead", runs.n_runs)
    return out


class TrackStore:
    """A flat track filled chunk by chunk, held in the smallest exact form its values allow so far.

    ``float32``: as read. ``counts``: ``uint8``, widened to ``uint16`` when a count exceeds 255; a value that is not
    a whole number (or is ``-0.0``, or exceeds 65535) turns the store into float32. ``codebook``: ``uint8`` codes into
    a table of the distinct float32 bit patterns met (insertion order, so earlier codes stay valid); a 257th value
    turns it into float32. Every form gives back the very float32 values put in (``float32(count)`` is exact below
    2**24, a code looks up the same bits); each widening copies the array once.
    """

    def __init__(self, n: int, store: str = "float32"):
        if store not in ("float32", "counts", "codebook"):
            raise ValueError(f"store: float32, counts or codebook, not {store!r}")
        self.mode = store
        self.out = np.zeros(n, dtype=np.float32 if store == "float32" else np.uint8)
        self.bits = np.zeros(1, dtype=np.uint32)  # codebook: code 0 is +0.0, the value of bases without data

    def _to_float32(self) -> None:
        self.out = self.result_float32()
        self.mode = "float32"

    def result_float32(self) -> np.ndarray:
        if self.mode == "codebook":
            return self.bits.view(np.float32)[self.out]
        return self.out.astype(np.float32, copy=False)

    def put(self, offset: int, vals: np.ndarray) -> None:
        """Store float32 ``vals`` (finite, >= 0) at ``offset``."""
        vals = np.asarray(vals, dtype=np.float32)
        if self.mode == "counts":
            whole = not np.signbit(vals).any() and np.array_equal(vals, np.floor(vals))
            top = float(vals.max()) if len(vals) else 0.0
            if not whole or top > np.iinfo(np.uint16).max:
                self._to_float32()
            elif top > np.iinfo(self.out.dtype).max:
                self.out = self.out.astype(np.uint16)
        elif self.mode == "codebook":
            bits = vals.view(np.uint32)
            new = np.setdiff1d(np.unique(bits), self.bits)
            if len(self.bits) + len(new) > 256:
                self._to_float32()
            else:
                self.bits = np.concatenate([self.bits, new])
                order = np.argsort(self.bits)
                self.out[offset : offset + len(vals)] = order[np.searchsorted(self.bits[order], bits)]
                return
        self.out[offset : offset + len(vals)] = vals

    def result(self) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The flat array, or ``(codes, float32 table)`` for a codebook."""
        if self.mode == "codebook":
            return self.out, self.bits.view(np.float32).copy()
        return self.out


def _bigwig_values(bw, path: Path, chrom: str, start: int, end: int, n: int) -> np.ndarray:
    """float32 values of ``[start, end)`` (0 without data), after checking that every stored value there is finite
    and >= 0; on a bad value the whole chromosome ``[0, n)`` is scanned for the first one, to name it."""
    vals = bw.values(chrom, start, end, numpy=True)
    missing = np.isnan(vals)
    # bases with data, stored NaNs included; values() gives NaN for those and for bases without data alike
    covered = int(round(bw.stats(chrom, start, end, type="coverage", exact=True)[0] * (end - start)))
    if end - start - int(np.count_nonzero(missing)) != covered or np.isinf(vals).any() or (vals < 0).any():
        _raise_first_bad_interval(bw, path, chrom, n)
    vals[missing] = 0.0
    return vals.astype(np.float32, copy=False)


def _raise_first_bad_interval(bw, path: Path, chrom: str, n: int) -> None:
    """Name the first non-finite interval of ``chrom`` (else the first negative one) in an :class:`InputFileError`."""
    arr = np.asarray(bw.intervals(chrom, 0, n) or np.zeros((0, 3)), dtype=np.float64)
    vals = arr[:, 2]
    bad = ~np.isfinite(vals)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InputFileError(path, f"value {vals[k]} is not a finite number; expected a numeric signal "
                             "(replace NaN by 0 or drop those intervals)",
                             record=f"{chrom}:{int(arr[k, 0])}-{int(arr[k, 1])}")
    neg = vals < 0
    if neg.any():
        k = int(np.flatnonzero(neg)[0])
        raise InputFileError(path, f"value {vals[k]:g} is negative; expected a signal >= 0 (Tn5 insertions "
                             "per base, or mappability in [0, 1])",
                             record=f"{chrom}:{int(arr[k, 0])}-{int(arr[k, 1])}")
    raise InputFileError(path, "values and coverage disagree; the bigWig may be damaged", record=chrom)


def bam_insertions(path: Path, layout: FlatGenome, min_mapq: int = 30) -> np.ndarray:
    """Tn5 insertion counts per base from an ATAC BAM (:func:`scfan.tn5.read_insertion`: +4 / −5 from the
    5' ends, the convention of fragment files)."""
    import pysam

    out = np.zeros(layout.total, dtype=np.float32)
    try:
        bam = pysam.AlignmentFile(str(path), "rb")
    except (ValueError, OSError) as exc:
        raise InputFileError(path, f"cannot open as BAM ({exc})") from exc
    with bam:
        for chrom, size in layout.sizes.items():
            if chrom not in bam.references:
                continue
            pos = []
            for read in bam.fetch(chrom) if bam.has_index() else (r for r in bam if r.reference_name == chrom):
                if read.is_unmapped or read.is_secondary or read.is_supplementary or read.is_duplicate:
                    continue
                if read.mapping_quality < min_mapq:
                    continue
                pos.append(read_insertion(read.reference_start, read.reference_end, read.is_reverse))
            p = np.asarray(pos, dtype=np.int64)
            p = p[(p >= 0) & (p < size)]
            np.add.at(out, layout.offsets[chrom] + p, 1.0)
    return out


def mean_per_base(track: np.ndarray, layout: FlatGenome) -> float:
    """Genome-wide mean of a flat track (the scale used by :class:`scfan.tracks.TrackNorm`)."""
    m = float(np.sum(track, dtype=np.float64) / max(layout.total, 1))
    return m


def gather(flat: np.ndarray, flat_starts: np.ndarray, length: int) -> np.ndarray:
    """Rows ``flat[s : s + length]`` for every start (vectorised)."""
    idx = np.asarray(flat_starts, dtype=np.int64)[:, None] + np.arange(length, dtype=np.int64)[None, :]
    return flat[idx]
