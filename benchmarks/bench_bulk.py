"""Benchmark of the bulk stage (not a test); writes benchmarks/results/bench_bulk.md.

1. Accuracy: the simulator's ``bench`` preset (or ``--preset test``), scFANet (``--arch``, default the CPU default
   ``small``) trained on one bulk line, per-TF AUROC / AUPRC on the test chromosomes next to the PWM-scan baseline and
   an oracle built from the simulator's truth (the achievable ceiling against the same ChIP-derived labels), on all
   windows and on the windows open in the line's ATAC.
2. Real data: sequence-only scFANet on the 500 GM12878 CTCF ChIP peak sequences of ../shared/data against
   dinucleotide-shuffled negatives; held-out AUROC / AUPRC.
3. Throughput: training and prediction windows/s of the small and full-size models, measured side by side in one
   run on the CPU, and on CUDA (fp32 vs AMP) when a GPU is present. This part needs only torch + numpy + scfan
   (``--throughput-only``), so it runs on a GPU machine without the genomics packages.

Usage: ``.venv/bin/python benchmarks/bench_bulk.py [--quick] [--throughput-only] [--preset bench|test]
[--arch small|full] [--epochs N] [--max-train-windows N] [--max-test-windows N] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
log = logging.getLogger("bench_bulk")
REPO = HERE.parent
sys.path.insert(0, str(REPO / "python"))

from scfan.bulk.model import ArchConfig, ScFANet  # noqa: E402
from scfan.inference import predict_batches, reverse_complement_inputs  # noqa: E402


def machine() -> str:
    from scfan.inference import cpu_description  # the model name and the flags that pick fast paths

    cpu = cpu_description()
    mem = next((int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal")), 0) / 2**20
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} torch threads")


# ------------------------------------------------------------------------------------------------- throughput


def throughput(arch: str, device: str, amp: bool, n_batches: int, batch: int = 100, length: int = 1000,
               channels: int = 6, n_tfs: int = 16) -> dict:
    """Training (forward + backward + Adam step, with RC augmentation) and prediction (forward + RC) windows/s."""
    gen = torch.Generator().manual_seed(0)
    dev = torch.device(device)
    model = ScFANet(channels, length, n_tfs, ArchConfig.preset(arch)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and device == "cuda")
    x = torch.zeros(batch, channels, length)
    x[:, :4] = torch.nn.functional.one_hot(torch.randint(0, 4, (batch, length), generator=gen), 4).permute(0, 2, 1)
    x[:, 4:] = torch.rand(batch, channels - 4, length, generator=gen)
    y = (torch.rand(batch, n_tfs, generator=gen) < 0.1).float()
    x, y = x.to(dev), y.to(dev)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step():
        xb = reverse_complement_inputs(x) if step.k % 2 else x
        step.k += 1
        with torch.autocast(device_type=dev.type, dtype=torch.float16 if dev.type == "cuda" else torch.bfloat16,
                            enabled=amp and dev.type == "cuda"):
            loss = loss_fn(model(xb), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    step.k = 0

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    model.train()
    for _ in range(3):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(n_batches):
        step()
    sync()
    train_rate = n_batches * batch / (time.perf_counter() - t0)
    xp = x.repeat(4, 1, 1)
    with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=amp and dev.type == "cuda"):
        predict_batches(model, xp, 400, device=dev)
        sync()
        t0 = time.perf_counter()
        reps = max(1, n_batches // 4)
        for _ in range(reps):
            predict_batches(model, xp, 400, device=dev)
        sync()
    predict_rate = reps * len(xp) / (time.perf_counter() - t0)
    return {"arch": arch, "device": device, "amp": amp, "train_windows_per_s": train_rate,
            "predict_windows_per_s": predict_rate}


def throughput_table(quick: bool) -> list[dict]:
    rows = []
    n = 4 if quick else 12
    for arch in ("small", "full"):
        rows.append(throughput(arch, "cpu", False, n))
    if torch.cuda.is_available():
        for arch in ("small", "full"):
            for amp in (False, True):
                rows.append(throughput(arch, "cuda", amp, 50 if quick else 200))
    return rows


# --------------------------------------------------------------------------------------------------- accuracy


ORACLE_DECAY_BP = 100.0  # λ of the oracle's exp(-d / λ); 200 or 400 bp give about the same AUPRC (0.71, bench preset)


def site_distances(sim: Path, line: str, chroms: np.ndarray, starts: np.ndarray, window: int,
                   tf_names: list[str]) -> np.ndarray:
    """``(N, n_tfs)`` distance in bp from each window ``[start, start + window)`` to the nearest centre of a site of the
    TF bound in ``line`` (simulator truth, ``truth/bound_sites.parquet``): 0 when a centre lies inside, ``inf`` when
    the chromosome holds none."""
    import polars as pl

    sites = pl.read_parquet(sim / "truth" / "bound_sites.parquet")
    bound = sites.filter(pl.col("bound_lines").list.contains(line))
    dist = np.full((len(starts), len(tf_names)), np.inf)
    for chrom in np.unique(chroms):
        on = np.flatnonzero(chroms == chrom)
        s = starts[on].astype(np.int64)
        bc = bound.filter(pl.col("chrom") == chrom)
        centres = ((bc["start"] + bc["end"]) // 2).to_numpy().astype(np.int64)
        tfs = bc["tf"].to_numpy()
        for j, tf in enumerate(tf_names):
            c = np.sort(centres[tfs == tf])
            if len(c) == 0:
                continue
            i = np.searchsorted(c, s)  # c[i - 1] < s <= c[i]
            left = np.where(i > 0, s - c[np.maximum(i - 1, 0)], np.inf)  # a centre before the window
            nxt = c[np.minimum(i, len(c) - 1)]
            inside_or_right = np.where(i < len(c), np.maximum(nxt - (s + window - 1), 0), np.inf)
            dist[on, j] = np.minimum(left, inside_or_right)
    return dist


def oracle_scores(sim: Path, line: str, chroms: np.ndarray, starts: np.ndarray, window: int,
                  tf_names: list[str]) -> np.ndarray:
    """A ceiling from the simulator's truth, ``(N, n_tfs)``: what a model that knew the planted binding would score.

    ``exp(-d / λ)`` with ``d`` the distance from the window to the nearest site of the TF bound in ``line``
    (:func:`site_distances`; 1 for a site inside, decaying over ``λ`` = :data:`ORACLE_DECAY_BP` bp outside: a ChIP
    peak ~300 bp wide around a site also covers the windows beside it), plus 0.01 × the line's accessibility of the
    regulatory elements the window overlaps (``truth/open_regions.parquet``, ``access_<line>``), which breaks ties
    the way a ChIP peak caller's signal would. It is scored against the same ChIP-derived labels as the model, so its
    AUPRC is (a lower bound of) the ceiling those labels allow. Before 2026-11-27 the oracle scored only sites whose
    centre lies inside the 200-bp window (mean AUPRC 0.484, AUROC 0.937 on the bench preset): about half the positive
    windows have their site just outside, so it understated the ceiling (now 0.710 / 0.981).
    """
    # a window [s, s + window) overlaps an element [r0, r1) when r0 - window < s < r1
    access = element_access(sim, line, chroms, np.asarray(starts, dtype=np.int64), window, 0)
    dist = site_distances(sim, line, chroms, starts, window, tf_names)
    return np.exp(-dist / ORACLE_DECAY_BP) + 0.01 * access[:, None]


LEARNER_SPAN = 800  # bp around the window's centre that the motif learner scans
LEARNER_BINS = (0, 50, 100, 150, 200, 250, 300, 400)  # |distance| (bp) of a motif placement's centre from the window's
LEARNER_NEG_RATIO = 2  # uniform training negatives per positive window the learner fits (unweighted, as the model)


def motif_learner_features(src, chroms: np.ndarray, starts: np.ndarray, window: int, pwms: list[np.ndarray],
                           chunk: int = 4096) -> np.ndarray:
    """``(N, n_motifs * 7 + 3)`` features a sequence reader can see: for each JASPAR matrix, its best log-odds score
    (both strands) among placements centred 0-50, 50-100, ..., 300-400 bp from the window's centre, then the mean
    normalised accessibility over the central 200, 400 and 800 bp."""
    import torch

    weights = [torch.from_numpy(np.stack([w, np.ascontiguousarray(w[::-1, ::-1])])) for w in pwms]
    masks = []
    for w in pwms:
        offset = np.abs(np.arange(LEARNER_SPAN - w.shape[1] + 1) + w.shape[1] / 2 - LEARNER_SPAN / 2)
        masks.append([torch.from_numpy((offset >= lo) & (offset < hi))
                      for lo, hi in zip(LEARNER_BINS[:-1], LEARNER_BINS[1:], strict=True)])
    out = []
    half = LEARNER_SPAN // 2
    for i in range(0, len(starts), chunk):
        cs = np.asarray(starts[i : i + chunk], dtype=np.int64) + window // 2 - half
        x = src.batch(chroms[i : i + chunk], cs, LEARNER_SPAN)
        cols = []
        with torch.no_grad():
            for w, ms in zip(weights, masks, strict=True):
                s = torch.nn.functional.conv1d(x[:, :4], w).amax(1)  # (n, placements), best strand
                cols += [s[:, m].amax(-1) for m in ms]
            acc = x[:, 4]
            cols += [acc[:, half - r : half + r].mean(-1) for r in (100, 200, half)]
        out.append(torch.stack(cols, 1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(pwms) * 7 + 3), np.float32)


TRUTH_OPEN_RADII = (100, 200, 400)  # bp either side of the window's centre


def element_access(sim: Path, line: str, chroms: np.ndarray, pos: np.ndarray, before: int,
                   after: int) -> np.ndarray:
    """For each position ``pos[i]`` on ``chroms[i]``, the largest ``access_<line>`` (``truth/open_regions.parquet``;
    0 for a closed element) of the regulatory elements ``[r0, r1)`` with ``r0 - before < pos < r1 + after``; 0 when
    there is none."""
    import polars as pl

    regions = pl.read_parquet(sim / "truth" / "open_regions.parquet")
    out = np.zeros(len(pos), dtype=np.float64)
    for chrom in np.unique(chroms):
        on = np.flatnonzero(chroms == chrom)
        order = on[np.argsort(pos[on], kind="stable")]
        p = pos[order]
        rc = regions.filter(pl.col("chrom") == chrom)
        for r0, r1, a in zip(rc["start"].to_numpy(), rc["end"].to_numpy(), rc[f"access_{line}"].to_numpy(),
                             strict=True):
            lo, hi = np.searchsorted(p, r0 - before, "right"), np.searchsorted(p, r1 + after, "left")
            out[order[lo:hi]] = np.maximum(out[order[lo:hi]], a)
    return out


def truth_openness(sim: Path, line: str, chroms: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """``(N, 3)``: the simulator's own accessibility in ``line`` (``truth/open_regions.parquet``, ``access_<line>``:
    0 for a closed element) of the most open regulatory element within 100, 200 and 400 bp of each window's centre —
    what a perfect ATAC track would tell, without its sampling noise."""
    centres = np.asarray(starts, dtype=np.int64) + window // 2
    return np.stack([element_access(sim, line, chroms, centres, r, r) for r in TRUTH_OPEN_RADII], axis=1)


def motif_learner_scores(src, train_df, test_chroms: np.ndarray, test_starts: np.ndarray, window: int,
                         tf_names: list[str], motifs: dict, seed: int = 0,
                         extra: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """A second reference beside the truth oracle: what a flexible learner reaches from what a sequence reader can
    see. Gradient-boosted trees (scikit-learn's ``HistGradientBoostingClassifier``), one per TF, on
    :func:`motif_learner_features` of the TFs' own JASPAR matrices (the matrices the simulator plants its sites
    from, so the log-odds score is the right detector of a planted site) by distance from the window, and the
    accessibility; fitted on every positive training window and :data:`LEARNER_NEG_RATIO` times as many negatives
    drawn uniformly (seeded, unweighted: the model's own ratio; 80,000 negatives weighted up to all of them gave a
    lower AUPRC, 0.376 on the bench preset). ``extra(chroms, starts)``, when given, adds feature columns (e.g.
    :func:`truth_openness`). Returns ``(N, n_tfs)`` probabilities for the test windows; a TF without a matrix scores
    NaN."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from scfan.bulk.data import windows_arrays
    from scfan.bulk.pwm import jaspar_counts, log_odds

    ids = [(tf, motifs.get(tf)) for tf in tf_names]
    pwms = [log_odds(jaspar_counts(mid)) for _, mid in ids if mid]
    chroms, starts, labels = windows_arrays(train_df, tf_names)
    pos = np.flatnonzero(labels.any(1))
    negs = np.flatnonzero(~labels.any(1))
    rng = np.random.default_rng(seed)
    take = rng.choice(negs, min(LEARNER_NEG_RATIO * len(pos), len(negs)), replace=False)
    idx = np.sort(np.concatenate([pos, take]))
    x_train = motif_learner_features(src, chroms[idx], starts[idx], window, pwms)
    x_test = motif_learner_features(src, test_chroms, test_starts, window, pwms)
    if extra is not None:
        x_train = np.hstack([x_train, extra(chroms[idx], starts[idx])])
        x_test = np.hstack([x_test, extra(test_chroms, test_starts)])
    out = np.full((len(test_starts), len(tf_names)), np.nan)
    for j, (tf, mid) in enumerate(ids):
        y = labels[idx, j]
        if not mid or y.all() or not y.any():
            continue
        clf = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=31, random_state=seed)
        clf.fit(x_train, y)
        out[:, j] = clf.predict_proba(x_test)[:, 1]
        log.info("motif learner: %s fitted (%d iterations)", tf, clf.n_iter_)
    return out


