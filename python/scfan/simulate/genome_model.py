"""Background genome: isochore GC, CpG depletion, interspersed and tandem repeats, satellites, mappability.

Bases are held as ``uint8`` codes (0..3 = A, C, G, T; 4 = N) per chromosome, with a soft-mask flag for
repeats (written in lowercase, like a UCSC soft-masked FASTA).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from scfan.simulate.config import TELOMERE_BP

log = logging.getLogger(__name__)

ISOCHORE_MEAN_BP = 100_000
GC_MEAN, GC_SD = 0.41, 0.05
CPG_DEPLETION = 0.75
SATELLITE_MONOMER_BP = 171
REPEAT_CONSENSUS_BP = 300


@dataclass
class SimGenome:
    """The simulated genome in memory (mutable while sites are planted)."""

    names: list[str]
    sizes: list[int]
    seqs: list[np.ndarray]
    softmask: list[np.ndarray]
    mappability: list[np.ndarray]
    #: blacklisted intervals ``(chrom_index, start, end)``: satellite arrays (artefactual signal in assays)
    blacklist: list[tuple[int, int, int]] = field(default_factory=list)
    #: intervals where no regulatory element may be placed (telomere gaps and blacklist)
    forbidden: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def total_size(self) -> int:
        return int(sum(self.sizes))


def background_sequence(rng: np.random.Generator, size: int) -> np.ndarray:
    """Isochore-structured random DNA: GC fraction varies in ~100 kb blocks; CpG is depleted.

    Bases are drawn per position from the block's GC content, then 75 % of CpG dinucleotides are
    mutated to TpG or CpA (methylation-driven deamination), which makes the sequence a first-order
    Markov chain in effect, as in mammalian genomes.
    """
    n_blocks = max(1, int(np.ceil(size / ISOCHORE_MEAN_BP * 2)))
    lengths = rng.exponential(ISOCHORE_MEAN_BP, n_blocks).astype(np.int64) + 1
    while lengths.sum() < size:
        lengths = np.concatenate([lengths, rng.exponential(ISOCHORE_MEAN_BP, n_blocks).astype(np.int64) + 1])
    gc_blocks = np.clip(rng.normal(GC_MEAN, GC_SD, lengths.size), 0.3, 0.6)
    gc = np.repeat(gc_blocks, lengths)[:size]
    strong = rng.random(size) < gc
    pick = rng.integers(0, 2, size, dtype=np.uint8)
    seq = np.where(strong, 1 + pick, 3 * pick).astype(np.uint8)  # strong: C/G (1, 2); weak: A/T (0, 3)
    cpg = np.flatnonzero((seq[:-1] == 1) & (seq[1:] == 2))
    hit = cpg[rng.random(cpg.size) < CPG_DEPLETION]
    to_tpg = rng.random(hit.size) < 0.5
    seq[hit[to_tpg]] = 3
    seq[hit[~to_tpg] + 1] = 0
    return seq


def mutate(rng: np.random.Generator, codes: np.ndarray, rate: float) -> np.ndarray:
    """Copy of ``codes`` with each base substituted with probability ``rate`` (by a different base)."""
    out = codes.copy()
    hit = rng.random(out.size) < rate
    out[hit] = (out[hit] + rng.integers(1, 4, int(hit.sum()), dtype=np.uint8)) % 4
    return out


def random_gc_codes(rng: np.random.Generator, n: int, gc: float) -> np.ndarray:
    strong = rng.random(n) < gc
    pick = rng.integers(0, 2, n, dtype=np.uint8)
    return np.where(strong, 1 + pick, 3 * pick).astype(np.uint8)


def build_genome(rng: np.random.Generator, sizes: dict[str, int], repeat_frac: float) -> SimGenome:
    """Background sequence, telomere gaps, one satellite array per chromosome, repeats and mappability."""
    names, lens = list(sizes), list(sizes.values())
    g = SimGenome(names=names, sizes=lens, seqs=[], softmask=[], mappability=[])
    sine = np.concatenate([random_gc_codes(rng, REPEAT_CONSENSUS_BP - 25, 0.55), np.zeros(25, dtype=np.uint8)])
    alpha = random_gc_codes(rng, SATELLITE_MONOMER_BP, 0.38)
    for ci, size in enumerate(lens):
        seq = background_sequence(rng, size)
        soft = np.zeros(size, dtype=bool)
        mapp = np.ones(size, dtype=np.float32)
        _add_interspersed_repeats(rng, seq, soft, mapp, sine, repeat_frac)
        _add_tandem_repeats(rng, seq, soft, mapp)
        sat_start, sat_end = _add_satellite(rng, seq, soft, mapp, alpha)
        seq[:TELOMERE_BP] = 4
        seq[size - TELOMERE_BP:] = 4
        mapp[:TELOMERE_BP] = 0.0
        mapp[size - TELOMERE_BP:] = 0.0
        soft[:TELOMERE_BP] = False
        soft[size - TELOMERE_BP:] = False
        g.seqs.append(seq)
        g.softmask.append(soft)
        g.mappability.append(mapp)
        g.blacklist.append((ci, sat_start - 500, sat_end + 500))
        g.forbidden += [(ci, 0, TELOMERE_BP + 1000), (ci, size - TELOMERE_BP - 1000, size),
                        (ci, sat_start - 1500, sat_end + 1500)]
    log.debug("genome: %d chromosomes, %d bp", len(names), g.total_size)
    return g


def _add_interspersed_repeats(rng, seq, soft, mapp, consensus, repeat_frac) -> None:
    """SINE-like copies (5'-truncated, 2–20 % diverged); young copies are hard to map."""
    size = seq.size
    n = int(repeat_frac * size / (0.7 * consensus.size))
    for _ in range(n):
        keep = int(rng.integers(consensus.size // 3, consensus.size + 1))
        div = float(rng.uniform(0.02, 0.2))
        copy = mutate(rng, consensus[consensus.size - keep:], div)
        if rng.random() < 0.5:
            copy = (3 - copy[::-1]).astype(np.uint8)
        start = int(rng.integers(0, size - keep))
        seq[start:start + keep] = copy
        soft[start:start + keep] = True
        mapp[start:start + keep] = np.float32(np.clip((div - 0.02) / 0.1, 0.05, 1.0))


def _add_tandem_repeats(rng, seq, soft, mapp) -> None:
    """Microsatellites such as (CA)n and (TTAGGG)n, one per ~20 kb, with reduced mappability."""
    units = [np.array(u, dtype=np.uint8) for u in ([1, 0], [3, 3, 0, 2, 2, 2], [0, 0, 0, 3], [2, 0, 2, 2])]
    for _ in range(seq.size // 20_000):
        unit = units[int(rng.integers(0, len(units)))]
        length = int(rng.integers(30, 120))
        start = int(rng.integers(0, seq.size - length))
        seq[start:start + length] = np.resize(unit, length)
        soft[start:start + length] = True
        mapp[start:start + length] = np.minimum(mapp[start:start + length], 0.3)


def _add_satellite(rng, seq, soft, mapp, monomer) -> tuple[int, int]:
    """A ~1 %-of-chromosome alpha-satellite-like array at the 'centromere' (blacklisted, unmappable)."""
    size = seq.size
    length = max(3 * monomer.size, int(size * rng.uniform(0.005, 0.01)) // monomer.size * monomer.size)
    start = int(size * rng.uniform(0.35, 0.45))
    array = mutate(rng, np.tile(monomer, length // monomer.size), 0.01)
    seq[start:start + length] = array
    soft[start:start + length] = True
    mapp[start:start + length] = np.float32(0.02)
    return start, start + length
