"""Run one simulation: draw every component from its own seeded stream and write the output folder atomically."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

from scfan import __version__
from scfan._io import atomic_path, sha256, write_json
from scfan.errors import OutputError
from scfan.intervals import validate
from scfan.logging_utils import progress_enabled
from scfan.simulate.chip import chip_peaks
from scfan.simulate.config import SimulationConfig, chrom_sizes, make_config
from scfan.simulate.genome_model import SimGenome, build_genome
from scfan.simulate.motifs import Motif, load_motifs
from scfan.simulate.reads import FragmentModel, Fragments, call_peaks, insertion_counts, simulate_fragments
from scfan.simulate.regulatory import KINDS, Contexts, Regulome, make_contexts, place_elements
from scfan.simulate.schemas import BoundSitesSchema, TruthCellsSchema, TruthDriversSchema
from scfan.simulate.singlecell import Cells, batch_factors, make_cells, sample_fragments
from scfan.simulate.writers import (
    write_bed,
    write_bigwig,
    write_chrom_sizes,
    write_fasta,
    write_fragments,
    write_narrowpeak,
    write_tsv,
)

log = logging.getLogger(__name__)

#: Independent random streams, so that e.g. changing the number of cells leaves the genome unchanged.
#: New streams go at the end: ``SeedSequence.spawn`` keys children by index, so the earlier streams stay the same.
STREAMS = ("genome", "regulome", "bulk_atac", "chip", "cells", "fragments", "batch")


def run_simulation(preset: str, seed: int, outdir: str | Path, *, force: bool = False, **overrides) -> Path:
    """Simulate a data set with known truth into ``outdir`` (see ``docs/simulation.md``).

    Parameters
    ----------
    preset
        ``test``, ``bench`` or ``hard`` (see :data:`scfan.simulate.config.PRESETS`).
    seed
        Seed of every random step; the same seed and parameters give byte-identical files.
    outdir
        Output folder; must not exist or be empty unless ``force``. Written to a temporary sibling and
        renamed when complete, so a failure leaves nothing behind.
    **overrides
        Any :class:`SimulationConfig` field (e.g. ``n_cells=200``); ``None`` means "preset value".

    Returns
    -------
    Path
        ``outdir``.
    """
    cfg = make_config(preset, seed, **overrides)
    out = Path(outdir)
    check_outdir(out, force)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        simulate_into(cfg, tmp)
    log.info("simulation (preset %s, seed %d) written to %s", cfg.preset, cfg.seed, out)
    return out


def check_outdir(out: Path, force: bool) -> None:
    """Refuse a file, or a non-empty folder unless ``force``."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputError(f"{out}: directory exists and is not empty; choose another --outdir or pass --force")


def simulate_into(cfg: SimulationConfig, d: Path) -> dict:
    """Generate everything into the (empty) folder ``d``; returns the manifest."""
    rngs = dict(zip(STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(len(STREAMS))),
                    strict=True))
    sizes = chrom_sizes(cfg)
    motifs = load_motifs(cfg.n_tfs, cfg.jaspar_release)
    genome = build_genome(rngs["genome"], sizes, cfg.repeat_frac)
    ctx = make_contexts(rngs["regulome"], cfg)
    reg = place_elements(rngs["regulome"], cfg, genome, ctx, motifs)
    model = FragmentModel.build(genome, reg.re_chrom, reg.re_center)

    _write_genome(d, genome)
    _write_tfs(d, motifs, ctx)
    bulk_summary = _write_bulk(d, cfg, genome, reg, ctx, motifs, model, rngs["bulk_atac"], rngs["chip"])
    cells = make_cells(rngs["cells"], cfg)
    batch = batch_factors(rngs["batch"], cfg, int(reg.re_kind.size))
    sc_summary = _write_single_cells(d, cfg, genome, reg, ctx, cells, model, rngs["fragments"], batch)
    _write_truth(d, cfg, genome, reg, ctx, motifs, cells)

    manifest = {
        "preset": cfg.preset,
        "seed": cfg.seed,
        "scfan_version": __version__,
        "config": cfg.to_dict(),
        "valid_chroms": list(cfg.valid_chroms),
        "test_chroms": list(cfg.test_chroms),
        "chrom_sizes": dict(zip(genome.names, genome.sizes, strict=True)),
        "tfs": [{"tf": m.tf, "jaspar_id": m.jaspar_id} for m in motifs],
        "lines": {ln: [motifs[t].tf for t in np.flatnonzero(ctx.active[i])] for i, ln in enumerate(ctx.lines)},
        "cell_types": {ct: [motifs[t].tf for t in ds] for ct, ds in ctx.drivers.items()},
        "samples": [f"sample{s + 1}" for s in range(cfg.n_samples)],
        "summary": {**bulk_summary, **sc_summary, "n_regulatory_elements": int(reg.re_kind.size),
                    "n_sites": int(reg.site_tf.size), "n_decoy_sites": int(reg.site_decoy.sum())},
        "files": {p.relative_to(d).as_posix(): sha256(p) for p in sorted(d.rglob("*")) if p.is_file()},
    }
    write_json(d / "manifest.json", manifest)
    return manifest


