"""Motifs from attributions (modisco-lite's TF-MoDISco), their JASPAR matches (memelite's TOMTOM) and scFAN's own
analysis of first-layer filters.

Matrices here are ``(4, W)`` with rows A, C, G, T (PyTorch's layout); modisco-lite works in ``(L, 4)`` and is fed
transposed arrays.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Motif:
    """A discovered motif: base probabilities ``ppm`` and contribution weights ``cwm`` (both ``(4, W)``, trimmed to the
    positions that carry attribution), from ``n_seqlets`` seqlets."""

    name: str
    ppm: np.ndarray
    cwm: np.ndarray
    n_seqlets: int
    sign: str = "positive"


@dataclass(frozen=True)
class JasparEntry:
    matrix_id: str
    name: str
    families: tuple[str, ...]
    ppm: np.ndarray


@dataclass(frozen=True)
class Match:
    """A JASPAR matrix matched to a query by TOMTOM. ``strand`` ``-``: the matrix matched reverse-complemented;
    ``offset``: query column ``i`` faces column ``i + offset`` of the matrix so oriented (memelite's convention)."""

    matrix_id: str
    name: str
    p_value: float
    q_value: float
    families: tuple[str, ...] = field(default=())
    offset: int = 0
    strand: str = "+"


@lru_cache(maxsize=4)
def jaspar_library(release: str | None = None, tax_group: str = "vertebrates") -> tuple[JasparEntry, ...]:
    """Every CORE matrix of ``tax_group`` in the offline pyjaspar ``release`` (its default when None), as PPMs."""
    from pyjaspar import jaspardb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        db = jaspardb(release=release) if release else jaspardb()
        motifs = db.fetch_motifs(collection="CORE", tax_group=[tax_group], all_versions=False)
    out = []
    for m in motifs:
        counts = np.array([m.counts[b] for b in "ACGT"], dtype=np.float64) + 0.2  # 0.8 spread over the four bases
        out.append(JasparEntry(m.matrix_id, str(m.name), tuple(m.tf_family or ()), counts / counts.sum(axis=0)))
    log.info("JASPAR %s: %d CORE %s matrices", db.release, len(out), tax_group)
    return tuple(out)


def trim(ppm: np.ndarray, cwm: np.ndarray, threshold: float = 0.3,
         min_length: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Keep the stretch from the first to the last position whose total |contribution| reaches ``threshold`` × its
    maximum (modisco-lite's own rule for its reports), at least ``min_length`` bp around the peak."""
    score = np.abs(cwm).sum(axis=0)
    keep = np.flatnonzero(score >= threshold * score.max()) if score.max() > 0 else np.arange(len(score))
    lo, hi = int(keep.min()), int(keep.max()) + 1
    if hi - lo < min_length:
        c = int(np.argmax(score))
        lo = max(0, min(c - min_length // 2, len(score) - min_length))
        hi = lo + min_length
    return ppm[:, lo:hi], cwm[:, lo:hi]


@dataclass(frozen=True)
class DiscoveryConfig:
    """TF-MoDISco settings sized for a few hundred windows (modisco-lite's defaults expect tens of thousands)."""

    max_seqlets: int = 2000
    sliding_window_size: int = 15
    flank_size: int = 5
    target_seqlet_fdr: float = 0.05
    n_leiden_runs: int = 2
    final_min_cluster_size: int = 20
    #: neighbours per seqlet in TF-MoDISco's affinity graph (its default 500 is for tens of thousands of seqlets; its
    #: Jaccard step, the slowest, scales with it)
    nearest_neighbors: int = 100
    max_motifs: int = 5


def discover_motifs(onehot: np.ndarray, hypothetical: np.ndarray, cfg: DiscoveryConfig = DiscoveryConfig(),
                    ) -> list[Motif]:
    """TF-MoDISco (modisco-lite) on ``onehot`` and hypothetical contributions, both ``(N, 4, L)``: the positive
    patterns, most seqlets first, at most ``cfg.max_motifs``. An empty list when it finds none."""
    from modiscolite.tfmodisco import TFMoDISco

    ohe = np.ascontiguousarray(np.transpose(onehot, (0, 2, 1)), dtype=np.float32)
    hyp = np.ascontiguousarray(np.transpose(hypothetical, (0, 2, 1)), dtype=np.float32)
    try:
        pos, _neg = TFMoDISco(one_hot=ohe, hypothetical_contribs=hyp, max_seqlets_per_metacluster=cfg.max_seqlets,
                              sliding_window_size=cfg.sliding_window_size, flank_size=cfg.flank_size,
                              target_seqlet_fdr=cfg.target_seqlet_fdr, n_leiden_runs=cfg.n_leiden_runs,
                              final_min_cluster_size=cfg.final_min_cluster_size,
                              nearest_neighbors_to_compute=cfg.nearest_neighbors, verbose=False)
    except (ValueError, IndexError) as exc:  # too few seqlets for its null or its clustering
        log.warning("TF-MoDISco found no pattern (%s)", exc)
        return []
    motifs = []
    for i, p in enumerate(sorted(pos or [], key=lambda p: -len(p.seqlets))[: cfg.max_motifs]):
        ppm, cwm = trim(np.asarray(p.sequence, dtype=np.float64).T, np.asarray(p.contrib_scores, dtype=np.float64).T)
        motifs.append(Motif(f"pattern_{i}", ppm, cwm, len(p.seqlets)))
    return motifs


def match_to_jaspar(ppms: list[np.ndarray], library: tuple[JasparEntry, ...], n_best: int = 3) -> list[list[Match]]:
    """TOMTOM (memelite) of each ``(4, W)`` PPM against the library; q-values by Benjamini-Hochberg over the library,
    per query (as TOMTOM's). The ``n_best`` matches of each query, best first, each with its alignment."""
    from memelite import tomtom
    from scipy.stats import false_discovery_control

    if not ppms:
        return []
    targets = [e.ppm for e in library]
    p, _scores, offsets, _overlaps, strands = tomtom([np.asarray(q, dtype=np.float64) for q in ppms], targets)
    out = []
    for row, off, strand in zip(p, offsets, strands, strict=True):
        row = np.clip(np.nan_to_num(row, nan=1.0), 0.0, 1.0)
        q = false_discovery_control(row)
        best = np.argsort(row, kind="stable")[:n_best]
        out.append([Match(library[j].matrix_id, library[j].name, float(row[j]), float(q[j]), library[j].families,
                          offset=int(off[j]), strand="-" if strand[j] else "+") for j in best])
    return out


def relation(match: Match, own: JasparEntry | None, tf: str) -> str:
    """How a match relates to the TF: ``same_matrix`` (its JASPAR base ID), ``same_tf`` (its name), ``same_family``
    (a JASPAR TF family in common), else ``other``."""
    base = match.matrix_id.split(".")[0]
    if own is not None and base == own.matrix_id.split(".")[0]:
        return "same_matrix"
    names = {n.upper() for n in match.name.replace("::", "/").split("/")}
    if tf.upper() in names or (own is not None and own.name.upper() in names):
        return "same_tf"
    if own is not None and set(own.families) & set(match.families):
        return "same_family"
    return "other"


def filter_ppms(conv_weight: np.ndarray, onehot: np.ndarray, activations: np.ndarray, frac: float = 0.5,
                min_sites: int = 10) -> list[np.ndarray | None]:
    """scFAN's first-layer analysis: each filter's PPM from the subsequences where its activation exceeds ``frac`` ×
    its maximum over the windows (Kelley et al.'s Basset rule, as scFAN used). ``activations (N, F, P)`` of the
    filters' ``P`` placements; None for a filter with fewer than ``min_sites`` such sites."""
    n_f, _, k = conv_weight.shape
    out: list[np.ndarray | None] = []
    for f in range(n_f):
        a = activations[:, f]
        top = a.max()
        if not np.isfinite(top) or top <= 0:
            out.append(None)
            continue
        rows, cols = np.nonzero(a > frac * top)
        if len(rows) < min_sites:
            out.append(None)
            continue
        idx = cols[:, None] + np.arange(k)[None]
        sites = onehot[rows[:, None], :, idx]  # (n_sites, k, 4)
        counts = sites.sum(axis=0).T + 0.1
        out.append(counts / counts.sum(axis=0))
    return out
