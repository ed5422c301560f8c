"""``scfan sc``: the single-cell commands: preparation (ingest, merge, neighbors), per-cell inference (predict,
split-fragments, merge-activity) and analysis (cluster, tracks, interpret; chromvar: :mod:`scfan.cli.sc_chromvar`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from scfan.cli.common import make_app, threads_option

log = logging.getLogger("scfan")

sc_app = make_app("Single cell: ingest, merge, neighbours, clustering, per-cell TF binding and activity.")


def register(app: typer.Typer) -> None:
    app.add_typer(sc_app, name="sc")


@sc_app.command("ingest")
def ingest_cmd(
    samplesheet: Path = typer.Option(None, help="Single-cell samplesheet CSV (paths relative to it); or give the "
                                     "sample's files with --fragments, --bam or --counts."),
    sample: str = typer.Option(..., help="The samplesheet row (sample name) to ingest."),
    peaks: Path = typer.Option(..., help="Peak set: BED, or the bulk windows.parquet."),
    chrom_sizes: Path = typer.Option(None, "--chrom-sizes", help="genome .fai or chrom.sizes to check names."),
    min_fragments: int = typer.Option(200, "--min-fragments", min=0, help="Keep barcodes with >= N fragments."),
    whitelist: Path = typer.Option(None, help="Barcodes to keep: one per line, or Cell Ranger cell calls "
                                   "(singlecell.csv, per_barcode_metrics.csv: called cells only); overrides the "
                                   "samplesheet."),
    fragments: Path = typer.Option(None, help="The sample's fragments.tsv.gz (without --samplesheet)."),
    bam: Path = typer.Option(None, help="The sample's indexed BAM (without --samplesheet)."),
    barcode_tag: str = typer.Option(None, "--barcode-tag", help="BAM tag of the barcode [default: CB]."),
    counts: Path = typer.Option(None, help="The sample's count matrix: .h5ad, 10x .h5 (filtered_peak_bc_matrix.h5) "
                                "or MatrixMarket (without --samplesheet)."),
    count_peaks: Path = typer.Option(None, "--count-peaks", help="BED of a MatrixMarket matrix's rows."),
    barcodes: Path = typer.Option(None, help="Barcodes of a MatrixMarket matrix's columns."),
    chroms: str = typer.Option("primary", "--chroms", help="Contigs kept: primary (chr1-22, X, Y, M, with or "
                               "without 'chr'), all, or a comma-separated list; peaks and fragments on others "
                               "(_random, chrUn_, _alt, EBV, HLA-, KI/GL) are skipped with one counted warning."),
    threads: int = threads_option(),
    out: Path = typer.Option(..., help="Output cells.h5ad."),
) -> None:
    """Count Tn5 insertions per cell and peak for one sample into a cells × peaks .h5ad with QC in obs."""
    from scfan.threads import use_threads

    use_threads(threads)  # first: polars sizes its pool on import
    from scfan.errors import ScfanError
    from scfan.genome import ChromSelection
    from scfan.sc.ingest import IngestConfig, ingest_sample, write_cells

    ChromSelection(chroms)  # a bad --chroms fails before any file is read

    given = {"fragments": fragments, "bam": bam, "barcode_tag": barcode_tag, "counts": counts,
             "peaks": count_peaks, "barcodes": barcodes}
    files = {k: str(v) for k, v in given.items() if v is not None}
    if (samplesheet is None) == (not files):
        raise ScfanError("give either --samplesheet or the sample's files (--fragments, --bam or --counts)")
    cfg = IngestConfig(samplesheet=str(samplesheet) if samplesheet else None, sample=sample, peaks=str(peaks),
                       chrom_sizes=str(chrom_sizes) if chrom_sizes else None, min_fragments=min_fragments,
                       whitelist=str(whitelist) if whitelist else None, files=files or None, chroms=chroms)
    adata = ingest_sample(cfg)
    write_cells(adata, out, cfg)
    log.info("wrote %s (%d cells × %d peaks)", out, adata.n_obs, adata.n_vars)


@sc_app.command("merge")
def merge_cmd(
    inputs: list[Path] = typer.Argument(..., help="Per-sample cells.h5ad files."),
    threads: int = threads_option(),
    out: Path = typer.Option(..., help="Output merged cells.h5ad."),
) -> None:
    """Concatenate per-sample cells.h5ad files (identical peaks, unique <sample>#<barcode> ids)."""
    from scfan.threads import use_threads

    use_threads(threads)  # first: polars sizes its pool on import
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
    seed: int = typer.Option(0, help="Seed of the randomized SVD, the landmark sample and pynndescent."),
    max_exact_cells: int = typer.Option(50_000, "--max-exact-cells", min=3, help="Above this many cells, fit the "
                                        "embeddings on --landmarks sampled cells and extend them to every cell "
                                        "(bounded memory for a million cells; docs/scaling.md)."),
    landmarks: int = typer.Option(20_000, "--landmarks", min=3, help="Landmark cells for large data sets."),
    threads: int = threads_option(),
    out: Path = typer.Option(..., help="Output cells_nn.h5ad."),
) -> None:
    """Spectral / LSI embedding → kNN: adds obsm['X_spectral'], obsm['X_lsi'], obsp['pooling'] and
    obsp['connectivities']."""
    from scfan.threads import use_threads

    use_threads(threads)  # first: polars sizes its pool on import
    import anndata as ad

    from scfan.errors import InputFileError
    from scfan.sc.ingest import write_cells
    from scfan.sc.neighbors import NeighborsConfig, compute_neighbors

    cfg = NeighborsConfig(k=k, n_components=n_components, drop_depth_component=drop_depth_component, seed=seed,
                          embedding=embedding, max_exact_cells=max_exact_cells, n_landmarks=landmarks)
    try:
        adata = ad.read_h5ad(cells)
    except (OSError, KeyError, ValueError) as exc:
        raise InputFileError(cells, f"cannot read as AnnData ({exc})") from exc
    compute_neighbors(adata, cfg)
    write_cells(adata, out, cfg)


