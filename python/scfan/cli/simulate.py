"""``scfan simulate``: generate a data set with known truth (genome, bulk lines, single cells)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

log = logging.getLogger("scfan.simulate")


def simulate_cmd(
    preset: str = typer.Option("test", "--preset", help="Preset: test (minutes end to end), bench (benchmarks) or hard "
                                "(similar cell types and batch effects, to rank clustering methods)."),
    seed: int = typer.Option(7, "--seed", help="Seed of every random step (same seed -> identical files)."),
    outdir: Path = typer.Option(..., "--outdir", help="Output folder (must not exist or be empty)."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --outdir."),
    n_cells: int = typer.Option(None, "--n-cells", help="Barcodes in all samples (incl. low-quality)."),
    n_types: int = typer.Option(None, "--n-types", help="Cell types (each needs its own driver TF)."),
    n_samples: int = typer.Option(None, "--n-samples", help="scATAC samples."),
    n_lines: int = typer.Option(None, "--n-lines", help="Bulk cell lines."),
    n_tfs: int = typer.Option(None, "--n-tfs", help="TFs planted (JASPAR catalogue order, CTCF first)."),
    median_fragments: int = typer.Option(None, "--median-fragments", help="Median fragments of a good cell."),
    low_quality_frac: float = typer.Option(None, "--low-quality-frac", help="Fraction of low-quality barcodes."),
    genome_size: int = typer.Option(None, "--genome-size", help="Genome length in bp."),
    n_chroms: int = typer.Option(None, "--n-chroms", help="Chromosomes (chr1.., chrX)."),
    sites_per_mb: float = typer.Option(None, "--sites-per-mb", help="Enhancers per Mb for each TF."),
    bulk_depth: float = typer.Option(None, "--bulk-depth", help="Bulk ATAC Tn5 insertions per bp."),
    noise: float = typer.Option(None, "--noise", help="Noise multiplier (0 = ideal, 1 = default)."),
    threads: int = typer.Option(None, "--threads", help="CPU threads for numpy/BLAS, numba and polars; default: the "
                                "CPUs this process may use, no cap. The pipeline passes task.cpus."),
) -> None:
    """Simulate genome, JASPAR TF sites, bulk ChIP/ATAC lines and scATAC fragments with ground truth."""
    from scfan.threads import use_threads

    use_threads(threads)  # first: polars sizes its pool when it is imported
    from scfan.simulate import run_simulation

    out = run_simulation(preset, seed, outdir, force=force, n_cells=n_cells, n_types=n_types, n_samples=n_samples,
                         n_lines=n_lines, n_tfs=n_tfs, median_fragments=median_fragments,
                         low_quality_frac=low_quality_frac, genome_size=genome_size, n_chroms=n_chroms,
                         sites_per_mb=sites_per_mb, bulk_depth=bulk_depth, noise=noise)
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    log.info("%s: %d cells (%d low-quality), %d sc fragments, %d sc peaks, %d planted sites, %d ChIP peak sets",
             out, summary["n_cells"], summary["n_low_quality"], sum(summary["sc_fragments"].values()),
             summary["sc_peaks"], summary["n_sites"], len(summary["chip_peaks"]))


def register(app: typer.Typer) -> None:
    """Add ``scfan simulate`` to the root app."""
    app.command("simulate")(simulate_cmd)
