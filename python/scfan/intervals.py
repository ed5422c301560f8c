"""Reading and validating interval files (BED, narrowPeak): 0-based half-open, checked against chromosome sizes."""

from __future__ import annotations

import gzip
import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandera.polars as pa
import polars as pl

from scfan.errors import InputFileError
from scfan.genome import ChromSelection, SkippedContigs, chrom_name_hint, few_names, genome_build

NARROWPEAK_COLUMNS = ["chrom", "start", "end", "name", "score", "strand", "signal_value", "p_value", "q_value", "peak"]
_NARROWPEAK_DTYPES = [pl.Utf8, pl.Int64, pl.Int64, pl.Utf8, pl.Int64, pl.Utf8, pl.Float64, pl.Float64, pl.Float64,
                      pl.Int64]


class IntervalSchema(pa.DataFrameModel):
    """Any interval table: 0-based half-open, non-empty intervals."""

    chrom: str = pa.Field(str_length={"min_value": 1})
    start: int = pa.Field(ge=0)
    end: int = pa.Field(ge=1)

    @pa.dataframe_check
    def end_after_start(cls, data) -> pl.LazyFrame:  # noqa: N805
        return data.lazyframe.select(pl.col("end") > pl.col("start"))


class NarrowPeakSchema(IntervalSchema):
    """ENCODE narrowPeak (BED6+4); ``peak`` is the summit offset from ``start`` or -1."""

    name: str
    score: int = pa.Field(ge=0, le=1000)
    strand: str = pa.Field(isin=["+", "-", "."])
    signal_value: float
    p_value: float
    q_value: float
    peak: int = pa.Field(ge=-1)


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8")
    return open(path, encoding="utf-8")


def _check_record(p: Path, parts: list[str], n: int, chrom_sizes: Mapping[str, int] | None) -> None:
    """Check one record's coordinates (integers, 0 <= start < end, on a chromosome of the genome and within it)."""
    try:
        s, e = int(parts[1]), int(parts[2])
    except ValueError as exc:
        raise InputFileError(p, f"start/end {parts[1]!r}/{parts[2]!r} are not integers", line=n) from exc
    if s < 0 or e <= s:
        raise InputFileError(p, f"interval {parts[0]}:{s}-{e} must have 0 <= start < end", line=n)
    if chrom_sizes is not None:
        if parts[0] not in chrom_sizes:
            hint = chrom_name_hint([parts[0]], chrom_sizes, "the genome")
            raise InputFileError(p, f"chromosome {parts[0]!r} is not in the genome (which has "
                                 f"{few_names(chrom_sizes)}){hint}", line=n)
        if e > chrom_sizes[parts[0]]:
            build = genome_build(chrom_sizes)
            hint = f"; the genome is {build}: is this file of another build?" if build else ""
            raise InputFileError(
                p, f"interval {parts[0]}:{s}-{e} ends beyond the chromosome end "
                f"({chrom_sizes[parts[0]]}){hint}", line=n)


def _interval_frame(p: Path, rows: list[list[str]], narrowpeak: bool) -> pl.DataFrame:
    """The checked records as a typed, validated frame: the narrowPeak columns, or ``chrom, start, end`` (+ name)."""
    if narrowpeak:
        cols = NARROWPEAK_COLUMNS
        try:
            df = pl.DataFrame(rows, schema=cols, orient="row").with_columns(
                [pl.col(c).cast(t) for c, t in zip(cols, _NARROWPEAK_DTYPES, strict=True)])
        except pl.exceptions.PolarsError as exc:
            raise InputFileError(p, f"narrowPeak columns have wrong types ({exc})") from exc
        return validate(NarrowPeakSchema, df, p)
    ncol = max((len(r) for r in rows), default=3)
    ncol = 4 if ncol >= 4 else 3
    rows = [r[:ncol] + [""] * (ncol - len(r[:ncol])) for r in rows]
    cols = ["chrom", "start", "end", "name"][:ncol]
    df = pl.DataFrame(rows, schema=cols, orient="row").with_columns(pl.col("start").cast(pl.Int64),
                                                                    pl.col("end").cast(pl.Int64))
    return validate(IntervalSchema, df, p) if len(df) else df


