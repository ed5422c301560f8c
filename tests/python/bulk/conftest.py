"""Fixtures of the bulk tests (builders live in bulk_builders.py, importable by test modules)."""

from __future__ import annotations

import pytest
from bulk_builders import TinyBulk, make_tiny_bulk


@pytest.fixture
def tiny_bulk(tmp_path) -> TinyBulk:
    return make_tiny_bulk(tmp_path / "tiny")


@pytest.fixture(scope="module")
def tiny_prepared(tmp_path_factory):
    """Tiny inputs plus prepared windows (valid chr2, test chr1), shared by a test module."""
    from scfan.bulk.windows import PrepareConfig, prepare_bulk, sources_from_samplesheet

    tb = make_tiny_bulk(tmp_path_factory.mktemp("tinyprep"))
    cfg = PrepareConfig(valid_chroms=("chr2",), test_chroms=("chr1",))
    prepare_bulk(sources_from_samplesheet(tb.samplesheet, "L1"), tb.genome, tb.mappability, tb.blacklist, cfg,
                 tb.root / "prep")
    return tb, tb.root / "prep" / "windows.parquet"
