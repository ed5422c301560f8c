"""ATAC fragments from one accessibility model, for a deep bulk library and for single cells alike.

A fraction ``frip`` of a library's fragments come from open regulatory elements (chosen in proportion to
their accessibility in the library's context; nucleosome-free fragments centred on the element, or
mono-nucleosome fragments with one Tn5 cut in it); a small fraction pile up in blacklisted satellites
(an artefact of real assays); the rest fall uniformly on the genome. Fragments are thinned by
mappability, as aligners drop multi-mapping reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from scfan.intervals import merge_intervals
from scfan.simulate.genome_model import SimGenome

P_NFR_SIGNAL = 0.7
P_NFR_BACKGROUND, P_MONO_BACKGROUND = 0.5, 0.38
NFR_SPREAD_BP = 35
ARTIFACT_FRAC = 0.01


@dataclass(frozen=True)
class FragmentModel:
    """Genome-wide inputs of fragment sampling (global coordinates = chromosome offset + position)."""

    sizes: np.ndarray
    offsets: np.ndarray
    mappability: np.ndarray
    re_chrom: np.ndarray
    re_center: np.ndarray
    bl_chrom: np.ndarray
    bl_start: np.ndarray
    bl_end: np.ndarray

    @classmethod
    def build(cls, genome: SimGenome, re_chrom: np.ndarray, re_center: np.ndarray) -> FragmentModel:
        sizes = np.asarray(genome.sizes, dtype=np.int64)
        bl = np.array(genome.blacklist, dtype=np.int64).reshape(-1, 3)
        return cls(sizes=sizes, offsets=np.concatenate([[0], np.cumsum(sizes)[:-1]]),
                   mappability=np.concatenate(genome.mappability), re_chrom=re_chrom, re_center=re_center,
                   bl_chrom=bl[:, 0], bl_start=bl[:, 1], bl_end=bl[:, 2])


@dataclass
class Fragments:
    """Fragments as parallel arrays; ``unit`` is the library/cell index each fragment belongs to."""

    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray
    unit: np.ndarray

    def __len__(self) -> int:
        return int(self.chrom.size)

    @staticmethod
    def concat(parts: list[Fragments]) -> Fragments:
        return Fragments(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("chrom", "start", "end", "unit")))


def fragment_lengths(rng: np.random.Generator, n: int, p_nfr: float, p_mono: float) -> np.ndarray:
    """Nucleosome-free (< 147 bp, mode ~60 bp), mono- (~200 bp) and di-nucleosome (~380 bp) lengths."""
    u = rng.random(n)
    nfr = np.minimum(25 + rng.gamma(3.0, 12.0, n), 146)
    mono = np.clip(rng.normal(200, 18, n), 147, 260)
    di = np.clip(rng.normal(380, 30, n), 261, 600)
    return np.where(u < p_nfr, nfr, np.where(u < p_nfr + p_mono, mono, di)).astype(np.int64)


def simulate_fragments(rng: np.random.Generator, model: FragmentModel, weights: np.ndarray,
                       n_per_unit: np.ndarray, frip_per_unit: np.ndarray) -> Fragments:
    """Fragments of libraries (cells or a bulk sample) sharing one context's RE ``weights``.

    Parameters
    ----------
    weights
        Accessibility of every RE in the context (0 = closed); signal fragments are drawn in proportion.
    n_per_unit, frip_per_unit
        Fragments before mappability thinning, and the fraction from open REs, for each library.
    """
    n_per_unit = np.asarray(n_per_unit, dtype=np.int64)
    n_sig = rng.binomial(n_per_unit, np.clip(frip_per_unit, 0, 1))
    n_art = rng.binomial(n_per_unit - n_sig, ARTIFACT_FRAC)
    n_bg = n_per_unit - n_sig - n_art
    units = np.arange(n_per_unit.size)
    parts = [_signal(rng, model, weights, np.repeat(units, n_sig)),
             _background(rng, model, np.repeat(units, n_bg)),
             _artifact(rng, model, np.repeat(units, n_art))]
    return _clip(model, Fragments.concat(parts))


def _signal(rng, model: FragmentModel, weights: np.ndarray, unit: np.ndarray) -> Fragments:
    n = unit.size
    total = float(weights.sum())
    if n == 0 or total <= 0:
        return _background(rng, model, unit)
    re = rng.choice(weights.size, size=n, p=weights / total)
    nfr = rng.random(n) < P_NFR_SIGNAL
    length = fragment_lengths(rng, n, p_nfr=1.0, p_mono=0.0)
    length[~nfr] = fragment_lengths(rng, int((~nfr).sum()), p_nfr=0.0, p_mono=1.0)
    cut = model.re_center[re] + np.rint(rng.normal(0, NFR_SPREAD_BP, n)).astype(np.int64)
    # NFR fragments are centred on the element; a mono-nucleosome fragment has one cut in it
    left = rng.random(n) < 0.5
    start = np.where(nfr, cut - length // 2, np.where(left, cut - length, cut))
    frags = Fragments(chrom=model.re_chrom[re], start=start, end=start + length, unit=unit)
    return _thin(rng, model, frags)


def _background(rng, model: FragmentModel, unit: np.ndarray) -> Fragments:
    n = unit.size
    gpos = rng.integers(0, int(model.sizes.sum()), n)
    chrom = np.searchsorted(model.offsets, gpos, side="right") - 1
    length = fragment_lengths(rng, n, P_NFR_BACKGROUND, P_MONO_BACKGROUND)
    start = gpos - model.offsets[chrom] - length // 2
    return _thin(rng, model, Fragments(chrom=chrom, start=start, end=start + length, unit=unit))


def _artifact(rng, model: FragmentModel, unit: np.ndarray) -> Fragments:
    n = unit.size
    if n == 0 or model.bl_chrom.size == 0:
        return Fragments(*(np.zeros(0, np.int64) for _ in range(3)), unit=unit[:0])
    widths = model.bl_end - model.bl_start
    which = rng.choice(widths.size, size=n, p=widths / widths.sum())
    length = fragment_lengths(rng, n, P_NFR_BACKGROUND, P_MONO_BACKGROUND)
    start = model.bl_start[which] + (rng.random(n) * widths[which]).astype(np.int64)
    return Fragments(chrom=model.bl_chrom[which], start=start, end=start + length, unit=unit)


def _thin(rng, model: FragmentModel, f: Fragments) -> Fragments:
    mid = np.clip((f.start + f.end) // 2, 0, model.sizes[f.chrom] - 1)
    keep = rng.random(f.chrom.size) < model.mappability[model.offsets[f.chrom] + mid]
    return Fragments(f.chrom[keep], f.start[keep], f.end[keep], f.unit[keep])


def _clip(model: FragmentModel, f: Fragments) -> Fragments:
    ok = (f.start >= 0) & (f.end <= model.sizes[f.chrom]) & (f.end > f.start)
    return Fragments(f.chrom[ok], f.start[ok], f.end[ok], f.unit[ok])


def insertion_counts(frags: Fragments, sizes: np.ndarray) -> list[np.ndarray]:
    """Tn5 insertions per base (both fragment ends: ``start`` and ``end - 1``), one array per chromosome."""
    out = []
    for ci, size in enumerate(sizes):
        sel = frags.chrom == ci
        pos = np.concatenate([frags.start[sel], frags.end[sel] - 1])
        out.append(np.bincount(pos, minlength=int(size)).astype(np.float32))
    return out


def call_peaks(insertions: list[np.ndarray], genome: SimGenome, width: int = 500, step: int = 50,
               pvalue: float = 1e-6, local_bp: int = 10_000) -> list[tuple[int, int, int]]:
    """Fixed-width peaks on pooled insertions: windows beating a Poisson test against the larger of the
    genome-wide and the local (``local_bp``) rate; one peak at the summit window of each significant run,
    blacklist overlaps dropped, overlaps merged. Returns ``(chrom_index, start, end)`` in genome order.
    """
    total = sum(float(x.sum()) for x in insertions)
    mappable = sum(float((m > 0.5).sum()) for m in genome.mappability)
    lam_genome = total / max(mappable, 1.0) * width
    peaks: list[tuple[int, int, int]] = []
    for ci, ins in enumerate(insertions):
        size = ins.size
        cs = np.concatenate([[0.0], np.cumsum(ins, dtype=np.float64)])
        starts = np.arange(0, size - width + 1, step)
        counts = cs[starts + width] - cs[starts]
        lo = np.clip(starts + width // 2 - local_bp // 2, 0, size)
        hi = np.clip(starts + width // 2 + local_bp // 2, 0, size)
        lam = np.maximum(lam_genome, (cs[hi] - cs[lo]) / np.maximum(hi - lo, 1) * width)
        sig = counts >= stats.poisson.isf(pvalue, lam)
        if not sig.any():
            continue
        idx = np.flatnonzero(sig)
        run_id = np.concatenate([[0], np.cumsum(np.diff(idx) > 1)])
        s_list, e_list = [], []
        for r in range(int(run_id[-1]) + 1):
            members = idx[run_id == r]
            best = members[np.argmax(counts[members])]
            s_list.append(starts[best])
            e_list.append(starts[best] + width)
        s, e = merge_intervals(np.array(s_list), np.array(e_list))
        keep = np.ones(s.size, dtype=bool)
        for bc, bs, be in genome.blacklist:
            if bc == ci:
                keep &= (e <= bs) | (s >= be)
        peaks += [(ci, int(a), int(b)) for a, b in zip(s[keep], e[keep], strict=True)]
    return peaks