@sc_app.command("cluster")
def cluster_cmd(
    matrix: Path = typer.Option(..., help="Cells × features: .h5ad (X, --layer or --obsm), or a TSV/CSV with cell "
                                "ids in the first column and feature names in the header."),
    layer: str = typer.Option(None, help="Layer of the .h5ad to cluster (TF activity: mean_prob)."),
    obsm: str = typer.Option(None, help="Embedding of the .h5ad to cluster instead (e.g. X_spectral, X_lsi)."),
    labels: Path = typer.Option(None, help="Cell labels TSV/CSV (cell_id + --label-column) for ARI/NMI; default: "
                                "the .h5ad's obs column of that name, if any."),
    label_column: str = typer.Option("cell_type", "--label-column", help="Label column name."),
    diff_matrix: Path = typer.Option(None, "--diff-matrix", help="Test this matrix's features between the clusters "
                                     "(default: the clustered matrix), e.g. TF activity on chromatin clusters."),
    diff_layer: str = typer.Option(None, "--diff-layer", help="Layer of --diff-matrix tested."),
    resolution: float = typer.Option(None, help="Leiden resolution; default: chosen by --resolution-rule over "
                                     "0.05–3.0 (every one tried is listed in cluster.json and the report)."),
    resolution_rule: str = typer.Option("consensus", "--resolution-rule", help="consensus: of the partitions within "
                                        "0.1 of the best silhouette, the one most in agreement with the other "
                                        "resolutions' partitions; silhouette: the best silhouette alone."),
    n_neighbors: int = typer.Option(15, "--n-neighbors", min=2, help="kNN graph neighbours."),
    n_pcs: int = typer.Option(30, "--n-pcs", min=2, help="PCA components when there are more features."),
    scale: bool = typer.Option(None, "--scale/--no-scale", help="z-score features (default: yes for matrices, no "
                               "for embeddings)."),
    tsne: bool = typer.Option(False, "--tsne", help="Also compute t-SNE (obsm['X_tsne'])."),
    seed: int = typer.Option(0, help="Seed of PCA, Leiden, UMAP, t-SNE and silhouette sampling."),
    threads: int = threads_option(),
    out_dir: Path = typer.Option(..., "--out-dir", help="Output folder: clusters.tsv, differential_tfs.tsv, "
                                 "clustered.h5ad, cluster.json."),
) -> None:
    """Leiden clusters of any cells × features matrix, UMAP, ARI/NMI against labels, and Wilcoxon differential
    features per cluster (Benjamini–Hochberg)."""
    from scfan.threads import use_threads

    use_threads(threads)  # first: polars sizes its pool on import
    from scfan.sc.cluster import ClusterConfig, cluster_matrix, read_labels, read_matrix, write_result

    layer = None if layer == "X" else layer  # "X" names the matrix itself
    diff_layer = None if diff_layer == "X" else diff_layer
    cfg = ClusterConfig(layer=layer, obsm=obsm, scale=scale, n_pcs=n_pcs, n_neighbors=n_neighbors,
                        resolution=resolution, resolution_rule=resolution_rule, seed=seed, tsne=tsne,
                        label_column=label_column,
                        diff_layer=diff_layer)
    fm = read_matrix(matrix, layer=layer, obsm=obsm)
    if labels is not None:
        fm.labels = read_labels(labels, label_column)
    elif fm.adata is not None and label_column in fm.adata.obs:
        fm.labels = fm.adata.obs[label_column].astype(str).set_axis(fm.cells)
    else:
        log.warning("no labels (%s): ARI/NMI skipped", label_column)
    if fm.labels is not None:
        unknown = len(set(fm.cells) - set(fm.labels.index))
        if unknown:
            log.warning("%d of %d cells have no label", unknown, len(fm.cells))
    diff = read_matrix(diff_matrix, layer=diff_layer) if diff_matrix is not None else None
    res = cluster_matrix(fm, cfg, diff=diff)
    write_result(res, out_dir)
    s = res.summary
    log.info("wrote %s: %d cells in %d clusters (resolution %s)%s", out_dir, s["n_cells"], s["n_clusters"],
             s["resolution"], "" if s["ari"] is None else f"; ARI {s['ari']:.3f}, NMI {s['nmi']:.3f}")


