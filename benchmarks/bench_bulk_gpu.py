"""GPU benchmark of the bulk model (issues 9 and 10; not a test); writes benchmarks/results/bench_bulk_gpu.md.

The GPU machine has torch, numpy and scikit-learn but none of the genomics packages, so the work is split in three:

1. ``export`` (here, with the full environment): one bulk line of a simulated data set — genome codes, normalised
   ATAC, mappability, labelled windows and their splits — into one ``.npz`` bundle.
2. ``run`` (on the GPU machine; needs only torch + numpy + scikit-learn + scfan): inference throughput of the small
   and full model (``predict_batches`` as the per-cell stage calls it, fp32 vs bf16, compute blocks of 64 vs 1024
   rows; plain forward passes at batch 4096), training throughput (fp32 vs AMP), then the full model trained on the
   bundle with the ``gpu`` profile's settings (``scfan.bulk.train.train_arrays``, the code ``scfan bulk train``
   runs) and its predictions on every test window.
3. ``report`` (here): the accuracy table against the PWM scan and the simulator's oracle, on the same windows, plus
   the throughput tables.

Usage::

    .venv/bin/python benchmarks/bench_bulk_gpu.py export --sim-dir SIM --prepare-dir PREP --bundle B.npz
    python benchmarks/bench_bulk_gpu.py run --bundle B.npz --out RUN [--epochs 30] [--budget-s 420]
    .venv/bin/python benchmarks/bench_bulk_gpu.py report --bundle B.npz --run-dir RUN --sim-dir SIM
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(HERE))

from bench_bulk import machine, throughput, throughput_lines, write_report  # noqa: E402

from scfan.bulk.data import InputSource  # noqa: E402
from scfan.bulk.inputs import FlatGenome  # noqa: E402
from scfan.bulk.model import ArchConfig, ScFANet  # noqa: E402
from scfan.inference import fuse_for_inference, predict_batches  # noqa: E402
from scfan.tracks import TrackNorm  # noqa: E402

log = logging.getLogger("bench_bulk_gpu")
SPLITS = ("train", "valid", "test")


# ---------------------------------------------------------------------------------------------------------- bundle


def export(sim_dir: Path, prepare_dir: Path, bundle: Path) -> None:
    """One bulk line (``prepare_dir``: the output of ``scfan bulk prepare``) as arrays in one compressed npz."""
    from scfan.bulk.windows import read_windows

    df, meta = read_windows(prepare_dir / "windows.parquet")
    src = InputSource.load(sim_dir / "genome.fa", meta["atac"], sim_dir / "mappability.bw")
    names = list(src.layout.sizes)
    tf_names = list(meta["tf_names"])
    keep = {k: meta[k] for k in ("tf_names", "window", "context", "motifs", "line") if k in meta}
    from scfan.bulk.pwm import jaspar_counts, motif_for_tf

    # the JASPAR matrices for motif initialisation: the GPU machine has no pyjaspar database
    ids = {tf: motif_for_tf(tf, meta.get("motifs", {}).get(tf)) for tf in tf_names}
    keep["jaspar"] = {tf: [mid, jaspar_counts(mid).tolist()] for tf, mid in ids.items() if mid is not None}
    bundle.parent.mkdir(parents=True, exist_ok=True)
    tmp = bundle.with_name(bundle.name + ".tmp.npz")
    np.savez_compressed(
        tmp, chrom_names=np.array(names), chrom_sizes=np.array([src.layout.sizes[c] for c in names], np.int64),
        codes=src.codes, accessibility=src.accessibility.astype(np.float32),
        mappability=src.mappability.astype(np.float32), mean_per_base=np.float64(src.track_norm.mean_per_base),
        win_chrom=np.array([names.index(c) for c in df["chrom"].to_list()], np.int16),
        win_start=df["start"].to_numpy().astype(np.int64),
        win_split=np.array([SPLITS.index(s) for s in df["split"].to_list()], np.int8),
        labels=df.select(tf_names).to_numpy().astype(np.uint8), meta=np.array(json.dumps(keep)))
    tmp.replace(bundle)
    print(f"{bundle}: {len(df)} windows, {len(tf_names)} TFs, {bundle.stat().st_size / 2**20:.1f} MiB")


def load_bundle(bundle: Path) -> tuple[InputSource, dict, dict]:
    """The input source, the windows' metadata and ``{split: (chroms, starts, labels)}``."""
    z = np.load(bundle)
    names = [str(c) for c in z["chrom_names"]]
    layout = FlatGenome.from_sizes(dict(zip(names, (int(s) for s in z["chrom_sizes"]), strict=True)))
    src = InputSource(layout, z["codes"], z["accessibility"], z["mappability"],
                      TrackNorm(mean_per_base=float(z["mean_per_base"])))
    meta = json.loads(str(z["meta"]))
    chroms = np.array(names)[z["win_chrom"]]
    arrays = {s: (chroms[z["win_split"] == i], z["win_start"][z["win_split"] == i],
                  z["labels"][z["win_split"] == i].astype(np.float32)) for i, s in enumerate(SPLITS)}
    return src, meta, arrays


