"""Bulk training windows: tile the genome, label each window per TF from ChIP peaks, assign splits by chromosome.

A window is positive for a TF when it overlaps that TF's (merged) peaks by at least ``min_overlap`` bp. Windows
whose model input (``context`` bp centred on the window) would leave the chromosome, or that lie within
``blacklist_pad`` bp of a blacklisted region, are dropped. Only the chromosomes chosen by ``chroms`` are tiled.

Why this module is long: ``scfan prepare`` is one step (sources, tiling, labelling, blacklist, splits,
the windows file and its reader); its parts share the config and the windows schema, each in its own function.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandera.polars as pa
import polars as pl
import pyarrow
import pyarrow.parquet as pq

from scfan import __version__
from scfan._io import atomic_path, write_json
from scfan.args import named_map
from scfan.errors import ChromosomeNameError, InputFileError, ScfanError
from scfan.genome import ChromSelection, Genome, check_chrom_names, chrom_name_hint, few_names, primary_chromosomes
from scfan.intervals import IntervalSchema, merge_intervals, read_bed, read_peaks, validate
from scfan.samplesheet import read_samplesheet
from scfan.tracks import bigwig_chroms

log = logging.getLogger(__name__)

SCFAN_DEFAULT_VALID = ("chr11",)
SCFAN_DEFAULT_TEST = ("chr1", "chr8", "chr21")
SPLITS = ("train", "valid", "test")
METADATA_KEY = b"scfan"


class NoPositivesError(ScfanError):
    """A TF has no positive window on the training chromosomes."""


@dataclass(frozen=True)
class PrepareConfig:
    """Parameters of ``scfan bulk prepare`` (written to ``prepare.json``)."""

    window: int = 200
    step: int = 50
    min_overlap: int = 101
    context: int = 1000
    blacklist_pad: int = 1000
    valid_chroms: tuple[str, ...] = SCFAN_DEFAULT_VALID
    test_chroms: tuple[str, ...] = SCFAN_DEFAULT_TEST
    chroms: str = "all"  # chromosomes tiled: all (of the FASTA), primary (chr1-22, X, Y, M) or a comma-separated list

    def __post_init__(self) -> None:
        ChromSelection(self.chroms)  # an empty --chroms fails here, before any file is read
        if min(self.window, self.step, self.min_overlap, self.context) <= 0 or self.blacklist_pad < 0:
            raise ScfanError("window, step, min-overlap and context must be > 0; blacklist-pad >= 0")
        if self.min_overlap > self.window:
            raise ScfanError(f"--min-overlap {self.min_overlap} exceeds --window {self.window}")
        if self.context < self.window or (self.context - self.window) % 2:
            raise ScfanError(f"--context {self.context} must be >= --window {self.window} with an even difference")
        if set(self.valid_chroms) & set(self.test_chroms):
            both = sorted(set(self.valid_chroms) & set(self.test_chroms))
            raise ScfanError(f"chromosome(s) {', '.join(both)} are in both --valid-chroms and --test-chroms")


@dataclass(frozen=True)
class TFSource:
    """One TF's peaks (and optional JASPAR id) for one bulk cell line."""

    tf: str
    peaks: Path
    motif: str | None = None


@dataclass
class BulkSources:
    """The inputs of one bulk cell line, as listed in the samplesheet."""

    line: str
    atac: Path
    tfs: list[TFSource] = field(default_factory=list)


def windows_schema(tf_names: Sequence[str]) -> type[pa.DataFrameModel] | pa.DataFrameSchema:
    """Pandera schema of ``windows.parquet`` for the given label columns."""
    cols = {
        "chrom": pa.Column(pl.Utf8),
        "start": pa.Column(pl.Int64, pa.Check.ge(0)),
        "end": pa.Column(pl.Int64, pa.Check.ge(1)),
        "split": pa.Column(pl.Utf8, pa.Check.isin(list(SPLITS))),
    }
    for tf in tf_names:
        cols[tf] = pa.Column(pl.UInt8, pa.Check.isin([0, 1]))
    return pa.DataFrameSchema(cols, strict=True, ordered=True,
                              checks=[pa.Check(lambda d: d.lazyframe.select(pl.col("end") > pl.col("start")))])


