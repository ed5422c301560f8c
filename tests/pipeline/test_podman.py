"""The pipeline in its container: the image built here from containers/Dockerfile with Podman (scripts/
container_image.sh, once per content hash; the `image` fixture in conftest.py); the shared
`-profile test,slurm,podman -stub` run (conftest.py), every task of it started in that image; and real tasks of the
shared local run replayed in the image, which must compute what they computed on the host, bit for bit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from determinism import h5ad_digests
from nfrun import REPO, Run, run_pipeline

pytestmark = pytest.mark.pipeline

SCRIPT = REPO / "scripts" / "container_image.sh"
VENV_IN_IMAGE = "/opt/scfan/venv"


def _podman(env: dict[str, str], *args: str) -> str:
    res = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=300, env={**os.environ, **env})
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_image_holds_the_locked_environment_without_the_work_tree(image):
    tag, env = image
    out = _podman(env, "run", "--rm", "--network=none", tag, "bash", "-c",
                  "command -v scfan python; scfan --version; ps --version; pip freeze --exclude-editable; "
                  "test ! -e /opt/scfan/python && echo no-sources")
    lines = out.splitlines()
    assert lines[0] == f"{VENV_IN_IMAGE}/bin/scfan" and lines[1] == f"{VENV_IN_IMAGE}/bin/python", lines[:2]
    assert "0.1.0" in lines[2] and "procps" in lines[3], lines[2:4]
    assert lines[-1] == "no-sources"
    frozen = {line for line in lines if "==" in line and not line.startswith("scfan")}
    locked = {line.strip() for line in (REPO / "requirements.lock").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    assert locked <= frozen, sorted(locked - frozen)[:10]  # every pin of the lock file, at its version



def _probe_in_image(image, code: str, label: str) -> dict:
    """Run ``code`` with python in a fresh container of the image, as an unknown uid (how Nextflow runs tasks with
    -u uid:gid), and return the JSON of the one stdout line it labels ``label`` (the probe's result)."""
    tag, env = image
    out = _podman(env, "run", "--rm", "--network=none", "-u", f"{os.getuid() + 1000}:{os.getgid() + 1000}", tag,
                  "python", "-c", code)
    result = [line for line in out.splitlines() if line.startswith(label + " ")]
    assert len(result) == 1, f"the probe printed no {label} line: {out!r}"
    return json.loads(result[0].removeprefix(label + " "))

NUMBA_PROBE = """
import gc, json, logging, pathlib
import numpy as np
import numba.core.dispatcher as d
from scfan.sc.cluster import ClusterConfig, FeatureMatrix, cluster_matrix
logging.disable(logging.WARNING)
x = np.random.default_rng(1).normal(size=(90, 6))
fm = FeatureMatrix([f"c{i}" for i in range(90)], [f"f{j}" for j in range(6)], x, pathlib.Path("probe"))
cluster_matrix(fm, ClusterConfig(resolution=0.5))
disp = [o for o in gc.get_objects() if isinstance(o, d.Dispatcher) and o.stats.cache_path]
# the probe's result, read by the test on the host: one JSON line on stdout
print("NUMBA_PROBE " + json.dumps({"hits": sum(len(o.stats.cache_hits) for o in disp),
                                   "misses": sum(len(o.stats.cache_misses) for o in disp)}))
"""


def test_the_image_holds_numbas_compiled_clustering_code(image):
    """`sc cluster` in a fresh container, as the host's user (how Nextflow runs tasks with -u uid:gid), loads every
    numba function it calls from the cache filled at build time (containers/warm_numba.py): none is compiled."""
    counts = _probe_in_image(image, NUMBA_PROBE, "NUMBA_PROBE")
    assert counts["hits"] > 10 and counts["misses"] == 0, counts


BYTECODE_PROBE = """
import importlib.util, json, os, sys
import scfan.cli.main, scfan.sc.predict, scfan.sc.cluster, scfan.sc.chromvar, scfan.report, scfan.simulate
sources = [m.__spec__.origin for m in list(sys.modules.values())
           if getattr(m, "__spec__", None) and m.__spec__.origin and m.__spec__.origin.endswith(".py")]
missing = [f for f in sources if not os.path.exists(importlib.util.cache_from_source(f))]
print("BYTECODE_PROBE " + json.dumps({"modules": len(sources), "missing": missing}))
"""


def test_the_image_holds_bytecode_for_what_the_tasks_import(image):
    """The image runs with PYTHONDONTWRITEBYTECODE, so a module without a .pyc in the image is compiled from source
    by every task that imports it (torch, scanpy, pandas: seconds per task). Every module that the steps import,
    the standard library's included, has its bytecode in the image (compiled at build time, containers/Dockerfile)."""
    got = _probe_in_image(image, BYTECODE_PROBE, "BYTECODE_PROBE")
    assert got["modules"] > 500 and not got["missing"], (got["modules"], got["missing"][:20])


def test_cuda_target_is_the_same_environment_plus_the_nvidia_runtime_settings(image):
    """The cuda target (what -profile gpu names) shares the cpu image's layers and adds the NVIDIA runtime's
    environment; no GPU here, so torch must say CUDA is unavailable rather than fail to import."""
    cpu_tag, env = image
    res = subprocess.run(["bash", str(SCRIPT), "cuda"], capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    cuda_tag = res.stdout.strip().splitlines()[-1]
    assert cuda_tag != cpu_tag and "-cuda-" in cuda_tag
    out = _podman(env, "run", "--rm", "--network=none", cuda_tag, "bash", "-c",
                  "echo $NVIDIA_VISIBLE_DEVICES $NVIDIA_DRIVER_CAPABILITIES; "
                  "python -c 'import torch; print(torch.__version__, torch.cuda.is_available())'")
    torch_pin = next(line.split("==")[1] for line in (REPO / "requirements.lock").read_text().splitlines()
                     if line.startswith("torch=="))
    nvidia_devices, capabilities, torch_version, cuda = out.split()
    assert (nvidia_devices, capabilities) == ("all", "compute,utility"), out
    assert torch_version.split("+")[0] == torch_pin and cuda == "False", out
    layers = {t: json.loads(_podman(env, "image", "inspect", t))[0]["RootFS"]["Layers"] for t in (cpu_tag, cuda_tag)}
    assert layers[cuda_tag][: len(layers[cpu_tag])] == layers[cpu_tag]  # the cpu image, plus configuration


def test_every_task_runs_in_the_image(slurm_podman_stub_run, image):
    """Every process, stubbed, was a Slurm job that started the image: Nextflow's trace, the job scripts, and the
    scfan that wrote each task's versions.yml (the stub too runs `scfan versions`, which names its interpreter)."""
    tag, _env = image
    run = slurm_podman_stub_run
    rows = run.trace_rows()
    assert len(rows) >= 15 and all(r["status"] == "COMPLETED" for r in rows), [(r["name"], r["status"]) for r in rows]
    outside = [r["name"] for r in rows if r["container"] != tag]
    assert not outside, outside  # Nextflow's own record of the image each task ran in
    run_scripts = list((run.launch_dir / "work").rglob(".command.run"))
    assert len(run_scripts) == len(rows)
    assert all("podman run" in p.read_text() and tag in p.read_text() for p in run_scripts)
    # and the scfan that answered was the image's, in every process (versions.yml names the interpreter)
    versions = yaml.safe_load((run.outdir / "pipeline_info" / "versions.yml").read_text())
    pythons = {proc: tools["scfan_python"] for proc, tools in versions.items()}
    assert len(pythons) >= 14 and all(p.startswith(f"{VENV_IN_IMAGE}/bin/python") for p in pythons.values()), pythons
    assert (run.outdir / "activity" / "tf_activity.h5ad").is_file()
    assert (run.outdir / "report" / "report.html").is_file()


def _task_dir(run: Run, process: str, tag: str) -> Path:
    """The work folder of the one completed task of ``run`` that its first trace names ``process`` (``tag``): other
    tests resume the shared run, and a resumed run's trace lists its tasks as CACHED."""
    rows = [r for r in run.trace_rows(run.traces()[0])
            if r["process"] == process and r["tag"] == tag and r["status"] == "COMPLETED"]
    assert len(rows) == 1, f"{process} ({tag}): {len(rows)} completed tasks in the trace"
    (task_dir,) = (run.launch_dir / "work").glob(rows[0]["hash"] + "*")
    return task_dir


def _replay_in_image(image, run: Run, task_dir: Path, dest: Path) -> Path:
    """Run a finished task of the host's ``run`` again in a fresh container of the image, in ``dest``: the same
    .command.sh on the same staged inputs (the task's links into the run's work folder and results, mounted read-only
    at the same paths), with the environment the config gives every task; returns ``dest``."""
    tag, env = image
    dest.mkdir(parents=True)
    for link in task_dir.rglob("*"):
        if link.is_symlink():
            target = Path(os.readlink(link))
            assert target.resolve().is_relative_to(run.launch_dir), f"{link} -> {target}: outside the run's folder"
            (dest / link.relative_to(task_dir)).parent.mkdir(parents=True, exist_ok=True)
            (dest / link.relative_to(task_dir)).symlink_to(target)
    shutil.copy(task_dir / ".command.sh", dest)
    exports = re.findall(r'^\s*export (\w+)="(.*)"$', (task_dir / ".command.run").read_text(), re.MULTILINE)
    task_env = [f"--env={k}={v}" for k, v in exports if k != "PATH" and not k.startswith("NXF_")]
    assert task_env, "no environment in the task's .command.run: has Nextflow changed how it writes it?"
    _podman(env, "run", "--rm", "--network=none", "-u", f"{os.getuid()}:{os.getgid()}", *task_env,
            "-v", f"{run.launch_dir}:{run.launch_dir}:ro", "-v", f"{dest}:{dest}", "-w", str(dest),
            tag, "bash", "-euo", "pipefail", ".command.sh")
    versions = yaml.safe_load((dest / "versions.yml").read_text())
    (python,) = (tools["scfan_python"] for tools in versions.values())
    assert python.startswith(f"{VENV_IN_IMAGE}/bin/python"), python  # the image's scfan did the work
    return dest


def test_the_image_evaluates_a_model_as_the_host_did(image, test_profile_run, tmp_path):
    """A trained model scored on its line's held-out windows (torch, and the PWM baseline beside it), replayed in the
    image from the local run's inputs, gives the host's metrics bit for bit: every score to 6 decimals in the
    published metrics.tsv, the mean AUROC/AUPRC at full precision in the task's evaluate.json (not published)."""
    task_dir = _task_dir(test_profile_run, "SCFAN:BULK_TRAIN:BULK_EVALUATE", "lineA")
    out = _replay_in_image(image, test_profile_run, task_dir, tmp_path / "evaluate")
    published = test_profile_run.outdir / "bulk" / "lineA" / "evaluate"
    assert (out / "evaluate" / "metrics.tsv").read_bytes() == (published / "metrics.tsv").read_bytes()
    host = json.loads((task_dir / "evaluate" / "evaluate.json").read_text())
    assert host["summary"]["scfan"]["mean_auroc"] > 0.5, host  # a real evaluation, not an empty one
    assert (out / "evaluate" / "evaluate.json").read_bytes() == (task_dir / "evaluate" / "evaluate.json").read_bytes()


def test_the_image_merges_the_same_activity_matrix_as_the_host(image, test_profile_run, tmp_path):
    """The shards merged in the image (from the local run's shards) give the published activity/tf_activity.h5ad,
    the per-cell TF activity matrix that the clustering and the report read, bit for bit."""
    task_dir = _task_dir(test_profile_run, "SCFAN:SC_INFER:SC_MERGE_ACTIVITY", "2 shard(s)")
    out = _replay_in_image(image, test_profile_run, task_dir, tmp_path / "merge")
    published = test_profile_run.outdir / "activity" / "tf_activity.h5ad"
    host, container = h5ad_digests(published, "tf_activity"), h5ad_digests(out / "tf_activity.h5ad", "tf_activity")
    assert len(host) > 3 and container == host, sorted(k for k in host.keys() | container.keys()
                                                       if host.get(k) != container.get(k))


def test_a_container_profile_without_an_image_is_refused(tmp_path, image):
    _tag, env = image
    run = run_pipeline(tmp_path / "launch", "-profile", "test,podman", "--container_image", "", "-stub", env_extra=env)
    assert run.returncode != 0
    assert "--container_image is empty, but -profile test,podman runs every task in podman" in run.output, \
        run.output[-3000:]
    assert not (tmp_path / "launch" / "work").exists() or not list((tmp_path / "launch" / "work").rglob(".command.run"))


def test_the_params_record_names_the_image(slurm_podman_stub_run, image):
    tag, _env = image
    params = json.loads((slurm_podman_stub_run.outdir / "pipeline_info" / "params.json").read_text())
    assert params["container_image"] == tag
