"""Builders of tiny single-cell inputs (fragments, BAM, MatrixMarket) written by the tests themselves."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pysam
import scipy.io
import scipy.sparse as sp

from cli_runner import run_cli  # noqa: F401 (re-exported: the sc tests import it from here)

CHROM_SIZES = {"chr1": 20_000, "chr2": 12_000}


def random_fragments(seed: int, n_cells: int = 12, per_cell: int = 300) -> list[tuple[str, int, int, str, int]]:
    """Sorted fragments (chrom, start, end, barcode, count) of ``n_cells`` barcodes, some touching chrom ends."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_cells):
        bc = f"AAAC{c:04d}-1"
        for _ in range(per_cell):
            chrom = "chr1" if rng.random() < 0.6 else "chr2"
            length = int(rng.integers(60, 400))
            start = int(rng.integers(4, CHROM_SIZES[chrom] - length - 5))
            rows.append((chrom, start, start + length, bc, int(rng.integers(1, 4))))
    # fragments that end exactly at the chromosome end and start at 4 (both insertion sites at the edges)
    rows.append(("chr1", CHROM_SIZES["chr1"] - 120, CHROM_SIZES["chr1"], "AAAC0000-1", 1))
    rows.append(("chr2", 4, 150, "AAAC0001-1", 2))
    return sorted(set(rows), key=lambda r: (r[0], r[1], r[2], r[3]))


def write_fragments(path: Path, rows, header: bool = True, index: bool = True) -> Path:
    """Write rows as bgzip-compressed fragments (+ tabix index); returns the .tsv.gz path."""
    plain = path.with_suffix("")  # strip .gz
    with open(plain, "w") as fh:
        if header:
            fh.write("# id=test\n# pipeline=handwritten\n")
        for r in rows:
            fh.write("\t".join(map(str, r)) + "\n")
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    if index:
        pysam.tabix_index(str(path), preset="bed", force=True, meta_char="#")
    return path


def write_bam(path: Path, rows, tag: str | None = "CB", read_len: int = 30) -> Path:
    """A coordinate-sorted, indexed BAM whose read pairs give exactly ``rows`` as 10x fragments (+4/-5 shift)."""
    header = {"HD": {"VN": "1.6", "SO": "coordinate"},
              "SQ": [{"SN": c, "LN": n} for c, n in CHROM_SIZES.items()]}
    tids = {c: i for i, c in enumerate(CHROM_SIZES)}
    unsorted = path.with_suffix(".unsorted.bam")
    with pysam.AlignmentFile(str(unsorted), "wb", header=header) as bam:
        for n, (chrom, s, e, bc, _count) in enumerate(rows):
            left, right_end = s - 4, e + 5
            tlen = right_end - left
            for mate, pos, flag, t in ((1, left, 99, tlen), (2, right_end - read_len, 147, -tlen)):
                a = pysam.AlignedSegment()
                a.query_name = f"frag{n}"
                a.query_sequence = "A" * read_len
                a.flag = flag
                a.reference_id = a.next_reference_id = tids[chrom]
                a.reference_start = pos
                a.next_reference_start = left if mate == 2 else right_end - read_len
                a.mapping_quality = 60
                a.cigarstring = f"{read_len}M"
                a.template_length = t
                a.query_qualities = pysam.qualitystring_to_array("I" * read_len)
                if tag:
                    a.set_tag(tag, bc)
                bam.write(a)
    pysam.sort("-o", str(path), str(unsorted))
    unsorted.unlink()
    pysam.index(str(path))
    return path


def write_peaks(path: Path, peaks: list[tuple[str, int, int]]) -> Path:
    path.write_text("".join(f"{c}\t{s}\t{e}\t{c}:{s}-{e}\n" for c, s, e in peaks))
    return path


def reference_counts(rows, peaks, barcodes) -> np.ndarray:
    """Straightforward per-insertion loop: the definition the fast counter must reproduce."""
    out = np.zeros((len(barcodes), len(peaks)), dtype=np.int64)
    bi = {b: i for i, b in enumerate(barcodes)}
    for chrom, s, e, bc, _ in set(rows):
        if bc not in bi:
            continue
        for site in (s, e - 1):
            for j, (pc, ps, pe) in enumerate(peaks):
                if pc == chrom and ps <= site < pe:
                    out[bi[bc], j] += 1
    return out


def write_mtx(dir_: Path, counts: np.ndarray, peaks, barcodes) -> tuple[Path, Path, Path]:
    """Peaks × cells MatrixMarket (gzip) + peaks BED + barcodes TSV, as in the 10x/shared-data layout."""
    mtx = dir_ / "counts.mtx.gz"
    with gzip.open(mtx, "wb") as fh:
        scipy.io.mmwrite(fh, sp.coo_matrix(counts.T), field="integer")
    bed = write_peaks(dir_ / "matrix_peaks.bed", peaks)
    bcs = dir_ / "cells.tsv"
    bcs.write_text("barcode\tcell_type\n" + "".join(f"{b}\tx\n" for b in barcodes))
    return mtx, bed, bcs


def ingest_cli(monkeypatch, *args: str) -> int:
    """``scfan sc ingest --sample S1 --min-fragments 0 ARGS`` in this process; the exit code."""
    return run_cli(monkeypatch, "sc", "ingest", "--sample", "S1", "--min-fragments", "0", *args)