def _write_genome(d: Path, g: SimGenome) -> None:
    write_fasta(d / "genome.fa", g.names, g.seqs, g.softmask)
    write_chrom_sizes(d / "chrom.sizes", g.names, g.sizes)
    write_bed(d / "blacklist.bed", sorted((g.names[c], max(0, s), min(e, g.sizes[c])) for c, s, e in g.blacklist))
    write_bigwig(d / "mappability.bw", g.names, g.mappability)


def _write_tfs(d: Path, motifs: list[Motif], ctx: Contexts) -> None:
    drivers_of = {t: [ct for ct, ds in ctx.drivers.items() if t in ds] for t in range(len(motifs))}
    write_tsv(d / "tfs.tsv", pl.DataFrame({
        "tf": [m.tf for m in motifs],
        "jaspar_id": [m.jaspar_id for m in motifs],
        "jaspar_name": [m.jaspar_name for m in motifs],
        "motif_length": [m.length for m in motifs],
        "information_content": [round(m.information_content, 3) for m in motifs],
        "active_lines": [",".join(ln for i, ln in enumerate(ctx.lines) if ctx.active[i, t])
                         for t in range(len(motifs))],
        "driver_of": [",".join(drivers_of[t]) for t in range(len(motifs))],
        "cobinding_partner": [motifs[p].tf if p >= 0 else "" for p in ctx.partner],
    }))


def _write_bulk(d: Path, cfg: SimulationConfig, g: SimGenome, reg: Regulome, ctx: Contexts, motifs: list[Motif],
                model: FragmentModel, rng_atac: np.random.Generator, rng_chip: np.random.Generator) -> dict:
    rows = []
    summary: dict = {"bulk_insertions": {}, "chip_peaks": {}}
    sizes = np.asarray(g.sizes, dtype=np.int64)
    n_frag = int(cfg.bulk_depth * g.total_size / 2)
    frip = float(np.clip(cfg.frip * (1 - 0.15 * cfg.noise), 0.02, 0.98))
    for li, line in enumerate(tqdm(ctx.lines, desc="bulk lines", disable=not progress_enabled())):
        ldir = d / "bulk" / line
        ldir.mkdir(parents=True)
        frags = simulate_fragments(rng_atac, model, reg.re_access[:, ctx.line_index(li)], np.array([n_frag]),
                                   np.array([frip]))
        ins = insertion_counts(frags, sizes)
        write_bigwig(ldir / "atac.bw", g.names, ins)
        summary["bulk_insertions"][line] = int(sum(float(x.sum()) for x in ins))
        for t in np.flatnonzero(ctx.active[ctx.line_index(li)]):
            m = motifs[t]
            peaks = chip_peaks(rng_chip, reg, sizes, int(t), ctx.line_index(li), line, m.tf, g.names, cfg.noise)
            write_narrowpeak(ldir / f"{m.tf}.narrowPeak.gz", peaks)
            summary["chip_peaks"][f"{line}/{m.tf}"] = peaks.height
            rows.append({"line": line, "tf": m.tf, "peaks": f"bulk/{line}/{m.tf}.narrowPeak.gz",
                         "atac": f"bulk/{line}/atac.bw", "motif": m.jaspar_id})
    pl.DataFrame(rows).write_csv(d / "bulk_samplesheet.csv")
    return summary


