"""Streaming readers of single-cell fragments: 10x ``fragments.tsv.gz`` and barcode-tagged paired-end BAMs.

Both yield :class:`FragmentBlock` s — fragments of one chromosome, sorted by start, with line numbers — so
that counting never holds more than one block of text in memory. Fragments are 0-based half-open
``[start, end)`` as in 10x files: ``start`` and ``end - 1`` are the two Tn5 insertion sites.
"""

from __future__ import annotations

import gzip
import io
import logging
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pysam

from scfan.errors import InputFileError
from scfan.genome import ChromSelection, SkippedContigs, chrom_name_hint
from scfan.tabix import IndexMismatch, TruncatedData, check_index_belongs
from scfan.tn5 import fragment_from_pair

log = logging.getLogger(__name__)

FRAGMENT_COLUMNS = ["chrom", "start", "end", "barcode", "count"]
FRAGMENT_SCHEMA = {"chrom": pl.Utf8, "start": pl.Int64, "end": pl.Int64, "barcode": pl.Utf8, "count": pl.Int64}
SORT_HINT = ("sort and index it with: zcat F | sort -k1,1 -k2,2n | bgzip > F.sorted.tsv.gz && "
             "tabix -p bed F.sorted.tsv.gz")
# unmapped, mate unmapped, secondary, QC-failed, supplementary (duplicates are kept and collapse when counted)
_SKIP_FLAGS = 0x4 | 0x8 | 0x100 | 0x200 | 0x800
TABIX_HINT = "index it with: tabix -p bed FILE (sort first if needed: sort -k1,1 -k2,2n | bgzip)"


@dataclass
class FragmentBlock:
    """Fragments of one chromosome, in file order (sorted by start).

    ``first_line`` is the 1-based line (or record) number of the first row, for error messages.
    """

    chrom: str
    frame: pl.DataFrame  # columns start, end, barcode (Int64, Int64, Utf8)
    first_line: int