DISTANCE_BINS = ((0, 0), (1, 50), (51, 100), (101, 200), (201, 400), (401, 1000), (1001, np.inf))


def localisation(dist: np.ndarray, labels: np.ndarray, probs: np.ndarray, oracle: np.ndarray) -> dict:
    """How the model scores windows by their distance to the nearest bound site of the TF (medians over TFs of the
    label rate and the mean probability per bin), and AUROC among windows within 1 kb of a site (model vs oracle):
    whether the model localises sites as finely as the ChIP-derived labels do."""
    from sklearn.metrics import roc_auc_score

    rows = []
    for lo, hi in DISTANCE_BINS:
        rate, mean_p, n = [], [], 0
        for j in range(labels.shape[1]):
            m = (dist[:, j] >= lo) & (dist[:, j] <= hi)
            if m.any():
                rate.append(labels[m, j].mean())
                mean_p.append(probs[m, j].mean())
                n += int(m.sum())
        rows.append({"lo": lo, "hi": hi, "n": n, "label_rate": float(np.median(rate)) if rate else float("nan"),
                     "mean_prob": float(np.median(mean_p)) if mean_p else float("nan")})

    def near_auroc(score: np.ndarray) -> float:
        vals = []
        for j in range(labels.shape[1]):
            m = dist[:, j] <= 1000
            if 0 < labels[m, j].sum() < m.sum():
                vals.append(roc_auc_score(labels[m, j], score[m, j]))
        return float(np.mean(vals)) if vals else float("nan")

    return {"bins": rows, "near_auroc_model": near_auroc(probs), "near_auroc_oracle": near_auroc(oracle)}


