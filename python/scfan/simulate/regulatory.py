"""Regulatory truth: contexts (bulk lines, cell types) with active TFs, regulatory elements and planted sites.

A regulatory element (RE) is open in a context when one of its TFs is active there (or, rarely, by chance);
a planted site is bound in a context when its RE is open, its TF is active, and it is not occluded.
Decoys carry a strong motif but stay unbound everywhere (mostly closed; a few open by chance).
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass

import numpy as np

from scfan.simulate.config import RE_SLOT_BP, SimulationConfig
from scfan.simulate.genome_model import SimGenome, random_gc_codes
from scfan.simulate.motifs import Motif, best_scores, flatten, reverse_complement_codes, sample_sites

log = logging.getLogger(__name__)

KINDS = ("enhancer", "promoter", "motifless", "decoy")
ENHANCER, PROMOTER, MOTIFLESS, DECOY = range(4)
P_OPEN_ACTIVE = 0.85
P_OPEN_CHANCE = 0.03
P_OPEN_PROMOTER = 0.95
P_OPEN_MOTIFLESS = 0.25
P_OPEN_DECOY = 0.1
P_OCCLUDED = 0.08
WEAK_MOTIF_KEEP = 0.35
CPG_ISLAND_BP = 800


@dataclass(frozen=True)
class Contexts:
    """Bulk lines and cell types; ``active[c, t]`` says whether TF ``t`` acts in context ``c`` (lines first)."""

    lines: list[str]
    types: list[str]
    active: np.ndarray
    drivers: dict[str, list[int]]
    partner: np.ndarray
    #: family index of each cell type; ``None`` without ``type_families`` (the default model)
    family: np.ndarray | None = None

    @property
    def names(self) -> list[str]:
        return self.lines + self.types

    def line_index(self, i: int) -> int:
        return i

    def type_index(self, k: int) -> int:
        return len(self.lines) + k

    def sibling_active(self) -> np.ndarray:
        """``(n_ctx, n_tfs)``: TF active in another type of the same family (and not here); lines are all False."""
        out = np.zeros_like(self.active)
        if self.family is None:
            return out
        type_active = self.active[len(self.lines):]
        for k, f in enumerate(self.family):
            sibs = np.flatnonzero((self.family == f) & (np.arange(self.family.size) != k))
            out[self.type_index(k)] = type_active[sibs].any(axis=0) & ~type_active[k]
        return out


@dataclass
class Regulome:
    """Every RE and planted site, with per-context openness, accessibility and binding."""

    re_chrom: np.ndarray
    re_center: np.ndarray
    re_kind: np.ndarray
    re_tfs: np.ndarray          # (n_re, 2) TF indices, -1 = none
    re_open: np.ndarray         # (n_re, n_ctx) bool
    re_access: np.ndarray       # (n_re, n_ctx) float, 0 when closed
    site_chrom: np.ndarray
    site_start: np.ndarray
    site_end: np.ndarray
    site_strand: np.ndarray     # '+' / '-'
    site_tf: np.ndarray
    site_re: np.ndarray
    site_weak: np.ndarray
    site_bound: np.ndarray      # (n_sites, n_ctx) bool
    site_score: np.ndarray

    @property
    def site_decoy(self) -> np.ndarray:
        return self.re_kind[self.site_re] == DECOY


def make_contexts(rng: np.random.Generator, cfg: SimulationConfig) -> Contexts:
    """Cell-type drivers (one unique primary TF per type; left-over TFs shared by two random types, or by every type
    of one family with ``type_families``) and line TFs."""
    n_tfs, k = cfg.n_tfs, cfg.n_types
    specific = np.arange(1, n_tfs)
    perm = rng.permutation(specific)
    drivers: list[list[int]] = [[int(perm[i])] for i in range(k)]
    family = None
    if cfg.type_families:
        family = np.arange(k) % cfg.type_families
        for j, t in enumerate(perm[k:]):
            for i in np.flatnonzero(family == j % cfg.type_families):
                drivers[int(i)].append(int(t))
    else:
        for t in perm[k:]:
            for j in np.sort(rng.choice(k, size=min(2, k), replace=False)):
                drivers[int(j)].append(int(t))
    types = [f"type{i + 1}" for i in range(k)]
    lines = [f"line{string.ascii_uppercase[i]}" if i < 26 else f"line{i + 1}" for i in range(cfg.n_lines)]
    line_active = rng.random((cfg.n_lines, n_tfs)) < cfg.line_tf_frac
    line_active[:, 0] = True
    for t in specific:
        if not line_active[:, t].any():
            line_active[int(rng.integers(0, cfg.n_lines)), t] = True
    need = min(2, len(specific))
    for i in range(cfg.n_lines):
        while line_active[i, 1:].sum() < need:
            line_active[i, int(rng.choice(specific))] = True
    type_active = np.zeros((k, n_tfs), dtype=bool)
    type_active[:, 0] = True
    for i, ds in enumerate(drivers):
        type_active[i, ds] = True
    partner = np.full(n_tfs, -1, dtype=np.int64)
    for t in specific:
        mates = sorted({m for ds in drivers if t in ds for m in ds} - {int(t)})
        others = mates or [int(o) for o in specific if o != t]
        if others:
            partner[t] = int(rng.choice(others))
    return Contexts(lines=lines, types=types, active=np.vstack([line_active, type_active]),
                    drivers={types[i]: [int(t) for t in ds] for i, ds in enumerate(drivers)}, partner=partner,
                    family=family)


def _free_slots(genome: SimGenome) -> tuple[np.ndarray, np.ndarray]:
    chroms, starts = [], []
    for ci, size in enumerate(genome.sizes):
        s = np.arange(0, size - RE_SLOT_BP + 1, RE_SLOT_BP, dtype=np.int64)
        ok = np.ones(s.size, dtype=bool)
        for fc, fs, fe in genome.forbidden:
            if fc == ci:
                ok &= (s + RE_SLOT_BP <= fs) | (s >= fe)
        chroms.append(np.full(int(ok.sum()), ci, dtype=np.int64))
        starts.append(s[ok])
    return np.concatenate(chroms), np.concatenate(starts)


def place_elements(rng: np.random.Generator, cfg: SimulationConfig, genome: SimGenome, ctx: Contexts,
                   motifs: list[Motif]) -> Regulome:
    """Place REs on free slots (genome order), decide openness/accessibility per context, plant sites."""
    mb = genome.total_size / 1e6
    n_tfs = cfg.n_tfs
    n_enh = int(round(cfg.sites_per_mb * mb))
    n_decoy = int(round(cfg.decoy_ratio * n_enh))
    kinds = np.concatenate([np.full(n_enh * n_tfs, ENHANCER), np.full(n_decoy * n_tfs, DECOY),
                            np.full(int(round(cfg.promoters_per_mb * mb)), PROMOTER),
                            np.full(int(round(cfg.motifless_per_mb * mb)), MOTIFLESS)])
    tf1 = np.concatenate([np.repeat(np.arange(n_tfs), n_enh), np.repeat(np.arange(n_tfs), n_decoy),
                          np.full(kinds.size - (n_enh + n_decoy) * n_tfs, -1)])
    slot_chrom, slot_start = _free_slots(genome)
    chosen = np.sort(rng.choice(slot_chrom.size, size=kinds.size, replace=False))
    order = rng.permutation(kinds.size)
    kinds, tf1 = kinds[order], tf1[order]
    re_chrom = slot_chrom[chosen]
    re_center = slot_start[chosen] + RE_SLOT_BP // 2 + rng.integers(-150, 151, kinds.size)
    tf2 = np.full(kinds.size, -1, dtype=np.int64)
    cob = (kinds == ENHANCER) & (rng.random(kinds.size) < cfg.cobind_prob) & (ctx.partner[np.maximum(tf1, 0)] >= 0)
    tf2[cob] = ctx.partner[tf1[cob]]
    re_tfs = np.stack([tf1, tf2], axis=1)
    re_open, re_access = _openness(rng, cfg, ctx, kinds, re_tfs)
    for ci in np.flatnonzero(kinds == PROMOTER):
        _cpg_island(rng, genome, int(re_chrom[ci]), int(re_center[ci]))
    reg = _plant_sites(rng, cfg, genome, ctx, motifs, kinds, re_chrom, re_center, re_tfs, re_open)
    reg.re_open, reg.re_access = re_open, re_access
    log.info("regulome: %d REs (%s), %d planted sites", kinds.size,
             ", ".join(f"{int((kinds == i).sum())} {k}" for i, k in enumerate(KINDS)), reg.site_tf.size)
    return reg


def _openness(rng, cfg, ctx: Contexts, kinds, re_tfs) -> tuple[np.ndarray, np.ndarray]:
    n_re, n_ctx = kinds.size, len(ctx.names)
    act = np.zeros((n_re, n_ctx), dtype=np.int64)
    for j in range(2):
        has = re_tfs[:, j] >= 0
        act[has] += ctx.active[:, re_tfs[has, j]].T
    p = np.where(act > 0, P_OPEN_ACTIVE, min(1.0, P_OPEN_CHANCE * cfg.noise))
    if cfg.sibling_open > 0:
        sib = np.zeros((n_re, n_ctx), dtype=bool)
        sib_active = ctx.sibling_active()
        for j in range(2):
            has = re_tfs[:, j] >= 0
            sib[has] |= sib_active[:, re_tfs[has, j]].T
        p = np.where((act == 0) & sib, np.maximum(p, cfg.sibling_open), p)
    p[kinds == PROMOTER] = P_OPEN_PROMOTER
    p[kinds == MOTIFLESS] = P_OPEN_MOTIFLESS
    p[kinds == DECOY] = min(1.0, P_OPEN_DECOY * cfg.noise)  # open by chance, yet unbound (e.g. methylated)
    is_open = rng.random((n_re, n_ctx)) < p
    base = rng.lognormal(0.0, 0.5, n_re) * np.where(kinds == PROMOTER, 1.5, 1.0)
    jitter = rng.lognormal(0.0, 0.25, (n_re, n_ctx))
    if ctx.family is not None:
        _share_within_families(ctx, re_tfs, is_open, jitter)
    boost = np.where(act > 1, 1.5, 1.0) * np.where(kinds == DECOY, 0.5, 1.0)[:, None]
    access = np.where(is_open, base[:, None] * jitter * boost, 0.0)
    return is_open, access


def _share_within_families(ctx: Contexts, re_tfs: np.ndarray, is_open: np.ndarray, jitter: np.ndarray) -> None:
    """Sibling types share the chromatin state (openness and accessibility) of every RE whose TFs are active in the
    same way in both: each type copies the draws of its first family member with the same inputs at that RE."""
    def inputs(c: int) -> np.ndarray:  # (n_re, 2): activity of the RE's TFs in context c (-1 = no TF)
        return np.where(re_tfs >= 0, ctx.active[c, np.maximum(re_tfs, 0)], -1)

    for f in np.unique(ctx.family):
        members = [ctx.type_index(int(k)) for k in np.flatnonzero(ctx.family == f)]
        for i, c in enumerate(members):
            todo = np.ones(is_open.shape[0], dtype=bool)
            for c0 in members[:i]:
                same = todo & (inputs(c) == inputs(c0)).all(axis=1)
                is_open[same, c], jitter[same, c] = is_open[same, c0], jitter[same, c0]
                todo &= ~same


def _cpg_island(rng, genome: SimGenome, chrom: int, center: int) -> None:
    lo = max(0, center - CPG_ISLAND_BP // 2)
    hi = min(genome.sizes[chrom], lo + CPG_ISLAND_BP)
    genome.seqs[chrom][lo:hi] = random_gc_codes(rng, hi - lo, 0.65)
    genome.softmask[chrom][lo:hi] = False
    genome.mappability[chrom][lo:hi] = 1.0


def _plant_sites(rng, cfg, genome: SimGenome, ctx: Contexts, motifs: list[Motif], kinds, re_chrom, re_center, re_tfs,
                 re_open) -> Regulome:
    prim = np.flatnonzero(re_tfs[:, 0] >= 0)
    sec = np.flatnonzero(re_tfs[:, 1] >= 0)
    site_re = np.concatenate([prim, sec])
    site_tf = np.concatenate([re_tfs[prim, 0], re_tfs[sec, 1]])
    lengths = np.array([m.length for m in motifs])[site_tf]
    mid = re_center[site_re] + np.concatenate([rng.integers(-25, 26, prim.size), np.zeros(sec.size, np.int64)])
    # a partner site sits 45–90 bp to one side of the primary site of the same RE
    prim_mid = dict(zip(prim.tolist(), mid[:prim.size].tolist(), strict=True))
    side = np.where(rng.random(sec.size) < 0.5, -1, 1)
    mid[prim.size:] = np.array([prim_mid[r] for r in sec.tolist()], dtype=np.int64) + side * rng.integers(
        45 + lengths[prim.size:] // 2, 91 + lengths[prim.size:] // 2)
    start = mid - lengths // 2
    end = start + lengths
    strand = np.where(rng.random(site_tf.size) < 0.5, "+", "-")
    weak = (kinds[site_re] == ENHANCER) & (rng.random(site_tf.size) < cfg.weak_motif_frac)
    chrom = re_chrom[site_re]
    for t, m in enumerate(motifs):
        for is_weak in (False, True):
            idx = np.flatnonzero((site_tf == t) & (weak == is_weak))
            if idx.size == 0:
                continue
            codes = sample_sites(rng, flatten(m.prob, WEAK_MOTIF_KEEP) if is_weak else m.prob, idx.size)
            minus = strand[idx] == "-"
            codes[minus] = reverse_complement_codes(codes[minus])
            for row, s in enumerate(idx):
                c, a, b = int(chrom[s]), int(start[s]), int(end[s])
                genome.seqs[c][a:b] = codes[row]
                genome.softmask[c][a:b] = False
    score = np.empty(site_tf.size)
    for t, m in enumerate(motifs):
        idx = np.flatnonzero(site_tf == t)
        if idx.size:
            codes = np.stack([genome.seqs[int(chrom[s])][int(start[s]):int(end[s])] for s in idx])
            score[idx] = best_scores(codes, m.log_odds())
    occluded = rng.random((site_tf.size, len(ctx.names))) < min(1.0, P_OCCLUDED * cfg.noise)
    bound = re_open[site_re] & ctx.active[:, site_tf].T & ~occluded & (kinds[site_re] != DECOY)[:, None]
    order = np.lexsort((site_tf, start, chrom))
    return Regulome(re_chrom=re_chrom, re_center=re_center, re_kind=kinds, re_tfs=re_tfs, re_open=re_open,
                    re_access=np.zeros(0), site_chrom=chrom[order], site_start=start[order], site_end=end[order],
                    site_strand=strand[order], site_tf=site_tf[order], site_re=site_re[order],
                    site_weak=weak[order], site_bound=bound[order], site_score=score[order])
