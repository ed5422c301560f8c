"""Single cells: barcodes, cell types, depths and quality, and their fragments (one accessibility model per type)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scfan.simulate.config import SimulationConfig
from scfan.simulate.reads import FragmentModel, Fragments, simulate_fragments
from scfan.simulate.regulatory import Contexts, Regulome

LOW_QUALITY_FRIP = 0.05
FRIP_CONCENTRATION = 40.0
_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


@dataclass(frozen=True)
class Cells:
    """One row per barcode: sample index, barcode, type index, good/low quality and target depth."""

    sample: np.ndarray
    barcode: list[str]
    cell_type: np.ndarray
    good: np.ndarray
    depth: np.ndarray
    frip: np.ndarray


def random_barcodes(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct 10x-style barcodes ``ACGT…(16)-1``."""
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        codes = rng.integers(0, 4, (n - len(out), 16))
        for row in _BASES[codes]:
            bc = row.tobytes().decode() + "-1"
            if bc not in seen:
                seen.add(bc)
                out.append(bc)
    return out


def make_cells(rng: np.random.Generator, cfg: SimulationConfig) -> Cells:
    """Assign cells to samples (equal split) and types (uneven proportions), draw depth, FRiP and quality.

    Good cells have log-normal depth around ``median_fragments`` and FRiP ~ Beta around ``frip``
    (lowered by noise); low-quality barcodes have few fragments, mostly outside open regions.
    """
    n = cfg.n_cells
    sample = np.sort(np.arange(n) % cfg.n_samples)
    props = rng.dirichlet(np.full(cfg.n_types, 4.0)) * 0.7 + 0.3 / cfg.n_types
    cell_type = np.empty(n, dtype=np.int64)
    for s in range(cfg.n_samples):
        idx = np.flatnonzero(sample == s)
        cell_type[idx] = rng.permutation(np.arange(idx.size) % cfg.n_types if idx.size < 2 * cfg.n_types
                                         else rng.choice(cfg.n_types, size=idx.size, p=props))
        # every sample has every type at least once
        cell_type[idx[: cfg.n_types]] = np.arange(cfg.n_types)
    good = rng.random(n) >= cfg.low_quality_frac
    depth = np.where(good, rng.lognormal(np.log(cfg.median_fragments), cfg.depth_sigma, n),
                     rng.lognormal(np.log(cfg.low_quality_median_fragments), 0.5, n))
    frip_mean = np.clip(cfg.frip * (1 - 0.15 * cfg.noise), 0.02, 0.98)
    frip = np.where(good, rng.beta(frip_mean * FRIP_CONCENTRATION, (1 - frip_mean) * FRIP_CONCENTRATION, n),
                    LOW_QUALITY_FRIP)
    barcodes: list[str] = []
    for s in range(cfg.n_samples):
        barcodes += random_barcodes(rng, int((sample == s).sum()))
    return Cells(sample=sample, barcode=barcodes, cell_type=cell_type, good=good,
                 depth=np.maximum(depth, 10).astype(np.int64), frip=frip)


def batch_factors(rng: np.random.Generator, cfg: SimulationConfig, n_re: int) -> np.ndarray | None:
    """``(n_samples, n_re)`` lognormal(0, ``batch_sigma``) accessibility factors of each sample; ``None`` without a
    batch effect (no random draws, so the other outputs do not change)."""
    if cfg.batch_sigma <= 0:
        return None
    return rng.lognormal(0.0, cfg.batch_sigma, (cfg.n_samples, n_re))


def sample_fragments(rng: np.random.Generator, cfg: SimulationConfig, cells: Cells, sample: int,
                     model: FragmentModel, reg: Regulome, ctx: Contexts,
                     batch: np.ndarray | None = None) -> tuple[Fragments, np.ndarray]:
    """Fragments of every barcode of ``sample`` (``unit`` = cell row), sorted and de-duplicated.

    ``batch``: the :func:`batch_factors` of every sample (or ``None``), multiplying each type's accessibility.
    Returns the fragments and the duplicate count of each (PCR duplicates: ``1 + Poisson(duplicate_rate)``).
    """
    parts = []
    for k in range(cfg.n_types):
        rows = np.flatnonzero((cells.sample == sample) & (cells.cell_type == k))
        if rows.size == 0:
            continue
        weights = reg.re_access[:, ctx.type_index(k)]
        if batch is not None:
            weights = weights * batch[sample]
        f = simulate_fragments(rng, model, weights, cells.depth[rows], cells.frip[rows])
        f.unit = rows[f.unit]
        parts.append(f)
    frags = Fragments.concat(parts)
    order = np.lexsort((frags.unit, frags.end, frags.start, frags.chrom))
    frags = Fragments(frags.chrom[order], frags.start[order], frags.end[order], frags.unit[order])
    counts = 1 + rng.poisson(cfg.duplicate_rate, len(frags))
    same = np.zeros(len(frags), dtype=bool)
    same[1:] = ((frags.chrom[1:] == frags.chrom[:-1]) & (frags.start[1:] == frags.start[:-1])
                & (frags.end[1:] == frags.end[:-1]) & (frags.unit[1:] == frags.unit[:-1]))
    first = np.flatnonzero(~same)
    merged = np.add.reduceat(counts, first)
    return Fragments(frags.chrom[first], frags.start[first], frags.end[first], frags.unit[first]), merged