def check_fragments_index(path: str | Path, *, content: bool = True) -> None:
    """Fail unless ``path`` is bgzip-compressed with a readable tabix index that belongs to it (needed for pooled
    tracks). ``content``: also check the index against the file's content (:func:`check_index_content`)."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "fragments file not found")
    if not Path(str(p) + ".tbi").is_file():  # the one index rule of every step (the pipeline stages .tbi)
        raise InputFileError(p, f"fragments file has no tabix index (.tbi); {TABIX_HINT}")
    try:
        with pysam.TabixFile(str(p)):
            pass
    except (OSError, ValueError) as exc:
        raise InputFileError(p, f"not a bgzip-compressed, tabix-indexed file ({exc}); {TABIX_HINT}") from exc
    if content:
        check_index_content(p)


def check_index_content(path: Path) -> None:
    """Fail unless the ``.tbi`` beside ``path`` describes this file, judged by content (:mod:`scfan.tabix`), never
    by modification time: staging (S3, AWS Batch) reorders mtimes, so htslib's "index older than data" proves
    nothing either way."""
    try:
        check_index_belongs(path, str(path) + ".tbi")
    except TruncatedData as exc:
        raise InputFileError(path, f"truncated ({exc}); re-create the file with bgzip") from exc
    except IndexMismatch as exc:
        raise InputFileError(path, f"its tabix index {path.name}.tbi does not belong to it ({exc}); the file was "
                             "rewritten after indexing or the index is another file's: re-index it with: "
                             "tabix -f -p bed FILE") from exc


def _diagnose(path: Path, text: bytes, first_line: int, exc: Exception | None) -> InputFileError:
    """Find the first malformed line of ``text`` (the slow path, run only after the fast parser failed).

    Parameters
    ----------
    path : pathlib.Path
        The fragments file, named in the error.
    text : bytes
        The decompressed chunk the fast parser refused (whole lines, ``#`` lines included).
    first_line : int
        The 1-based line number of the chunk's first line in the file (header lines counted).
    exc : Exception or None
        The fast parser's error, if it raised one (``None`` when it read empty fields as missing values).

    Returns
    -------
    InputFileError
        Naming the file, the line and what was expected there.
    """
    for n, raw in enumerate(text.split(b"\n"), first_line):
        if not raw or raw.startswith(b"#"):
            continue
        if raw.endswith(b"\r"):
            return InputFileError(path, "the line ends in a carriage return (Windows CRLF); expected Unix (LF) line "
                                  "ends", line=n)
        parts = raw.split(b"\t")
        if len(parts) != 5:
            return InputFileError(path, f"expected 5 tab-separated columns (chrom, start, end, barcode, count), "
                                  f"found {len(parts)}", line=n)
        for col, name, what in ((0, "chrom", "a chromosome name"), (3, "barcode", "a cell barcode")):
            if not parts[col].strip():
                return InputFileError(path, f"the {name} ({col + 1}{'st' if col == 0 else 'th'} column) is empty; "
                                      f"expected {what}", line=n)
        for name, val in zip(("start", "end", "count"), (parts[1], parts[2], parts[4]), strict=True):
            try:
                int(val)
            except ValueError:
                return InputFileError(path, f"column '{name}' value {val.decode(errors='replace')!r} is not an "
                                      "integer", line=n)
    why = f" ({exc})" if exc is not None else ""
    return InputFileError(path, "cannot parse the fragments from this line on; expected 5 tab-separated columns "
                          f"(chrom, start, end, barcode, count){why}", line=first_line)


def parse_fragment_text(path: Path, text: bytes, first_line: int) -> pl.DataFrame:
    """Fragment lines (a piece of :func:`read_text_chunks`) → a validated table; errors name the file and line."""
    try:
        df = pl.read_csv(io.BytesIO(text), separator="\t", has_header=False, new_columns=FRAGMENT_COLUMNS,
                         schema=FRAGMENT_SCHEMA, quote_char=None, comment_prefix="#")
    except pl.exceptions.PolarsError as exc:
        raise _diagnose(path, text, first_line, exc) from exc
    if df.null_count().sum_horizontal().item():
        raise _diagnose(path, text, first_line, None)
    bad = df.select(((pl.col("start") < 0) | (pl.col("end") <= pl.col("start"))).arg_true().first()).item()
    if bad is not None:
        r = df.row(bad)
        raise InputFileError(path, f"fragment {r[0]}:{r[1]}-{r[2]} must have 0 <= start < end",
                             line=first_line + bad)
    return df


def read_text_chunks(path: Path, chunk_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Decompress ``path`` in pieces cut at line ends; yields ``(text, first_line)``. Leading ``#`` lines skipped."""
    line = 1
    pending = b""
    header = True
    with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) as gz:
        while True:
            try:
                block = gz.read(chunk_bytes)
            except (EOFError, OSError, zlib.error) as exc:
                near = line + pending.count(b"\n")
                raise InputFileError(path, f"truncated or corrupt gzip data after line {near} ({exc}); "
                                     "re-create the file with bgzip") from exc
            data = pending + block
            if not block:
                if data:
                    data += b"\n"
                else:
                    return
            cut = data.rfind(b"\n") + 1
            text, pending = data[:cut], data[cut:]
            if header:
                while text.startswith(b"#"):
                    nl = text.find(b"\n") + 1
                    text, line = text[nl:], line + 1
                header = not text and bool(block)
            if text:
                yield text, line
                line += text.count(b"\n")
            if not block:
                return


