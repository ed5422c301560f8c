"""Shared fixtures: repository paths, the real data in ../shared/data, and one simulated data set per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    env = os.environ.get("SCFAN_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real data shipped beside the repository (see ../shared/data/README.md); required, never skipped."""
    d = _shared_data()
    assert (d / "README.md").is_file(), f"real test data not found at {d} (set SCFAN_SHARED_DATA)"
    return d


@pytest.fixture(scope="session")
def sim_test(tmp_path_factory) -> Path:
    """The simulator's `test` preset, generated once per test session (seed 7)."""
    from scfan.simulate import run_simulation

    out = tmp_path_factory.mktemp("sim") / "test_seed7"
    run_simulation(preset="test", seed=7, outdir=out)
    return out