# ------------------------------------------------------------------------------------------------------------- run


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def inference_rates(arch: str, dev: torch.device, n: int, n_tfs: int = 16) -> list[dict]:
    """Windows/s of ``predict_batches`` (forward + reverse complement, inputs moved from the host) on the fused
    model, fp32 vs bf16 and compute blocks of 64 vs 1024 rows, and of plain forward passes at batch 4096 already on
    the device (fp32, bf16, fp16)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(n, 6, 1000)
    x[:, :4] = torch.nn.functional.one_hot(torch.randint(0, 4, (n, 1000), generator=gen), 4).permute(0, 2, 1)
    x[:, 4:] = torch.rand(n, 2, 1000, generator=gen)
    torch.manual_seed(0)
    model = fuse_for_inference(ScFANet(6, 1000, n_tfs, ArchConfig.preset(arch))).to(dev)
    rows = []
    for block in (64, 1024, 4096):
        for amp in (False, True):
            predict_batches(model, x[: 2 * block], 8192, device=dev, block=block, amp=amp)
            _sync(dev)
            t0 = time.perf_counter()
            predict_batches(model, x, 8192, device=dev, block=block, amp=amp)
            _sync(dev)
            rows.append({"arch": arch, "what": f"predict_batches, block {block}", "dtype": "bf16" if amp else "fp32",
                         "windows_per_s": n / (time.perf_counter() - t0)})
    xd = x[:4096].to(dev)  # n may be below 4096 in a smoke run: rates count len(xd)
    for bench, dtype in ((False, torch.float32), (False, torch.bfloat16), (False, torch.float16),
                         (True, torch.float32), (True, torch.bfloat16)):
        torch.backends.cudnn.benchmark = bench
        with torch.no_grad(), torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
            for _ in range(2):
                model(xd)
            _sync(dev)
            reps = max(1, n // len(xd))
            t0 = time.perf_counter()
            for _ in range(reps):
                model(xd)
            _sync(dev)
        rows.append({"arch": arch, "what": "forward only, batch 4096 on the device"
                     + (", cudnn.benchmark" if bench else ""), "dtype": str(dtype).split(".")[1],
                     "windows_per_s": reps * len(xd) / (time.perf_counter() - t0)})
    torch.backends.cudnn.benchmark = False
    return rows


def _use_bundled_jaspar(meta: dict) -> None:
    """Serve motif initialisation's JASPAR lookups from the bundle (the GPU machine has no pyjaspar)."""
    import scfan.bulk.pwm as pwm

    table = meta.get("jaspar", {})
    by_id = {mid: np.asarray(counts, dtype=np.float64) for mid, counts in table.values()}
    pwm.motif_for_tf = lambda tf, motif_id=None: motif_id or (table[tf][0] if tf in table else None)
    pwm.jaspar_counts = lambda motif_id: by_id[motif_id]


def parse_variant(spec: str) -> tuple[str, dict]:
    """``NAME:FIELD=VALUE,FIELD=VALUE`` (TrainConfig fields) as a run name and its keyword arguments."""
    from bench_bulk import train_overrides

    name, sep, opts = spec.partition(":")
    if not sep or not name or not opts:
        raise SystemExit(f"--variant {spec!r}: expected NAME:FIELD=VALUE[,FIELD=VALUE...]")
    return name, train_overrides(opts.split(","))


