"""Genome and track arrays held in memory: every input file is read once per process, batches are gathered by index.

The genome is stored as one flat ``uint8`` code array (A, C, G, T = 0..3, anything else = 4) with per-chromosome
offsets; tracks (bulk ATAC insertions per base, mappability) as flat ``float32`` arrays with the same offsets,
so a batch of windows from any chromosomes is one fancy-indexing operation.
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
    """``(N, L)`` codes → ``(N, 4, L)`` float32 one-hot (the layout of :func:`scfan.genome.one_hot`)."""
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


def load_genome_codes(genome: Genome, chroms: Sequence[str] | None = None) -> tuple[FlatGenome, np.ndarray]:
    """Read the chosen chromosomes of an opened genome once into a flat code array."""
    chroms = list(genome.sizes) if chroms is None else list(chroms)
    layout = FlatGenome.from_sizes({c: genome.sizes[c] for c in chroms})
    codes = np.empty(layout.total, dtype=np.uint8)
    for chrom in chroms:
        o = layout.offsets[chrom]
        codes[o : o + layout.sizes[chrom]] = encode_codes(genome.fetch(chrom, 0, layout.sizes[chrom]))
    log.info("%s: %d chromosome(s), %.1f Mb loaded", genome.path, len(chroms), layout.total / 1e6)
    return layout, codes


def load_track(path: str | Path, layout: FlatGenome) -> np.ndarray:
    """A bigWig (or a BAM, turned into Tn5 insertions per base) as a flat float32 array on ``layout``.

    Bases without data are 0. A stored NaN or infinite value is an error naming the record.
    """
    p = Path(path)
    if p.suffix.lower() == ".bam":
        return bam_insertions(p, layout)
    bw = open_bigwig(p)
    out = np.zeros(layout.total, dtype=np.float32)
    try:
        bw_sizes = bw.chroms()
        for chrom, size in layout.sizes.items():
            if chrom not in bw_sizes:
                continue  # a chromosome with no signal at all
            ivals = bw.intervals(chrom, 0, min(size, bw_sizes[chrom]))
            if not ivals:
                continue
            arr = np.asarray(ivals, dtype=np.float64)
            vals = arr[:, 2]
            bad = ~np.isfinite(vals)
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                raise InputFileError(p, f"value {vals[k]} is not a finite number; expected a numeric signal "
                                     "(replace NaN by 0 or drop those intervals)",
                                     record=f"{chrom}:{int(arr[k, 0])}-{int(arr[k, 1])}")
            neg = vals < 0
            if neg.any():
                k = int(np.flatnonzero(neg)[0])
                raise InputFileError(p, f"value {vals[k]:g} is negative; expected a signal >= 0 (Tn5 insertions "
                                     "per base, or mappability in [0, 1])",
                                     record=f"{chrom}:{int(arr[k, 0])}-{int(arr[k, 1])}")
            starts, ends = arr[:, 0].astype(np.int64), np.minimum(arr[:, 1].astype(np.int64), size)
            o = layout.offsets[chrom]
            if np.all(ends - starts == 1):
                out[o + starts] = vals
            else:
                for s, e, v in zip(starts, ends, vals, strict=True):
                    out[o + s : o + e] = v
    finally:
        bw.close()
    return out


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
