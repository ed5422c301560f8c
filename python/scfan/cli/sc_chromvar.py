"""``scfan sc chromvar``: the chromVAR baseline (motif deviations per cell) for the TFs the models predict."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from scfan.cli.common import threads_option

log = logging.getLogger("scfan")


def chromvar_cmd(
    cells: Path = typer.Option(..., help="cells.h5ad from `sc ingest` / `sc merge` (cells × peaks counts)."),
    genome: Path = typer.Option(..., help="Genome FASTA the peaks were called on (.fai beside it, or built)."),
    motif: list[str] = typer.Option(None, "--motif", help="JASPAR matrix id (MA0139.2), TF name (CTCF: JASPAR "
                                    "CORE vertebrates, latest version) or NAME=MATRIX_ID; repeat for several."),
    motifs_from_activity: Path = typer.Option(None, "--motifs-from-activity", help="tf_activity.h5ad from "
                                              "`sc merge-activity`: add every TF of its var['tf'] by name."),
    motif_table: Path = typer.Option(None, "--motif-table", help="TSV with columns tf and jaspar_id (e.g. the "
                                     "simulator's tfs.tsv): the matrix used for each TF named there."),
    n_jobs: int = typer.Option(1, "--n-jobs", min=1, help="Worker threads for the background-peak search."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the pynndescent background search."),
    n_background_iterations: int = typer.Option(50, "--n-background-iterations", min=2,
                                                help="Background peak sets per peak (chromVAR: 50)."),
    p_value: float = typer.Option(5e-5, "--p-value", help="MOODS motif-match p-value threshold."),
    background: str = typer.Option("exact", "--background", help="exact (KD-tree nearest peaks) or pynndescent "
                                   "(pychromvar's own search, seeded)."),
    threads: int = threads_option(),
    out: Path = typer.Option(..., help="Output chromvar.h5ad (cells × motifs)."),
) -> None:
    """chromVAR deviations per cell and motif (.h5ad: X z-scores, layers['deviations'], var tf / jaspar_id)."""
    from scfan.threads import use_threads

    use_threads(threads)  # first: polars sizes its pool on import
    from scfan.sc.chromvar import ChromvarConfig, run_chromvar, tfs_from_activity, write_chromvar

    table = read_motif_table(motif_table) if motif_table is not None else {}
    items = list(motif or [])
    if motifs_from_activity is not None:
        items += [f"{tf}={table[tf]}" if tf in table else tf for tf in tfs_from_activity(motifs_from_activity)]
    elif table:
        items += [f"{tf}={mid}" for tf, mid in table.items()]
    cfg = ChromvarConfig(motifs=tuple(items), seed=seed, n_jobs=n_jobs, background=background,
                         n_background_iterations=n_background_iterations, p_value=p_value)
    adata = run_chromvar(cells, genome, cfg.motifs, cfg)
    write_chromvar(adata, out)
    log.info("wrote %s (%d cells × %d motifs)", out, adata.n_obs, adata.n_vars)


def read_motif_table(path: Path) -> dict[str, str]:
    """TF → JASPAR matrix id from a TSV with columns ``tf`` and ``jaspar_id``."""
    import pandas as pd

    from scfan.errors import InputFileError

    try:
        tab = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise InputFileError(path, f"cannot read as TSV ({exc.__class__.__name__})") from exc
    if not {"tf", "jaspar_id"} <= set(tab.columns):
        raise InputFileError(path, "expected columns tf and jaspar_id", line=1)
    bad = tab["jaspar_id"].str.fullmatch(r"MA\d{4}\.\d+") == False  # noqa: E712
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise InputFileError(path, "expected a JASPAR matrix id such as MA0139.2", line=i + 2,
                             record=tab["jaspar_id"].iloc[i])
    return dict(zip(tab["tf"], tab["jaspar_id"], strict=True))


def register(sc_app: typer.Typer) -> None:
    """Add ``scfan sc chromvar`` to the ``sc`` group."""
    sc_app.command("chromvar")(chromvar_cmd)