def _write_single_cells(d: Path, cfg: SimulationConfig, g: SimGenome, reg: Regulome, ctx: Contexts, cells: Cells,
                        model: FragmentModel, rng: np.random.Generator, batch: np.ndarray | None = None) -> dict:
    sizes = np.asarray(g.sizes, dtype=np.int64)
    pooled = [np.zeros(s, dtype=np.float32) for s in g.sizes]
    rows, n_frags = [], {}
    for s in tqdm(range(cfg.n_samples), desc="sc samples", disable=not progress_enabled()):
        name = f"sample{s + 1}"
        sdir = d / "sc" / name
        sdir.mkdir(parents=True)
        frags, counts = sample_fragments(rng, cfg, cells, s, model, reg, ctx, batch)
        write_fragments(sdir / "fragments.tsv.gz", g.names, frags.chrom, frags.start, frags.end, cells.barcode,
                        frags.unit, counts)
        good = cells.good[frags.unit]
        sel = Fragments(frags.chrom[good], frags.start[good], frags.end[good], frags.unit[good])
        for ci, ins in enumerate(insertion_counts(sel, sizes)):
            pooled[ci] += ins
        n_frags[name] = len(frags)
        rows.append({"sample": name, "fragments": f"sc/{name}/fragments.tsv.gz"})
    peaks = call_peaks(pooled, g)
    write_bed(d / "sc" / "peaks.bed", [(g.names[c], a, b, f"{g.names[c]}:{a}-{b}") for c, a, b in peaks])
    pl.DataFrame(rows).write_csv(d / "sc_samplesheet.csv")
    return {"sc_fragments": n_frags, "sc_peaks": len(peaks), "n_cells": cfg.n_cells,
            "n_low_quality": int((~cells.good).sum())}


def _write_truth(d: Path, cfg: SimulationConfig, g: SimGenome, reg: Regulome, ctx: Contexts, motifs: list[Motif],
                 cells: Cells) -> None:
    t = d / "truth"
    t.mkdir()
    samples = [f"sample{s + 1}" for s in range(cfg.n_samples)]
    write_tsv(t / "cells.tsv", _checked(TruthCellsSchema, t / "cells.tsv", {
        "sample": [samples[s] for s in cells.sample],
        "barcode": cells.barcode,
        "cell_id": [f"{samples[s]}#{b}" for s, b in zip(cells.sample, cells.barcode, strict=True)],
        "cell_type": [ctx.types[k] for k in cells.cell_type],
        "quality": np.where(cells.good, "good", "low").tolist(),
    }))
    write_tsv(t / "drivers.tsv", _checked(TruthDriversSchema, t / "drivers.tsv", {
        "cell_type": [ct for ct, ds in ctx.drivers.items() for _ in ds],
        "tf": [motifs[x].tf for ds in ctx.drivers.values() for x in ds],
    }))
    names = np.asarray(ctx.names, dtype=object)
    bound_lists = [names[np.flatnonzero(row)].tolist() for row in reg.site_bound]
    _checked(BoundSitesSchema, t / "bound_sites.parquet", {
        "site_id": [f"site{i + 1:06d}" for i in range(reg.site_tf.size)],
        "chrom": [g.names[c] for c in reg.site_chrom],
        "start": reg.site_start, "end": reg.site_end,
        "strand": reg.site_strand.tolist(),
        "tf": [motifs[x].tf for x in reg.site_tf],
        "motif_score": np.round(reg.site_score, 4),
        "decoy": reg.site_decoy,
        "bound_lines": pl.Series([[x for x in b if x in ctx.lines] for b in bound_lists],
                                 dtype=pl.List(pl.Utf8)),
        "bound_types": pl.Series([[x for x in b if x in ctx.types] for b in bound_lists], dtype=pl.List(pl.Utf8)),
        "weak_motif": reg.site_weak,
        "re_id": [f"re{x + 1:06d}" for x in reg.site_re],
    }).write_parquet(t / "bound_sites.parquet", statistics=False)
    half = 150
    cols = {
        "re_id": [f"re{x + 1:06d}" for x in range(reg.re_kind.size)],
        "chrom": [g.names[c] for c in reg.re_chrom],
        "start": np.maximum(reg.re_center - half, 0),
        "end": np.minimum(reg.re_center + half, np.asarray(g.sizes)[reg.re_chrom]),
        "kind": [KINDS[k] for k in reg.re_kind],
        "tfs": pl.Series([[motifs[x].tf for x in row if x >= 0] for row in reg.re_tfs], dtype=pl.List(pl.Utf8)),
    }
    for c, name in enumerate(ctx.names):
        cols[f"access_{name}"] = np.round(reg.re_access[:, c], 4)
    pl.DataFrame(cols).write_parquet(t / "open_regions.parquet", statistics=False)


def _checked(schema, path: Path, columns: dict) -> pl.DataFrame:
    """A frame of ``columns`` validated against ``schema`` before it is written to ``path``."""
    return validate(schema, pl.DataFrame(columns), path)
