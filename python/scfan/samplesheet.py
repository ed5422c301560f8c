"""Samplesheets (CSV): checked row by row against their JSON schema in ``assets/``; relative paths resolved."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from jsonschema import Draft202012Validator

from scfan._io import read_utf8
from scfan.errors import InputFileError

log = logging.getLogger(__name__)

SCHEMAS = {"bulk": "schema_bulk_samplesheet.json", "sc": "schema_sc_samplesheet.json"}


def schema_path(kind: str) -> Path:
    """The samplesheet schema shipped inside the package (``assets/`` of the pipeline links to it)."""
    return Path(str(resources.files("scfan") / "assets" / SCHEMAS[kind]))


def read_samplesheet(path: str | Path, kind: str) -> list[dict[str, str]]:
    """Read and validate a samplesheet; returns rows with empty cells dropped and paths made absolute.

    The CSV may come from a spreadsheet: a UTF-8 byte-order mark before the header, CRLF (or CR) line ends,
    double-quoted fields (with commas or line breaks inside), spaces around values, empty cells after the last
    column, and blank lines or lines of empty cells (``,,,``) anywhere, trailing ones included, are all accepted.

    Parameters
    ----------
    path : str or pathlib.Path
        The samplesheet CSV; relative paths in it are resolved against its real folder (symlinks followed).
    kind : {"bulk", "sc"}
        Which schema (``assets/schema_<kind>_samplesheet.json``) the rows are checked against.

    Returns
    -------
    list of dict
        One dict per row (column -> value), empty cells left out.

    Raises
    ------
    InputFileError
        For a missing, empty or non-UTF-8 file, an unknown column, a row that breaks the schema or names a missing
        file, or duplicates — naming the file and the line (of the file, blank lines counted).
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "samplesheet not found")
    schema = json.loads(schema_path(kind).read_text())
    item = schema["items"]
    props = item["properties"]
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    for n, fields in _records(p):
        if header is None:
            header = [h.strip() for h in fields]
            while header and not header[-1]:
                header.pop()  # empty cells after the last name: a spreadsheet's used range, not columns
            unknown = [h or f"(empty name of column {i})" for i, h in enumerate(header, 1) if h not in props]
            if unknown:
                raise InputFileError(p, f"unknown column(s) {', '.join(unknown)}; expected columns from "
                                     f"{', '.join(props)}", line=n)
            continue
        if any(f.strip() for f in fields[len(header):]):
            raise InputFileError(p, f"more fields than the {len(header)} header columns", line=n)
        row = {k: v.strip() for k, v in zip(header, fields, strict=False) if v.strip() != ""}
        for key, spec in props.items():
            if spec.get("format") == "file-path" and key in row and "://" not in row[key]:
                row[key] = str((p.resolve().parent / row[key]).resolve())
        err = next(iter(Draft202012Validator(item).iter_errors(row)), None)
        if err is not None:
            field = err.path[0] if err.path else None
            what = f"column '{field}' value {row.get(field)!r}: {err.message}" if field else err.message
            raise InputFileError(p, what, line=n)
        for key, spec in props.items():
            if spec.get("exists") and key in row and "://" not in row[key] and not Path(row[key]).exists():
                raise InputFileError(p, f"column '{key}': file {row[key]} does not exist", line=n)
        rows.append(row)
        lines.append(n)
    if header is None:
        raise InputFileError(p, f"empty samplesheet; expected a header line of columns from {', '.join(props)}")
    if not rows:
        raise InputFileError(p, "samplesheet has a header but no rows")
    _check_kind(p, kind, rows, lines)
    log.info("%s: %d %s samplesheet rows", p, len(rows), kind)
    return rows