def localisation_lines(loc: dict) -> list[str]:
    lines = ["**Localisation** (windows by their distance to the nearest site of the TF bound in this line; label rate "
             "and the model's mean probability are medians over TFs; *n* counts window × TF pairs):", "",
             "| distance to the site (bp) | n | label rate | model mean probability |", "|---|---|---|---|"]
    for b in loc["bins"]:
        span = "inside" if b["hi"] == 0 else (f"> {b['lo'] - 1}" if not np.isfinite(b["hi"]) else
                                               f"{b['lo']}–{int(b['hi'])}")
        lines.append(f"| {span} | {b['n']:,} | {b['label_rate']:.3f} | {b['mean_prob']:.3f} |")
    lines += ["", f"Mean AUROC among windows within 1 kb of a bound site: model {loc['near_auroc_model']:.3f}, oracle "
              f"{loc['near_auroc_oracle']:.3f}.", ""]
    return lines


def simulated_accuracy(workdir: Path, quick: bool, epochs: int, max_train: int, max_test: int,
                       sim_dir: Path | None = None, preset: str = "bench", arch: str = "small",
                       threads: int | None = None, seed: int = 0, ema_decay: float = 0.0,
                       max_valid: int = 4_000, overrides: dict | None = None, motif_learner: bool = False,
                       learner_truth_open: bool = False) -> dict:
    import polars as pl

    from scfan.bulk.data import InputSource, window_mean_accessibility, windows_arrays
    from scfan.bulk.evaluate import EvaluateConfig, binary_metrics, evaluate_model, open_window_mask
    from scfan.bulk.model import load_model
    from scfan.bulk.train import TrainConfig, train_model
    from scfan.bulk.windows import PrepareConfig, prepare_bulk, read_windows, sources_from_samplesheet
    from scfan.simulate import run_simulation

    preset = "test" if quick else preset
    sim = sim_dir if sim_dir is not None and not quick else workdir / f"sim_{preset}"
    if not (sim / "manifest.json").is_file():
        run_simulation(preset=preset, seed=1, outdir=sim)
    manifest = json.loads((sim / "manifest.json").read_text())
    sheet = sim / "bulk_samplesheet.csv"
    line = pl.read_csv(sheet)["line"][0]
    prep = workdir / f"{preset}_{line}_prepare"
    cfg = PrepareConfig(valid_chroms=tuple(manifest["valid_chroms"]), test_chroms=tuple(manifest["test_chroms"]))
    if not (prep / "windows.parquet").is_file():
        prepare_bulk(sources_from_samplesheet(sheet, line), sim / "genome.fa", sim / "mappability.bw",
                     sim / "blacklist.bed", cfg, prep)
    df, meta = read_windows(prep / "windows.parquet")
    src = InputSource.load(sim / "genome.fa", meta["atac"], sim / "mappability.bw")
    arch = "small" if quick else arch
    tcfg = TrainConfig(arch=arch, epochs=epochs, max_train_windows=max_train or None, max_valid_windows=max_valid,
                       seed=seed, num_threads=threads, ema_decay=ema_decay, **(overrides or {}))
    train_dir = workdir / (f"{preset}_{line}_train_{arch}" + (f"_seed{seed}" if seed else "")
                           + (f"_ema{ema_decay:g}" if ema_decay else "")
                           + (f"_valid{max_valid}" if max_valid != 4_000 else "")
                           + "".join(f"_{k}{'-'.join(map(str, v)) if isinstance(v, tuple) else v}"
                                     for k, v in sorted((overrides or {}).items())))
    t0 = time.perf_counter()
    summary = train_model(df, meta, src, tcfg, train_dir)
    train_s = time.perf_counter() - t0
    net, spec = load_model(train_dir / "model.pt")
    # the scored windows are drawn here, so that the oracle scores exactly the windows the model and the PWM do
    test = df.filter(pl.col("split") == "test")
    n_test_all = len(test)
    if max_test and len(test) > max_test:
        test = test[np.sort(np.random.default_rng(0).choice(len(test), max_test, replace=False))]
    t0 = time.perf_counter()
    table = evaluate_model(net, spec, test, src, EvaluateConfig(seed=0), workdir / "eval", model_name=line)
    eval_s = time.perf_counter() - t0
    chroms, starts, labels = windows_arrays(test, list(spec.tf_names))
    oracle = oracle_scores(sim, line, chroms, starts, spec.window, list(spec.tf_names))
    is_open = open_window_mask(window_mean_accessibility(src, chroms, starts, spec.window))
    from scfan.bulk.data import predict_windows

    probs = predict_windows(net, spec, src, chroms, starts)  # evaluate_model keeps its predictions to itself
    loc = localisation(site_distances(sim, line, chroms, starts, spec.window, list(spec.tf_names)), labels, probs,
                       oracle)
    oracle_rows = []
    for j, tf in enumerate(spec.tf_names):
        m, mo = binary_metrics(labels[:, j], oracle[:, j]), binary_metrics(labels[is_open, j], oracle[is_open, j])
        oracle_rows.append({"tf": tf, "method": "oracle", **m, "auroc_open": mo["auroc"], "auprc_open": mo["auprc"]})
    learner_s = None
    if motif_learner:
        t0 = time.perf_counter()
        learned = motif_learner_scores(src, df.filter(pl.col("split") == "train"), chroms, starts, spec.window,
                                       list(spec.tf_names), dict(spec.motifs), seed)
        learner_s = time.perf_counter() - t0
        for j, tf in enumerate(spec.tf_names):
            if np.isnan(learned[:, j]).all():
                continue
            m = binary_metrics(labels[:, j], learned[:, j])
            mo = binary_metrics(labels[is_open, j], learned[is_open, j])
            oracle_rows.append({"tf": tf, "method": "motif_learner", **m, "auroc_open": mo["auroc"],
                                "auprc_open": mo["auprc"]})
    if learner_truth_open:
        # the same learner told the true openness of the line's elements: the most a perfect ATAC track could add
        learned = motif_learner_scores(src, df.filter(pl.col("split") == "train"), chroms, starts, spec.window,
                                       list(spec.tf_names), dict(spec.motifs), seed,
                                       extra=lambda c, s: truth_openness(sim, line, c, s, spec.window))
        for j, tf in enumerate(spec.tf_names):
            if np.isnan(learned[:, j]).all():
                continue
            m = binary_metrics(labels[:, j], learned[:, j])
            mo = binary_metrics(labels[is_open, j], learned[is_open, j])
            oracle_rows.append({"tf": tf, "method": "learner_true_open", **m, "auroc_open": mo["auroc"],
                                "auprc_open": mo["auprc"]})
    return {"preset": preset, "line": line, "arch": arch, "n_windows": len(df),
            "table": table.to_dicts() + oracle_rows,
            "train": summary, "train_s": train_s, "eval_s": eval_s, "train_config": tcfg, "max_test": max_test,
            "n_test": len(test), "n_test_all": n_test_all, "localisation": loc, "learner_s": learner_s}


