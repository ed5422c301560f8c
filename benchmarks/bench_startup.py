"""Start-up cost of a pipeline task: the time to import what each kind of step imports, on the host and in the image.

Every Nextflow task is a fresh Python process, so start-up is paid once per task (about 25 tasks in a `-profile
test` run, one per shard and sample at scale). Two things are measured side by side, interleaved, in one run:

- **host**: ``python -c "import <module>"`` in the project's venv, for the CLI and the modules behind the steps;
- **image**: the same in a fresh container of the built image (``scripts/container_image.sh``), once as built
  (bytecode compiled at build time) and once with every ``__pycache__`` removed first, which is how the image was
  before it carried bytecode (and how the public Python base image ships its standard library): the task then
  compiles every module it imports, and with ``PYTHONDONTWRITEBYTECODE`` it does so again in every task.

Usage: ``.venv/bin/python benchmarks/bench_startup.py [--repeats 5] [--no-image]``; writes
benchmarks/results/bench_startup.md. The image part needs podman (``make test`` installs it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODULES = {
    "scfan.cli.main": "the CLI (validate-params, check-inputs, versions)",
    "scfan.sc.ingest": "sc ingest / merge",
    "scfan.sc.cluster": "sc cluster",
    "scfan.sc.predict": "sc predict (torch)",
}
STRIP = "find /opt/scfan/venv /usr/lib/python3.11 /usr/local/lib -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    mem = next((int(line.split()[1]) / 2**20 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), float("nan"))
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM"


def host_once(module: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    return time.perf_counter() - t0


def image_once(tag: str, env: dict, module: str, strip: bool) -> float:
    """Seconds of ``python -c 'import module'`` inside the container (the container's own start is not counted)."""
    pre = STRIP + "; " if strip else ""
    script = (f"{pre}s=$EPOCHREALTIME; python -c 'import {module}'; e=$EPOCHREALTIME; "
              "awk -v s=$s -v e=$e 'BEGIN{printf \"%.4f\\n\", e - s}'")
    out = subprocess.run(["podman", "run", "--rm", "--network=none", tag, "bash", "-c", script], check=True,
                         capture_output=True, text=True, env=env).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-image", action="store_true", help="host only (no podman)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_startup.md")
    args = ap.parse_args()
    tag, env = None, dict(os.environ)
    if not args.no_image:
        script = REPO / "scripts" / "container_image.sh"
        tag = subprocess.run(["bash", str(script), "cpu"], check=True, capture_output=True,
                             text=True).stdout.strip().splitlines()[-1]
        conf = subprocess.run(["bash", str(script), "env"], check=True, capture_output=True, text=True).stdout
        env["CONTAINERS_CONF"] = conf.strip().split("=", 1)[1]
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):  # interleaved, so that load on the machine hits every column alike
        for module in MODULES:
            times.setdefault(("host", module), []).append(host_once(module))
            if tag:
                times.setdefault(("image", module), []).append(image_once(tag, env, module, strip=False))
                times.setdefault(("image, no bytecode", module), []).append(image_once(tag, env, module, strip=True))
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = ["# Task start-up: import time per step", "",
             f"Machine: {machine()}; Python {platform.python_version()}; {time.strftime('%Y-%m-%d')}", "",
             f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`" + (f"; image `{tag}`" if tag else ""),
             "", f"Median of {args.repeats} interleaved repeats, seconds of `python -c 'import <module>'` (the "
             "container's own start not counted).", ""]
    cols = ["host", *(["image", "image, no bytecode"] if tag else [])]
    lines += ["| module | what imports it | " + " | ".join(cols) + (" | bytecode saves |" if tag else " |"),
              "|---|---|" + "---|" * len(cols) + ("---|" if tag else "")]
    for module, what in MODULES.items():
        row = f"| `{module}` | {what} | " + " | ".join(f"{med[(c, module)]:.2f}" for c in cols)
        if tag:
            row += f" | {med[('image, no bytecode', module)] / med[('image', module)]:.1f}×"
        lines.append(row + " |")
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
