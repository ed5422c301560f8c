"""`make bench`: every benchmark, one after the other; each writes its table to benchmarks/results/<name>.md.

Usage: ``.venv/bin/python benchmarks/run_all.py [--quick] [--only simulate bulk sc]``. The simulator's ``bench``
data set is generated once into benchmarks/out/sim_bench and shared by the bulk and single-cell benchmarks.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def run(cmd: list[str]) -> None:
    print(f"\n=== {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    print(f"=== done in {time.perf_counter() - t0:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run with small sizes (minutes)")
    steps = ["simulate", "bulk", "sc", "infer", "predict", "shift", "memory", "analysis", "neighbors", "startup",
             "resolution", "threads", "genome", "interpret", "estimator"]
    ap.add_argument("--only", nargs="+", choices=steps, default=steps)
    args = ap.parse_args()
    py = sys.executable
    out = HERE / "out"
    sim = out / "sim_bench"
    quick = ["--quick"] if args.quick else []
    if "simulate" in args.only:
        run([py, str(HERE / "bench_simulate.py"), *(["--presets", "test"] if args.quick else [])])
    if not args.quick and not (sim / "manifest.json").is_file():
        run([str(REPO / ".venv" / "bin" / "scfan"), "simulate", "--preset", "bench", "--seed", "7",
             "--outdir", str(sim)])
    if "bulk" in args.only:
        run([py, str(HERE / "bench_bulk.py"), *quick, "--workdir", str(out / "bulk"),
             *([] if args.quick else ["--sim-dir", str(sim)])])
    if "sc" in args.only:
        run(["bash", str(HERE / "setup_snapatac2.sh")])
        run([py, str(HERE / "bench_sc.py"), *quick, "--workdir", str(out / "sc"),
             *([] if args.quick else ["--sim-dir", str(sim)])])
    if "infer" in args.only:
        run([py, str(HERE / "bench_sc_infer.py"), "--workdir", str(out / "sc_infer"),
             *(["--cells", "40", "--naive-cells", "4", "--memory-totals", "100", "200"] if args.quick else
               ["--sim-dir", str(sim), "--memory-totals", "1000", "2000", "4000", "6000", "--shard-cells", "500"])])
    if "predict" in args.only:  # one shard of `sc predict` end to end: modes, window shares, where the time goes
        run([py, str(HERE / "bench_sc_predict.py"), "--workdir", str(out / "sc_predict"), "--epochs", "2",
             *(["--preset", "test", "--cells", "20", "--shares", "0.5"] if args.quick
               else ["--sim-dir", str(sim), "--cells", "100"])])
    if "estimator" in args.only and not args.quick:  # window-sample estimators against exact, from one exact pass
        pairs = out / "sc_predict" / "pairs_1of60.npz"
        run([py, str(HERE / "bench_window_estimator.py"), "collect", "--shard", "1/60", "--pairs", str(pairs),
             "--workdir", str(out / "sc_predict")])
        run([py, str(HERE / "bench_window_estimator.py"), "evaluate", "--pairs", str(pairs)])
    if "shift" in args.only:  # the test preset (its 400 cells, all scored): the domain-shift remedy's table
        run([py, str(HERE / "bench_domain_shift.py"), "--workdir", str(out / "domain_shift"),
             *(["--cells", "100", "--k", "20", "--epochs", "4", "--out", str(out / "bench_domain_shift_quick.md")]
               if args.quick else [])])
    if "memory" in args.only:
        run([py, str(HERE / "bench_memory.py"), "--workdir", str(out / "memory"),
             *(["--totals", "1000", "4000", "--out", str(out / "bench_memory_quick.md")] if args.quick else [])])
    if "analysis" in args.only:
        from scfan.simulate.config import PRESETS

        presets = ["test"] if args.quick else ["test", *(p for p in ("hard",) if p in PRESETS)]
        run([py, str(HERE / "bench_analysis.py"), "--workdir", str(out / "analysis"), "--run", *presets])
    if "neighbors" in args.only:
        run([py, str(HERE / "bench_neighbors_scale.py"),
             *(["--sizes", "4000", "--exact-up-to", "4000", "--landmarks", "1000", "--out",
                str(out / "bench_neighbors_scale_quick.md")] if args.quick else [])])
    if "startup" in args.only:
        run([py, str(HERE / "bench_startup.py"),
             *(["--repeats", "1", "--out", str(out / "bench_startup_quick.md")] if args.quick else [])])
    if "resolution" in args.only:  # label-free resolution rules on real counts and 10-20 unequal populations
        run([py, str(HERE / "bench_resolution.py"),
             *(["--seeds", "0", "--out", str(out / "bench_resolution_quick.md")] if args.quick else [])])
    if "threads" in args.only:  # oversubscription beside a neighbour job
        run([py, str(HERE / "bench_threads.py"),
             *(["--windows", "512", "--repeats", "1", "--out", str(out / "bench_threads_quick.md")]
               if args.quick else [])])
    if "interpret" in args.only:  # bench preset lines (trained here, bulk benchmark settings) + real CTCF peaks
        run([py, str(HERE / "bench_interpret.py"), "--workdir", str(out / "interpret"),
             *(["--out", str(out / "bench_interpret_quick.md")] if args.quick else  # quick: real CTCF only
               ["--preset", "bench", "--sim-dir", str(sim)])])
    if "genome" in args.only and (HERE / "bench_genome_scale.py").is_file():  # the bulk stage at human size
        run([py, str(HERE / "bench_genome_scale.py"),
             *(["--scale", "0.01", "--out", str(out / "bench_genome_scale_quick.md")] if args.quick else [])])
    print(f"\nresults: {HERE / 'results'}")


if __name__ == "__main__":
    main()