def run(bundle: Path, out: Path, epochs: int, patience: int, budget_s: float, small_too: bool,
        variants: list[str] = (), full: bool = True, throughput_too: bool = True) -> None:
    from scfan.bulk.data import predict_windows
    from scfan.bulk.model import load_model
    from scfan.bulk.train import TrainConfig, train_arrays

    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    quick = dev.type == "cpu"  # a smoke run here; the real figures need the GPU
    res: dict = {"machine": machine(), "device": str(dev), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                 "command": [Path(sys.argv[0]).name, *sys.argv[1:]]}

    def save() -> None:
        (out / "run.json").write_text(json.dumps(res, indent=1, default=str))

    if throughput_too:
        res["inference"] = [r for arch in ("small", "full")
                            for r in inference_rates(arch, dev, 256 if quick else 65536)]
        save()
        log.info("inference: %s", [(r["arch"], r["what"], r["dtype"], round(r["windows_per_s"])) for r in
                                   res["inference"]])
        res["training_rates"] = [throughput(arch, dev.type, amp, 3 if quick else 100)
                                 for arch in ("small", "full") for amp in ((False, True) if dev.type == "cuda" else
                                                                            (False,))]
        save()
    src, meta, arrays = load_bundle(bundle)
    _use_bundled_jaspar(meta)
    res["bundle"] = {"line": meta.get("line"), "tf_names": meta["tf_names"],
                     **{f"n_{s}": len(arrays[s][1]) for s in SPLITS}}
    runs = [("full", {"arch": "full", "epochs": epochs, "patience": patience})] if full else []  # gpu profile
    if small_too:
        runs.append(("small", {"arch": "small"}))  # the CPU defaults, every window of every epoch
    for spec in variants:  # e.g. full_neg_ratio3:arch=full,neg_ratio=3 (starting from the gpu profile's settings)
        name, kw = parse_variant(spec)
        runs.append((name, {"arch": "full", "epochs": epochs, "patience": patience, **kw}))
    res["training"] = {}
    for name, kw in runs:
        left = budget_s - (time.perf_counter() - t_start)
        if left < 60:
            log.warning("%s model skipped: %.0f s of the budget left", name, left)
            res.setdefault("skipped", []).append(name)
            continue
        smoke = {"epochs": 1, "max_train_windows": 500, "max_valid_windows": 500} if quick else {}
        cfg = TrainConfig(**{"seed": 0, **kw, **smoke}, device=dev.type)
        t0 = time.perf_counter()
        summary = train_arrays(arrays["train"], arrays["valid"], meta, src, cfg, out / f"train_{name}")
        train_s = time.perf_counter() - t0
        model, spec = load_model(out / f"train_{name}" / "model.pt")
        chroms, starts, _ = arrays["test"]
        if quick:
            chroms, starts = chroms[:500], starts[:500]
        t0 = time.perf_counter()
        probs = predict_windows(model.to(dev), spec, src, chroms, starts, batch_size=4096)
        res["training"][name] = {"config": asdict(cfg), "summary": summary, "train_s": train_s,
                                 "predict_s": time.perf_counter() - t0, "n_test_scored": len(starts)}
        np.save(out / f"test_probs_{name}.npy", probs.astype(np.float32))
        save()
        log.info("%s: %d epochs (best %d) in %.0f s", name, summary["epochs_run"], summary["best_epoch"], train_s)
    res["total_s"] = time.perf_counter() - t_start
    save()


# ------------------------------------------------------------------------------------------- inference variants


def _timed(fn, x: torch.Tensor, dev: torch.device, min_s: float = 1.0) -> float:
    """Windows/s of ``fn(x)`` (warmed up twice, then repeated for at least ``min_s`` seconds)."""
    with torch.no_grad():
        for _ in range(2):
            fn(x)
        _sync(dev)
        reps, t0 = 0, time.perf_counter()
        while True:
            fn(x)
            reps += 1
            _sync(dev)
            if time.perf_counter() - t0 >= min_s or dev.type == "cpu":
                break
    return reps * len(x) / (time.perf_counter() - t0)


