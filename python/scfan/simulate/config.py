"""Simulation parameters: one frozen config per run, built from a named preset plus overrides, fully validated."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from scfan.errors import ParamsError

#: Slot size (bp) of the placement grid: at most one regulatory element (RE) per slot.
RE_SLOT_BP = 1000
#: Bases of ``N`` at each chromosome end (telomere gaps).
TELOMERE_BP = 5000
MIN_CHROM_BP = 100_000


@dataclass(frozen=True)
class SimulationConfig:
    """Every parameter of one simulated data set (written into ``manifest.json``).

    Counts are totals over the whole data set unless the name says otherwise; fractions are in [0, 1].
    ``noise`` multiplies every noise level at once (0 = idealised data, 1 = default, 2 = twice as noisy).
    """

    preset: str
    seed: int
    genome_size: int
    n_chroms: int
    n_tfs: int
    n_lines: int
    n_types: int
    n_samples: int
    n_cells: int
    median_fragments: int
    depth_sigma: float = 0.6
    low_quality_frac: float = 0.05
    low_quality_median_fragments: int = 300
    frip: float = 0.55
    bulk_depth: float = 0.1
    sites_per_mb: float = 50.0
    promoters_per_mb: float = 20.0
    motifless_per_mb: float = 20.0
    decoy_ratio: float = 0.5
    cobind_prob: float = 0.3
    weak_motif_frac: float = 0.2
    line_tf_frac: float = 0.5
    repeat_frac: float = 0.05
    duplicate_rate: float = 0.1
    noise: float = 1.0
    #: 0: each left-over TF drives two random cell types; n > 0: type i belongs to family i mod n, and each left-over
    #: TF drives every type of one family, so sibling types differ only by their own primary drivers.
    type_families: int = 0
    #: Probability that an enhancer of a TF active in a sibling type (same family), but not in this type, is open
    #: here too (open but unbound): how much chromatin sibling types share beyond their common drivers.
    sibling_open: float = 0.0
    #: Batch effect: every sample scales each regulatory element's accessibility by its own lognormal(0, sigma)
    #: factor, shared by all cell types of that sample (0 = no batch effect).
    batch_sigma: float = 0.0
    test_chroms: tuple[str, ...] = ("chr1",)
    valid_chroms: tuple[str, ...] = ("chr2",)
    jaspar_release: str = "JASPAR2026"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["test_chroms"] = list(self.test_chroms)
        d["valid_chroms"] = list(self.valid_chroms)
        return d


PRESETS: dict[str, dict[str, Any]] = {
    # Whole pipeline in a few minutes on 2 cores: ~2.4 Mb, 8 TFs, 2 lines, 4 types, 400 cells.
    "test": dict(genome_size=2_400_000, n_chroms=4, n_tfs=8, n_lines=2, n_types=4, n_samples=2, n_cells=400,
                 median_fragments=4000, sites_per_mb=50.0),
    # Large enough to measure: 24 Mb, 16 TFs, 3 lines, 6 types, 6,000 cells (~18 M fragments).
    "bench": dict(genome_size=24_000_000, n_chroms=6, n_tfs=16, n_lines=3, n_types=6, n_samples=3,
                  n_cells=6000, median_fragments=3000, sites_per_mb=25.0),
    # Clustering that can rank methods (LSI + k-means ARI 0.55–0.73, bone marrow: 0.58): 4 Mb, 15 TFs, 8 types in
    # 3 families (siblings share their family's 2 drivers and most chromatin, and differ by their own primary
    # drivers), shallow cells with a low FRiP, and a batch effect in each of 3 samples; ~2,400 cells.
    "hard": dict(genome_size=4_000_000, n_chroms=5, n_tfs=15, n_lines=2, n_types=8, n_samples=3, n_cells=2400,
                 median_fragments=1500, frip=0.35, sites_per_mb=25.0, type_families=3, sibling_open=0.7,
                 batch_sigma=0.38),
}

_COUNTS_POSITIVE = ("genome_size", "n_chroms", "n_tfs", "n_lines", "n_types", "n_samples", "n_cells",
                    "median_fragments", "low_quality_median_fragments")
_NON_NEGATIVE = ("seed", "depth_sigma", "bulk_depth", "sites_per_mb", "promoters_per_mb", "motifless_per_mb",
                 "decoy_ratio", "duplicate_rate", "noise", "batch_sigma")
_FRACTIONS = ("low_quality_frac", "frip", "cobind_prob", "weak_motif_frac", "line_tf_frac", "repeat_frac",
              "sibling_open")


def make_config(preset: str, seed: int, **overrides: Any) -> SimulationConfig:
    """Build and validate the config of ``preset`` with ``overrides`` (``None`` values are ignored).

    Raises
    ------
    ParamsError
        Unknown preset or parameter, a negative or zero count, a fraction outside [0, 1], more cell types
        than cell-type-specific TFs, or more sites than the genome can hold.
    """
    if preset not in PRESETS:
        raise ParamsError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(SimulationConfig)} - {"preset", "seed"}
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - fields)
    if unknown:
        raise ParamsError(f"unknown simulation parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    for key in ("test_chroms", "valid_chroms"):
        if key in given:
            given[key] = tuple(given[key])
    cfg = SimulationConfig(preset=preset, seed=seed, **{**PRESETS[preset], **given})
    validate_config(cfg)
    return cfg


def validate_config(cfg: SimulationConfig) -> None:
    """Raise :class:`ParamsError` naming the first parameter that makes the simulation impossible."""
    from scfan.simulate.motifs import TF_CATALOG

    if not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise ParamsError(f"seed: got {cfg.seed!r}; expected an integer >= 0")
    for name in _COUNTS_POSITIVE:
        v = getattr(cfg, name)
        if not isinstance(v, int) or v <= 0:
            raise ParamsError(f"{name}: got {v!r}; expected an integer > 0")
    for name in _NON_NEGATIVE:
        v = getattr(cfg, name)
        if not math.isfinite(v) or v < 0:
            raise ParamsError(f"{name}: got {v!r}; expected a number >= 0")
    for name in _FRACTIONS:
        v = getattr(cfg, name)
        if not math.isfinite(v) or not 0 <= v <= 1:
            raise ParamsError(f"{name}: got {v!r}; expected a fraction in [0, 1]")
    if cfg.n_chroms < 3:
        raise ParamsError(f"n_chroms: got {cfg.n_chroms}; expected >= 3 (train, validation and test chromosomes)")
    if cfg.genome_size < cfg.n_chroms * MIN_CHROM_BP:
        raise ParamsError(f"genome_size: got {cfg.genome_size}; expected >= {cfg.n_chroms * MIN_CHROM_BP} "
                          f"({MIN_CHROM_BP} bp for each of the {cfg.n_chroms} chromosomes)")
    if not 2 <= cfg.n_tfs <= len(TF_CATALOG):
        raise ParamsError(f"n_tfs: got {cfg.n_tfs}; expected 2..{len(TF_CATALOG)} (JASPAR motifs in the catalogue)")
    specific = cfg.n_tfs - 1  # CTCF is active everywhere and drives no cell type
    if cfg.n_types > specific:
        raise ParamsError(f"n_types: got {cfg.n_types} cell types, but n_tfs={cfg.n_tfs} gives only {specific} "
                          "cell-type-specific TFs (each type needs its own driver); raise --n-tfs or lower --n-types")
    if not isinstance(cfg.type_families, int) or not 0 <= cfg.type_families <= cfg.n_types:
        raise ParamsError(f"type_families: got {cfg.type_families!r}; expected an integer in 0..n_types "
                          f"({cfg.n_types}; 0 = no families)")
    if cfg.sibling_open > 0 and cfg.type_families == 0:
        raise ParamsError(f"sibling_open: got {cfg.sibling_open}, but type_families is 0 (no sibling types); "
                          "set type_families or leave sibling_open at 0")
    if cfg.n_cells < cfg.n_samples * cfg.n_types:
        raise ParamsError(f"n_cells: got {cfg.n_cells}; expected >= n_samples x n_types = "
                          f"{cfg.n_samples * cfg.n_types}")
    names = set(chrom_names(cfg.n_chroms))
    for key in ("test_chroms", "valid_chroms"):
        bad = [c for c in getattr(cfg, key) if c not in names]
        if bad or not getattr(cfg, key):
            raise ParamsError(f"{key}: got {list(getattr(cfg, key))}; expected chromosome(s) among {sorted(names)}")
    if set(cfg.test_chroms) & set(cfg.valid_chroms):
        raise ParamsError("test_chroms and valid_chroms overlap; expected disjoint sets")
    if len(set(cfg.test_chroms) | set(cfg.valid_chroms)) >= cfg.n_chroms:
        raise ParamsError("test_chroms and valid_chroms leave no chromosome for training")
    mb = cfg.genome_size / 1e6
    n_re = mb * (cfg.sites_per_mb * cfg.n_tfs * (1 + cfg.decoy_ratio) + cfg.promoters_per_mb + cfg.motifless_per_mb)
    capacity = 0.8 * cfg.genome_size / RE_SLOT_BP
    if n_re > capacity:
        raise ParamsError(f"sites_per_mb: {n_re:.0f} regulatory elements do not fit into a {cfg.genome_size} bp "
                          f"genome (at most {capacity:.0f}, one per {RE_SLOT_BP} bp); lower --sites-per-mb or "
                          "raise --genome-size")


def chrom_names(n_chroms: int) -> list[str]:
    """``chr1 … chr{n-1}, chrX``."""
    return [f"chr{i}" for i in range(1, n_chroms)] + ["chrX"]


def chrom_sizes(cfg: SimulationConfig) -> dict[str, int]:
    """Chromosome lengths (multiples of 1 kb) decreasing like the human autosomes; chrX is mid-sized."""
    names = chrom_names(cfg.n_chroms)
    weights = [1.0 / (1.0 + 0.25 * i) for i in range(cfg.n_chroms - 1)]
    weights.append(weights[len(weights) // 2])
    total = sum(weights)
    sizes = [max(MIN_CHROM_BP, int(cfg.genome_size * w / total) // 1000 * 1000) for w in weights]
    return dict(zip(names, sizes, strict=True))
