"""A node dies during per-cell inference: kill -9 of Nextflow and every task it runs, then `-resume`.

The run continues the shared `-profile test` run's session (its `.nextflow` cache copied into a launch folder of
its own, the same work directory), with `--infer_shards 3` instead of 2: upstream tasks come from the cache, and
the three SC_PREDICT shards, their merge and everything after them must run (any shard count gives the same
matrix). Once one shard has finished and the next is running, the whole process group is killed with SIGKILL, as
when a node dies: no shutdown hook, no cache flush, a task cut off half-way. `-resume` must then complete, take
from the cache every task that had finished (the upstream ones and the finished shard), re-run the rest, and
publish exactly the tables and `.h5ad` matrices of the uninterrupted shared run (determinism.py's digests).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
from determinism import digests
from nfrun import run_pipeline, start_pipeline

pytestmark = pytest.mark.pipeline

PREDICT = "SCFAN:SC_INFER:SC_PREDICT"
UPSTREAM = ("SIMULATE", "CHECK_INPUTS", "SC_INGEST", "SC_MERGE", "SC_NEIGHBORS", "BULK_PREPARE", "BULK_TRAIN_MODEL",
            "BULK_EVALUATE")
COMPLETED = re.compile(r"Task completed > TaskHandler\[id: \d+; name: (?P<name>[^;]+); status: COMPLETED; "
                       r"exit: 0;.*workDir: (?P<dir>\S+)\]")
SUBMITTED = re.compile(r"\[(?P<hash>[0-9a-f]{2}/[0-9a-f]{6})\] Submitted process > (?P<name>.+)$", re.M)
CACHED = re.compile(r"\[[0-9a-f]{2}/[0-9a-f]{6}\] Cached process > (?P<name>.+)$", re.M)


def _short(name: str) -> str:
    return name.split(" (")[0].split(":")[-1]


def _group_members(pgid: int) -> list[int]:
    """Processes still alive (not zombies) in process group ``pgid``."""
    alive = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(d.name))
    return alive


def _wait_for_second_shard(launch: Path, work: Path, proc, timeout: float = 1800) -> tuple[set[str], str]:
    """Poll the run's log until one SC_PREDICT shard has completed and another has started (its .command.begin
    exists): returns (names of completed shards, name of the running shard)."""
    deadline = time.monotonic() + timeout
    log = launch / ".nextflow.log"
    while time.monotonic() < deadline:
        assert proc.poll() is None, (launch / "nextflow.out").read_text()[-3000:]
        text = log.read_text() if log.exists() else ""
        done = {m["name"] for m in COMPLETED.finditer(text) if m["name"].startswith(PREDICT)}
        if done:
            for m in SUBMITTED.finditer(text):
                if m["name"].startswith(PREDICT) and m["name"] not in done and \
                        any((d / ".command.begin").exists() for d in work.glob(m["hash"] + "*")):
                    time.sleep(2)  # well inside the shard (it runs for about a minute)
                    return done, m["name"]
        time.sleep(1)
    pytest.fail(f"no second SC_PREDICT shard started within {timeout} s")


def test_kill_9_during_inference_then_resume_loses_nothing(test_profile_run, tmp_path):
    t0 = time.monotonic()
    shared = test_profile_run.launch_dir
    launch, outdir, work = tmp_path / "launch", tmp_path / "results", shared / "work"
    launch.mkdir()
    shutil.copytree(shared / ".nextflow", launch / ".nextflow")  # the session's cache and history, not the live one
    args = ("-profile", "test", "-resume", "--infer_shards", "3", "-w", str(work))

    proc = start_pipeline(launch, *args, outdir=outdir)
    try:
        done, running = _wait_for_second_shard(launch, work, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # Nextflow's JVM and its tasks, all at once
        proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while _group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _group_members(proc.pid), "processes of the killed run survived"
    # what was killed, carried into the failure messages of the resume below
    killed = f"killed after {time.monotonic() - t0:.0f} s with {sorted(done)} done and {running!r} running"
    # a changed inference parameter re-ran only inference: everything upstream came from the cache
    log = (launch / ".nextflow.log").read_text() + (launch / "nextflow.out").read_text()
    assert {_short(m["name"]) for m in CACHED.finditer(log)} >= set(UPSTREAM), log[-3000:]
    assert not {_short(m["name"]) for m in SUBMITTED.finditer(log)} & set(UPSTREAM)

    again = run_pipeline(launch, *args, outdir=outdir)
    assert again.returncode == 0, (killed, again.output[-3000:])
    rows = again.trace_rows()
    status = {r["name"]: r["status"] for r in rows}
    short = {r["name"]: r["process"].split(":")[-1] for r in rows}
    assert set(status.values()) <= {"CACHED", "COMPLETED"}, (killed, status)
    # what finished before the kill is reused: the upstream tasks and the finished shard(s)
    upstream = {n: s for n, s in status.items() if short[n] in UPSTREAM}
    assert upstream and set(upstream.values()) == {"CACHED"}, upstream
    for name in done:
        assert status[name] == "CACHED", (killed, name, status[name])
    # the shard cut off by the kill, the shards never started, and everything after inference run now
    shards = {n: s for n, s in status.items() if n.startswith(PREDICT)}
    assert len(shards) == 3 and status[running] == "COMPLETED", (killed, shards)
    assert sum(s == "COMPLETED" for s in shards.values()) == 3 - len(done), (killed, shards)
    assert {short[n] for n, s in status.items() if s == "COMPLETED"} >= {"SC_MERGE_ACTIVITY", "REPORT"}

    # the final tables equal those of the uninterrupted run, digest for digest
    expected, got = digests(test_profile_run.outdir), digests(outdir)
    assert got.keys() == expected.keys(), sorted(set(got) ^ set(expected))
    differ = [k for k in expected if got[k] != expected[k]]
    assert not differ, (killed, differ)
