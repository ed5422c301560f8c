"""Executor profiles resolved by Nextflow itself (`nextflow config -flat`): what a user with the plugins and the
cloud account would get. No AWS run is possible here (the nf-amazon plugin cannot be downloaded)."""

from __future__ import annotations

import os
import subprocess

import pytest
from nfrun import NEXTFLOW, REPO

pytestmark = pytest.mark.pipeline


def resolved(tmp_path, profile: str, **env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SCFAN_", "AWS_"))}
    out = subprocess.run([str(NEXTFLOW), "config", "-flat", "-profile", profile, str(REPO)], cwd=tmp_path,
                         env={**clean, "NXF_OFFLINE": "true", **env}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return dict(line.split(" = ", 1) for line in out.stdout.splitlines() if " = " in line)


def test_awsbatch_profile_resolves_to_the_documented_settings(tmp_path):
    cfg = resolved(tmp_path, "awsbatch", SCFAN_AWS_QUEUE="genomics-cpu", AWS_REGION="eu-west-1")
    assert cfg["process.executor"] == "'awsbatch'"
    assert cfg["process.queue"] == "'genomics-cpu'"
    assert cfg["aws.region"] == "'eu-west-1'"
    assert cfg["aws.batch.cliPath"] == "'/usr/local/bin/aws'"
    assert "process.container" not in cfg  # the modules declare theirs: task.ext.container from --container_image
    assert cfg["params.container_image"] == "'scfan-nf/scfan:0.1.0'"
    assert "params.container_image" in cfg["process.ext.container"]
    defaults = resolved(tmp_path, "awsbatch")
    assert defaults["process.queue"] == "'scfan-cpu'" and defaults["aws.region"] == "'us-east-1'"


def test_slurm_profile_resolves_to_the_documented_settings(tmp_path):
    cfg = resolved(tmp_path, "slurm,gpu", SCFAN_SLURM_QUEUE="short")
    assert cfg["process.executor"] == "'slurm'" and cfg["process.queue"] == "'short'"
    assert cfg["params.gpu"] == "true" and cfg["params.arch"] == "'full'"
    assert cfg["params.container_image"] == "'scfan-nf/scfan:0.1.0-cuda'"  # the image's cuda target, if one is enabled
    # bare Slurm runs the tasks in the launching environment: no container engine switched on
    assert not any(cfg.get(f"{e}.enabled") == "true" for e in ("docker", "podman", "singularity", "apptainer"))


@pytest.mark.parametrize("profile", ["docker", "podman", "singularity", "apptainer"])
def test_each_container_profile_switches_on_its_engine_alone(tmp_path, profile):
    cfg = resolved(tmp_path, profile)
    on = sorted(e for e in ("docker", "podman", "singularity", "apptainer") if cfg.get(f"{e}.enabled") == "true")
    assert on == [profile]
    assert cfg["params.container_image"] == "'scfan-nf/scfan:0.1.0'"