def inference_variants(dev: torch.device, n: int, budget_s: float, parts: str = "forward,e2e",
                       n_tfs: int = 16) -> dict:
    """Forward passes of the full model in several layouts and precisions (inputs on the device), their agreement
    with the fp32 reference, and ``predict_batches`` end to end (RC-averaged, inputs from host memory)."""
    from scfan.inference import ChannelsLastNet, reverse_complement_inputs

    t_start = time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(n, 6, 1000)
    x[:, :4] = torch.nn.functional.one_hot(torch.randint(0, 4, (n, 1000), generator=gen), 4).permute(0, 2, 1)
    x[:, 4:] = torch.rand(n, 2, 1000, generator=gen)
    torch.manual_seed(0)
    base = ScFANet(6, 1000, n_tfs, ArchConfig.preset("full"))
    for m in base.modules():  # trained-looking BatchNorm statistics and a live motif branch
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    torch.nn.init.normal_(base.motif.out.weight, std=0.05)
    ref = fuse_for_inference(base).to(dev)
    check = x[: min(n, 4096)].to(dev)
    with torch.no_grad():
        p_ref = torch.sigmoid(ref(check).float())
    p_ref_rc = torch.from_numpy(predict_batches(ref, check.cpu(), 8192, device=dev))
    rows: list[dict] = []
    cl32 = ChannelsLastNet(base).to(dev)
    cl16 = ChannelsLastNet(base).to(dev).half()
    clbf = ChannelsLastNet(base).to(dev).to(torch.bfloat16)

    def autocast(model, dtype):
        def f(xb):
            with torch.autocast(dev.type, dtype=dtype):
                return model(xb)
        return f

    variants = [("NCL (Conv1d), BN folded", "fp32", ref), ("NCL (Conv1d), BN folded", "autocast bf16",
                                                             autocast(ref, torch.bfloat16)),
                ("channels-last Conv2d, padded to 8", "fp32 (TF32 convs)", cl32),
                ("channels-last Conv2d, padded to 8", "fp16", cl16),
                ("channels-last Conv2d, padded to 8", "bf16", clbf)]
    if dev.type == "cuda":
        variants.append(("channels-last Conv2d + torch.compile(max-autotune-no-cudagraphs)", "bf16", "compile_bf16"))
        variants.append(("channels-last Conv2d + torch.compile(max-autotune-no-cudagraphs)", "fp16", "compile_fp16"))
    batches = (4096, 16384) if dev.type == "cuda" else (64,)
    for what, dtype, fn in variants if "forward" in parts else []:
        if time.perf_counter() - t_start > budget_s:
            rows.append({"what": what, "dtype": dtype, "note": "not run: time budget spent"})
            continue
        note = ""
        if isinstance(fn, str):
            t0 = time.perf_counter()
            mod = clbf if fn.endswith("bf16") else cl16
            try:
                fn = torch.compile(mod, mode="max-autotune-no-cudagraphs")
                with torch.no_grad():
                    fn(check[:4096])
                    fn(x[:16384].to(dev))
            except Exception as exc:  # report, do not lose the other figures
                rows.append({"what": what, "dtype": dtype, "note": f"failed: {exc.__class__.__name__}: {exc}"[:200]})
                continue
            note = f"compiled in {time.perf_counter() - t0:.0f} s"
        with torch.no_grad():
            p = torch.sigmoid(fn(check).float())
        row = {"what": what, "dtype": dtype, "max_abs_diff": float((p - p_ref).abs().max()),
               "mean_abs_diff": float((p - p_ref).abs().mean()), "note": note}
        for b in batches:
            xd = x[:b].to(dev) if len(x) >= b else x.to(dev)
            row[f"forward_b{b}"] = _timed(fn, xd, dev)
            rc = torch.cat([xd[: len(xd) // 2], reverse_complement_inputs(xd[: len(xd) // 2])])
            row[f"rc_one_batch_b{b}"] = _timed(fn, rc, dev) / 2  # windows/s with forward and RC in one batch
        rows.append(row)
        log.info("%s", row)
        del xd
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    # end to end: predict_batches as `scfan sc predict` calls it (host inputs, RC averaged, fixed compute blocks),
    # the models made by prepare_for_inference; block 1024 = the old CUDA default, with the autocast model
    from scfan.inference import prepare_for_inference

    e2e = []
    setups = [("ScFANet fused, fp32, block 1024", lambda: ref, False, 1024),
              ("ScFANet fused, autocast bf16, block 1024 (before)", lambda: ref, True, 1024),
              ("ScFANet fused, autocast bf16, block 4096", lambda: ref, True, None),
              ("ChannelsLastNet bf16 (sc predict --amp, the default)",
               lambda: prepare_for_inference(base, dev, half=True), True, None),
              ("ChannelsLastNet bf16 + torch.compile (sc predict --compile)",
               lambda: prepare_for_inference(base, dev, half=True, compile=dev.type == "cuda"), True, None)]
    for what, make, amp, block in setups if "e2e" in parts else []:
        if time.perf_counter() - t_start > budget_s:
            e2e.append({"what": what, "note": "not run: time budget spent"})
            continue
        t0 = time.perf_counter()
        model = make()
        p = torch.from_numpy(predict_batches(model, check.cpu(), 8192, device=dev, amp=amp, block=block))
        _sync(dev)
        setup_s = time.perf_counter() - t0
        for rc in (True, False):
            t0 = time.perf_counter()
            predict_batches(model, x, 16384, device=dev, amp=amp, block=block, average_rc=rc)
            _sync(dev)
            e2e.append({"what": what, "average_rc": rc, "windows_per_s": n / (time.perf_counter() - t0),
                        "setup_s": setup_s, "max_abs_diff_vs_fp32_rc": float((p - p_ref_rc).abs().max())})
            log.info("%s", e2e[-1])
    # host → device copy alone (fp32 inputs, pageable vs pinned)
    xs = x[:16384]
    copy = {}
    for pinned in (False, True):
        src = xs.pin_memory() if pinned and dev.type == "cuda" else xs
        src.to(dev)
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(5):
            src.to(dev, non_blocking=pinned)
        _sync(dev)
        copy["pinned" if pinned else "pageable"] = 5 * len(xs) / (time.perf_counter() - t0)
    return {"forward": rows, "predict_batches": e2e, "host_to_device_windows_per_s": copy,
            "n": n, "seconds": time.perf_counter() - t_start}


def run_infer(out: Path, budget_s: float, parts: str) -> None:
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out.mkdir(parents=True, exist_ok=True)
    res = {"machine": machine(), "device": str(dev), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
           **inference_variants(dev, 65536 if dev.type == "cuda" else 128, budget_s, parts)}
    (out / "infer.json").write_text(json.dumps(res, indent=1, default=str))
    print(json.dumps(res, indent=1, default=str))


def infer_section(forward_json: Path, e2e_json: Path) -> list[str]:
    """Markdown of ``infer`` runs: forward-pass layouts (inputs on the device) and ``predict_batches`` end to end."""
    fw, e2e = json.loads(forward_json.read_text()), json.loads(e2e_json.read_text())
    lines = [INFER_BEGIN, "## Per-cell inference: layouts and precisions of the full model (issue 10)", "",
             f"Machine: {fw['machine']}. Runs {fw['started']} (`bench_bulk_gpu.py infer --parts forward`) and "
             f"{e2e['started']} (`--parts e2e`), each through the `device` tool; raw figures in "
             "`benchmarks/results/raw/gpu_infer_*.json`. The full scFANet (160/240/240 filters, dense 919, motif "
             "branch), 1,000 bp windows, 6 channels, 16 TFs, random inputs, BatchNorm folded; about 0.24 GFLOP a "
             "window and strand.", "",
             "**Forward passes, inputs already on the device** (windows/s; *RC in one batch* = each window and its "
             "reverse complement in one batch, i.e. RC-averaged predictions per second; *max diff* = largest "
             "absolute difference of a probability from the fp32 reference, 4,096 windows):", "",
             "| layout | dtype | batch 4,096 | batch 16,384 | RC in one batch, 16,384 | max diff | note |",
             "|---|---|---|---|---|---|---|"]
    for r in fw["forward"]:
        if "forward_b4096" not in r:
            lines.append(f"| {r['what']} | {r['dtype']} | – | – | – | – | {r.get('note', '')} |")
            continue
        lines.append(f"| {r['what']} | {r['dtype']} | {r['forward_b4096']:,.0f} | {r['forward_b16384']:,.0f} | "
                     f"{r['rc_one_batch_b16384']:,.0f} | {r['max_abs_diff']:.1e} | {r.get('note', '')} |")
    lines += ["", "**`predict_batches` end to end** (what `scfan sc predict` runs: 65,536 windows from host memory "
              "in float32, fixed compute blocks, forward and reverse complement averaged unless stated; *setup* = "
              "making the module, compilation included):", "",
              "| module | RC averaged | windows/s | setup (s) | max diff vs fp32 |", "|---|---|---|---|---|"]
    for r in e2e["predict_batches"]:
        if "windows_per_s" not in r:
            continue
        lines.append(f"| {r['what']} | {'yes' if r['average_rc'] else 'no'} | {r['windows_per_s']:,.0f} | "
                     f"{r['setup_s']:.1f} | {r['max_abs_diff_vs_fp32_rc']:.1e} |")
    h2d = fw["host_to_device_windows_per_s"]
    lines += ["", f"Host → device copy of float32 windows (24 KB each): pageable {h2d['pageable']:,.0f}, pinned "
              f"{h2d['pinned']:,.0f} windows/s.", "", INFER_END]
    return lines


def write_infer_section(path: Path, forward_json: Path, e2e_json: Path) -> str:
    """Replace (or append) the inference section of ``path``, leaving the rest of the report as it is."""
    text = path.read_text() if path.exists() else ""
    section = "\n".join(infer_section(forward_json, e2e_json))
    if INFER_BEGIN in text:
        text = text[: text.index(INFER_BEGIN)] + section + text[text.index(INFER_END) + len(INFER_END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return section


INFER_BEGIN = "<!-- infer: written by bench_bulk_gpu.py report-infer -->"
INFER_END = "<!-- /infer -->"


# ---------------------------------------------------------------------------------------------------------- report


def _model_summary(name: str, cfg, tr: dict, rows: list[dict]) -> dict:
    """Means over TFs of one trained model's table (model, PWM, oracle)."""
    by = {m: [r for r in rows if r["method"] == m] for m in ("scfan", "pwm", "oracle")}
    mean = {m: {k: float(np.nanmean([r[k] for r in rs])) for k in ("auroc", "auprc")} for m, rs in by.items() if rs}
    return {"name": name, "arch": cfg.arch, "seed": cfg.seed, "neg_ratio": cfg.neg_ratio, "train_s": tr["train_s"],
            "epochs": tr["summary"]["epochs_run"], "best": tr["summary"]["best_epoch"], "mean": mean,
            "n_recall": sum(r["recall_at_10fdr"] > 0 for r in by["scfan"]), "n_tfs": len(by["scfan"])}


def summary_lines(summary: list[dict]) -> list[str]:
    """One row per trained model, then mean ± sd over seeds of each setting trained with several seeds."""
    lines = ["## Summary of the models trained on the GPU", "",
             "| model | arch | neg_ratio | seed | epochs (best) | training s | mean AUROC | mean AUPRC | × PWM | "
             "model / oracle | TFs with recall@10%FDR > 0 |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in summary:
        a, pwm, orc = m["mean"]["scfan"], m["mean"]["pwm"], m["mean"]["oracle"]
        lines.append(f"| `{m['name']}` | {m['arch']} | {m['neg_ratio']:g} | {m['seed']} | {m['epochs']} ({m['best']}) "
                     f"| {m['train_s']:.0f} | {a['auroc']:.3f} | {a['auprc']:.3f} | {a['auprc'] / pwm['auprc']:.2f} | "
                     f"{a['auprc'] / orc['auprc']:.2f} | {m['n_recall']} of {m['n_tfs']} |")
    groups: dict[tuple, list[dict]] = {}
    for m in summary:
        groups.setdefault((m["arch"], m["neg_ratio"]), []).append(m)
    seeded = {k: g for k, g in groups.items() if len({m["seed"] for m in g}) > 1}
    if seeded:
        lines += ["", "Over seeds (mean ± sd):", ""]
        for (arch, neg), g in seeded.items():
            auroc = np.array([m["mean"]["scfan"]["auroc"] for m in g])
            auprc = np.array([m["mean"]["scfan"]["auprc"] for m in g])
            ratio = auprc / np.array([m["mean"]["pwm"]["auprc"] for m in g])
            lines.append(f"- {arch}, neg_ratio {neg:g}, seeds {', '.join(str(m['seed']) for m in g)}: AUROC "
                         f"{auroc.mean():.3f} ± {auroc.std(ddof=1):.3f}, AUPRC {auprc.mean():.3f} ± "
                         f"{auprc.std(ddof=1):.3f} = {ratio.mean():.2f} × PWM (lowest {ratio.min():.2f}), training "
                         f"{np.mean([m['train_s'] for m in g]):.0f} s")
    return [*lines, ""]


def report(bundle: Path, run_dirs: list[Path], sim_dir: Path, path: Path) -> str:
    """The report of one or more ``run`` folders: the first one's machine, throughput and timing, every one's models."""
    from bench_bulk import accuracy_section, localisation, oracle_scores, site_distances

    from scfan.bulk.data import window_mean_accessibility
    from scfan.bulk.evaluate import binary_metrics, open_window_mask, pwm_scores
    from scfan.bulk.pwm import motif_for_tf
    from scfan.bulk.train import TrainConfig

    runs = [(d, json.loads((d / "run.json").read_text())) for d in run_dirs]
    res = runs[0][1]
    trained = {name: (d, tr) for d, r in runs for name, tr in r.get("training", {}).items()}
    commands = [" ".join(r.get("command", ["bench_bulk_gpu.py", "run", "--small-too"])) for _, r in runs]
    src, meta, arrays = load_bundle(bundle)
    tf_names, window = list(meta["tf_names"]), int(meta["window"])
    lines = ["# Bulk-stage benchmark on a GPU", "", f"Machine: {res['machine']}", "",
             f"Started {res['started']}; `bench_bulk_gpu.py run` took {res.get('total_s', float('nan')):.0f} s in "
             "all. Bundle: line " f"{meta.get('line')}, " + ", ".join(f"{res['bundle'][f'n_{s}']} {s}" for s in SPLITS)
             + " windows.", "",
             "Commands: `bench_bulk_gpu.py export` of line A of `scfan simulate --preset bench --seed 1` after "
             "`scfan bulk prepare` (here), `" + "`, then `".join(commands) + "` (on the GPU machine, through the "
             "`device` tool, " + ("one call" if len(runs) == 1 else f"{len(runs)} calls on the same machine kind")
             + "), `bench_bulk_gpu.py report` (here). PWM scan and oracle are scored here on the same windows."
             + "".join(f" Not trained, the run's time budget spent: {', '.join(f'`{n}`' for n in r['skipped'])}."
                       for _, r in runs if r.get("skipped")), ""]
    summary: list[dict] = []
    for name, (run_dir, tr) in trained.items():
        chroms, starts, labels = (a[: tr["n_test_scored"]] for a in arrays["test"])
        probs = np.load(run_dir / f"test_probs_{name}.npy")
        is_open = open_window_mask(window_mean_accessibility(src, chroms, starts, window))
        oracle = oracle_scores(sim_dir, meta["line"], chroms, starts, window, tf_names)
        loc = localisation(site_distances(sim_dir, meta["line"], chroms, starts, window, tf_names), labels, probs,
                           oracle)
        rows = []
        for j, tf in enumerate(tf_names):
            y = labels[:, j]
            scored = [("scfan", probs[:, j]), ("oracle", oracle[:, j])]
            motif = motif_for_tf(tf, meta.get("motifs", {}).get(tf))
            if motif is not None:
                scored.append(("pwm", pwm_scores(src, chroms, starts, window, motif)))
            for method, s in scored:
                m, mo = binary_metrics(y, s), binary_metrics(y[is_open], s[is_open])
                rows.append({"tf": tf, "method": method, **m, "auroc_open": mo["auroc"], "auprc_open": mo["auprc"]})
        cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in tr["config"].items()})
        label = name if name in ("full", "small") else f"{cfg.arch} (`{name}`)"
        acc = {"preset": "bench", "line": meta["line"], "arch": label,
               "n_windows": sum(res["bundle"][f"n_{s}"] for s in SPLITS),
               "table": rows, "train": tr["summary"], "train_s": tr["train_s"], "train_config": cfg,
               "n_test": tr["n_test_scored"], "n_test_all": res["bundle"]["n_test"], "eval_s": tr["predict_s"],
               "goals_title": f"Goals of issue 9, checked for this {name} model trained on {res['device']}",
               "localisation": loc}
        lines += accuracy_section(acc)
        summary.append(_model_summary(name, cfg, tr, rows))
        lines += [f"Training on {res['device']}: {tr['summary']['train_windows_per_s_this_session']} windows/s over "
                  f"the whole run (sampling, input assembly on the CPU, validation included).", ""]
    if len(summary) > 1:
        lines += summary_lines(summary)
    lines += ["## Inference throughput (1,000 bp windows, 6 channels, 16 TFs, BatchNorm folded)", "",
              "`predict_batches` = what `scfan sc predict` and `scfan bulk evaluate` run: forward and "
              "reverse-complement passes averaged, inputs copied from host memory, fixed compute blocks (batch size "
              "never changes a number). *forward only* = one pass at batch 4096 with the inputs already on the "
              "device.", "",
              "| model | what | dtype | windows/s |", "|---|---|---|---|"]
    lines += [f"| {r['arch']} | {r['what']} | {r['dtype']} | {r['windows_per_s']:,.0f} |" for r in res["inference"]]
    lines += ["", "## Training throughput (batch 100, forward + backward + Adam step, RC augmentation)", "",
              *throughput_lines(res["training_rates"])]
    old = path.read_text() if path.exists() else ""
    if INFER_BEGIN in old:  # the per-cell inference section (report-infer) stays as it was
        lines += ["", old[old.index(INFER_BEGIN): old.index(INFER_END) + len(INFER_END)]]
    return write_report(path, lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="one bulk line as an npz bundle (needs the genomics packages)")
    e.add_argument("--sim-dir", type=Path, required=True)
    e.add_argument("--prepare-dir", type=Path, required=True, help="output folder of `scfan bulk prepare`")
    e.add_argument("--bundle", type=Path, required=True)
    r = sub.add_parser("run", help="throughput and training (torch + numpy + scikit-learn + scfan)")
    r.add_argument("--bundle", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--epochs", type=int, default=30, help="the gpu profile's (conf/gpu.config)")
    r.add_argument("--patience", type=int, default=5, help="the gpu profile's (conf/gpu.config)")
    r.add_argument("--budget-s", type=float, default=420, help="no model training starts after this many seconds")
    r.add_argument("--small-too", action="store_true", help="also train the small model with the CPU defaults")
    r.add_argument("--no-full", action="store_true", help="skip the full model with the gpu profile's settings")
    r.add_argument("--no-throughput", action="store_true", help="skip the throughput measurements")
    r.add_argument("--variant", action="append", default=[], metavar="NAME:FIELD=VALUE,...",
                   help="also train the full model (gpu profile settings) with these TrainConfig fields changed")
    i = sub.add_parser("infer", help="inference layouts and precisions of the full model (torch + numpy + scfan)")
    i.add_argument("--out", type=Path, required=True)
    i.add_argument("--budget-s", type=float, default=240, help="no new variant starts after this many seconds")
    i.add_argument("--parts", default="forward,e2e", help="forward (layouts, inputs on the device), e2e "
                   "(predict_batches from host memory)")
    q = sub.add_parser("report-infer", help="the inference section of the report from two `infer` runs")
    q.add_argument("--forward", type=Path, default=HERE / "results" / "raw" / "gpu_infer_forward_h200.json")
    q.add_argument("--e2e", type=Path, default=HERE / "results" / "raw" / "gpu_infer_e2e_h200.json")
    q.add_argument("--out", type=Path, default=HERE / "results" / "bench_bulk_gpu.md")
    p = sub.add_parser("report", help="accuracy and throughput tables (needs the genomics packages)")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--run-dir", type=Path, required=True, action="append", help="a `run` output folder; repeat to "
                   "report the models of several runs (the first one's throughput tables are kept)")
    p.add_argument("--sim-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, default=HERE / "results" / "bench_bulk_gpu.md")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if a.cmd == "export":
        export(a.sim_dir, a.prepare_dir, a.bundle)
    elif a.cmd == "infer":
        run_infer(a.out, a.budget_s, a.parts)
    elif a.cmd == "report-infer":
        print(write_infer_section(a.out, a.forward, a.e2e))
    elif a.cmd == "run":
        run(a.bundle, a.out, a.epochs, a.patience, a.budget_s, a.small_too, a.variant, not a.no_full,
            not a.no_throughput)
    else:
        print(report(a.bundle, a.run_dir, a.sim_dir, a.out))


if __name__ == "__main__":
    main()
