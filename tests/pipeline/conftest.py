"""Fixtures of the pipeline tests: the full `-profile test` run they share, a stubbed cluster run, fresh launch folders.

- ``test_profile_run``: the local executor in the project's .venv, checked in detail (test_pipeline.py,
  test_analysis_report.py); the reference that the kill -9 / -resume run and the tasks replayed in the image
  (test_podman.py) are compared with.
- ``slurm_podman_stub_run``: the profile a user on a cluster runs, ``-profile test,slurm,podman``, with every module's
  stub: every task a job of a real one-node Slurm cluster (scripts/slurm_cluster.sh), started in the image built from
  containers/Dockerfile (scripts/container_image.sh), where the stub still asks scfan for its versions.yml.
  test_slurm.py reads it as Slurm's, test_podman.py as the image's. Whether the image computes the same numbers is
  checked on a few real tasks of ``test_profile_run`` replayed in it (test_podman.py): a full real run in the image
  cost about 15 of `make test`'s minutes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from nfrun import REPO, Run, fast_polling, run_pipeline

CONTAINER_SCRIPT = REPO / "scripts" / "container_image.sh"
SLURM_SCRIPT = REPO / "scripts" / "slurm_cluster.sh"


@pytest.fixture(scope="session")
def test_profile_run(tmp_path_factory) -> Run:
    """One full run of `-profile test` shared by the pipeline tests (it takes a few minutes)."""
    launch = tmp_path_factory.mktemp("nf_test_profile")
    run = run_pipeline(launch, "-profile", "test")
    if run.returncode != 0:
        log = (launch / ".nextflow.log").read_text()[-5000:] if (launch / ".nextflow.log").exists() else ""
        pytest.fail(f"-profile test failed (exit {run.returncode}):\n{run.output[-5000:]}\n{log}")
    return run


@pytest.fixture(scope="session")
def image() -> tuple[str, dict[str, str]]:
    """(tag, env for Nextflow): the cpu image of the current sources, built now when podman has none."""
    res = subprocess.run(["bash", str(CONTAINER_SCRIPT), "cpu"], capture_output=True, text=True, timeout=2400)
    if res.returncode != 0:
        pytest.fail(f"building the image failed (exit {res.returncode}): {res.stderr[-3000:]}")
    tag = res.stdout.strip().splitlines()[-1]
    conf = subprocess.run(["bash", str(CONTAINER_SCRIPT), "env"], capture_output=True, text=True, timeout=60,
                          check=True)
    key, value = conf.stdout.strip().removeprefix("export ").split("=", 1)
    return tag, {key: value}


@pytest.fixture(scope="session")
def slurm_conf(tmp_path_factory) -> Path:
    """slurm.conf of a one-node cluster started for this session (stopped at its end)."""
    d = tmp_path_factory.mktemp("slurm")
    up = subprocess.run(["bash", str(SLURM_SCRIPT), "up", str(d)], capture_output=True, text=True, timeout=900)
    if up.returncode != 0:
        pytest.fail(f"the Slurm daemons did not start (exit {up.returncode}): {up.stderr[-3000:]}")
    try:
        yield d / "slurm.conf"
    finally:
        subprocess.run(["bash", str(SLURM_SCRIPT), "down", str(d)], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="session")
def slurm_podman_stub_run(image, slurm_conf, tmp_path_factory) -> Run:
    """`-profile test,slurm,podman -stub` with the image of the current sources (two to four minutes)."""
    tag, env = image
    d = tmp_path_factory.mktemp("slurm_podman_stub_run")
    run = run_pipeline(d / "launch", "-profile", "test,slurm,podman", "-stub", "--container_image", tag,
                       "-c", str(fast_polling(d)), env_extra={**env, "SLURM_CONF": str(slurm_conf)})
    if run.returncode != 0:
        log = (d / "launch" / ".nextflow.log")
        tail = log.read_text()[-5000:] if log.exists() else ""
        pytest.fail(f"-profile test,slurm,podman -stub failed (exit {run.returncode}):\n{run.output[-5000:]}\n{tail}")
    return run


@pytest.fixture()
def fresh_launch_dir(tmp_path) -> Path:
    d = tmp_path / "launch"
    d.mkdir()
    yield d
    shutil.rmtree(d / "work", ignore_errors=True)