def real_sequence_only(quick: bool, threads: int | None = None) -> dict:
    from scfan.bulk.seqonly import SeqOnlyConfig, sequence_only_experiment

    fasta = REPO.parent / "shared" / "data" / "chip_sequences" / "ctcf_gm12878.fa"
    out = {}
    for arch, epochs in (("small", 8),) if quick else (("small", 12), ("full", 12)):
        t0 = time.perf_counter()
        res = sequence_only_experiment(fasta, SeqOnlyConfig(arch=arch, epochs=epochs, seed=0, num_threads=threads))
        out[arch] = {**res, "epochs": epochs, "seconds": time.perf_counter() - t0}
    return out


# ------------------------------------------------------------------------------------------------------ report


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _mean(values) -> float:
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")


def accuracy_section(acc: dict) -> list[str]:
    """Per-TF table (model, PWM, oracle; all and open windows), means, and the issue's goals checked."""
    rows = acc["table"]
    tfs = sorted({r["tf"] for r in rows})
    by = {(r["tf"], r["method"]): r for r in rows}
    tc = acc["train_config"]
    lines = [f"## Accuracy on the simulator's `{acc['preset']}` preset (line {acc['line']}, {acc['arch']} model)", "",
             f"{acc['n_windows']} windows; training {acc['train']['epochs_run']} epoch(s) (best "
             f"{acc['train']['best_epoch']}, selected on validation mean AUPRC; seed {tc.seed}), "
             + (f"at most {tc.max_train_windows} windows" if tc.max_train_windows else
                f"every positive window and {tc.neg_ratio:g}× as many negatives")
             + f" per epoch, sampler {tc.sampler} (hard share {tc.hard_frac}), motif-initialised filters "
             f"{'yes' if tc.motif_init else 'no'}, motif branch learning at {tc.motif_lr_mult:g}× lr, "
             f"{acc['train_s']:.0f} s; test chromosomes scored "
             + (f"on a uniform subsample of {acc['n_test']} of {acc['n_test_all']} windows"
                if acc["n_test"] < acc["n_test_all"] else f"on all {acc['n_test']} windows")
             + f" in {acc['eval_s']:.0f} s.", "",
             f"Oracle: a window scores exp(-d / {ORACLE_DECAY_BP:g} bp) for a TF, d the distance from the window to "
             "the nearest centre of a site of that TF bound in this line (simulator truth; 0 inside), plus 0.01 × the "
             "line's accessibility of the regulatory elements it overlaps; it is scored against the same ChIP-derived "
             "labels, so its AUPRC is (a lower bound of) the ceiling those labels allow. "
             "*open*: windows whose mean normalised bulk accessibility is above the median of the scored windows.", "",
             "| TF | n_pos | AUROC model | AUROC PWM | AUROC oracle | AUPRC model | AUPRC PWM | AUPRC oracle | "
             "model / oracle | recall@10%FDR model | recall@10%FDR oracle | open AUROC model | open AUROC PWM | "
             "open AUPRC model | open AUPRC PWM | open AUPRC oracle |", "|---|" + "---|" * 15]
    for tf in tfs:
        m, p, o = by.get((tf, "scfan"), {}), by.get((tf, "pwm"), {}), by.get((tf, "oracle"), {})
        ratio = (m.get("auprc") or np.nan) / o["auprc"] if o.get("auprc") else np.nan
        lines.append(f"| {tf} | {m.get('n_pos')} | {_fmt(m.get('auroc'))} | {_fmt(p.get('auroc', '–'))} | "
                     f"{_fmt(o.get('auroc'))} | {_fmt(m.get('auprc'))} | {_fmt(p.get('auprc', '–'))} | "
                     f"{_fmt(o.get('auprc'))} | {ratio:.2f} | {_fmt(m.get('recall_at_10fdr'))} | "
                     f"{_fmt(o.get('recall_at_10fdr'))} | {_fmt(m.get('auroc_open'))} | "
                     f"{_fmt(p.get('auroc_open', '–'))} | {_fmt(m.get('auprc_open'))} | "
                     f"{_fmt(p.get('auprc_open', '–'))} | {_fmt(o.get('auprc_open'))} |")
    mean = {(meth, c): _mean([by[(tf, meth)].get(c) for tf in tfs if (tf, meth) in by])
            for meth in ("scfan", "pwm", "oracle") for c in ("auroc", "auprc", "auroc_open", "auprc_open")}
    ratio = mean[("scfan", "auprc")] / mean[("oracle", "auprc")]
    lines += [f"| **mean** | | **{mean[('scfan', 'auroc')]:.3f}** | {mean[('pwm', 'auroc')]:.3f} | "
              f"{mean[('oracle', 'auroc')]:.3f} | **{mean[('scfan', 'auprc')]:.3f}** | {mean[('pwm', 'auprc')]:.3f} | "
              f"{mean[('oracle', 'auprc')]:.3f} | **{ratio:.2f}** | | | {mean[('scfan', 'auroc_open')]:.3f} | "
              f"{mean[('pwm', 'auroc_open')]:.3f} | "
              f"{mean[('scfan', 'auprc_open')]:.3f} | {mean[('pwm', 'auprc_open')]:.3f} | "
              f"{mean[('oracle', 'auprc_open')]:.3f} |", ""]
    sc = [by[(tf, "scfan")] for tf in tfs]
    pw = {tf: by[(tf, "pwm")] for tf in tfs if (tf, "pwm") in by}
    goals = [
        ("mean AUROC ≥ 0.97", mean[("scfan", "auroc")] >= 0.97,
         f"{mean[('scfan', 'auroc')]:.3f} (oracle {mean[('oracle', 'auroc')]:.3f})"),
        ("mean AUPRC ≥ 3 × PWM's", mean[("scfan", "auprc")] >= 3 * mean[("pwm", "auprc")],
         f"{mean[('scfan', 'auprc')]:.3f} vs 3 × {mean[('pwm', 'auprc')]:.3f}"),
        ("mean AUPRC ≥ 0.7 × oracle's", ratio >= 0.7, f"{ratio:.2f}"),
        ("recall at 10 % FDR > 0 for every TF", all((r.get("recall_at_10fdr") or 0) > 0 for r in sc),
         f"{sum((r.get('recall_at_10fdr') or 0) > 0 for r in sc)} of {len(sc)} TFs (oracle: "
         f"{sum((by[(r['tf'], 'oracle')].get('recall_at_10fdr') or 0) > 0 for r in sc if (r['tf'], 'oracle') in by)})"),
        ("open-chromatin AUROC above the PWM's for every TF",
         all((r.get("auroc_open") or 0) > (pw[r["tf"]].get("auroc_open") or 1) for r in sc if r["tf"] in pw),
         f"{sum((r.get('auroc_open') or 0) > (pw[r['tf']].get('auroc_open') or 1) for r in sc if r['tf'] in pw)} "
         f"of {len(pw)} TFs"),
    ]
    title = acc.get("goals_title", "Goals of issue 9 (bench preset, small model, 2 CPU cores)")
    lines += [title + ":", "", "| goal | met | measured |",
              "|---|---|---|"]
    lines += [f"| {g} | {'yes' if ok else '**no**'} | {v} |" for g, ok, v in goals]
    lines.append("")
    lines += learner_lines(acc, by, tfs)
    if acc.get("localisation"):
        lines += localisation_lines(acc["localisation"])
    return lines


