"""pandera schemas of the simulator's truth tables (validated before writing; importable for readers)."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from scfan.intervals import IntervalSchema


class TruthCellsSchema(pa.DataFrameModel):
    """``truth/cells.tsv``: one row per barcode."""

    sample: str
    barcode: str = pa.Field(str_matches=r"^[ACGT]{16}-1$")
    cell_id: str = pa.Field(unique=True)
    cell_type: str
    quality: str = pa.Field(isin=["good", "low"])


class TruthDriversSchema(pa.DataFrameModel):
    """``truth/drivers.tsv``: the TFs that drive each cell type."""

    cell_type: str
    tf: str


class BoundSitesSchema(IntervalSchema):
    """``truth/bound_sites.parquet``: every planted site and where it is bound."""

    site_id: str = pa.Field(unique=True)
    strand: str = pa.Field(isin=["+", "-"])
    tf: str
    motif_score: float
    decoy: bool
    bound_lines: pl.List(pl.Utf8)
    bound_types: pl.List(pl.Utf8)
    weak_motif: bool
    re_id: str
