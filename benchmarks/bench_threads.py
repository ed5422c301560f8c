"""What oversubscription costs: a step's threads against the cores it was given, with a neighbour job running.

On Slurm or AWS Batch a task owns ``task.cpus`` cores of a node it shares; torch (like OpenMP and BLAS) starts a
thread per core of the *machine* unless told otherwise. Here a neighbour process keeps ``--neighbour-threads``
cores busy (float32 matrix products) while the model scores windows (``predict_batches``, forward + reverse
complement, the small model) with 1, 2, … threads — each setting in its own process, set with
:func:`scfan.threads.use_threads` as ``--threads`` does, interleaved and repeated. Runs with torch + numpy (plus the
package), so it also runs on the GPU machine's host.

Run: ``python benchmarks/bench_threads.py [--out benchmarks/results/bench_threads.md]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "python"))

WORKER = """
import json, sys, time
from scfan.threads import use_threads
use_threads(int(sys.argv[1]), load_torch=True)
import torch
from scfan.bulk.model import ArchConfig, ScFANet
from scfan.inference import predict_batches, probe_inputs
torch.manual_seed(0)
m = ScFANet(6, 1000, 16, ArchConfig.preset("small")).eval()
x = probe_inputs(6, 1000, n=int(sys.argv[2]), seed=1)
predict_batches(m, x[:64])
t0 = time.perf_counter()
predict_batches(m, x)
print(json.dumps({"windows_per_s": len(x) / (time.perf_counter() - t0), "threads": torch.get_num_threads()}))
"""

NEIGHBOUR = """
import sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
a = torch.randn(1024, 1024)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    a = torch.tanh(a @ a / 32)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=None, help="settings compared (default 1 … cores)")
    ap.add_argument("--neighbour-threads", type=int, default=1)
    ap.add_argument("--windows", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_threads.md")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from bench_sc import machine

    from scfan.threads import available_cpus

    cores = available_cpus()
    settings = args.threads or list(range(1, cores + 1))
    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    rates: dict[tuple[int, bool], list[float]] = {(t, nb): [] for t in settings for nb in (False, True)}
    for _ in range(args.repeats):
        for neighbour in (False, True):
            hog = None
            if neighbour:
                hog = subprocess.Popen([sys.executable, "-c", NEIGHBOUR, str(args.neighbour_threads), "3600"],
                                       env=env)
                time.sleep(2)
            try:
                for t in settings:
                    out = subprocess.run([sys.executable, "-c", WORKER, str(t), str(args.windows)], env=env,
                                         capture_output=True, text=True, check=True)
                    res = json.loads(out.stdout.strip().splitlines()[-1])
                    assert res["threads"] == t, res
                    rates[(t, neighbour)].append(res["windows_per_s"])
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
    best_alone = max(statistics.median(rates[(t, False)]) for t in settings)
    lines = ["# Threads against the cores a task was given", "",
             f"Machine: {machine()} ({cores} CPUs in this process's affinity set). Command: `python "
             f"benchmarks/bench_threads.py --windows {args.windows} --repeats {args.repeats} --neighbour-threads "
             f"{args.neighbour_threads}`. Small model, forward + reverse complement, {args.windows} windows; each "
             f"setting in its own process, median of {args.repeats} interleaved repeats. The neighbour keeps "
             f"{args.neighbour_threads} core(s) busy with float32 matrix products.", "",
             "| threads | alone: windows/s | with a neighbour job: windows/s | with the neighbour, × alone at best |",
             "|---|---|---|---|"]
    for t in settings:
        alone, shared = statistics.median(rates[(t, False)]), statistics.median(rates[(t, True)])
        lines.append(f"| {t} | {alone:,.0f} | {shared:,.0f} | {shared / best_alone:.2f} |")
    lines += ["", "A task that takes more threads than the cores left to it loses more than the extra threads could "
              "give: every step passes `--threads ${task.cpus}` (scfan.threads.use_threads), and the default without "
              "the option is the affinity set, not the machine's core count.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