def _records(p: Path) -> Iterator[tuple[int, list[str]]]:
    """The CSV records of ``p`` that have a non-blank cell, each with the file line it starts on (1-based).

    Blank lines and lines of empty cells (spreadsheets save formatted but empty rows as ``,,,``) are skipped; a
    quoted field may span lines, so the start line is taken from the reader's line count, not the record count.
    Quotes are read strictly: an unclosed quote or text after a closing one is an error, not silently joined.
    """
    reader = csv.reader(io.StringIO(read_utf8(p), newline=""), strict=True)
    start = 1
    try:
        for fields in reader:
            n, start = start, reader.line_num + 1
            if any(f.strip() for f in fields):
                yield n, fields
    except csv.Error as exc:
        raise InputFileError(p, f"not valid CSV ({exc}); expected comma-separated fields, a field with a comma, "
                             'quote or line break inside quoted as a whole ("...", a quote in it doubled)',
                             line=start) from exc


def sc_row(sample: str, files: dict[str, str]) -> dict[str, str]:
    """One single-cell sample given as arguments (column -> path or value), checked as a samplesheet row is.

    Paths are resolved as the samplesheet reader resolves them (symlinks followed); ``barcode_tag`` is a value.
    """
    where = f"sample {sample!r} (arguments)"
    item = json.loads(schema_path("sc").read_text())["items"]
    row = {"sample": sample, **{k: str(v).strip() for k, v in files.items() if v is not None and str(v).strip()}}
    for key, spec in item["properties"].items():
        if spec.get("format") == "file-path" and key in row and "://" not in row[key]:
            row[key] = str(Path(row[key]).resolve())
    err = next(iter(Draft202012Validator(item).iter_errors(row)), None)
    if err is not None:
        field = err.path[0] if err.path else None
        raise InputFileError(where, f"{field} {row.get(field)!r}: {err.message}" if field else err.message)
    for key, spec in item["properties"].items():
        if spec.get("exists") and key in row and "://" not in row[key] and not Path(row[key]).exists():
            raise InputFileError(where, f"{key}: file {row[key]} does not exist")
    given = [k for k in ("fragments", "bam", "counts") if k in row]
    if len(given) != 1:
        raise InputFileError(where, f"give exactly one of fragments, bam, counts (got {', '.join(given) or 'none'})")
    if row.get("counts", "").endswith((".mtx", ".mtx.gz")) and not ("peaks" in row and "barcodes" in row):
        raise InputFileError(where, "a MatrixMarket counts file needs its peaks and barcodes")
    return row


def _check_kind(p: Path, kind: str, rows: list[dict[str, str]], lines: list[int]) -> None:
    """Checks across rows (duplicates; one ATAC file per bulk line; one input per sc sample); ``lines``: file lines."""
    if kind == "bulk":
        seen: dict[tuple[str, str], int] = {}
        atac: dict[str, str] = {}
        for n, r in zip(lines, rows, strict=True):
            key = (r["line"], r["tf"])
            if key in seen:
                raise InputFileError(p, f"duplicate TF {r['tf']!r} for line {r['line']!r} (also on line {seen[key]})",
                                     line=n)
            seen[key] = n
            if atac.setdefault(r["line"], r["atac"]) != r["atac"]:
                raise InputFileError(p, f"line {r['line']!r} has two different 'atac' files", line=n)
    else:
        names: dict[str, int] = {}
        for n, r in zip(lines, rows, strict=True):
            if r["sample"] in names:
                raise InputFileError(p, f"duplicate sample name {r['sample']!r} (also on line {names[r['sample']]})",
                                     line=n)
            names[r["sample"]] = n
            given = [k for k in ("fragments", "bam", "counts") if k in r]
            if len(given) != 1:
                raise InputFileError(p, f"sample {r['sample']!r}: give exactly one of fragments, bam, counts "
                                     f"(got {', '.join(given) or 'none'})", line=n)
            if r.get("counts", "").endswith((".mtx", ".mtx.gz")) and not ("peaks" in r and "barcodes" in r):
                raise InputFileError(p, f"sample {r['sample']!r}: a MatrixMarket 'counts' needs 'peaks' and "
                                     "'barcodes' columns", line=n)
