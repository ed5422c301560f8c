"""The pipeline on a real one-node Slurm cluster started for the session (scripts/slurm_cluster.sh, the `slurm_conf`
fixture in conftest.py): the shared `-profile test,slurm,podman -stub` run must finish with every task run as a Slurm
job, each of them COMPLETED in Slurm's own records (test_podman.py checks the same run's image)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from nfrun import fast_polling, run_pipeline

pytestmark = pytest.mark.pipeline


def _slurm(conf: Path, *args: str) -> str:
    res = subprocess.run(list(args), capture_output=True, text=True, timeout=60, env={"SLURM_CONF": str(conf),
                                                                                    "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_test_profile_runs_every_task_as_a_slurm_job(slurm_podman_stub_run, slurm_conf):
    run = slurm_podman_stub_run
    rows = run.trace_rows()
    assert len(rows) >= 15, len(rows)
    assert all(r["status"] == "COMPLETED" for r in rows), [(r["name"], r["status"]) for r in rows]
    ids = [r["native_id"] for r in rows]
    assert all(i.isdigit() for i in ids), ids  # Slurm job ids, not the local executor's pids
    states = dict(line.split() for line in _slurm(slurm_conf, "squeue", "-t", "all", "-h", "-o", "%i %T")
                  .splitlines())
    assert {i: states.get(i) for i in ids} == dict.fromkeys(ids, "COMPLETED")
    # the per-cell stage ran there too, and published
    assert (run.outdir / "activity" / "tf_activity.h5ad").is_file()
    assert any(r["process"].endswith("SC_PREDICT") for r in rows)
    # the job script Slurm received carries the task's resources, and starts the task in the image
    run_script = next((run.launch_dir / "work").rglob(".command.run")).read_text()
    assert "#SBATCH" in run_script and "--mem" in run_script and "podman run" in run_script, run_script[:2000]


GPU_PROCESSES = ("BULK_TRAIN_MODEL", "BULK_INTERPRET", "SC_PREDICT", "SC_TRACKS", "SC_INTERPRET")  # process_gpu


def test_gpu_profile_routes_only_gpu_labelled_tasks_to_the_gpu_partition(slurm_conf, tmp_path):
    """`-profile test,slurm,gpu --gpu_queue gpu`, stubbed: GPU-labelled tasks are Slurm jobs in partition gpu
    asking --gres=gpu:1 (the test cluster's node has one pretend GPU); every other task stays in the default
    partition without a GPU. Read back from Slurm's records and from the job scripts it received."""
    run = run_pipeline(tmp_path / "launch", "-profile", "test,slurm,gpu", "-stub", "--gpu_queue", "gpu",
                       "-c", str(fast_polling(tmp_path)), env_extra={"SLURM_CONF": str(slurm_conf)})
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