def _fragments_map(items: list[str]) -> dict[str, Path]:
    from scfan.args import named_map

    pairs = named_map(items, "--fragments", "SAMPLE=path/to/fragments.tsv.gz", what="sample")
    return {sample: Path(path) for sample, path in pairs.items()}


@sc_app.command("predict")
def predict_cmd(
    cells: Path = typer.Option(..., help="cells_nn.h5ad from `sc neighbors` (obsp['pooling'])."),
    model: list[str] = typer.Option(..., "--model", help="Trained bulk model, NAME=model.pt or model.pt "
                                    "(repeat for several; features are named NAME:TF)."),
    fragments: list[str] = typer.Option(..., "--fragments", help="SAMPLE=fragments.tsv.gz (bgzip + tabix), one "
                                        "per sample of the cells file."),
    genome: Path = typer.Option(..., help="Genome FASTA the models were trained on."),
    mappability: Path = typer.Option(..., help="Mappability bigWig (values in [0, 1])."),
    shard: str = typer.Option("1/1", help="Shard i/n of the cells (1-based); every shard count gives the same "
                              "numbers."),
    mode: str = typer.Option("exact", help="exact (every cell on its own pooled track, float32 on a CPU), fast "
                             "(the same with bfloat16 convolutions where the CPU runs them natively) or metacell "
                             "(one pooled track per metacell, as fast)."),
    min_signal: float = typer.Option(1.0, "--min-signal", help="Score a cell's peak when its pooled count is >= "
                                     "this × the cell's mean pooled count over peaks."),
    bound_threshold: float = typer.Option(0.5, "--bound-threshold", help="Probability counted as bound "
                                          "(layer frac_bound)."),
    top_k: int = typer.Option(2, "--top-k", help="TFs counted per window for X (scFAN: 2)."),
    metacell_size: int = typer.Option(20, "--metacell-size", help="Cells per metacell in metacell mode."),
    batch_size: int = typer.Option(512, "--batch-size", help="Windows moved to the device at once."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    amp: bool = typer.Option(True, "--amp/--no-amp", help="bfloat16 on CUDA, tensor-core layout (on a CPU the mode "
                             "sets the precision)."),
    compile_models: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile the models on CUDA "
                                        "(with --amp): ~2.4x faster prediction after 1-2 min of compilation; for "
                                        "shards of tens of millions of cell-windows or more."),
    window_share: float = typer.Option(1.0, "--window-share", help="Share of the windows scored for the activity "
                                       "(0-1]: below 1, each layer is estimated from a random sample of every "
                                       "cell's windows (the same windows for all cells), with standard errors in "
                                       "layers *_se; ~1/share fewer model calls (docs/single_cell.md)."),
    window_seed: int = typer.Option(0, "--window-seed", help="Seed of the --window-share sample."),
    window_estimator: str = typer.Option("mean", "--window-estimator", help="With --window-share < 1: 'mean' (each "
                                         "cell's mean over its sampled windows) or 'regression' (that mean "
                                         "corrected by a per-window proxy known for every window: smaller errors, "
                                         "one more model run per window of the shard; docs/scaling.md)."),
    min_sampled_windows: int = typer.Option(100, "--min-sampled-windows", help="With --window-share < 1, a cell "
                                            "with fewer sampled windows is scored on all of its windows."),
    assembly: str = typer.Option("auto", "--assembly", help="Where the model inputs are built from the parsed "
                                 "fragments: host (numpy/scipy), device (torch on the models' device: pooling, "
                                 "window slices, scaling) or auto (device on CUDA, host on a CPU); the same numbers up "
                                 "to float32 rounding."),
    threads: int = threads_option(),
    out: Path = typer.Option(..., help="Output activity shard .h5ad, or an existing folder to write "
                             "activity_shard_<i>_of_<n>.h5ad in (the name the pipeline collects)."),
) -> None:
    """Per-cell TF binding → the shard's cells × features activity (.h5ad: X top-k frequency, layers mean_prob,
    frac_bound; with --window-share < 1 also their standard errors)."""
    from scfan.threads import use_threads

    use_threads(threads, load_torch=True)  # first: polars sizes its pool on import
    from scfan.sc.predict import PredictConfig, predict_activity, write_activity
    from scfan.sc.shards import activity_file_name

    cfg = PredictConfig(mode=mode, shard=shard, min_signal=min_signal, bound_threshold=bound_threshold,
                        top_k=top_k, batch_size=batch_size, metacell_size=metacell_size, device=device, amp=amp,
                        compile=compile_models, num_threads=threads, window_share=window_share,
                        window_seed=window_seed, min_sampled_windows=min_sampled_windows,
                        window_estimator=window_estimator, assembly=assembly)
    adata = predict_activity(cells, model, _fragments_map(fragments), genome, mappability, cfg)
    write_activity(adata, out / activity_file_name(shard) if out.is_dir() else out)
    log.info("wrote %s (%d cells × %d features; %d without a scored window)", out, adata.n_obs, adata.n_vars,
             int(adata.obs["no_scored_windows"].sum()))