def sources_from_samplesheet(samplesheet: str | Path, line: str) -> BulkSources:
    """The rows of ``line`` in a bulk samplesheet (duplicate TFs are rejected by the samplesheet reader)."""
    rows = [r for r in read_samplesheet(samplesheet, "bulk") if r["line"] == line]
    if not rows:
        lines = sorted({r["line"] for r in read_samplesheet(samplesheet, "bulk")})
        raise InputFileError(samplesheet, f"no rows for line {line!r} (lines: {', '.join(lines)})")
    return BulkSources(line=line, atac=Path(rows[0]["atac"]),
                       tfs=[TFSource(r["tf"], Path(r["peaks"]), r.get("motif") or None) for r in rows])


def sources_from_arguments(line: str, atac: str | Path, peaks: Sequence[str],
                           motifs: Sequence[str] = ()) -> BulkSources:
    """One line's inputs given as ``TF=PATH`` peaks and ``TF=JASPAR_ID`` motifs, in the order given.

    What the pipeline passes instead of a samplesheet; paths are resolved as the samplesheet reader resolves them.
    """

    def pairs(items: Sequence[str], what: str) -> dict[str, str]:
        return named_map(items, f"--{what}", f"TF={'PATH' if what == 'peaks' else 'JASPAR_ID'}", what="TF")

    peak_files, motif_ids = pairs(peaks, "peaks"), pairs(motifs, "motif")
    if not peak_files:
        raise ScfanError("no --peaks: give one TF=PATH per TF (or --samplesheet)")
    unknown = sorted(set(motif_ids) - set(peak_files))
    if unknown:
        raise ScfanError(f"--motif for TF(s) without --peaks: {', '.join(unknown)}")
    for path in [atac, *peak_files.values()]:
        if not Path(path).exists():
            raise InputFileError(path, "file does not exist")
    return BulkSources(line=line, atac=Path(atac).resolve(),
                       tfs=[TFSource(tf, Path(path).resolve(), motif_ids.get(tf)) for tf, path in peak_files.items()])


# ---------------------------------------------------------------------------------------------- pure window math


