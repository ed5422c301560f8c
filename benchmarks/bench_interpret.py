"""Interpretation benchmark (issue 35): is the planted motif found again, do attributions sit on the bound sites, and
what does it cost — on simulated lines (truth known) and on real GM12878 CTCF peaks.

Simulated: every line of a pipeline-layout run folder (``--run``: ``simulate/`` with ``truth/`` plus
``bulk/<line>/train/model.pt`` and ``bulk/<line>/prepare/windows.parquet``, as `make demo` or
`nextflow run . -profile test` writes) or, with ``--preset bench``, lines this script trains itself on an existing
``scfan simulate --preset bench`` folder (``--sim-dir``; the bulk benchmark's settings: small model, 20 epochs, 10,000
training windows per epoch). Each line is explained by ``scfan bulk interpret`` (both parts).

Recovery of a TF: a discovered motif whose best TOMTOM match in JASPAR CORE vertebrates (q < 0.05) is the planted
matrix (``strict``: its JASPAR base ID, e.g. MA0139 for MA0139.2) or a matrix of the same TF or JASPAR family
(``family``). Attribution AUROC: per base of the central stretch of the explained positive windows, |contribution|
as the score of "inside a site where the simulator bound this TF in this line".

Real: ``bulk sequence-only --save-model`` on ../shared/data/chip_sequences/ctcf_gm12878.fa (500 GM12878 CTCF peaks),
then ``bulk interpret --fasta``: is CTCF (JASPAR MA0139 or another CTCF matrix) the top motif?

Usage: ``.venv/bin/python benchmarks/bench_interpret.py --run demo_results [--n-windows 100]``
       ``.venv/bin/python benchmarks/bench_interpret.py --preset bench --sim-dir benchmarks/out/sim_bench``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCFAN = [sys.executable, "-m", "scfan"]


def machine() -> str:
    import os

    import torch

    from scfan.inference import cpu_description

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu_description()}, {os.cpu_count()} CPUs visible, {gpu}; Python {sys.version.split()[0]}, "
            f"torch {torch.__version__}")


def sh(args: list) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([*SCFAN, *map(str, args)], capture_output=True, text=True, cwd=REPO)
    if r.returncode != 0:
        raise SystemExit(f"failed: scfan {' '.join(map(str, args))}\n{r.stderr[-3000:]}")
    return time.perf_counter() - t0


def train_bench_lines(sim: Path, workdir: Path, threads: int) -> Path:
    """A pipeline-layout folder for the bench simulation: each line prepared and trained (bulk benchmark settings)."""
    import polars as pl

    run = workdir / "run_bench"
    (run / "simulate").mkdir(parents=True, exist_ok=True)
    link = run / "simulate"
    for p in sim.iterdir():
        if not (link / p.name).exists():
            (link / p.name).symlink_to(p.resolve())
    manifest = json.loads((sim / "manifest.json").read_text())
    for line in pl.read_csv(sim / "bulk_samplesheet.csv")["line"].unique(maintain_order=True).to_list():
        prep, train = run / "bulk" / line / "prepare", run / "bulk" / line / "train"
        if not (prep / "windows.parquet").is_file():
            sh(["bulk", "prepare", "--samplesheet", sim / "bulk_samplesheet.csv", "--line", line, "--genome",
                sim / "genome.fa", "--mappability", sim / "mappability.bw", "--blacklist", sim / "blacklist.bed",
                "--valid-chroms", ",".join(manifest["valid_chroms"]), "--test-chroms",
                ",".join(manifest["test_chroms"]), "--threads", threads, "--outdir", prep])
        if not (train / "model.pt").is_file():
            sh(["bulk", "train", "--windows", prep / "windows.parquet", "--genome", sim / "genome.fa", "--atac",
                sim / "bulk" / line / "atac.bw", "--mappability", sim / "mappability.bw", "--epochs", 20,
                "--max-train-windows", 10000, "--threads", threads, "--outdir", train])
    return run


def site_auroc(npz, tf: str, part: str, sites, line: str) -> float:
    """AUROC of per-base |contribution| for 'inside a site bound by ``tf`` in ``line``' over the explained windows."""
    from sklearn.metrics import roc_auc_score

    key = f"{tf}/{part}/hypothetical"
    if key not in npz.files:
        return float("nan")
    hyp = npz[key].astype(np.float32)
    onehot = npz[f"{tf}/onehot"].astype(np.float32)
    contrib = np.abs((hyp * onehot).sum(axis=1))  # (N, central)
    lo, window, context = int(npz["central_offset"]), int(npz["window"]), int(npz["context"])
    flank = (context - window) // 2
    mine = sites.filter((sites["tf"] == tf) & sites["bound_lines"].list.contains(line))
    by_chrom: dict[str, np.ndarray] = {}
    for c, grp in mine.group_by("chrom"):
        by_chrom[c[0]] = grp.select(["start", "end"]).to_numpy()
    y = np.zeros_like(contrib, dtype=bool)
    for i, name in enumerate(npz[f"{tf}/window"]):
        chrom, span = str(name).rsplit(":", 1)
        base = int(span.split("-")[0]) - flank + lo  # genome position of the first attributed base
        iv = by_chrom.get(chrom)
        if iv is None:
            continue
        pos = base + np.arange(contrib.shape[1])
        for s, e in iv[(iv[:, 1] > pos[0]) & (iv[:, 0] <= pos[-1])]:
            y[i, (pos >= s) & (pos < e)] = True
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y.ravel(), contrib.ravel()))


def interpret_line(run: Path, line: str, out: Path, n_windows: int, threads: int) -> tuple[float, Path]:
    sim = run / "simulate"
    res = out / line
    if not (res / "summary.tsv").is_file():
        secs = sh(["bulk", "interpret", "--model", run / "bulk" / line / "train" / "model.pt", "--windows",
                   run / "bulk" / line / "prepare" / "windows.parquet", "--genome", sim / "genome.fa", "--atac",
                   sim / "bulk" / line / "atac.bw", "--mappability", sim / "mappability.bw", "--n-windows", n_windows,
                   "--threads", threads, "--device", "cpu", "--outdir", res])
    else:
        secs = json.loads((res / "interpret.json").read_text())["seconds"]
    return secs, res


def simulated(run: Path, out: Path, n_windows: int, threads: int) -> tuple[list[dict], dict]:
    import polars as pl

    from scfan.interpret.motifs import jaspar_library

    sim = run / "simulate"
    planted = dict(pl.read_csv(sim / "tfs.tsv", separator="\t").select(["tf", "jaspar_id"]).iter_rows())
    sites = pl.read_parquet(sim / "truth" / "bound_sites.parquet")
    families = {e.matrix_id.split(".")[0]: set(e.families) for e in jaspar_library()}
    rows, timing = [], {}
    lines = sorted(p.name for p in (run / "bulk").iterdir() if (p / "train" / "model.pt").is_file())
    for line in lines:
        secs, res = interpret_line(run, line, out, n_windows, threads)
        motifs = pl.read_csv(res / "motifs.tsv", separator="\t")
        summary = pl.read_csv(res / "summary.tsv", separator="\t")
        per = json.loads((res / "interpret.json").read_text())
        timing[line] = {"seconds": secs, "per_tf_part": per["seconds_per_tf_part"]}
        npz = np.load(res / "attributions.npz")
        for s in summary.iter_rows(named=True):
            tf, part = s["tf"], s["part"]
            base = planted[tf].split(".")[0]
            mine = motifs.filter((pl.col("tf") == tf) & (pl.col("part") == part) & (pl.col("q_value") < 0.05))
            strict = any(str(j).split(".")[0] == base for j in mine["jaspar_id"].to_list())
            fam = strict or bool(mine.filter(pl.col("own_family")).height) or any(
                families.get(str(j).split(".")[0], set()) & families.get(base, set()) for j in mine["jaspar_id"])
            rows.append({"line": line, "tf": tf, "part": part, "planted": planted[tf], "strict": strict,
                         "family": fam, "top": f"{s['top_jaspar_name']} ({s['top_jaspar_id']})",
                         "top_q": s["top_q_value"], "acc_share": s["accessibility_share"],
                         "site_auroc": site_auroc(npz, tf, part, sites, line), "n_windows": s["n_windows"],
                         "seconds": per["seconds_per_tf_part"].get(f"{tf}/{part}", float("nan"))})
    return rows, timing


def real_ctcf(out: Path, threads: int) -> dict:
    import polars as pl

    fa = REPO.parent / "shared" / "data" / "chip_sequences" / "ctcf_gm12878.fa"
    seq, res = out / "ctcf_seqonly", out / "ctcf_interpret"
    t_train = sh(["bulk", "sequence-only", "--fasta", fa, "--tf", "CTCF", "--motif", "MA0139.2", "--save-model",
                  "--threads", threads, "--outdir", seq])
    t_int = sh(["bulk", "interpret", "--model", seq / "model.pt", "--fasta", fa, "--central", 200, "--threads",
                threads, "--device", "cpu", "--outdir", res])
    s = pl.read_csv(res / "summary.tsv", separator="\t")
    held = json.loads((seq / "sequence_only.json").read_text())
    return {"rows": s.to_dicts(), "train_s": t_train, "interpret_s": t_int, "auroc": held["auroc"]}


def write(rows: list[dict], timing: dict, ctcf: dict | None, path: Path, cmd: str) -> None:
    lines = ["# Interpretation benchmark (issue 35)", "", f"Machine: {machine()}", "", f"Command: `{cmd}`", ""]
    if rows:
        lines += ["## Simulated lines: is the planted motif found again?", "",
                  "| part | TFs | recovered (planted matrix best match, q < 0.05) | recovered (same TF or family) | "
                  "median site AUROC | median accessibility share |", "|---|---|---|---|---|---|"]
        for part in ("network", "model"):
            rs = [r for r in rows if r["part"] == part]
            if not rs:
                continue
            n = len(rs)
            st, fm = sum(r["strict"] for r in rs), sum(r["family"] for r in rs)
            au = np.nanmedian([r["site_auroc"] for r in rs])
            sh_ = np.nanmedian([r["acc_share"] for r in rs])
            lines.append(f"| {part} | {n} | {st}/{n} ({st / n:.0%}) | {fm}/{n} ({fm / n:.0%}) | {au:.3f} | "
                         f"{sh_:.2f} |")
        lines += ["", "| line | TF | part | planted | strict | family | top motif's match | q | site AUROC | "
                  "accessibility share | windows | s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['line']} | {r['tf']} | {r['part']} | {r['planted']} | {'yes' if r['strict'] else 'no'}"
                         f" | {'yes' if r['family'] else 'no'} | {r['top']} | {r['top_q']:.2g} | "
                         f"{r['site_auroc']:.3f} | {r['acc_share']:.2f} | {r['n_windows']} | {r['seconds']:.1f} |")
        lines += ["", "Time per line (`bulk interpret`, both parts, every TF, logos included):", ""]
        for line, t in timing.items():
            n_tf = len({k.split('/')[0] for k in t["per_tf_part"]})
            lines.append(f"- {line}: {t['seconds']:.0f} s for {n_tf} TFs")
        per_tf = [r["seconds"] for r in rows]
        wins = [r["n_windows"] for r in rows]
        lines += ["", f"Per TF and part: median {np.median(per_tf):.1f} s; per 1,000 windows: "
                  f"{1000 * np.sum(per_tf) / max(1, np.sum(wins)):.0f} s (attributions + shares + TF-MoDISco + "
                  "TOMTOM).", ""]
    if ctcf:
        lines += ["## Real data: GM12878 CTCF peaks, sequence-only model", "",
                  f"Sequence-only model (small, 12 epochs): held-out AUROC {ctcf['auroc']:.3f}, trained in "
                  f"{ctcf['train_s']:.0f} s; `bulk interpret --fasta` in {ctcf['interpret_s']:.0f} s.", "",
                  "| part | top motif's match | q | own motif recovered |", "|---|---|---|---|"]
        for r in ctcf["rows"]:
            lines.append(f"| {r['part']} | {r['top_jaspar_name']} ({r['top_jaspar_id']}) | {r['top_q_value']:.2g} | "
                         f"{r['own_motif_recovered']} |")
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="pipeline-layout run folder (simulate/ + bulk/<line>/)")
    ap.add_argument("--preset", choices=["test", "bench"], default="test")
    ap.add_argument("--sim-dir", type=Path, help="`scfan simulate --preset bench` folder (with --preset bench)")
    ap.add_argument("--workdir", type=Path, default=HERE / "out" / "interpret")
    ap.add_argument("--n-windows", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-real", action="store_true", help="skip the real CTCF part")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_interpret.md")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    run = args.run
    if args.preset == "bench":
        if args.sim_dir is None:
            raise SystemExit("--preset bench needs --sim-dir (a `scfan simulate --preset bench` folder)")
        run = train_bench_lines(args.sim_dir, args.workdir, args.threads)
    rows, timing = ([], {}) if run is None else simulated(run, args.workdir / f"sim_{args.preset}", args.n_windows,
                                                           args.threads)
    ctcf = None if args.no_real else real_ctcf(args.workdir, args.threads)
    write(rows, timing, ctcf, args.out, "python " + " ".join(sys.argv[0:1] + sys.argv[1:]))


if __name__ == "__main__":
    main()
