"""Bulk training windows: tile the genome, label each window per TF from ChIP peaks, assign splits by chromosome.

A window is positive for a TF when it overlaps that TF's (merged) peaks by at least ``min_overlap`` bp. Windows
whose model input (``context`` bp centred on the window) would leave the chromosome, or that lie within
``blacklist_pad`` bp of a blacklisted region, are dropped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandera.polars as pa
import polars as pl
import pyarrow.parquet as pq

from scfan import __version__
from scfan._io import atomic_path, write_json
from scfan.errors import InputFileError, ScfanError
from scfan.genome import Genome, check_chrom_names
from scfan.intervals import IntervalSchema, merge_intervals, read_bed, validate
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

    def __post_init__(self) -> None:
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
        out: dict[str, str] = {}
        for item in items:
            tf, sep, value = item.partition("=")
            if not sep or not tf.strip() or not value.strip():
                raise ScfanError(f"--{what} {item!r}: expected TF={'PATH' if what == 'peaks' else 'JASPAR_ID'}")
            if tf.strip() in out:
                raise ScfanError(f"--{what}: TF {tf.strip()!r} given twice")
            out[tf.strip()] = value.strip()
        return out

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


def _peak_tables(sources: BulkSources) -> dict[str, pl.DataFrame]:
    tables = {}
    for src in sources.tfs:
        narrow = ".narrowPeak" in src.peaks.name
        tables[src.tf] = read_bed(src.peaks, narrowpeak=narrow)  # raises on an empty file
    return tables


def _check_bounds(path: Path, df: pl.DataFrame, sizes: Mapping[str, int]) -> None:
    size = df["chrom"].replace_strict(sizes, default=None, return_dtype=pl.Int64)
    bad = df.filter(pl.col("end") > size)
    if len(bad):
        r = bad.row(0, named=True)
        raise InputFileError(path, f"interval ends beyond the chromosome end ({sizes[r['chrom']]}); expected peaks "
                             "on the same genome build as the FASTA", record=f"{r['chrom']}:{r['start']}-{r['end']}")


def resolve_splits(cfg: PrepareConfig, chroms: Sequence[str]) -> None:
    missing = [c for c in (*cfg.valid_chroms, *cfg.test_chroms) if c not in chroms]
    if missing:
        raise ScfanError(f"validation/test chromosome(s) {', '.join(missing)} not in the genome "
                         f"(has {', '.join(list(chroms)[:12])}); set --valid-chroms / --test-chroms")


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
        table = pq.read_table(p, filters=[("split", "in", list(splits))] if subset else None)
    except Exception as exc:  # pyarrow raises several types for a non-parquet file
        raise InputFileError(p, f"cannot read as parquet ({exc})") from exc
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise InputFileError(p, "no 'scfan' metadata; expected a file written by `scfan bulk prepare`")
    meta = json.loads(raw)
    df = pl.from_arrow(table)
    del table
    try:
        df = windows_schema(meta["tf_names"]).validate(df)
    except (pa.errors.SchemaError, pa.errors.SchemaErrors) as exc:
        raise InputFileError(p, f"does not match the windows schema: {str(exc).splitlines()[0]}") from exc
    return df, meta


def prepare_bulk(sources: BulkSources, genome_fa: str | Path, mappability: str | Path,
                 blacklist: str | Path | None, cfg: PrepareConfig, outdir: str | Path) -> dict:
    """Run ``bulk prepare``: check every input, build the labelled windows, write parquet + ``prepare.json``.

    Returns the summary (windows per split, positives per TF and split).
    """
    outdir = Path(outdir)
    with Genome(genome_fa) as genome:
        sizes = dict(genome.sizes)
    resolve_splits(cfg, list(sizes))
    peaks = _peak_tables(sources)
    bl = read_bed(blacklist, allow_empty=True) if blacklist else None
    others = {str(src.peaks): peaks[src.tf]["chrom"].unique().to_list() for src in sources.tfs}
    others[str(mappability)] = list(bigwig_chroms(mappability))
    if sources.atac.suffix.lower() != ".bam" and sources.atac.exists():
        others[str(sources.atac)] = list(bigwig_chroms(sources.atac))
    if bl is not None and len(bl):
        others[str(blacklist)] = bl["chrom"].unique().to_list()
    check_chrom_names((str(genome_fa), sizes), others)
    for src in sources.tfs:
        _check_bounds(src.peaks, peaks[src.tf], sizes)
    if bl is not None and len(bl):
        bl = validate(IntervalSchema, bl, blacklist)

    df = build_windows(sizes, peaks, bl, cfg)
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
        "chrom_sizes": sizes, "atac": str(sources.atac), "mappability": str(mappability),
        "config": asdict(cfg), "package_version": __version__,
    }
    write_windows(outdir / "windows.parquet", df, meta)
    write_json(outdir / "prepare.json", {"config": asdict(cfg), "line": sources.line, "atac": str(sources.atac),
                                         "peaks": {s.tf: str(s.peaks) for s in sources.tfs},
                                         "summary": summary, "package_version": __version__})
    log.info("%s: %d windows (%s)", sources.line, len(df),
             ", ".join(f"{k} {v}" for k, v in summary["windows_per_split"].items()))
    return summary