class _SortChecker:
    """Checks that fragments come grouped by chromosome and sorted by start within each chromosome."""

    def __init__(self, path: Path, chrom_sizes: Mapping[str, int] | None):
        self.path = path
        self.chrom_sizes = chrom_sizes
        self.done: set[str] = set()
        self.chrom: str | None = None
        self.last_start = -1

    def check(self, chrom: str, start: np.ndarray, end: np.ndarray, first_line: int) -> None:
        if chrom != self.chrom:
            if chrom in self.done:
                raise InputFileError(self.path, f"fragments are not sorted: chromosome {chrom!r} appears again "
                                     f"after {self.chrom!r}; {SORT_HINT}", line=first_line)
            if self.chrom is not None:
                self.done.add(self.chrom)
            if self.chrom_sizes is not None and chrom not in self.chrom_sizes:
                hint = chrom_name_hint([chrom], self.chrom_sizes, "the genome")
                raise InputFileError(self.path, f"chromosome {chrom!r} is not in the genome "
                                     f"(has {', '.join(list(self.chrom_sizes)[:8])}…){hint}", line=first_line)
            self.chrom, self.last_start = chrom, -1
        if len(start) == 0:
            return
        prev = np.empty_like(start)
        prev[0] = self.last_start
        prev[1:] = start[:-1]
        down = np.flatnonzero(start < prev)
        if len(down):
            raise InputFileError(self.path, f"fragments are not sorted by start: {chrom}:{start[down[0]]} comes "
                                 f"after {chrom}:{prev[down[0]]}; {SORT_HINT}", line=first_line + int(down[0]))
        if self.chrom_sizes is not None:
            over = np.flatnonzero(end > self.chrom_sizes[chrom])
            if len(over):
                raise InputFileError(self.path, f"fragment ends at {end[over[0]]}, beyond the end of {chrom} "
                                     f"({self.chrom_sizes[chrom]})", line=first_line + int(over[0]))
        self.last_start = int(start[-1])


def _split_by_chrom(df: pl.DataFrame, first_line: int) -> Iterator[tuple[str, pl.DataFrame, int]]:
    runs = df.select(pl.col("chrom").rle()).unnest("chrom")
    offset = 0
    for length, chrom in runs.iter_rows():
        yield chrom, df.slice(offset, length), first_line + offset
        offset += length


def read_fragment_blocks(path: str | Path, *, chrom_sizes: Mapping[str, int] | None = None,
                         chunk_bytes: int = 16 << 20, chroms: ChromSelection | None = None,
                         ) -> Iterator[FragmentBlock]:
    """Stream a 10x fragments file as per-chromosome blocks, validating columns, types and sort order.

    Memory is bounded by ``chunk_bytes`` of decompressed text, whatever the file size. With ``chroms``,
    fragments on other contigs (Cell Ranger writes those of ``KI270…``, ``GL000…``, ``chrUn_…`` after the
    chromosomes) are skipped with one counted warning at the end, and not checked against ``chrom_sizes``.

    Raises
    ------
    InputFileError
        For a missing index, truncated gzip, wrong column count, non-integer coordinates, unsorted rows, or a
        chromosome absent from ``chrom_sizes`` — naming the file and line; for an index of another file or of
        an earlier version of this one (checked after the records).
    """
    p = Path(path)
    check_fragments_index(p, content=False)
    checker = _SortChecker(p, chrom_sizes)
    skipped = SkippedContigs(p, "fragment(s)", chroms) if chroms is not None and not chroms.keeps_all else None
    for text, first_line in read_text_chunks(p, chunk_bytes):
        df = parse_fragment_text(p, text, first_line)
        for chrom, part, line in _split_by_chrom(df, first_line):
            if skipped is not None and not chroms(chrom):
                skipped.add(chrom, len(part))
                continue
            start, end = part["start"].to_numpy(), part["end"].to_numpy()
            checker.check(chrom, start, end, line)
            yield FragmentBlock(chrom, part.select("start", "end", "barcode"), line)
    if skipped is not None:
        skipped.warn()
    # the index is not read here, but later steps fetch through it: after the records (whose errors name a line,
    # and come first), check that it belongs to this file
    check_index_content(p)


