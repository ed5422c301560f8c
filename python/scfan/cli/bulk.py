"""``scfan bulk``: prepare windows, train scFANet, evaluate it against a PWM scan, predict on regions."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import typer

from scfan.bulk.train_config import TrainConfig
from scfan.cli.common import make_app, threads_option

log = logging.getLogger("scfan.bulk")

app = make_app("Bulk stage: labelled windows → scFANet training → evaluation → bulk prediction.")


_threads_option = threads_option


def _chroms(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(c.strip() for c in text.split(",") if c.strip())


@app.command("prepare")
def prepare_cmd(
    samplesheet: Path = typer.Option(None, "--samplesheet", help="Bulk samplesheet CSV (line,tf,peaks,atac,motif); "
                                     "or give the line's files with --atac, --peaks and --motif."),
    line: str = typer.Option(..., "--line", help="Bulk cell line (samplesheet 'line') to prepare."),
    atac: Path = typer.Option(None, "--atac", help="The line's bulk ATAC bigWig or BAM (without --samplesheet)."),
    peaks: list[str] = typer.Option(None, "--peaks", help="TF=PATH: one TF's ChIP peaks, repeated per TF in label "
                                    "order (without --samplesheet)."),
    motifs: list[str] = typer.Option(None, "--motif", help="TF=JASPAR_ID for the PWM baseline, repeatable "
                                     "(without --samplesheet)."),
    genome: Path = typer.Option(..., "--genome", help="Genome FASTA (.fai built if missing)."),
    mappability: Path = typer.Option(..., "--mappability", help="Mappability bigWig (values in [0, 1])."),
    blacklist: Path = typer.Option(None, "--blacklist", help="Blacklist BED; windows near it are dropped."),
    valid_chroms: str = typer.Option(None, "--valid-chroms", help="Comma-separated validation chromosomes "
                                     "[default: chr11]."),
    test_chroms: str = typer.Option(None, "--test-chroms", help="Comma-separated test chromosomes "
                                    "[default: chr1,chr8,chr21]."),
    chroms: str = typer.Option("all", "--chroms", help="Chromosomes tiled: all (every contig of the FASTA), "
                               "primary (chr1-22, X, Y, M, with or without 'chr') or a comma-separated list; "
                               "peaks on others are ignored (counted in one log line)."),
    window: int = typer.Option(200, "--window", help="Window size (bp)."),
    step: int = typer.Option(50, "--step", help="Tiling step (bp)."),
    min_overlap: int = typer.Option(101, "--min-overlap", help="Peak overlap (bp) that makes a window positive."),
    context: int = typer.Option(1000, "--context", help="Model input length (bp), centred on the window."),
    blacklist_pad: int = typer.Option(1000, "--blacklist-pad", help="Drop windows within this distance of the "
                                      "blacklist (bp)."),
    threads: int = _threads_option(),
    outdir: Path = typer.Option(..., "--outdir", help="Output folder (windows.parquet, prepare.json)."),
) -> None:
    """Tile the genome into windows and label them per TF from ChIP peaks."""
    from scfan.threads import use_threads

    use_threads(threads, load_torch=True)  # first: polars sizes its pool when it is imported
    from scfan.bulk.windows import PrepareConfig, prepare_bulk, sources_from_arguments, sources_from_samplesheet
    from scfan.errors import ScfanError

    if (samplesheet is None) == (atac is None):
        raise ScfanError("give either --samplesheet or --atac with --peaks (and --motif)")
    if samplesheet is not None and (peaks or motifs):
        raise ScfanError("--peaks / --motif go with --atac, not with --samplesheet")

    kw = {}
    if valid_chroms is not None:
        kw["valid_chroms"] = _chroms(valid_chroms)
    if test_chroms is not None:
        kw["test_chroms"] = _chroms(test_chroms)
    cfg = PrepareConfig(window=window, step=step, min_overlap=min_overlap, context=context,
                        blacklist_pad=blacklist_pad, chroms=chroms, **kw)
    if samplesheet is not None:
        sources = sources_from_samplesheet(samplesheet, line)
    else:
        sources = sources_from_arguments(line, atac, peaks or [], motifs or [])
    summary = prepare_bulk(sources, genome, mappability, blacklist, cfg, outdir)
    log.info("windows per split: %s", summary["windows_per_split"])


@app.command("train")
def train_cmd(
    windows: Path = typer.Option(..., "--windows", help="windows.parquet from `bulk prepare`."),
    genome: Path = typer.Option(..., "--genome", help="Genome FASTA."),
    atac: Path = typer.Option(None, "--atac", help="Bulk ATAC bigWig (insertions per base) or BAM."),
    mappability: Path = typer.Option(None, "--mappability", help="Mappability bigWig."),
    sequence_only: bool = typer.Option(False, "--sequence-only", help="Train on DNA alone (no --atac/--mappability)."),
    arch: str = typer.Option(TrainConfig.arch, "--arch", help="small (the CPU default) or full (scFAN: 160/240/240, "
                             "dense 919; the gpu profile's)."),
    epochs: int = typer.Option(TrainConfig.epochs, "--epochs", help="Maximum epochs."),
    patience: int = typer.Option(TrainConfig.patience, "--patience", help="Early stopping: epochs without "
                                 "validation mean AUPRC improvement."),
    batch_size: int = typer.Option(TrainConfig.batch_size, "--batch-size", help="Training batch size."),
    lr: float = typer.Option(TrainConfig.lr, "--lr", help="Adam learning rate."),
    motif_lr_mult: float = typer.Option(TrainConfig.motif_lr_mult, "--motif-lr-mult", help="The motif branch's "
                                        "output layer learns at this multiple of --lr."),
    neg_ratio: float = typer.Option(TrainConfig.neg_ratio, "--neg-ratio", help="Negatives per positive, resampled "
                                    "every epoch."),
    sampler: str = typer.Option(TrainConfig.sampler, "--sampler", help="random (uniform negatives) or hard "
                                "(part of them open in the ATAC but bound by no TF)."),
    hard_frac: float = typer.Option(TrainConfig.hard_frac, "--hard-frac", help="Share of the negatives that are "
                                    "open (hard) windows (--sampler hard)."),
    open_quantile: float = typer.Option(TrainConfig.open_quantile, "--open-quantile", help="A window is open for "
                                        "the sampler above this quantile of the training windows' accessibility."),
    motif_init: bool = typer.Option(TrainConfig.motif_init, "--motif-init/--no-motif-init", help="Seed first-layer "
                                    "filters with the TFs' JASPAR matrices."),
    jitter: int = typer.Option(TrainConfig.jitter, "--jitter", help="Random shift of the input (± bp)."),
    thin_min_keep: float = typer.Option(TrainConfig.thin_min_keep, "--thin-min-keep", help="Train on the ATAC "
                                        "track thinned per window to a share of its insertions drawn log-uniform "
                                        "in [this, 1]: the depth of a pooled single-cell neighbourhood (needs "
                                        "insertion counts; 1 = off; docs/single_cell.md)."),
    max_train_windows: int = typer.Option(TrainConfig.max_train_windows, "--max-train-windows",
                                          help="Cap on training windows per epoch."),
    max_valid_windows: int = typer.Option(TrainConfig.max_valid_windows, "--max-valid-windows",
                                          help="Size of the fixed validation subset."),
    seed: int = typer.Option(TrainConfig.seed, "--seed", help="Random seed."),
    device: str = typer.Option(TrainConfig.device, "--device", help="auto, cpu or cuda."),
    amp: bool = typer.Option(TrainConfig.amp, "--amp/--no-amp", help="Mixed precision on CUDA (ignored on CPU)."),
    threads: int = typer.Option(None, "--threads", help="CPU threads for torch, BLAS, numba and polars; default: the "
                                "CPUs this process may use (its affinity set), no cap. The pipeline passes "
                                "task.cpus; results are reproducible for a given thread count."),
    outdir: Path = typer.Option(..., "--outdir", help="Output folder; re-running resumes from checkpoints/last.pt."),
) -> None:
    """Train scFANet on the training windows (resumable; model selection on validation mean AUPRC)."""
    from scfan.memory import return_freed_memory_at_once
    from scfan.threads import use_threads

    return_freed_memory_at_once()  # before polars is imported: the windows table is dropped before the genome loads
    n_threads = use_threads(threads, load_torch=True)  # first: polars sizes its pool when it is imported
    from scfan.bulk.data import InputSource, read_split_arrays
    from scfan.bulk.train import train_arrays
    from scfan.errors import ScfanError

    if not sequence_only and (atac is None or mappability is None):
        raise ScfanError("give --atac and --mappability (or --sequence-only)")
    cfg = TrainConfig(arch=arch, epochs=epochs, patience=patience, batch_size=batch_size, lr=lr,
                      motif_lr_mult=motif_lr_mult, neg_ratio=neg_ratio, sampler=sampler, hard_frac=hard_frac,
                      open_quantile=open_quantile,
                      motif_init=motif_init,
                      jitter=jitter, thin_min_keep=thin_min_keep, max_train_windows=max_train_windows,
                      max_valid_windows=max_valid_windows,
                      seed=seed, device=device, amp=amp, num_threads=n_threads)
    # the arrays are all training needs, read batch by batch: the table is never in memory (test windows not at all)
    (train, valid), chroms, meta = read_split_arrays(windows, ("train", "valid"))
    src = InputSource.load(genome, None if sequence_only else atac, None if sequence_only else mappability,
                           chroms=chroms, compact=True, packed=True)  # DNA at 2 bits a base, mappability as runs
    summary = train_arrays(train, valid, meta, src, cfg, outdir)
    log.info("trained %d epoch(s); best epoch %d", summary["epochs_run"], summary["best_epoch"])


@app.command("evaluate")
def evaluate_cmd(
    model: Path = typer.Option(..., "--model", help="model.pt from `bulk train`."),
    windows: Path = typer.Option(..., "--windows", help="windows.parquet from `bulk prepare`."),
    genome: Path = typer.Option(..., "--genome", help="Genome FASTA."),
    atac: Path = typer.Option(None, "--atac", help="Bulk ATAC bigWig or BAM (not for sequence-only models)."),
    mappability: Path = typer.Option(None, "--mappability", help="Mappability bigWig."),
    split: str = typer.Option("test", "--split", help="Split to evaluate (train, valid, test)."),
    batch_size: int = typer.Option(256, "--batch-size", help="Prediction batch size."),
    pwm_baseline: bool = typer.Option(True, "--pwm/--no-pwm", help="Also score the JASPAR PWM-scan baseline."),
    max_windows: int = typer.Option(None, "--max-windows", help="Score a uniform random subsample of this many "
                                    "windows of the split [default: all]."),
    seed: int = typer.Option(0, "--seed", help="Seed of the --max-windows subsample."),
    threads: int = _threads_option(),
    outdir: Path = typer.Option(..., "--outdir", help="Output folder (metrics.tsv, roc.png, pr.png)."),
) -> None:
    """Per-TF AUROC/AUPRC/recall at FDR/F1 on held-out chromosomes, with a PWM-scan baseline."""
    from scfan.memory import return_freed_memory_at_once
    from scfan.threads import use_threads

    return_freed_memory_at_once()  # before polars is imported
    use_threads(threads, load_torch=True)  # first: polars sizes its pool when it is imported
    from scfan.bulk.evaluate import EvaluateConfig, evaluate_model
    from scfan.bulk.model import load_model
    from scfan.bulk.windows import read_windows

    net, spec = load_model(model)
    df, meta = read_windows(windows, splits=(split,))
    src = _load_inputs(spec, genome, atac, mappability, _split_chroms(df, (split,)))
    cfg = EvaluateConfig(split=split, batch_size=batch_size, pwm_baseline=pwm_baseline, max_windows=max_windows,
                         seed=seed)
    evaluate_model(net, spec, df, src, cfg, outdir, model_name=str(meta.get("line") or "scfan"))
    log.info("evaluated %d TF(s): %s", len(spec.tf_names), asdict(cfg))


@app.command("predict")
def predict_cmd(
    model: Path = typer.Option(..., "--model", help="model.pt from `bulk train`."),
    regions: Path = typer.Option(..., "--regions", help="BED of regions to score (tiled into model windows)."),
    genome: Path = typer.Option(..., "--genome", help="Genome FASTA."),
    atac: Path = typer.Option(None, "--atac", help="Bulk ATAC bigWig or BAM (not for sequence-only models)."),
    mappability: Path = typer.Option(None, "--mappability", help="Mappability bigWig."),
    step: int = typer.Option(50, "--step", help="Step between windows inside a region (bp)."),
    batch_size: int = typer.Option(256, "--batch-size", help="Prediction batch size."),
    out: Path = typer.Option(None, "--out", help="Output parquet: chrom,start,end,region + one column per TF."),
    bigwig_dir: Path = typer.Option(None, "--bigwig-dir", help="Output folder with one <TF>.bw per TF."),
    threads: int = _threads_option(),
) -> None:
    """Predict every TF of the model on the windows of a BED of regions."""
    from scfan.threads import use_threads

    use_threads(threads, load_torch=True)  # first: polars sizes its pool when it is imported
    from scfan.bulk.model import load_model
    from scfan.bulk.predict import predict_regions
    from scfan.errors import ScfanError

    if out is None and bigwig_dir is None:
        raise ScfanError("give --out (parquet) and/or --bigwig-dir")
    from scfan.intervals import read_bed

    net, spec = load_model(model)
    src = _load_inputs(spec, genome, atac, mappability, read_bed(regions)["chrom"].unique().to_list())
    predict_regions(net, spec, src, regions, step=step, batch_size=batch_size, out_parquet=out,
                    bigwig_dir=bigwig_dir)


@app.command("sequence-only")
def sequence_only_cmd(
    fasta: Path = typer.Option(..., "--fasta", help="FASTA of equal-length ChIP peak sequences (the positives)."),
    arch: str = typer.Option("small", "--arch", help="small or full (scFAN widths)."),
    epochs: int = typer.Option(12, "--epochs", help="Training epochs."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="Held-out fraction of the peaks."),
    seed: int = typer.Option(0, "--seed", help="Random seed (split, shuffles, weights)."),
    threads: int = _threads_option(),
    tf: str = typer.Option("TF", "--tf", help="Name of the TF the peaks are of (the model's one output)."),
    motif: str = typer.Option(None, "--motif", help="The TF's JASPAR ID (recorded in the model; `bulk interpret` "
                              "compares discovered motifs to it)."),
    save_model: bool = typer.Option(False, "--save-model", help="Also write the trained model (model.pt)."),
    outdir: Path = typer.Option(..., "--outdir", help="Output folder (sequence_only.json, model.pt)."),
) -> None:
    """Sequence-only scFANet: peaks vs dinucleotide-shuffled negatives, held-out AUROC/AUPRC."""
    from scfan.threads import use_threads

    n_threads = use_threads(threads, load_torch=True)
    from scfan._io import write_json
    from scfan.bulk.seqonly import SeqOnlyConfig, sequence_only_experiment

    cfg = SeqOnlyConfig(arch=arch, epochs=epochs, test_fraction=test_fraction, seed=seed, num_threads=n_threads)
    res = sequence_only_experiment(fasta, cfg, model_out=outdir / "model.pt" if save_model else None, tf=tf,
                                   motif=motif)
    write_json(outdir / "sequence_only.json", {**res, "fasta": str(fasta), "config": asdict(cfg)})
    log.info("sequence-only: held-out AUROC %.3f, AUPRC %.3f (%d test sequences)", res["auroc"], res["auprc"],
             res["n_test"])


@app.command("interpret")
def interpret_cmd(
    model: Path = typer.Option(..., "--model", help="model.pt of `bulk train` or `bulk sequence-only --save-model`."),
    windows: Path = typer.Option(None, "--windows", help="windows.parquet the model was trained on (with --genome)."),
    genome: Path = typer.Option(None, "--genome", help="Genome FASTA (with --windows)."),
    atac: Path = typer.Option(None, "--atac", help="Bulk ATAC bigWig or BAM (models with tracks)."),
    mappability: Path = typer.Option(None, "--mappability", help="Mappability bigWig (models with tracks)."),
    fasta: Path = typer.Option(None, "--fasta", help="Instead of --windows: equal-length sequences (e.g. ChIP peaks) "
                               "to explain with a sequence-only model."),
    split: str = typer.Option("test", "--split", help="Windows split whose positives are explained."),
    tfs: str = typer.Option(None, "--tfs", help="Comma-separated TFs [default: every TF of the model]."),
    parts: str = typer.Option("network,model", "--parts", help="What to explain: network (scFAN's CNN, the motif "
                              "branch off), model (the whole model; its branch holds the JASPAR matrices), or both."),
    n_windows: int = typer.Option(200, "--n-windows", help="Top positive windows per TF (by the model's probability)."),
    min_windows: int = typer.Option(30, "--min-windows", help="Fewer positives than this: a row saying so, no motif."),
    central: int = typer.Option(400, "--central", help="bp around the window centre given to TF-MoDISco."),
    n_shuffles: int = typer.Option(10, "--n-shuffles", help="Dinucleotide-shuffled references per window."),
    logos: bool = typer.Option(True, "--logos/--no-logos", help="Write logos/<tf>_<part>_<motif>.png."),
    seed: int = typer.Option(0, "--seed", help="Seed of the references and the filter sample."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (attributions; motif discovery is CPU)."),
    threads: int = _threads_option(),
    outdir: Path = typer.Option(..., "--outdir", help="Output folder (motifs.tsv, summary.tsv, filters.tsv, "
                                "attributions.npz, logos/, interpret.json)."),
) -> None:
    """What the model learned per TF: DeepLIFT/SHAP attributions, TF-MoDISco motifs, TOMTOM matches in JASPAR."""
    from scfan.threads import use_threads

    use_threads(threads, load_torch=True)
    from scfan.bulk.model import load_model
    from scfan.bulk.windows import read_windows
    from scfan.errors import ScfanError
    from scfan.inference import resolve_device
    from scfan.interpret.attribution import PARTS, AttributionConfig
    from scfan.interpret.bulk import FastaSequences, GenomeWindows, InterpretConfig, interpret_model

    if (windows is None) == (fasta is None):
        raise ScfanError("give either --windows (with --genome) or --fasta")
    part_list = tuple(p.strip() for p in parts.split(",") if p.strip())
    bad = [p for p in part_list if p not in PARTS]
    if bad or not part_list:
        raise ScfanError(f"--parts: {bad[0] if bad else parts!r} is not one of {', '.join(PARTS)}")
    for name, v in (("--n-windows", n_windows), ("--min-windows", min_windows), ("--n-shuffles", n_shuffles)):
        if v < 1:
            raise ScfanError(f"{name} must be at least 1, got {v}")
    cfg = InterpretConfig(split=split, n_windows=n_windows, min_windows=min_windows, central=central,
                          parts=part_list, tfs=_chroms(tfs) or (), seed=seed,
                          attribution=AttributionConfig(n_shuffles=n_shuffles, seed=seed,
                                                        device=resolve_device(device).type))
    net, spec = load_model(model)
    if fasta is not None:
        source = FastaSequences(spec, fasta, cfg)
    else:
        if genome is None:
            raise ScfanError("--windows needs --genome")
        df, _meta = read_windows(windows, splits=(split,))
        if not len(df):
            raise ScfanError(f"{windows}: no window in split {split!r}")
        src = _load_inputs(spec, genome, atac, mappability, _split_chroms(df, (split,)))
        source = GenomeWindows(spec, df, src, windows, cfg)
    summary = interpret_model(net, spec, source, cfg, outdir, logos=logos)
    log.info("interpreted %d TF(s) in %.1f s: %s", len(summary["tfs"]), summary["seconds"], outdir)


def _split_chroms(df, splits: tuple[str, ...]) -> list[str]:
    """The chromosomes of the windows of ``splits``: the only ones a command needs in memory."""
    import polars as pl

    # lazily, so that only the chrom column is filtered (not a copy of the whole table)
    return (df.lazy().filter(pl.col("split").is_in(list(splits))).select(pl.col("chrom").unique(maintain_order=True))
            .collect()["chrom"].to_list())


def _load_inputs(spec, genome: Path, atac: Path | None, mappability: Path | None, chroms: list[str] | None = None):
    from scfan.bulk.data import InputSource
    from scfan.errors import ScfanError

    if spec.uses_tracks and (atac is None or mappability is None):
        raise ScfanError("this model uses accessibility tracks: give --atac and --mappability")
    if not spec.uses_tracks:
        atac = mappability = None
    return InputSource.load(genome, atac, mappability, spec.track_norm, chroms=chroms, compact=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="bulk")
