"""Helpers that run the real, pinned Nextflow (installed by `make setup`) on the pipeline, offline."""

from __future__ import annotations

import csv
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NEXTFLOW = REPO / ".tools" / "bin" / "nextflow"


@dataclass
class Run:
    launch_dir: Path
    outdir: Path
    returncode: int
    output: str

    def traces(self) -> list[Path]:
        return sorted((self.outdir / "pipeline_info").glob("execution_trace_*.txt"))

    def trace_rows(self, trace: Path | None = None) -> list[dict[str, str]]:
        trace = trace or self.traces()[-1]
        with open(trace, newline="") as fh:
            return list(csv.DictReader(fh, delimiter="\t"))


def _env(env_extra: dict[str, str] | None = None) -> dict[str, str]:
    assert NEXTFLOW.exists(), f"{NEXTFLOW} missing: run `make setup` first"
    env = {**os.environ, **(env_extra or {})}
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{REPO / '.tools' / 'bin'}:{env['PATH']}"
    env["NXF_OFFLINE"] = "true"
    env["NXF_ANSI_LOG"] = "false"
    return env


def nextflow(launch_dir: Path, *args: str, timeout: int = 1500,
             env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(NEXTFLOW), "run", str(REPO), *args], cwd=launch_dir, env=_env(env_extra),
                          capture_output=True, text=True, timeout=timeout)


def start_pipeline(launch_dir: Path, *args: str, outdir: Path) -> subprocess.Popen:
    """Start a run in the background, in a process group of its own (Nextflow's JVM and every task it launches),
    so that the group can be killed at once like a node that dies; output goes to ``launch_dir/nextflow.out``."""
    launch_dir.mkdir(parents=True, exist_ok=True)
    with open(launch_dir / "nextflow.out", "w") as log:
        return subprocess.Popen([str(NEXTFLOW), "run", str(REPO), "--outdir", str(outdir), *args], cwd=launch_dir,
                                env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def run_pipeline(launch_dir: Path, *args: str, outdir: Path | None = None,
                 env_extra: dict[str, str] | None = None) -> Run:
    launch_dir.mkdir(parents=True, exist_ok=True)
    outdir = outdir or launch_dir / "results"
    proc = nextflow(launch_dir, "--outdir", str(outdir), *args, env_extra=env_extra)
    return Run(launch_dir, outdir, proc.returncode, proc.stdout + proc.stderr)


def fast_polling(d: Path) -> Path:
    """A config for the test cluster: Slurm is local, so poll often instead of the slurm profile's 15 s."""
    fast = d / "fast_polling.config"
    fast.write_text("executor {\n    pollInterval = '1 sec'\n    queueStatInterval = '2 sec'\n"
                    "    submitRateLimit = '20/1s'\n}\n")
    return fast
