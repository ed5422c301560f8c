"""Fixtures of the bulk tests (builders live in bulk_builders.py, importable by test modules)."""

from __future__ import annotations

import importlib.util
import sys

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


@pytest.fixture(scope="session")
def bench_bulk(repo_root):
    """``benchmarks/bench_bulk.py`` imported from its path (benchmarks/ is a folder of scripts, not on sys.path)."""
    path = repo_root / "benchmarks" / "bench_bulk.py"
    spec = importlib.util.spec_from_file_location("bench_bulk", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # registered before running it, as an import would (dataclasses look it up)
    spec.loader.exec_module(module)
    return module
