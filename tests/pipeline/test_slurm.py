"""The pipeline on a real one-node Slurm cluster started by the test (scripts/slurm_cluster.sh): `-profile
test,slurm` must finish with every task run as a Slurm job, each of them COMPLETED in Slurm's own records."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from determinism import digests
from nfrun import REPO, run_pipeline

pytestmark = pytest.mark.pipeline

SCRIPT = REPO / "scripts" / "slurm_cluster.sh"


@pytest.fixture(scope="module")
def slurm_conf(tmp_path_factory):
    d = tmp_path_factory.mktemp("slurm")
    up = subprocess.run(["bash", str(SCRIPT), "up", str(d)], capture_output=True, text=True, timeout=900)
    if up.returncode != 0:
        pytest.fail(f"the Slurm daemons did not start (exit {up.returncode}): {up.stderr[-3000:]}")
    try:
        yield d / "slurm.conf"
    finally:
        subprocess.run(["bash", str(SCRIPT), "down", str(d)], capture_output=True, text=True, timeout=60)


def _slurm(conf: Path, *args: str) -> str:
    res = subprocess.run(list(args), capture_output=True, text=True, timeout=60, env={"SLURM_CONF": str(conf),
                                                                                    "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    return res.stdout


def _run_on_slurm(slurm_conf, tmp_path):
    fast = tmp_path / "fast_polling.config"  # Slurm is local: poll often instead of the profile's 15 s
    fast.write_text("executor {\n    pollInterval = '1 sec'\n    queueStatInterval = '2 sec'\n"
                    "    submitRateLimit = '20/1s'\n}\n")
    run = run_pipeline(tmp_path / "launch", "-profile", "test,slurm", "-c", str(fast),
                       env_extra={"SLURM_CONF": str(slurm_conf)})
    assert run.returncode == 0, run.output[-4000:]
    rows = run.trace_rows()
    assert len(rows) >= 15, len(rows)
    assert all(r["status"] == "COMPLETED" for r in rows), [(r["name"], r["status"]) for r in rows]
    ids = [r["native_id"] for r in rows]
    assert all(i.isdigit() for i in ids), ids  # Slurm job ids, not the local executor's pids
    states = dict(line.split() for line in _slurm(slurm_conf, "squeue", "-t", "all", "-h", "-o", "%i %T")
                  .splitlines())
    assert {i: states.get(i) for i in ids} == dict.fromkeys(ids, "COMPLETED")
    # the per-cell stage ran there too, and delivered
    assert (run.outdir / "activity" / "tf_activity.h5ad").is_file()
    assert any(r["process"].endswith("SC_PREDICT") for r in rows)
    # the job script Slurm received carries the task's resources
    run_script = next((tmp_path / "launch" / "work").rglob(".command.run")).read_text()
    assert "#SBATCH" in run_script and "--mem" in run_script, run_script[:2000]
    return run


@pytest.fixture(scope="module")
def slurm_run(slurm_conf, tmp_path_factory):
    return _run_on_slurm(slurm_conf, tmp_path_factory.mktemp("slurm_run"))


def test_test_profile_runs_every_task_as_a_slurm_job(slurm_run):
    """The checks are in _run_on_slurm (the fixture runs them once, so the run can be shared)."""
    assert slurm_run.returncode == 0


def test_same_seed_same_tables_on_another_executor(slurm_run, test_profile_run):
    """Determinism: the Slurm run (from scratch, nothing cached) publishes the same 70-odd tables and matrices as the
    shared local run: every TSV/CSV/BED byte for byte, parquet rows, every .h5ad's X, layers, obsm, obsp, obs, var."""
    first, second = digests(test_profile_run.outdir), digests(slurm_run.outdir)
    assert len(first) > 30 and any(k.endswith("tf_activity.h5ad:X") for k in first), sorted(first)
    assert first.keys() == second.keys()
    differ = sorted(k for k in first if first[k] != second[k])
    assert not differ, differ


GPU_PROCESSES = ("BULK_TRAIN_MODEL", "SC_PREDICT", "SC_TRACKS")  # the processes labelled process_gpu


def test_gpu_profile_routes_only_gpu_labelled_tasks_to_the_gpu_partition(slurm_conf, tmp_path):
    """`-profile test,slurm,gpu --gpu_queue gpu`, stubbed: GPU-labelled tasks are Slurm jobs in partition gpu
    asking --gres=gpu:1 (the test cluster's node has one pretend GPU); every other task stays in the default
    partition without a GPU. Read back from Slurm's records and from the job scripts it received."""
    fast = tmp_path / "fast_polling.config"
    fast.write_text("executor {\n    pollInterval = '1 sec'\n    queueStatInterval = '2 sec'\n}\n")
    run = run_pipeline(tmp_path / "launch", "-profile", "test,slurm,gpu", "-stub", "--gpu_queue", "gpu",
                       "-c", str(fast), env_extra={"SLURM_CONF": str(slurm_conf)})
    assert run.returncode == 0, run.output[-4000:]
    rows = run.trace_rows()
    jobs = {f[0]: (f[1], f[2]) for f in (line.split() for line in _slurm(
        slurm_conf, "squeue", "-t", "all", "-h", "-o", "%i %P %b").splitlines())}
    gpu = [r for r in rows if r["process"].split(":")[-1] in GPU_PROCESSES]
    cpu = [r for r in rows if r not in gpu]
    assert {r["process"].split(":")[-1] for r in gpu} == set(GPU_PROCESSES) and cpu
    assert {jobs[r["native_id"]] for r in gpu} == {("gpu", "gres:gpu:1")}, [(r["name"], jobs[r["native_id"]])
                                                                           for r in gpu]
    assert {jobs[r["native_id"]] for r in cpu} == {("main", "N/A")}, [(r["name"], jobs[r["native_id"]])
                                                                      for r in cpu]
    scripts = {p.read_text() for p in (tmp_path / "launch" / "work").rglob(".command.run")}
    assert sum("#SBATCH --gres=gpu:1" in s and "#SBATCH -p gpu" in s for s in scripts) == len(gpu)
