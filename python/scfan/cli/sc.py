"""``scfan sc``: single-cell preparation commands (ingest, merge, neighbors, cluster)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import typer

from scfan.cli.common import make_app

log = logging.getLogger("scfan")

sc_app = make_app("Single-cell preparation: ingest, merge, neighbours, clustering.")


def register(app: typer.Typer) -> None:
    app.add_typer(sc_app, name="sc")


@sc_app.command("ingest")
def ingest_cmd(
    samplesheet: Path = typer.Option(..., help="Single-cell samplesheet CSV (paths relative to it)."),
    sample: str = typer.Option(..., help="The samplesheet row (sample name) to ingest."),
    peaks: Path = typer.Option(..., help="Peak set: BED, or the bulk windows.parquet."),
    chrom_sizes: Path = typer.Option(None, "--chrom-sizes", help="genome .fai or chrom.sizes to check names."),
    min_fragments: int = typer.Option(200, "--min-fragments", min=0, help="Keep barcodes with >= N fragments."),
    whitelist: Path = typer.Option(None, help="Barcode whitelist, one per line (overrides the samplesheet)."),
    out: Path = typer.Option(..., help="Output cells.h5ad."),
) -> None:
    """Count Tn5 insertions per cell and peak for one sample into a cells × peaks .h5ad with QC in obs."""
    from scfan.sc.ingest import IngestConfig, ingest_sample, write_cells

    cfg = IngestConfig(samplesheet=str(samplesheet), sample=sample, peaks=str(peaks),
                       chrom_sizes=str(chrom_sizes) if chrom_sizes else None, min_fragments=min_fragments,
                       whitelist=str(whitelist) if whitelist else None)
    adata = ingest_sample(cfg)
    write_cells(adata, out, cfg)
    log.info("wrote %s (%d cells × %d peaks)", out, adata.n_obs, adata.n_vars)


@sc_app.command("merge")
def merge_cmd(
    inputs: list[Path] = typer.Argument(..., help="Per-sample cells.h5ad files."),
    out: Path = typer.Option(..., help="Output merged cells.h5ad."),
) -> None:
    """Concatenate per-sample cells.h5ad files (identical peaks, unique <sample>#<barcode> ids)."""
    from scfan.sc.ingest import MergeConfig, merge_cells, write_cells

    cfg = MergeConfig(inputs=tuple(str(p) for p in inputs))
    adata = merge_cells(inputs)
    write_cells(adata, out, cfg)
    log.info("wrote %s (%d cells from %d samples)", out, adata.n_obs, len(inputs))


@sc_app.command("neighbors")
def neighbors_cmd(
    cells: Path = typer.Option(..., help="cells.h5ad from ingest/merge."),
    k: int = typer.Option(100, "--k", min=1, help="Neighbours pooled per cell, the cell included."),
    n_components: int = typer.Option(30, "--n-components", min=2, help="Embedding components computed."),
    embedding: str = typer.Option("spectral", "--embedding", help="spectral (default) or lsi: the embedding the "
                                  "neighbours are found in (LSI is always stored in obsm['X_lsi'])."),
    drop_depth_component: bool = typer.Option(True, "--drop-depth-component/--keep-depth-component",
                                              help="Drop the LSI component most correlated with depth."),
    seed: int = typer.Option(0, help="Seed of the randomized SVD (and of pynndescent for large data)."),
    out: Path = typer.Option(..., help="Output cells_nn.h5ad."),
) -> None:
    """Spectral / LSI embedding → kNN: adds obsm['X_spectral'], obsm['X_lsi'], obsp['pooling'] and
    obsp['connectivities']."""
    import anndata as ad

    from scfan.errors import InputFileError
    from scfan.sc.ingest import write_cells
    from scfan.sc.neighbors import NeighborsConfig, compute_neighbors

    cfg = NeighborsConfig(k=k, n_components=n_components, drop_depth_component=drop_depth_component, seed=seed,
                          embedding=embedding)
    try:
        adata = ad.read_h5ad(cells)
    except (OSError, KeyError, ValueError) as exc:
        raise InputFileError(cells, f"cannot read as AnnData ({exc})") from exc
    compute_neighbors(adata, cfg)
    write_cells(adata, out, cfg)


@sc_app.command("cluster")
def cluster_cmd(
    cells: Path = typer.Option(..., help="cells_nn.h5ad (with obsp['connectivities'])."),
    resolution: float = typer.Option(1.0, help="Leiden resolution."),
    seed: int = typer.Option(0, help="Leiden seed."),
    out: Path = typer.Option(..., help="Output clusters.tsv (cell_id, sample, cluster)."),
) -> None:
    """Leiden clustering of the kNN graph; writes a TSV of cell ids and cluster numbers."""
    import anndata as ad

    from scfan._io import atomic_path, write_json
    from scfan.errors import InputFileError
    from scfan.sc.cluster import ClusterConfig, leiden

    cfg = ClusterConfig(resolution=resolution, seed=seed)
    try:
        adata = ad.read_h5ad(cells, backed=None)
    except (OSError, KeyError, ValueError) as exc:
        raise InputFileError(cells, f"cannot read as AnnData ({exc})") from exc
    if "connectivities" not in adata.obsp:
        raise InputFileError(cells, "no obsp['connectivities']; run `scfan sc neighbors` first")
    labels = leiden(adata.obsp["connectivities"], resolution=cfg.resolution, seed=cfg.seed)
    with atomic_path(out) as tmp:
        tab = adata.obs[["sample"]].assign(cluster=labels).rename_axis("cell_id").reset_index()
        tab.to_csv(tmp, sep="\t", index=False)
    write_json(out.with_name(out.name.removesuffix(".tsv") + ".config.json"), asdict(cfg))
    log.info("wrote %s (%d clusters)", out, len(set(labels.tolist())))
