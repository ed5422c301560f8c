"""Shared views of the `sim_test` data set: truth tables and a cells × peaks count matrix built from fragments."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pysam
import pytest
import scipy.sparse as sp


@dataclass
class SimView:
    root: Path
    manifest: dict
    cells: pl.DataFrame
    drivers: pl.DataFrame
    sites: pl.DataFrame
    peaks: pl.DataFrame


def read_fragments(path: Path) -> pl.DataFrame:
    names = ["chrom", "start", "end", "barcode", "count"]
    return pl.read_csv(path, separator="\t", has_header=False, new_columns=names,
                       schema_overrides={"chrom": pl.Utf8, "barcode": pl.Utf8})


def count_matrix(frags: pl.DataFrame, regions: pl.DataFrame, cell_index: dict[str, int], n_cells: int) -> sp.csr_matrix:
    """Cells (by ``cell_id``) × regions Tn5 insertion counts (both fragment ends), by binary search.

    ``regions`` must be sorted and non-overlapping within each chromosome.
    """
    rows, cols = [], []
    offset = 0
    for chrom, reg in regions.group_by("chrom", maintain_order=True):
        r_start, r_end = reg["start"].to_numpy(), reg["end"].to_numpy()
        f = frags.filter(pl.col("chrom") == chrom[0])
        cell = np.array([cell_index.get(b, -1) for b in f["cell_id"].to_list()], dtype=np.int64)
        for pos in (f["start"].to_numpy(), f["end"].to_numpy() - 1):
            j = np.searchsorted(r_start, pos, side="right") - 1
            ok = (j >= 0) & (cell >= 0)
            ok[ok] &= pos[ok] < r_end[j[ok]]
            rows.append(cell[ok])
            cols.append(j[ok] + offset)
        offset += len(reg)
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(r.size, dtype=np.float64), (r, c)), shape=(n_cells, offset))


@pytest.fixture(scope="session")
def sim_view(sim_test: Path) -> SimView:
    return SimView(
        root=sim_test,
        manifest=json.loads((sim_test / "manifest.json").read_text()),
        cells=pl.read_csv(sim_test / "truth" / "cells.tsv", separator="\t"),
        drivers=pl.read_csv(sim_test / "truth" / "drivers.tsv", separator="\t"),
        sites=pl.read_parquet(sim_test / "truth" / "bound_sites.parquet"),
        peaks=pl.read_csv(sim_test / "sc" / "peaks.bed", separator="\t", has_header=False,
                          new_columns=["chrom", "start", "end", "name"]),
    )


@pytest.fixture(scope="session")
def sim_fragments(sim_view: SimView) -> pl.DataFrame:
    """All samples' fragments with a ``cell_id`` column (``<sample>#<barcode>``)."""
    parts = []
    for sample in sim_view.manifest["samples"]:
        f = read_fragments(sim_view.root / "sc" / sample / "fragments.tsv.gz")
        parts.append(f.with_columns((pl.lit(sample + "#") + pl.col("barcode")).alias("cell_id")))
    return pl.concat(parts)


@pytest.fixture(scope="session")
def tabix_open():
    opened = []

    def _open(path: Path) -> pysam.TabixFile:
        tbx = pysam.TabixFile(str(path))
        opened.append(tbx)
        return tbx

    yield _open
    for t in opened:
        t.close()


@pytest.fixture(scope="session")
def counts_by_region():
    """The :func:`count_matrix` helper (test modules here are not a package, so it is handed out as a fixture)."""
    return count_matrix