def read_bam_blocks(path: str | Path, *, barcode_tag: str = "CB", min_mapq: int = 30,
                    chrom_sizes: Mapping[str, int] | None = None, block_reads: int = 1_000_000,
                    chroms: ChromSelection | None = None) -> Iterator[FragmentBlock]:
    """Fragments from a coordinate-sorted, indexed, paired-end BAM whose reads carry a cell-barcode tag.

    One fragment per read pair, taken from the leftmost mate (``template_length > 0``) of a proper pair that is
    primary, mapped, not QC-failed, with MAPQ >= ``min_mapq``, and tagged. As in cellranger-atac, the Tn5 shift
    is +4 on the forward read and -5 on the reverse read (:mod:`scfan.tn5`): ``start = pos + 4``,
    ``end = pos + tlen - 5`` (0-based, half-open, so the insertions are ``start`` and ``end - 1``).
    Duplicate-flagged reads are kept; identical fragments collapse into one when counted, as in a fragments file.
    With ``chroms``, references outside it are not read (their mapped reads counted in one warning).
    """
    p = Path(path)
    try:
        bam = pysam.AlignmentFile(str(p), "rb")
    except (OSError, ValueError) as exc:
        raise InputFileError(p, f"cannot open as BAM ({exc})") from exc
    with bam:
        if not bam.has_index():
            raise InputFileError(p, "BAM has no index; sort and index it with: samtools sort -o F.bam && "
                                 "samtools index F.bam")
        refs = list(bam.references)
        if chroms is not None and not chroms.keeps_all:
            skipped = SkippedContigs(p, "mapped read(s)", chroms)
            for st in bam.get_index_statistics():
                if not chroms(st.contig) and st.mapped:
                    skipped.add(st.contig, st.mapped)
            skipped.warn()
            refs = [c for c in refs if chroms(c)]
        if chrom_sizes is not None:
            missing = [c for c in refs if c not in chrom_sizes and bam.count(c) > 0]
            if missing:
                raise InputFileError(p, f"reads on chromosome {missing[0]!r}, which is not in the genome")
        n_pairs = n_tagged = 0
        for chrom in refs:
            starts: list[int] = []
            ends: list[int] = []
            bcs: list[str] = []
            for read in bam.fetch(chrom):
                if (read.flag & _SKIP_FLAGS) or not read.is_proper_pair or read.template_length <= 0 \
                        or read.mapping_quality < min_mapq or read.next_reference_id != read.reference_id:
                    continue
                n_pairs += 1
                if not read.has_tag(barcode_tag):
                    if n_pairs >= 10_000 and n_tagged == 0:
                        raise InputFileError(p, f"no read carries the barcode tag {barcode_tag!r} (checked "
                                             f"{n_pairs} read pairs); set 'barcode_tag' in the samplesheet",
                                             record=read.query_name)
                    continue
                n_tagged += 1
                s, e = fragment_from_pair(read.reference_start, read.template_length)
                if e <= s:
                    continue
                starts.append(s)
                ends.append(e)
                bcs.append(str(read.get_tag(barcode_tag)))
                if len(starts) >= block_reads:
                    yield _bam_block(chrom, starts, ends, bcs)
                    starts, ends, bcs = [], [], []
            if starts:
                yield _bam_block(chrom, starts, ends, bcs)
        if n_tagged == 0:
            raise InputFileError(p, f"no usable read pair carries the barcode tag {barcode_tag!r} "
                                 f"({n_pairs} proper pairs seen); set 'barcode_tag' in the samplesheet")
        log.info("%s: %d proper read pairs, %d with tag %s", p, n_pairs, n_tagged, barcode_tag)


def _bam_block(chrom: str, starts: list[int], ends: list[int], bcs: list[str]) -> FragmentBlock:
    # The +4 shift keeps fetch order sorted by start; sort anyway to be robust to ties broken differently.
    df = pl.DataFrame({"start": starts, "end": ends, "barcode": bcs},
                      schema={"start": pl.Int64, "end": pl.Int64, "barcode": pl.Utf8}).sort("start",
                                                                                           maintain_order=True)
    return FragmentBlock(chrom, df, 0)