def learner_lines(acc: dict, by: dict, tfs: list[str]) -> list[str]:
    """The motif learner beside the model and the oracle (only when the run fitted it)."""
    have = [tf for tf in tfs if (tf, "motif_learner") in by]
    if not have:
        return []
    lines = [f"**Motif learner** (`--motif-learner`, {acc.get('learner_s') or 0:.0f} s): gradient-boosted trees per TF "
             "on what a sequence reader can see — the best log-odds score of each TF's JASPAR matrix (the matrices "
             "the simulator plants its sites from) in distance bins 0–50, …, 300–400 bp from the window's centre, and "
             "the accessibility over the central 200, 400 and 800 bp — fitted on the training chromosomes (every "
             "positive window and twice as many uniform negatives, unweighted). It knows nothing the model could "
             "not; the oracle knows where the bound sites are. Their gap is what the inputs do not tell.", "",
             "| TF | AUROC model | AUROC learner | AUROC oracle | AUPRC model | AUPRC learner | AUPRC oracle | "
             "model / learner (AUPRC) | learner / oracle (AUPRC) |", "|---|" + "---|" * 8]
    for tf in have + ["**mean**"]:
        if tf == "**mean**":
            m, le, o = ({c: _mean([by[(t, meth)].get(c) for t in have]) for c in ("auroc", "auprc")}
                        for meth in ("scfan", "motif_learner", "oracle"))
        else:
            m, le, o = by[(tf, "scfan")], by[(tf, "motif_learner")], by[(tf, "oracle")]
        lines.append(f"| {tf} | {_fmt(m.get('auroc'))} | {_fmt(le.get('auroc'))} | {_fmt(o.get('auroc'))} | "
                     f"{_fmt(m.get('auprc'))} | {_fmt(le.get('auprc'))} | {_fmt(o.get('auprc'))} | "
                     f"{m['auprc'] / le['auprc']:.2f} | {le['auprc'] / o['auprc']:.2f} |")
    lines.append("")
    both = [tf for tf in have if (tf, "learner_true_open") in by]
    if both:
        lines += ["**The learner told the true openness** (`--learner-true-open`): the same trees with three more "
                  "features, the simulator's own accessibility in this line of the most open regulatory element "
                  "within 100, 200 and 400 bp of the window's centre (`truth/open_regions.parquet`) — what a perfect "
                  "ATAC track could add. What it still misses is what no reader of these inputs can know (planted "
                  "sites with weak motifs, occluded sites, open decoys).", "",
                  "| TF | AUROC learner | AUROC learner + true openness | AUROC oracle | AUPRC learner | "
                  "AUPRC learner + true openness | AUPRC oracle | + true openness / oracle (AUPRC) |",
                  "|---|" + "---|" * 7]
        for tf in both + ["**mean**"]:
            rows = ("motif_learner", "learner_true_open", "oracle")
            if tf == "**mean**":
                le, lt, o = ({c: _mean([by[(t, meth)].get(c) for t in both]) for c in ("auroc", "auprc")}
                             for meth in rows)
            else:
                le, lt, o = (by[(tf, meth)] for meth in rows)
            lines.append(f"| {tf} | {_fmt(le.get('auroc'))} | {_fmt(lt.get('auroc'))} | {_fmt(o.get('auroc'))} | "
                         f"{_fmt(le.get('auprc'))} | {_fmt(lt.get('auprc'))} | {_fmt(o.get('auprc'))} | "
                         f"{lt['auprc'] / o['auprc']:.2f} |")
        lines.append("")
    return lines