def tile_starts(chrom_size: int, window: int, step: int, context: int) -> np.ndarray:
    """Starts of ``window``-bp tiles every ``step`` bp whose centred ``context`` fits inside ``[0, chrom_size)``.

    The context of a window starting at ``s`` is ``[s - flank, s + window + flank)`` with
    ``flank = (context - window) // 2``.
    """
    flank = (context - window) // 2
    first = -(-flank // step) * step  # smallest multiple of step >= flank
    last = chrom_size - window - flank  # largest start whose context ends at or before chrom_size
    if last < first:
        return np.zeros(0, dtype=np.int64)
    return np.arange(first, last + 1, step, dtype=np.int64)


def coverage_prefix(starts: np.ndarray, ends: np.ndarray, size: int) -> np.ndarray:
    """Prefix sum (length ``size + 1``) of the 0/1 coverage of the union of intervals on one chromosome."""
    ms, me = merge_intervals(np.asarray(starts), np.asarray(ends))
    ms, me = np.clip(ms, 0, size), np.clip(me, 0, size)
    delta = np.zeros(size + 1, dtype=np.int32)
    np.add.at(delta, ms, 1)
    np.add.at(delta, me, -1)
    cov = np.cumsum(delta[:-1], dtype=np.int32)
    out = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(cov, out=out[1:])
    return out


def overlap_bp(prefix: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Bases of each ``[start, end)`` covered by the intervals behind ``prefix``."""
    return prefix[ends] - prefix[starts]


def union_overlap_bp(starts: np.ndarray, ends: np.ndarray, iv_starts: np.ndarray, iv_ends: np.ndarray,
                     size: int) -> np.ndarray:
    """Bases of each ``[start, end)`` covered by the union of the intervals (clipped to ``[0, size)``).

    The same numbers as :func:`overlap_bp` on :func:`coverage_prefix`, from the merged intervals alone (binary
    search), with no array the length of the chromosome.
    """
    ms, me = merge_intervals(np.asarray(iv_starts), np.asarray(iv_ends))
    ms, me = np.clip(ms, 0, size), np.clip(me, 0, size)
    starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    if not len(ms):
        return np.zeros(len(starts), dtype=np.int64)
    before = np.concatenate([[0], np.cumsum(me - ms)])  # bases covered by the intervals before the k-th

    def covered_below(x: np.ndarray) -> np.ndarray:
        k = np.searchsorted(ms, x, side="right") - 1  # the last interval starting at or before x
        kk = np.maximum(k, 0)
        return np.where(k >= 0, before[kk] + np.minimum(x, me[kk]) - ms[kk], 0)

    return covered_below(ends) - covered_below(starts)


def label_windows(starts: np.ndarray, window: int, peak_starts: np.ndarray, peak_ends: np.ndarray,
                  size: int, min_overlap: int) -> np.ndarray:
    """``uint8`` labels: 1 where the window overlaps the union of the peaks by ``>= min_overlap`` bp."""
    overlap = union_overlap_bp(starts, np.asarray(starts) + window, peak_starts, peak_ends, size)
    return (overlap >= min_overlap).astype(np.uint8)


def blacklist_keep(starts: np.ndarray, window: int, bl_starts: np.ndarray, bl_ends: np.ndarray,
                   size: int, pad: int) -> np.ndarray:
    """True for windows that stay more than ``pad`` bp away from every blacklisted interval."""
    if len(bl_starts) == 0:
        return np.ones(len(starts), dtype=bool)
    return union_overlap_bp(starts, np.asarray(starts) + window, np.asarray(bl_starts) - pad,
                            np.asarray(bl_ends) + pad, size) == 0


def assign_split(chrom: str, valid: Sequence[str], test: Sequence[str]) -> str:
    return "test" if chrom in test else "valid" if chrom in valid else "train"


# ---------------------------------------------------------------------------------------------- the prepare step


def select_chromosomes(spec: str, sizes: Mapping[str, int], genome_label: str | Path
                       ) -> tuple[ChromSelection, dict[str, int]]:
    """The chromosomes ``bulk prepare`` tiles, chosen by ``--chroms`` among the genome's.

    Parameters
    ----------
    spec : str
        ``all`` (every contig of the FASTA), ``primary`` (chr1–22, X, Y, M with or without ``chr``; all contigs
        of a genome without such names) or a comma-separated list of names.
    sizes : mapping of str to int
        The genome's chromosome lengths, in FASTA order.
    genome_label : str or pathlib.Path
        How the genome is named in messages (its FASTA).

    Returns
    -------
    tuple of (ChromSelection, dict of str to int)
        The selection in effect and the lengths of the kept chromosomes, in FASTA order.

    Raises
    ------
    ChromosomeNameError
        When a listed chromosome is not in the genome.
    """
    selection = ChromSelection(spec)
    if selection.names is not None:
        asked = dict.fromkeys(n.strip() for n in spec.split(",") if n.strip())
        missing = [n for n in asked if n not in sizes]
        if missing:
            raise ChromosomeNameError(f"--chroms: chromosome(s) {', '.join(missing)} not in {genome_label} (which "
                                      f"has {few_names(sizes)}){chrom_name_hint(missing, sizes, str(genome_label))}")
    if selection.spec == "primary" and not primary_chromosomes(sizes):
        selection = ChromSelection("all")  # not a human-style genome: nothing to tell primary from the rest
    return selection, selection.restrict(sizes, str(genome_label))


def _selected(names: Sequence[str], selection: ChromSelection, genome: Mapping[str, int]) -> list[str]:
    """``names`` on the kept chromosomes, or all of them when none is in the genome (a naming mismatch to report)."""
    if selection.keeps_all or not set(names) & set(genome):
        return list(names)
    return [c for c in names if selection(c)]


def _peak_tables(sources: BulkSources, selection: ChromSelection, genome: Mapping[str, int]
                 ) -> dict[str, pl.DataFrame]:
    """Each TF's peaks (the reader of ``sc ingest``), without those on chromosomes outside ``selection``."""
    tables, ignored = {}, {}
    for src in sources.tfs:
        df = read_peaks(src.peaks)  # raises on an empty or malformed file, naming it and the line
        chroms = df["chrom"].unique(maintain_order=True).to_list()
        kept = _selected(chroms, selection, genome)
        if len(kept) < len(chroms):
            outside = df.filter(~pl.col("chrom").is_in(kept))
            for chrom, n in outside["chrom"].value_counts(sort=True).iter_rows():
                ignored[chrom] = ignored.get(chrom, 0) + n
            df = df.filter(pl.col("chrom").is_in(kept))
        tables[src.tf] = df
    if ignored:
        log.info("%d peak(s) on %d chromosome(s) outside %s ignored (%s)", sum(ignored.values()), len(ignored),
                 selection.what, few_names(ignored))
    return tables


def _check_bounds(path: Path, df: pl.DataFrame, sizes: Mapping[str, int], selection: ChromSelection) -> None:
    """Fail on a peak beyond its chromosome's end, named as the shared reader names it (file, line, genome build)."""
    size = df["chrom"].replace_strict(sizes, default=None, return_dtype=pl.Int64)
    bad = df.filter(pl.col("end") > size)
    if not len(bad):
        return
    read_peaks(path, chrom_sizes=sizes, chroms=selection)  # reads the file again, only to name the line
    r = bad.row(0, named=True)
    raise InputFileError(path, f"interval ends beyond the chromosome end ({sizes[r['chrom']]}); expected peaks "
                         "on the same genome build as the FASTA", record=f"{r['chrom']}:{r['start']}-{r['end']}")


def resolve_splits(cfg: PrepareConfig, chroms: Sequence[str], genome: Sequence[str] | None = None) -> None:
    """Fail unless every validation and test chromosome is among the kept ``chroms`` (of the ``genome``)."""
    missing = [c for c in (*cfg.valid_chroms, *cfg.test_chroms) if c not in chroms]
    if not missing:
        return
    if genome is not None and all(c in genome for c in missing):
        raise ScfanError(f"validation/test chromosome(s) {', '.join(missing)} not among the chromosomes kept by "
                         f"--chroms {cfg.chroms} ({few_names(chroms)}); add them to --chroms or set --valid-chroms "
                         "/ --test-chroms")
    raise ScfanError(f"validation/test chromosome(s) {', '.join(missing)} not in the genome "
                     f"(has {', '.join(list(genome or chroms)[:12])}); set --valid-chroms / --test-chroms")


def build_windows(genome_sizes: Mapping[str, int], peaks: Mapping[str, pl.DataFrame],
                  blacklist: pl.DataFrame | None, cfg: PrepareConfig) -> pl.DataFrame:
    """Tile, filter and label every chromosome; returns the windows table (schema :func:`windows_schema`)."""
    parts = []
    for chrom, size in genome_sizes.items():
        starts = tile_starts(size, cfg.window, cfg.step, cfg.context)
        if blacklist is not None and len(starts):
            bl = blacklist.filter(pl.col("chrom") == chrom)
            starts = starts[blacklist_keep(starts, cfg.window, bl["start"].to_numpy(), bl["end"].to_numpy(),
                                           size, cfg.blacklist_pad)]
        if not len(starts):
            continue
        cols: dict[str, object] = {
            "chrom": [chrom] * len(starts), "start": starts, "end": starts + cfg.window,
            "split": [assign_split(chrom, cfg.valid_chroms, cfg.test_chroms)] * len(starts),
        }
        for tf, df in peaks.items():
            p = df.filter(pl.col("chrom") == chrom)
            cols[tf] = label_windows(starts, cfg.window, p["start"].to_numpy(), p["end"].to_numpy(), size,
                                     cfg.min_overlap)
        parts.append(pl.DataFrame(cols).with_columns(pl.col(tf).cast(pl.UInt8) for tf in peaks))
    if not parts:
        raise ScfanError("no window fits the genome with these --window/--context/--blacklist-pad settings")
    return pl.concat(parts)


def write_windows(path: str | Path, df: pl.DataFrame, meta: Mapping) -> None:
    """Validate and write ``windows.parquet`` atomically with JSON metadata under the ``scfan`` key."""
    tf_names = list(meta["tf_names"])
    df = windows_schema(tf_names).validate(df)
    table = df.to_arrow()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           METADATA_KEY: json.dumps(meta, sort_keys=True, default=str).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_windows(path: str | Path, splits: Sequence[str] | None = None) -> tuple[pl.DataFrame, dict]:
    """Read and validate ``windows.parquet``; returns the table and its ``scfan`` metadata.

    Parameters
    ----------
    path : str or Path
        The windows table of ``bulk prepare``.
    splits : sequence of str, optional
        Read only the rows of these splits (in file order, as a filter of the whole table would give them); the
        others are never held in memory. ``None`` reads every row.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "windows parquet not found")
    try:
        schema = pq.read_schema(p)
        subset = splits is not None and "split" in schema.names
        table = _read_rows(p, list(splits)) if subset else pq.read_table(p)
    except Exception as exc:  # pyarrow raises several types for a non-parquet file
        raise InputFileError(p, f"cannot read as parquet ({exc})") from exc
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise InputFileError(p, "no 'scfan' metadata; expected a file written by `scfan bulk prepare`")
    meta = json.loads(raw)
    df = pl.from_arrow(table)
    del table
    pyarrow.default_memory_pool().release_unused()  # the batches polars did not take over go back now
    try:
        df = windows_schema(meta["tf_names"]).validate(df)
    except (pa.errors.SchemaError, pa.errors.SchemaErrors) as exc:
        raise InputFileError(p, f"does not match the windows schema: {str(exc).splitlines()[0]}") from exc
    return df, meta


def windows_metadata(path: str | Path) -> dict:
    """The ``scfan`` metadata of ``windows.parquet`` (``tf_names``, ``window``, ``context``, ...), read from its
    footer alone."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "windows parquet not found")
    try:
        schema = pq.read_schema(p)
    except Exception as exc:  # pyarrow raises several types for a non-parquet file
        raise InputFileError(p, f"cannot read as parquet ({exc})") from exc
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise InputFileError(p, "no 'scfan' metadata; expected a file written by `scfan bulk prepare`")
    return json.loads(raw)


def count_split_rows(path: str | Path, splits: Sequence[str], batch_rows: int = 1 << 20) -> list[int]:
    """Rows of each of ``splits`` in ``windows.parquet``, from its ``split`` column alone."""
    import pyarrow.compute as pc

    p = Path(path)
    counts = dict.fromkeys(splits, 0)
    try:
        with pq.ParquetFile(p) as fh:
            for batch in fh.iter_batches(batch_size=batch_rows, columns=["split"]):
                for row in pc.value_counts(batch.column("split")).to_pylist():
                    if row["values"] in counts:
                        counts[row["values"]] += int(row["counts"])
    except Exception as exc:
        raise InputFileError(p, f"cannot read its 'split' column ({exc})") from exc
    return [counts[s] for s in splits]


def iter_windows(path: str | Path, splits: Sequence[str], batch_rows: int = 1 << 20) -> Iterator[pl.DataFrame]:
    """The rows of ``splits`` of ``windows.parquet`` in file order, ``batch_rows`` at a time (fewer after the
    filter), each batch validated against :func:`windows_schema`: what :func:`read_windows` gives, without ever
    holding more than one batch of the table.

    Yields
    ------
    polars.DataFrame
        One validated batch (possibly empty).
    """
    import pyarrow.compute as pc

    p = Path(path)
    tf_names = windows_metadata(p)["tf_names"]
    schema = windows_schema(tf_names)
    wanted = pyarrow.array(list(splits), type=pyarrow.string())
    with pq.ParquetFile(p) as fh:
        for batch in fh.iter_batches(batch_size=batch_rows):
            part = pl.from_arrow(batch.filter(pc.is_in(batch.column("split"), value_set=wanted)))
            del batch
            try:
                yield schema.validate(part)
            except (pa.errors.SchemaError, pa.errors.SchemaErrors) as exc:
                raise InputFileError(p, f"does not match the windows schema: {str(exc).splitlines()[0]}") from exc


def _read_rows(path: Path, splits: list[str], batch_rows: int = 1 << 20) -> pyarrow.Table:
    """The rows of ``splits`` in file order, read ``batch_rows`` at a time, so the whole table is never in memory
    (a filter on :func:`pyarrow.parquet.read_table` holds every row group it reads until the end)."""
    import pyarrow.compute as pc

    wanted = pyarrow.array(splits, type=pyarrow.string())
    with pq.ParquetFile(path) as fh:
        parts = [batch.filter(pc.is_in(batch.column("split"), value_set=wanted))
                 for batch in fh.iter_batches(batch_size=batch_rows)]
        return pyarrow.Table.from_batches(parts, schema=fh.schema_arrow)


def prepare_bulk(sources: BulkSources, genome_fa: str | Path, mappability: str | Path,
                 blacklist: str | Path | None, cfg: PrepareConfig, outdir: str | Path) -> dict:
    """Run ``bulk prepare``: check every input, build the labelled windows, write parquet + ``prepare.json``.

    Returns the summary (windows per split, positives per TF and split).
    """
    outdir = Path(outdir)
    with Genome(genome_fa) as genome:
        sizes = dict(genome.sizes)
    selection, kept = select_chromosomes(cfg.chroms, sizes, genome_fa)
    resolve_splits(cfg, list(kept), list(sizes))
    peaks = _peak_tables(sources, selection, sizes)
    bl = read_bed(blacklist, allow_empty=True) if blacklist else None
    if bl is not None and len(bl):
        bl = bl.filter(pl.col("chrom").is_in(_selected(bl["chrom"].unique().to_list(), selection, sizes)))
    others = {str(src.peaks): peaks[src.tf]["chrom"].unique().to_list() for src in sources.tfs}
    others[str(mappability)] = _selected(list(bigwig_chroms(mappability)), selection, sizes)
    if sources.atac.suffix.lower() != ".bam" and sources.atac.exists():
        others[str(sources.atac)] = _selected(list(bigwig_chroms(sources.atac)), selection, sizes)
    if bl is not None and len(bl):
        others[str(blacklist)] = bl["chrom"].unique().to_list()
    check_chrom_names((str(genome_fa), sizes), others)
    for src in sources.tfs:
        _check_bounds(src.peaks, peaks[src.tf], sizes, selection)
    if bl is not None and len(bl):
        bl = validate(IntervalSchema, bl, blacklist)

    df = build_windows(kept, peaks, bl, cfg)
    tf_names = [s.tf for s in sources.tfs]
    train = df.filter(pl.col("split") == "train")
    zero = [tf for tf in tf_names if int(train[tf].sum()) == 0]
    if zero:
        raise NoPositivesError(f"TF(s) {', '.join(zero)} have no positive window on the training chromosomes "
                               f"(peaks: {', '.join(str(s.peaks) for s in sources.tfs if s.tf in zero)}); "
                               "check the peak files, --min-overlap, or the validation/test chromosomes")
    summary = {
        "windows_per_split": {s: int((df["split"] == s).sum()) for s in SPLITS},
        "positives": {tf: {s: int(df.filter(pl.col("split") == s)[tf].sum()) for s in SPLITS} for tf in tf_names},
    }
    meta = {
        "line": sources.line, "tf_names": tf_names,
        "motifs": {s.tf: s.motif for s in sources.tfs},
        "window": cfg.window, "step": cfg.step, "context": cfg.context,
        "chrom_sizes": sizes, "chroms": list(kept), "atac": str(sources.atac), "mappability": str(mappability),
        "config": asdict(cfg), "package_version": __version__,
    }
    write_windows(outdir / "windows.parquet", df, meta)
    write_json(outdir / "prepare.json", {"config": asdict(cfg), "line": sources.line, "atac": str(sources.atac),
                                         "chroms": list(kept),
                                         "peaks": {s.tf: str(s.peaks) for s in sources.tfs},
                                         "summary": summary, "package_version": __version__})
    log.info("%s: %d windows (%s)", sources.line, len(df),
             ", ".join(f"{k} {v}" for k, v in summary["windows_per_split"].items()))
    return summary
