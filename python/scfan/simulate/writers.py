"""Writers for the simulator's standard formats: FASTA + .fai, bigWig, BED, narrowPeak, 10x fragments, tables.

Every writer gives the same bytes for the same input (gzip/BGZF with mtime 0, no absolute paths).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import pyBigWig
import pysam

from scfan._io import deterministic_gzip

FASTA_WIDTH = 60
_UPPER = np.frombuffer(b"ACGTN", dtype=np.uint8)
_LOWER = np.frombuffer(b"acgtn", dtype=np.uint8)


def write_fasta(path: Path, names: list[str], seqs: list[np.ndarray], softmask: list[np.ndarray]) -> None:
    """FASTA (soft-masked: repeats lowercase) with 60-column lines, plus its samtools-style ``.fai``."""
    fai = []
    offset = 0
    with open(path, "wb") as fh:
        for name, codes, soft in zip(names, seqs, softmask, strict=True):
            header = f">{name}\n".encode()
            letters = np.where(soft, _LOWER[codes], _UPPER[codes]).astype(np.uint8).tobytes()
            body = b"\n".join(letters[i:i + FASTA_WIDTH] for i in range(0, len(letters), FASTA_WIDTH)) + b"\n"
            fh.write(header)
            fh.write(body)
            offset += len(header)
            fai.append(f"{name}\t{len(letters)}\t{offset}\t{FASTA_WIDTH}\t{FASTA_WIDTH + 1}\n")
            offset += len(body)
    Path(str(path) + ".fai").write_text("".join(fai))


def write_chrom_sizes(path: Path, names: list[str], sizes: list[int]) -> None:
    path.write_text("".join(f"{n}\t{s}\n" for n, s in zip(names, sizes, strict=True)))


def runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-length encoding of a per-base array: ``(starts, ends, values)`` covering every base."""
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    ends = np.concatenate([change, [values.size]]).astype(np.int64)
    return starts, ends, values[starts].astype(np.float64)


def write_bigwig(path: Path, names: list[str], tracks: list[np.ndarray]) -> None:
    """A bigWig with a value for every base (zeros included, so the genome-wide mean is exact)."""
    bw = pyBigWig.open(str(path), "w")
    try:
        bw.addHeader([(n, int(t.size)) for n, t in zip(names, tracks, strict=True)], maxZooms=10)
        for name, track in zip(names, tracks, strict=True):
            s, e, v = runs(track)
            bw.addEntries([name] * s.size, s, ends=e, values=v)
    finally:
        bw.close()


def write_bed(path: Path, rows: list[tuple], gzip_output: bool = False) -> None:
    text = "".join("\t".join(str(x) for x in r) + "\n" for r in rows).encode()
    if gzip_output:
        deterministic_gzip(path, text)
    else:
        path.write_bytes(text)


def write_narrowpeak(path: Path, df: pl.DataFrame) -> None:
    """gzip (mtime 0) narrowPeak without header."""
    buf = io.BytesIO()
    df.write_csv(buf, separator="\t", include_header=False, float_precision=3)
    deterministic_gzip(path, buf.getvalue())


def write_fragments(path: Path, chrom_names: list[str], chrom: np.ndarray, start: np.ndarray, end: np.ndarray,
                    barcodes: list[str], unit: np.ndarray, count: np.ndarray) -> None:
    """10x ``fragments.tsv.gz``: bgzip (BGZF, mtime 0), coordinate-sorted input, with a tabix ``.tbi``."""
    df = pl.DataFrame({
        "chrom": pl.Series(np.asarray(chrom_names, dtype=object)[chrom].tolist(), dtype=pl.Utf8),
        "start": start, "end": end,
        "barcode": pl.Series(np.asarray(barcodes, dtype=object)[unit].tolist(), dtype=pl.Utf8),
        "count": count,
    })
    plain = path.with_name(path.name.removesuffix(".gz"))
    df.write_csv(plain, separator="\t", include_header=False)
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    pysam.tabix_index(str(path), preset="bed", force=True, keep_original=True)


def write_tsv(path: Path, df: pl.DataFrame) -> None:
    """Tab-separated table with one header row (no quoting: values never hold tabs)."""
    df.write_csv(path, separator="\t", quote_style="never")