def throughput_lines(rows: list[dict]) -> list[str]:
    """The training / prediction throughput table (rows from :func:`throughput`)."""
    return ["| model | device | AMP | training windows/s | prediction windows/s |", "|---|---|---|---|---|",
            *(f"| {r['arch']} | {r['device']} | {'yes' if r['amp'] else 'no'} | {r['train_windows_per_s']:,.0f} | "
              f"{r['predict_windows_per_s']:,.0f} |" for r in rows)]


def write_report(path: Path, lines: list[str]) -> str:
    """Write the Markdown report atomically (folder created); returns its text."""
    from scfan._io import write_text

    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text)
    return text


def report(path: Path, args, thr: list[dict] | None, acc: dict | None, seq: dict | None) -> str:
    lines = ["# Bulk-stage benchmark", "", f"Machine: {machine()}", "",
             f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`", ""]
    if acc is not None:
        lines += accuracy_section(acc)
    if seq is not None:
        lines += ["## Real data: sequence-only scFANet on GM12878 CTCF peaks (ENCODE, hg19)", "",
                  "500 peak sequences (summit ± 100 bp) vs one dinucleotide shuffle each; 20 % of the peaks held out "
                  "before shuffling.", "", "| model | epochs | held-out AUROC | held-out AUPRC | n_test | seconds |",
                  "|---|---|---|---|---|---|"]
        for arch, r in seq.items():
            lines.append(f"| {arch} | {r['epochs']} | {r['auroc']:.3f} | {r['auprc']:.3f} | {r['n_test']} | "
                         f"{r['seconds']:.0f} |")
        lines.append("")
    if thr is None:
        return write_report(path, lines)
    lines += ["## Throughput (windows of 1,000 bp, 6 channels, 16 TFs, batch 100)", "",
              "Measured side by side in this run; training = forward + backward + Adam step; prediction = forward and "
              "reverse-complement passes (what `predict_batches` does).", "", *throughput_lines(thr)]
    cpu = {r["arch"]: r for r in thr if r["device"] == "cpu"}
    if "small" in cpu and "full" in cpu:
        lines += ["", f"Full-size vs small model on this CPU: training "
                  f"{cpu['small']['train_windows_per_s'] / cpu['full']['train_windows_per_s']:.1f}× slower."]
    if not torch.cuda.is_available():
        lines += ["", "No GPU on this machine: the CUDA rows (fp32 vs AMP) appear when the script runs where "
                  "`torch.cuda.is_available()`; `--throughput-only` needs only torch, numpy and scfan."]
    return write_report(path, lines)


def train_overrides(options: list[str]) -> dict:
    """``FIELD=VALUE`` strings as TrainConfig keyword arguments, each value parsed as the field's default is typed."""
    import dataclasses

    from scfan.bulk.train_config import TrainConfig

    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    out = {}
    for opt in options:
        key, sep, value = opt.partition("=")
        if not sep or key not in defaults:
            raise SystemExit(f"--train-option {opt!r}: expected FIELD=VALUE with a TrainConfig field")
        if key == "motif_knots":  # comma-separated hinge points; empty for none
            out[key] = tuple(float(v) for v in value.split(",") if v)
            continue
        kind = type(defaults[key]) if defaults[key] is not None else float
        out[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="test preset, small model, few batches (a smoke run)")
    ap.add_argument("--throughput-only", action="store_true", help="only the throughput table (torch + numpy)")
    ap.add_argument("--workdir", type=Path, default=HERE / "out" / "bulk")
    ap.add_argument("--sim-dir", type=Path, default=None, help="existing `scfan simulate --preset bench` output")
    ap.add_argument("--preset", choices=["bench", "test"], default="bench", help="simulator preset to train on")
    ap.add_argument("--arch", choices=["small", "full"], default="small", help="small: the CPU default")
    ap.add_argument("--epochs", type=int, default=20, help="maximum epochs (`scfan bulk train`'s default)")
    ap.add_argument("--max-train-windows", type=int, default=0, help="cap on training windows per epoch (0: every "
                    "positive window and as many negatives, `scfan bulk train`'s default)")
    ap.add_argument("--max-test-windows", type=int, default=0, help="score a uniform subsample of this many test "
                    "windows (0: all)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_bulk.md")
    ap.add_argument("--seed", type=int, default=0, help="training seed (sampler, initialisation, augmentation)")
    ap.add_argument("--ema-decay", type=float, default=0.0, help="`bulk train --ema-decay` (0: no weight average)")
    ap.add_argument("--max-valid-windows", type=int, default=4_000, help="validation subset for model selection")
    ap.add_argument("--train-option", action="append", default=[], metavar="FIELD=VALUE",
                    help="another TrainConfig field for an ablation, e.g. lr=5e-4 (repeatable)")
    ap.add_argument("--accuracy-only", action="store_true", help="only the simulated accuracy table")
    ap.add_argument("--learner-true-open", action="store_true",
                    help="with --motif-learner, also fit it with the simulator's true openness of the line's "
                         "regulatory elements as features (what a perfect ATAC track could add)")
    ap.add_argument("--motif-learner", action="store_true", help="also fit the motif learner (gradient-boosted trees "
                    "on the TFs' JASPAR scores by distance and the accessibility: what the observable inputs allow; "
                    "a few minutes)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own, at most 8 "
                    "for training)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.workdir.mkdir(parents=True, exist_ok=True)
    thr = None if args.accuracy_only else throughput_table(args.quick)
    acc = seq = None
    if not args.throughput_only:
        seq = None if args.accuracy_only else real_sequence_only(args.quick, args.threads)
        acc = simulated_accuracy(args.workdir, args.quick, 2 if args.quick else args.epochs,
                                 2000 if args.quick else args.max_train_windows,
                                 3000 if args.quick else args.max_test_windows, args.sim_dir, args.preset, args.arch,
                                 args.threads, args.seed, args.ema_decay, args.max_valid_windows,
                                 train_overrides(args.train_option), args.motif_learner,
                                 args.motif_learner and args.learner_true_open)
    print(report(args.out, args, thr, acc, seq))


if __name__ == "__main__":
    main()
