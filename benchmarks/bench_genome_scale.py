"""Memory and wall time of ``scfan bulk prepare / train / evaluate`` on a synthetic genome of hg38's shape (issue 34).

The genome has hg38's chromosome lengths (chr1–22, X, Y, M and a few ``_random``, ``chrUn_``, ``_alt`` contigs and
chrEBV with their real names) scaled by ``--scale`` (1/20 ≈ 155 Mb, 1/5 ≈ 620 Mb), random sequence, 20 TFs with
20–60k peaks each at full size (scaled), a count ATAC bigWig (sparse background plus insertions at the peaks) and a
mappability bigWig. Each command runs as its own subprocess under ``/usr/bin/time -v`` (peak RSS of that process);
the same commands can be run on a baseline copy of the package (``--baseline-pythonpath``, e.g. a copy of
``python/`` taken before a change) and the evaluation metrics of the two compared byte for byte.

Usage: ``.venv/bin/python benchmarks/bench_genome_scale.py [--scale 0.05] [--baseline-pythonpath DIR]
[--workdir DIR] [--out benchmarks/results/bench_genome_scale.md]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

log = logging.getLogger("bench_genome_scale")

HG38 = {
    "chr1": 248956422, "chr2": 242193529, "chr3": 198295559, "chr4": 190214555, "chr5": 181538259,
    "chr6": 170805979, "chr7": 159345973, "chr8": 145138636, "chr9": 138394717, "chr10": 133797422,
    "chr11": 135086622, "chr12": 133275309, "chr13": 114364328, "chr14": 107043718, "chr15": 101991189,
    "chr16": 90338345, "chr17": 83257441, "chr18": 80373285, "chr19": 58617616, "chr20": 64444167,
    "chr21": 46709983, "chr22": 50818468, "chrX": 156040895, "chrY": 57227415, "chrM": 16569,
    "chr1_KI270706v1_random": 175055, "chr1_KI270707v1_random": 32032, "chr14_GL000009v2_random": 201709,
    "chrUn_KI270302v1": 2274, "chrUn_GL000220v1": 161802, "chrUn_KI270742v1": 186739,
    "chr6_GL000250v2_alt": 4672374, "chr17_KI270857v1_alt": 2877074, "chr22_KI270879v1_alt": 304148,
    "chrEBV": 171823,
}
MAIN = [f"chr{i}" for i in range(1, 23)] + ["chrX"]
N_TFS = 20
VALID, TEST = "chr11", "chr21"


def _write_fasta_streamed(path: Path, sizes: dict[str, int], seed: int) -> None:
    """Random uppercase FASTA (60 columns) and its ``.fai``, one chromosome in memory at a time."""
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    fai, offset = [], 0
    with open(path, "wb") as fh:
        for ci, (name, n) in enumerate(sizes.items()):
            rng = np.random.default_rng([seed, 0, ci])
            header = f">{name}\n".encode()
            fh.write(header)
            offset += len(header)
            fai.append(f"{name}\t{n}\t{offset}\t60\t61\n")
            for lo in range(0, n, 60 * 2**18):  # 15.7 Mb pieces: whole lines but the chromosome's last
                m = min(60 * 2**18, n - lo)
                codes = letters[rng.integers(0, 4, m, dtype=np.uint8)]
                full = m // 60
                block = np.full((full, 61), ord("\n"), dtype=np.uint8)
                block[:, :60] = codes[: full * 60].reshape(full, 60)
                body = block.tobytes() + (codes[full * 60:].tobytes() + b"\n" if m % 60 else b"")
                fh.write(body)
                offset += len(body)
    Path(str(path) + ".fai").write_text("".join(fai))


def _write_bigwig_streamed(path: Path, sizes: dict[str, int], track) -> None:
    """bigWig with a value for every base (zeros included), ``track(index, name, size)`` made per chromosome."""
    import pyBigWig

    from scfan.simulate.writers import runs

    bw = pyBigWig.open(str(path), "w")
    try:
        bw.addHeader(list(sizes.items()), maxZooms=10)
        for ci, (name, n) in enumerate(sizes.items()):
            s, e, v = runs(track(ci, name, n))
            bw.addEntries([name] * s.size, s, ends=e, values=v)
    finally:
        bw.close()


def make_inputs(root: Path, scale: float, seed: int = 0) -> dict[str, Path]:
    """Write genome.fa (+ .fai), atac.bw, map.bw and one BED of peaks per TF under ``root`` (skipped when present).

    Streamed: one chromosome's sequence or track is in memory at a time (each chromosome and role has its own
    random stream), so the full-size genome (3.1 Gb) is made in a few GiB.

    Parameters
    ----------
    root : Path
        Output folder.
    scale : float
        Factor applied to every hg38 length and to the peak counts.
    seed : int
        Seed of the random sequence, peaks and tracks.

    Returns
    -------
    dict
        Paths by role: ``genome``, ``atac``, ``mappability`` and ``TF<k>`` for each TF's peaks.
    """
    paths = {"genome": root / "genome.fa", "atac": root / "atac.bw", "mappability": root / "map.bw",
             **{f"TF{k}": root / f"TF{k}.bed" for k in range(N_TFS)}}
    if all(p.exists() for p in paths.values()):
        return paths
    root.mkdir(parents=True, exist_ok=True)
    sizes = {c: max(1, int(round(n * scale))) for c, n in HG38.items()}
    _write_fasta_streamed(paths["genome"], sizes, seed)
    rng = np.random.default_rng([seed, 1])
    main_len = np.array([sizes[c] for c in MAIN], dtype=np.float64)
    mids: dict[str, list[np.ndarray]] = {c: [] for c in MAIN}
    for k in range(N_TFS):
        n = max(1, int(round(rng.integers(20_000, 60_001) * scale)))
        chrom_idx = rng.choice(len(MAIN), size=n, p=main_len / main_len.sum())
        rows = []
        for ci in np.unique(chrom_idx):
            c = MAIN[ci]
            m = int((chrom_idx == ci).sum())
            width = rng.integers(200, 600, m)
            start = np.sort(rng.integers(0, sizes[c] - 600, m))
            rows += [f"{c}\t{s}\t{s + w}\n" for s, w in zip(start.tolist(), width.tolist(), strict=True)]
            mids[c].append(start + width // 2)
        paths[f"TF{k}"].write_text("".join(rows))

    def atac(ci: int, name: str, n: int) -> np.ndarray:
        r = np.random.default_rng([seed, 2, ci])
        x = np.empty(n, dtype=np.float32)
        for lo in range(0, n, 2**24):  # Poisson draws are int64: 16M at a time
            x[lo : lo + 2**24] = r.poisson(0.02, min(2**24, n - lo))
        if mids.get(name):
            at = np.concatenate(mids[name])
            idx = (at[:, None] + np.arange(-100, 100)[None, :]).ravel()
            np.add.at(x, idx, r.poisson(2.0, idx.size).astype(np.float32))
        return x

    def mappability(ci: int, name: str, n: int) -> np.ndarray:
        r = np.random.default_rng([seed, 3, ci])
        m = np.ones(n, dtype=np.float32)
        for s in r.integers(0, n, max(1, n // 200_000)):
            m[s : s + 5_000] = 0.0
        return m

    _write_bigwig_streamed(paths["atac"], sizes, atac)
    _write_bigwig_streamed(paths["mappability"], sizes, mappability)
    return paths


def commands(paths: dict[str, Path], work: Path, threads: int) -> list[tuple[str, list[str]]]:
    """The three ``scfan bulk`` commands of one run (prepare, train, evaluate), as argument lists."""
    scfan = str(Path(sys.executable).with_name("scfan"))
    common = ["--genome", str(paths["genome"]), "--atac", str(paths["atac"]), "--mappability",
              str(paths["mappability"]), "--threads", str(threads)]
    peaks = [a for k in range(N_TFS) for a in ("--peaks", f"TF{k}={paths[f'TF{k}']}")]
    win = str(work / "prep" / "windows.parquet")
    return [
        ("prepare", [scfan, "bulk", "prepare", "--line", "L1", *peaks, *common, "--valid-chroms", VALID,
                     "--test-chroms", TEST, "--outdir", str(work / "prep")]),
        ("train", [scfan, "bulk", "train", "--windows", win, *common, "--arch", "small", "--epochs", "1",
                   "--max-train-windows", "5000", "--device", "cpu", "--outdir", str(work / "train")]),
        ("evaluate", [scfan, "bulk", "evaluate", "--model", str(work / "train" / "model.pt"), "--windows", win,
                      *common, "--split", "test", "--outdir", str(work / "eval")]),
    ]


def timed(cmd: list[str], env: dict[str, str], logfile: Path) -> tuple[float, float]:
    """Run one command under ``/usr/bin/time -v``; returns (wall seconds, peak RSS GiB) of that process."""
    t0 = time.perf_counter()
    with open(logfile, "w") as fh:
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, stdout=fh, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    text = logfile.read_text()
    if proc.returncode:
        raise RuntimeError(f"{cmd[1:4]} failed (exit {proc.returncode}); see {logfile}")
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return wall, kb / 2**20


def run_all(paths: dict[str, Path], work: Path, pythonpath: str | None, threads: int,
            steps: tuple[str, ...] = ("prepare", "train", "evaluate")) -> dict:
    """Run prepare, train and evaluate (or the first ``steps`` of them) once with ``pythonpath`` first on the path
    (None: the installed package)."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    shutil.rmtree(work, ignore_errors=True)  # train resumes from a checkpoint it finds: start clean
    work.mkdir(parents=True)
    out = {}
    for step, cmd in commands(paths, work, threads):
        if step not in steps:
            continue
        out[step] = timed(cmd, env, work / f"{step}.log")
        log.info("%s %s: %.1f s, %.2f GiB", work.name, step, *out[step])
    metrics = work / "eval" / "metrics.tsv"
    out["metrics_sha"] = hashlib.sha256(metrics.read_bytes()).hexdigest()[:12] if metrics.exists() else "n/a"
    out["cmds"] = commands(paths, work, threads)
    (work / "result.json").write_text(json.dumps(out))
    return out


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, nargs="+", default=[0.05])
    ap.add_argument("--baseline-pythonpath", default=None, help="a copy of python/ to run as the baseline")
    ap.add_argument("--reuse-baseline", action="store_true", help="take the baseline's figures from an earlier run "
                    "(its result.json in the workdir) instead of running it again")
    ap.add_argument("--baseline-only", action="store_true", help="run the baseline alone (to measure it before "
                    "editing the tree)")
    ap.add_argument("--steps", nargs="+", default=["prepare", "train", "evaluate"],
                    help="run only these steps (in this order: prepare, train, evaluate)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/scfan_bench_genome_scale"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_genome_scale.md")
    args = ap.parse_args()
    from bench_sc import machine

    lines = ["# bulk stage on a genome of hg38's shape (issue 34)", "",
             f"Machine: {machine()}", "",
             f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`", "",
             "Synthetic genome: hg38 chromosome lengths × scale (with chrM, `_random`, `chrUn_`, `_alt` contigs), "
             f"{N_TFS} TFs with 20–60k peaks each at full size (scaled), count ATAC and mappability bigWigs; "
             f"valid {VALID}, test {TEST}. Peak RSS per process from `/usr/bin/time -v`. `metrics` is the first 12 "
             "hex digits of the SHA-256 of evaluate's metrics.tsv (equal = identical numbers).", "",
             "| scale | genome Mb | code | step | wall s | peak RSS GiB | metrics |",
             "|---|---|---|---|---|---|---|"]
    cmd_text = []
    for scale in args.scale:
        root = args.workdir / f"scale_{scale:g}"
        t0 = time.perf_counter()
        paths = make_inputs(root / "inputs", scale)
        log.info("inputs at scale %g ready in %.0f s", scale, time.perf_counter() - t0)
        mb = sum(max(1, int(round(n * scale))) for n in HG38.values()) / 1e6
        runs = []
        cached = root / "baseline" / "result.json"
        if args.reuse_baseline and cached.exists():
            runs.append(("baseline", json.loads(cached.read_text())))
        elif args.baseline_pythonpath:
            runs.append(("baseline", run_all(paths, root / "baseline", args.baseline_pythonpath, args.threads,
                                             tuple(args.steps))))
        if not args.baseline_only:
            runs.append(("this tree", run_all(paths, root / "current", None, args.threads, tuple(args.steps))))
        for label, res in runs:
            for step in ("prepare", "train", "evaluate"):
                if step not in res:
                    continue
                wall, rss = res[step]
                lines.append(f"| {scale:g} | {mb:.0f} | {label} | {step} | {wall:.1f} | {rss:.2f} | "
                             f"{res['metrics_sha']} |")
        cmd_text = [" ".join(c) for _, c in runs[-1][1]["cmds"]]
    lines += ["", "Commands (last scale, this tree; the baseline ran the same with PYTHONPATH set):", "", "```",
              *cmd_text, "```", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