@sc_app.command("split-fragments")
def split_fragments_cmd(
    cells: Path = typer.Option(..., help="cells_nn.h5ad from `sc neighbors` (obsp['pooling'], obs['shard_rank'])."),
    fragments: list[str] = typer.Option(..., "--fragments", help="SAMPLE=fragments.tsv.gz (bgzip + tabix), for "
                                        "each sample to split (any of the cells file's samples)."),
    shards: int = typer.Option(..., "--shards", help="Number of shards `sc predict --shard i/n` will run."),
    mode: str = typer.Option("exact", help="The `sc predict --mode` the shards will run (metacell mode pools "
                             "over metacell seeds, which may lie in other shards; exact and fast share a split)."),
    metacell_size: int = typer.Option(20, "--metacell-size", help="As in `sc predict` (metacell mode)."),
    out_dir: Path = typer.Option(..., "--out-dir", help="Output folder: shard_<i>_of_<n>/<SAMPLE>.fragments.tsv.gz "
                                 "(+ .tbi) and shard_<i>_of_<n>/shard.txt naming the shard (i/n)."),
) -> None:
    """One pass over each sample's fragments: a file per shard with the fragments of the cells that shard pools
    (its cells and their neighbours), so that each `sc predict` shard reads only its own."""
    from scfan.sc.shards import split_fragments

    res = split_fragments(cells, _fragments_map(fragments), shards, out_dir, mode=mode, metacell_size=metacell_size)
    log.info("wrote %s: %d shard(s); %d fragments written for %d read (%.2f copies each)", out_dir, res.n_shards,
             sum(res.lines_written.values()), sum(res.lines_read.values()), res.replication)


