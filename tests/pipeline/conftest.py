"""Fixtures of the pipeline tests: one shared `-profile test` run and fresh launch folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from nfrun import Run, run_pipeline


@pytest.fixture(scope="session")
def test_profile_run(tmp_path_factory) -> Run:
    """One full run of `-profile test` shared by the pipeline tests (it takes a few minutes)."""
    launch = tmp_path_factory.mktemp("nf_test_profile")
    run = run_pipeline(launch, "-profile", "test")
    if run.returncode != 0:
        log = (launch / ".nextflow.log").read_text()[-5000:] if (launch / ".nextflow.log").exists() else ""
        pytest.fail(f"-profile test failed (exit {run.returncode}):\n{run.output[-5000:]}\n{log}")
    return run


@pytest.fixture()
def fresh_launch_dir(tmp_path) -> Path:
    d = tmp_path / "launch"
    d.mkdir()
    yield d
    shutil.rmtree(d / "work", ignore_errors=True)
