"""Fixtures of the single-cell tests (builders live in sc_builders.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sc_builders import CHROM_SIZES


@pytest.fixture()
def tiny_peaks() -> list[tuple[str, int, int]]:
    """Peaks in a deliberately unsorted order, including ones at both ends of chr1 and chr2."""
    return [("chr2", 11_500, 12_000), ("chr1", 0, 500), ("chr1", 3_000, 3_800), ("chr1", 19_400, 20_000),
            ("chr2", 100, 600), ("chr1", 9_000, 9_200), ("chr2", 5_000, 6_500), ("chr1", 12_000, 14_000)]


@pytest.fixture()
def chrom_sizes_file(tmp_path) -> Path:
    p = tmp_path / "genome.fa.fai"
    p.write_text("".join(f"{c}\t{n}\t0\t60\t61\n" for c, n in CHROM_SIZES.items()))
    return p


@pytest.fixture()
def cellranger(shared_data, tmp_path) -> dict[str, Path]:
    """The real Cell Ranger fragments (with header, + .tbi) copied next to a two-peak BED on its chr1 range."""
    src = shared_data / "cellranger_fragments"
    frag = tmp_path / "fragments_header.tsv.gz"
    for ext in ("", ".tbi"):
        shutil.copyfile(src / f"fragments_header.tsv.gz{ext}", f"{frag}{ext}")
    peaks = tmp_path / "peaks.bed"
    peaks.write_text("chr1\t10000\t200000\tchr1:10000-200000\nchr1\t200000\t1000000\tchr1:200000-1000000\n")
    return {"fragments": frag, "peaks": peaks}