#: the inputs of the per-cluster commands (`sc tracks`, `sc interpret`): one definition, one help text
_cluster_inputs = {
    "cells": lambda: typer.Option(..., help="cells_nn.h5ad from `sc neighbors` (obsp['pooling'])."),
    "clusters": lambda: typer.Option(..., help="clusters.tsv from `sc cluster` (cell_id, cluster)."),
    "model": lambda: typer.Option(..., "--model", help="Trained bulk model, NAME=model.pt (repeat)."),
    "fragments": lambda: typer.Option(..., "--fragments", help="SAMPLE=fragments.tsv.gz, one per sample."),
    "genome": lambda: typer.Option(..., help="Genome FASTA the models were trained on."),
    "mappability": lambda: typer.Option(..., help="Mappability bigWig."),
}


@sc_app.command("tracks")
def tracks_cmd(
    cells: Path = _cluster_inputs["cells"](),
    clusters: Path = _cluster_inputs["clusters"](),
    model: list[str] = _cluster_inputs["model"](),
    fragments: list[str] = _cluster_inputs["fragments"](),
    genome: Path = _cluster_inputs["genome"](),
    mappability: Path = _cluster_inputs["mappability"](),
    mode: str = typer.Option("exact", help="exact, fast (exact's pairs, bfloat16 convolutions only where the "
                             "runtime check passes) or metacell (a few x faster, an approximation), as in "
                             "`sc predict`."),
    min_signal: float = typer.Option(1.0, "--min-signal", help="As in `sc predict`."),
    metacell_size: int = typer.Option(20, "--metacell-size", help="Cells per metacell in metacell mode."),
    batch_size: int = typer.Option(512, "--batch-size", help="Windows moved to the device at once."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    amp: bool = typer.Option(True, "--amp/--no-amp", help="bfloat16 autocast on CUDA."),
    threads: int = threads_option(),
    out_dir: Path = typer.Option(..., "--out-dir", help="Output folder: <cluster>/<model>_<TF>.bw, tracks.txt."),
) -> None:
    """Per-cluster predicted binding tracks (bigWig): mean binding probability of the cluster's cells per
    scored window, for every TF."""
    from scfan.threads import use_threads

    use_threads(threads, load_torch=True)  # first: polars sizes its pool on import
    from scfan.sc.cluster_tracks import cluster_tracks
    from scfan.sc.predict import PredictConfig

    cfg = PredictConfig(mode=mode, shard="1/1", min_signal=min_signal, batch_size=batch_size,
                        metacell_size=metacell_size, device=device, amp=amp, num_threads=threads)
    cluster_tracks(cells, clusters, model, _fragments_map(fragments), genome, mappability, cfg, out_dir)


@sc_app.command("interpret")
def interpret_cmd(
    cells: Path = _cluster_inputs["cells"](),
    clusters: Path = _cluster_inputs["clusters"](),
    model: list[str] = _cluster_inputs["model"](),
    fragments: list[str] = _cluster_inputs["fragments"](),
    genome: Path = _cluster_inputs["genome"](),
    mappability: Path = _cluster_inputs["mappability"](),
    differential: Path = typer.Option(None, "--differential", help="differential_tfs.tsv of `sc cluster`: explain "
                                      "each cluster's top differential TFs."),
    features: str = typer.Option(None, "--features", help="Comma-separated MODEL:TF features to explain in every "
                                 "cluster (instead of --differential)."),
    top_tfs: int = typer.Option(2, "--top-tfs", help="Differential TFs per cluster."),
    cluster_ids: str = typer.Option(None, "--clusters-only", help="Comma-separated cluster ids [default: all]."),
    region: str = typer.Option(None, "--region", help="chrom:start-end (0-based): per cluster, each TF's "
                               "probability along the region and the bases behind it at its best window."),
    n_windows: int = typer.Option(30, "--n-windows", help="Top windows per cluster and TF."),
    max_candidates: int = typer.Option(2000, "--max-candidates", help="Peaks per cluster scored to find them "
                                       "(the cluster's most accessible)."),
    part: str = typer.Option("model", "--part", help="model (the whole model) or network (the CNN alone)."),
    n_shuffles: int = typer.Option(10, "--n-shuffles", help="Dinucleotide-shuffled references per window."),
    seed: int = typer.Option(0, "--seed", help="Seed of the references."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    threads: int = threads_option(),
    out_dir: Path = typer.Option(..., "--out-dir", help="Output folder (clusters.tsv, instances.tsv, region.tsv, "
                                 "tracks/, attributions.npz, interpret.json)."),
) -> None:
    """Why a cluster's TF is called: attributions on the cluster's pooled input, motif instances, accessibility."""
    from scfan.threads import use_threads

    use_threads(threads, load_torch=True)
    from scfan.errors import ScfanError
    from scfan.inference import resolve_device
    from scfan.interpret.attribution import PARTS, AttributionConfig
    from scfan.interpret.cells import CellInterpretConfig, interpret_clusters

    if part not in PARTS:
        raise ScfanError(f"--part {part!r}: expected one of {', '.join(PARTS)}")
    for name, v in (("--n-windows", n_windows), ("--top-tfs", top_tfs), ("--max-candidates", max_candidates),
                    ("--n-shuffles", n_shuffles)):
        if v < 1:
            raise ScfanError(f"{name} must be at least 1, got {v}")
    def split(text: str | None) -> tuple[str, ...]:
        return tuple(x.strip() for x in text.split(",") if x.strip()) if text else ()

    cfg = CellInterpretConfig(top_tfs=top_tfs, n_windows=n_windows, max_candidates=max_candidates, part=part,
                              clusters=split(cluster_ids), features=split(features), region=region, seed=seed,
                              attribution=AttributionConfig(n_shuffles=n_shuffles, seed=seed,
                                                            device=resolve_device(device).type))
    res = interpret_clusters(cells, clusters, model, _fragments_map(fragments), genome, mappability, differential,
                             cfg, out_dir)
    log.info("interpreted %d cluster(s) in %.1f s: %s", len(res["clusters"]), res["seconds"], out_dir)


@sc_app.command("merge-activity")
def merge_activity_cmd(
    shards: list[Path] = typer.Argument(..., help="Activity shards from `sc predict`."),
    out: Path = typer.Option(..., help="Output tf_activity.h5ad."),
) -> None:
    """Gather activity shards into one cells × features matrix (every shard exactly once)."""
    from scfan.sc.predict import merge_activity, write_activity

    adata = merge_activity(shards)
    write_activity(adata, out)
    log.info("wrote %s (%d cells × %d features from %d shard(s))", out, adata.n_obs, adata.n_vars, len(shards))


def _register_more() -> None:
    from scfan.cli import sc_chromvar

    sc_chromvar.register(sc_app)


_register_more()
