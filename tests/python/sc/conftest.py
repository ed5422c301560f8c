"""Fixtures of the single-cell tests (builders live in sc_builders.py)."""

from __future__ import annotations

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