def read_bed(path: str | Path, *, min_columns: int = 3, narrowpeak: bool = False,
             chrom_sizes: Mapping[str, int] | None = None, allow_empty: bool = False,
             chroms: ChromSelection | None = None) -> pl.DataFrame:
    """Read a BED(-like) file into a polars frame with ``chrom, start, end`` (+ ``name`` if present).

    Files are accepted as ENCODE and UCSC write them: plain or gzip-compressed (by content, so ``ENCFF….bed.gz``
    too), UCSC ``track``/``browser`` lines and ``#`` comments anywhere, and CRLF line ends. Every record is
    checked; the first bad one is reported with its line number.

    Parameters
    ----------
    path : str or pathlib.Path
        The BED or narrowPeak file.
    min_columns : int
        Columns every record must have.
    narrowpeak : bool
        Require and type all ten narrowPeak columns.
    chrom_sizes : mapping of str to int, optional
        Chromosome lengths: a record on another chromosome, or ending beyond its chromosome, is an error
        (naming the likely fix: a ``chr`` prefix or another genome build).
    allow_empty : bool
        Return an empty frame for a file without records instead of failing.
    chroms : ChromSelection, optional
        Contigs to keep; records on others (``_random``, ``chrUn_``, ``_alt``, ``EBV``, ``HLA-`` … when only
        primary chromosomes are kept) are skipped with one counted warning, before ``chrom_sizes`` is consulted.

    Returns
    -------
    polars.DataFrame
        ``chrom, start, end`` (+ ``name``), or the ten narrowPeak columns.

    Raises
    ------
    InputFileError
        For a missing or unreadable file, a malformed record (file and line named) or no records.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "file not found")
    want = 10 if narrowpeak else min_columns
    rows: list[list[str]] = []
    skipped = SkippedContigs(p, "interval(s)", chroms) if chroms is not None and not chroms.keeps_all else None
    try:
        with _open_text(p) as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip() or line.startswith(("#", "track", "browser")):
                    continue
                parts = line.rstrip("\r\n").split("\t")
                if len(parts) < want:
                    kind = ("narrowPeak (10 tab-separated columns)" if narrowpeak or want == 10
                            else f"BED with ≥ {want} columns")
                    raise InputFileError(p, f"expected {kind}, found {len(parts)} column(s)", line=n)
                if skipped is not None and not chroms(parts[0]):
                    skipped.add(parts[0])
                    continue
                _check_record(p, parts, n, chrom_sizes)
                rows.append(parts[:10] if narrowpeak else parts[: max(want, min(len(parts), 4))])
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputFileError(p, f"cannot read ({exc})") from exc
    if skipped is not None:
        skipped.warn()
        if not rows and skipped.counts and not allow_empty:
            raise InputFileError(p, f"every interval is on a contig outside {chroms.what} "
                                 f"({few_names(skipped.counts)}); choose the contigs with --chroms (e.g. --chroms all)")
    if not rows and not allow_empty:
        raise InputFileError(p, "no intervals (empty file)")
    return _interval_frame(p, rows, narrowpeak)


def validate(schema: type[pa.DataFrameModel], df: pl.DataFrame, source: str | Path) -> pl.DataFrame:
    """Validate ``df`` with a pandera model; turn a failure into a one-line InputFileError."""
    try:
        return schema.validate(df)
    except (pa.errors.SchemaError, pa.errors.SchemaErrors) as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputFileError(source, f"does not match {schema.__name__}: {first}") from exc


def sniff_narrowpeak(path: str | Path, *, lines: int = 20) -> bool:
    """Whether a BED file holds narrowPeak records (BED6+4), judged by content, not by name.

    ENCODE serves narrowPeak and IDR thresholded peaks as ``ENCFF….bed.gz``; this looks at the first records
    (``track``/``browser``/``#`` lines skipped): ten columns, a strand, numbers in columns 5 and 7–10.

    Parameters
    ----------
    path : str or pathlib.Path
        A plain or gzip-compressed BED file.
    lines : int
        How many records to look at.

    Returns
    -------
    bool
        True when every record looked at is narrowPeak-shaped (and there is one).
    """
    seen = 0
    try:
        with _open_text(Path(path)) as fh:
            for line in fh:
                if not line.strip() or line.startswith(("#", "track", "browser")):
                    continue
                parts = line.rstrip("\r\n").split("\t")
                if len(parts) != 10 or parts[5] not in ("+", "-", "."):
                    return False
                try:
                    int(parts[1]), int(parts[2]), int(parts[4]), int(parts[9])
                    float(parts[6]), float(parts[7]), float(parts[8])
                except ValueError:
                    return False
                seen += 1
                if seen >= lines:
                    break
    except (OSError, EOFError, UnicodeDecodeError):
        return False
    return seen > 0


def read_peaks(path: str | Path, *, chrom_sizes: Mapping[str, int] | None = None,
               chroms: ChromSelection | None = None) -> pl.DataFrame:
    """Read a peak file as both stages take it: ``chrom, start, end`` (+ ``name``) of BED3+ or narrowPeak.

    The reader of ChIP peaks (``bulk prepare``) and of the single-cell peak set (``sc ingest``), so that both
    accept the same files with the same errors: plain or gzip by content, UCSC ``track``/``browser`` and ``#``
    lines, CRLF. A file whose first record is narrowPeak-shaped (:func:`sniff_narrowpeak`, whatever its name, so
    ENCODE's ``ENCFF….bed.gz`` too) must have the ten columns on every record, so a truncated record is named by
    its line; the extra columns are not typed, since MACS2 writes scores above narrowPeak's 1000.

    Parameters
    ----------
    path : str or pathlib.Path
        The BED or narrowPeak file.
    chrom_sizes : mapping of str to int, optional
        Chromosome lengths every record must fit in (see :func:`read_bed`).
    chroms : ChromSelection, optional
        Contigs kept; records on others are skipped with one counted warning (see :func:`read_bed`).

    Returns
    -------
    polars.DataFrame
        ``chrom, start, end`` (+ ``name`` when the file has a fourth column), in file order.

    Raises
    ------
    InputFileError
        For a missing, unreadable, malformed (file and line named) or empty file.
    """
    min_columns = 10 if sniff_narrowpeak(path, lines=1) else 3  # the first record sets the format
    return read_bed(path, min_columns=min_columns, chrom_sizes=chrom_sizes, chroms=chroms)


def region_id(chrom: str, start: int, end: int) -> str:
    return f"{chrom}:{start}-{end}"


def parse_region_id(rid: str) -> tuple[str, int, int]:
    chrom, _, rng = rid.rpartition(":")
    s, _, e = rng.partition("-")
    return chrom, int(s), int(e)


def merge_intervals(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge overlapping/adjacent intervals of one chromosome (inputs need not be sorted)."""
    if len(starts) == 0:
        return starts.astype(np.int64), ends.astype(np.int64)
    order = np.argsort(starts, kind="stable")
    s, e = np.asarray(starts)[order], np.asarray(ends)[order]
    run_end = np.maximum.accumulate(e)
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > run_end[:-1]
    idx = np.flatnonzero(new)
    return s[idx].astype(np.int64), np.maximum.reduceat(e, idx).astype(np.int64)
