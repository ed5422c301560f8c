"""Per-TF evaluation on held-out chromosomes (AUROC, AUPRC, recall at fixed FDR, best F1) against a PWM baseline.

Beside the plain metrics, AUROC and AUPRC restricted to the windows open in the line's bulk ATAC show whether a model
knows which TF binds, not only where chromatin is open (see :func:`open_window_mask` for the rule).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from scfan import __version__
from scfan._io import atomic_path, write_json
from scfan.bulk.data import InputSource, predict_windows, window_mean_accessibility, windows_arrays
from scfan.bulk.inputs import codes_to_onehot
from scfan.bulk.model import ModelSpec
from scfan.bulk.pwm import jaspar_counts, log_odds, max_pwm_scores, motif_for_tf
from scfan.errors import ScfanError
from scfan.intervals import validate

log = logging.getLogger(__name__)

METRIC_COLUMNS = ["model", "tf", "method", "auroc", "auprc", "recall_at_10fdr", "recall_at_5fdr", "f1_best",
                  "threshold_best", "n_pos", "n_neg", "auroc_open", "auprc_open", "n_pos_open", "n_neg_open", "note"]
_FLOAT_COLUMNS = ["auroc", "auprc", "recall_at_10fdr", "recall_at_5fdr", "f1_best", "threshold_best", "auroc_open",
                  "auprc_open"]
_INT_COLUMNS = ["n_pos", "n_neg", "n_pos_open", "n_neg_open"]


@dataclass(frozen=True)
class EvaluateConfig:
    """Parameters of ``scfan bulk evaluate``."""

    split: str = "test"
    batch_size: int = 256
    pwm_baseline: bool = True
    #: Score a uniform random subsample of this many windows of the split (keeps AUROC and AUPRC unbiased);
    #: ``None`` scores every window.
    max_windows: int | None = None
    seed: int = 0


def recall_at_fdr(precision: np.ndarray, recall: np.ndarray, fdr: float) -> float:
    """Highest recall reachable with precision ≥ 1 − ``fdr`` (0 when never reached)."""
    ok = precision >= 1.0 - fdr
    return float(recall[ok].max()) if ok.any() else 0.0


def binary_metrics(y: np.ndarray, score: np.ndarray) -> dict:
    """AUROC, AUPRC, recall at 10 % / 5 % FDR, best F1 and its threshold for one task."""
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        nan = float("nan")
        return {"auroc": nan, "auprc": nan, "recall_at_10fdr": nan, "recall_at_5fdr": nan, "f1_best": nan,
                "threshold_best": nan, "n_pos": n_pos, "n_neg": n_neg}
    prec, rec, thr = precision_recall_curve(y, score)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0.0)[:-1]
    best = int(np.argmax(f1))
    return {"auroc": float(roc_auc_score(y, score)), "auprc": float(average_precision_score(y, score)),
            "recall_at_10fdr": recall_at_fdr(prec, rec, 0.10), "recall_at_5fdr": recall_at_fdr(prec, rec, 0.05),
            "f1_best": float(f1[best]), "threshold_best": float(thr[best]), "n_pos": n_pos, "n_neg": n_neg}


def missing_class_note(n_pos: int, n_neg: int, split: str, subset: str = "") -> str | None:
    """Why metrics are NaN (no positive or no negative window), or ``None`` when both classes are present."""
    where = f"{subset} windows of split {split!r}" if subset else f"split {split!r}"
    if n_pos == 0:
        return f"no positive window in {where}"
    if n_neg == 0:
        return f"no negative window in {where}"
    return None


def open_window_mask(accessibility: np.ndarray) -> np.ndarray:
    """Windows open in the bulk ATAC: mean normalised accessibility strictly above the median over the given windows.

    ``accessibility`` holds one value per scored window (its mean normalised accessibility over the labelled window,
    not the whole model context). The median is taken over the windows being scored, so about half of them count as
    open; ties at the median (e.g. many windows with no insertion) count as closed.
    """
    accessibility = np.asarray(accessibility, dtype=np.float64)
    if not len(accessibility):
        return np.zeros(0, dtype=bool)
    return accessibility > np.median(accessibility)


def _metrics_schema():
    import pandera.polars as pa

    return pa.DataFrameSchema({
        "model": pa.Column(pl.Utf8), "tf": pa.Column(pl.Utf8), "method": pa.Column(pl.Utf8, pa.Check.isin(
            ["scfan", "pwm"])),
        **{c: pa.Column(pl.Float64, nullable=True) for c in METRIC_COLUMNS[3:9]},
        "n_pos": pa.Column(pl.Int64), "n_neg": pa.Column(pl.Int64),
        "auroc_open": pa.Column(pl.Float64, nullable=True), "auprc_open": pa.Column(pl.Float64, nullable=True),
        "n_pos_open": pa.Column(pl.Int64, nullable=True), "n_neg_open": pa.Column(pl.Int64, nullable=True),
        "note": pa.Column(pl.Utf8, nullable=True)}, strict=True, ordered=True)


def pwm_scores(src: InputSource, chroms: np.ndarray, starts: np.ndarray, window: int, motif_id: str) -> np.ndarray:
    """Max JASPAR log-odds inside each window (the PWM baseline's score)."""
    pwm = log_odds(jaspar_counts(motif_id))
    flat = src.layout.flat_starts(chroms, starts)
    out = []
    for i in range(0, len(flat), 8192):
        out.append(max_pwm_scores(codes_to_onehot(src.code_rows(flat[i : i + 8192], window)), pwm))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def plot_curves(path: Path, kind: str, curves: dict[str, list[tuple[str, np.ndarray, np.ndarray, float]]]) -> None:
    """One panel per TF with the scFAN and PWM curves overlaid; ``kind`` is ``roc`` or ``pr``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(curves)
    ncol = min(n, 4)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.4 * nrow), squeeze=False)
    for ax, (tf, lines) in zip(axes.flat, curves.items(), strict=False):
        for method, x, y, area in lines:
            ax.plot(x, y, label=f"{method} ({'AUROC' if kind == 'roc' else 'AUPRC'} {area:.3f})", lw=1.5)
        if kind == "roc":
            ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
            ax.set_xlabel("false positive rate")
            ax.set_ylabel("true positive rate")
        else:
            ax.set_xlabel("recall")
            ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title(tf)
        ax.legend(loc="lower right" if kind == "roc" else "upper right", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def evaluate_model(model, spec: ModelSpec, windows: pl.DataFrame, src: InputSource, cfg: EvaluateConfig,
                   outdir: str | Path, model_name: str = "scfan") -> pl.DataFrame:
    """Score the chosen split, compute metrics for the model and the PWM baseline, write TSV + plots + JSON."""
    outdir = Path(outdir)
    df = windows.filter(pl.col("split") == cfg.split)
    if not len(df):
        raise ScfanError(f"no windows in split {cfg.split!r}")
    if cfg.max_windows is not None and len(df) > cfg.max_windows:
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(df), cfg.max_windows, replace=False))
        log.info("scoring a uniform subsample of %d of %d %s windows", cfg.max_windows, len(df), cfg.split)
        df = df[keep]
    tf_names = list(spec.tf_names)
    missing = [t for t in tf_names if t not in df.columns]
    if missing:
        raise ScfanError(f"the windows table lacks label column(s) {', '.join(missing)} of the model")
    chroms, starts, labels = windows_arrays(df, tf_names, np.uint8)  # 1 byte a label; one TF as float32 at a time
    probs = predict_windows(model, spec, src, chroms, starts, cfg.batch_size)
    is_open = None
    if src.uses_tracks:
        is_open = open_window_mask(window_mean_accessibility(src, chroms, starts, spec.window))
        log.info("%d of %d %s windows open (mean accessibility above the median)", int(is_open.sum()), len(df),
                 cfg.split)
    rows, roc, pr = [], {}, {}
    for j, tf in enumerate(tf_names):
        y = labels[:, j].astype(np.float32)
        n_pos = int(y.sum())
        note = missing_class_note(n_pos, len(y) - n_pos, cfg.split)
        if note is not None:
            log.warning("%s: %s; its metrics are written as NaN", tf, note)
        open_note = None
        if is_open is None:
            open_note = "no ATAC track (sequence-only model): no open-chromatin metrics"
        elif note is None:
            n_pos_open = int(y[is_open].sum())
            open_note = missing_class_note(n_pos_open, int(is_open.sum()) - n_pos_open, cfg.split, "open")
            if open_note is not None:
                log.warning("%s: %s; its open-chromatin metrics are written as NaN", tf, open_note)
        row_note = "; ".join(n for n in (note, open_note) if n) or None
        scored = [("scfan", probs[:, j])]
        motif = motif_for_tf(tf, spec.motifs.get(tf)) if cfg.pwm_baseline else None
        if cfg.pwm_baseline and motif is None:
            log.warning("%s: no JASPAR matrix given or found by name; no PWM baseline", tf)
        if motif is not None:
            scored.append(("pwm", pwm_scores(src, chroms, starts, spec.window, motif)))
        roc[tf], pr[tf] = [], []
        for method, s in scored:
            m = binary_metrics(y, s)
            if is_open is None:
                mo = {"auroc": float("nan"), "auprc": float("nan"), "n_pos": None, "n_neg": None}
            else:
                mo = binary_metrics(y[is_open], s[is_open])
            rows.append({"model": model_name, "tf": tf, "method": method, **m, "auroc_open": mo["auroc"],
                         "auprc_open": mo["auprc"], "n_pos_open": mo["n_pos"], "n_neg_open": mo["n_neg"],
                         "note": row_note})
            if m["n_pos"] and m["n_neg"]:
                fpr, tpr, _ = roc_curve(y, s)
                p, r, _ = precision_recall_curve(y, s)
                roc[tf].append((method, fpr, tpr, m["auroc"]))
                pr[tf].append((method, r, p, m["auprc"]))
    table = pl.DataFrame(rows, schema={c: (pl.Int64 if c in _INT_COLUMNS else pl.Float64 if c in _FLOAT_COLUMNS
                                           else pl.Utf8) for c in METRIC_COLUMNS})
    table = validate(_metrics_schema(), table, outdir / "metrics.tsv")
    with atomic_path(outdir / "metrics.tsv") as tmp:
        table.write_csv(tmp, separator="\t", float_precision=6)
    plot_curves(outdir / "roc.png", "roc", roc)
    plot_curves(outdir / "pr.png", "pr", pr)
    # means over the TFs with both classes present (NaN rows, explained in ``note``, are left out)
    summary = {m: table.filter(pl.col("method") == m).fill_nan(None).select(
        *(pl.col(c).mean().alias(f"mean_{c}") for c in ("auroc", "auprc", "auroc_open", "auprc_open"))).to_dicts()[0]
               for m in table["method"].unique().sort().to_list()}
    write_json(outdir / "evaluate.json", {"config": asdict(cfg), "n_windows": len(df), "summary": summary,
                                          "package_version": __version__})
    for m, s in summary.items():
        log.info("%s: mean AUROC %s, mean AUPRC %s (open windows: AUROC %s, AUPRC %s) on %d %s windows", m,
                 *(_fmt(s[f"mean_{c}"]) for c in ("auroc", "auprc", "auroc_open", "auprc_open")), len(df), cfg.split)
    return table
