"""The sections on the run itself: the cells (QC per sample, the inference summary), the software and parameters
(with the numerics of per-cell inference and the window sample), and the header's one-line summary."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from scfan.report.figures import qc_plot
from scfan.report.inputs import params_or_empty, read_params, read_versions
from scfan.report.markup import Section, html_table, img_tag


def _activity_info(activity: Path) -> dict:
    """``uns['scfan_activity']`` of a ``tf_activity.h5ad`` (what per-cell inference recorded), ``{}`` when absent."""
    import anndata as ad

    info = ad.read_h5ad(activity, backed="r").uns.get("scfan_activity", {})
    return info if isinstance(info, dict) else {}


def cells_section(cells: Path | None, activity: Path | None) -> Section:
    """QC per sample (cells, median fragments and fraction in peaks, histograms) from ``cells``, and the inference
    summary (cells × TFs, mode, scored windows) from ``activity``; left off when neither is given."""
    import anndata as ad

    title = "Cells"
    if cells is None and activity is None:
        return Section("qc", title, missing="no --cells or --activity given")
    body = ""
    if cells is not None:
        obs = ad.read_h5ad(cells, backed="r").obs.copy()
        per = obs.groupby("sample", observed=True).agg(
            cells=("n_fragments", "size"), median_fragments=("n_fragments", "median"),
            median_frac_in_peaks=("frac_in_peaks", "median")).reset_index()
        body += html_table(per) + img_tag(qc_plot(obs), "cell QC histograms")
    if activity is not None:
        act = ad.read_h5ad(activity, backed="r")
        n_empty = int(act.obs["no_scored_windows"].sum()) if "no_scored_windows" in act.obs else 0
        info = act.uns.get("scfan_activity", {})
        cfg = info.get("config", {}) if isinstance(info, dict) else {}
        body += (f"<p>TF activity: {act.n_obs} cells × {act.n_vars} TFs from "
                 f"{html.escape(', '.join(map(str, act.var['model'].unique())))}; inference mode "
                 f"{html.escape(str(cfg.get('mode', '?')))}; median scored windows per cell "
                 f"{float(np.median(act.obs['n_scored_windows'])):.0f}; {n_empty} cell(s) without a scored "
                 f"window (kept, activity zero).</p>")
    missing = "no --cells given" if cells is None else ("no --activity given" if activity is None else None)
    return Section("qc", title, body, missing)


def numerics_table(activity: Path | None) -> pd.DataFrame:
    """Per model: the path asked for, the path that ran and the probe's difference (``uns['scfan_activity']``)."""
    if activity is None:
        return pd.DataFrame()
    info = _activity_info(activity)
    checks = info.get("fast_path_check", {})
    rows = []
    for name, c in checks.items():
        refused = c.get("refused", [])
        refused = [str(r) for r in (refused.tolist() if hasattr(refused, "tolist") else refused)]
        rows.append({"model": name, "asked": c.get("asked"), "ran": c.get("ran"),
                     "max |Δp| on the probe": f"{float(c.get('max_abs_diff', float('nan'))):.2g}",
                     "tolerance": c.get("tolerance"), "device": c.get("device"), "CPU": c.get("cpu"),
                     "refused on this machine": "; ".join(refused) or "none"})
    by_shard = info.get("precision_by_shard", {})
    if rows and len(set(map(str, by_shard.values()))) > 1:
        rows.append({"model": "all", "asked": "", "ran": "mixed: " + ", ".join(
            f"shard {k}: {v}" for k, v in by_shard.items())})
    return pd.DataFrame(rows)


REGRESSION_NOTE = (" Each cell's sample mean was corrected by a regression on a proxy known for all of its windows "
                   "(the models' prediction for the window with the mean accessibility of the cells of its shard "
                   "that score it): the estimator of <code>--infer_window_estimator regression</code>.")


def sampling_note(activity: Path | None) -> str:
    """A paragraph on the window sample the activity was estimated from (``--infer_window_share`` < 1), else ''."""
    if activity is None:
        return ""
    ws = _activity_info(activity).get("window_sampling")
    if not isinstance(ws, dict):
        return ""

    def f(key: str) -> str:
        v = float(ws.get(key, float("nan")))
        return f"{v:.3g}"

    return ("<h3>Activity from a window sample</h3><p class='note'>Each cell's activity was estimated from a random "
            f"share {float(ws['share']):g} of its scored windows (seed {int(ws['seed'])}; the same windows for every "
            f"cell; cells with fewer than {int(ws['min_sampled_windows'])} sampled windows were scored on all of "
            f"theirs): a median {float(ws['median_scored_share']):.0%} of a cell's windows were predicted."
            f"{REGRESSION_NOTE if ws.get('window_estimator') == 'regression' else ''} Standard "
            "errors are in the activity file's layers <code>top_k_freq_se</code>, <code>mean_prob_se</code> and "
            f"<code>frac_bound_se</code>; median standard error {f('median_se_X')} for X (relative "
            f"{f('median_relative_se_X')}), {f('median_se_mean_prob')} for mean_prob (relative "
            f"{f('median_relative_se_mean_prob')}), {f('median_se_frac_bound')} for frac_bound. Per-cluster tracks "
            "score every window.</p>")


NUMERICS_NOTE = ("<h3>Numerics of per-cell inference</h3><p class='note'>What each model ran in, after a probe on the "
                 "machine that ran it against PyTorch's float32 reference kernels (fast paths past their tolerance "
                 "are refused and named).</p>")


def software_section(activity: Path | None, versions: Sequence[Path], params: Path | None) -> Section:
    """What per-cell inference ran in (from ``activity``), the window sample it was estimated from, the software
    versions and the run's parameters; left off when none of them is given."""
    body = ""
    numerics = numerics_table(activity)
    if activity is not None and not numerics.empty:
        body += NUMERICS_NOTE + html_table(numerics)
    body += sampling_note(activity)
    if versions:
        v = read_versions(versions)
        body += "<h3>Software</h3>" + (html_table(v) if not v.empty else "<p>none recorded</p>")
    if params is not None:
        body += "<h3>Parameters</h3>" + html_table(pd.DataFrame(
            [{"parameter": k, "value": json.dumps(v) if not isinstance(v, str) else v}
             for k, v in read_params(params).items()]))
    missing = [opt for opt, value in (("--activity", activity), ("--versions", versions), ("--params", params))
               if not value]
    return Section("software", "Software and parameters", body, f"no {', '.join(missing)} given" if missing else None)


def run_summary(params: Path | None, activity: Path | None) -> str:
    """One line: what data the run was on, and which models."""
    parts = []
    p = params_or_empty(params)
    if p.get("simulate_preset") and not p.get("genome"):
        parts.append(f"data: simulated (preset {p['simulate_preset']}, seed {p.get('seed')})")
    elif p.get("sc_samplesheet"):
        parts.append(f"data: {Path(str(p['sc_samplesheet'])).name} on {Path(str(p.get('genome'))).name}")
    if p.get("models"):
        parts.append(f"pre-trained models: {p['models']}")
    if activity is not None:
        import anndata as ad

        a = ad.read_h5ad(activity, backed="r")
        models = list(dict.fromkeys(map(str, a.var["model"]))) if "model" in a.var else []
        parts.append(f"{a.n_vars} TFs from {len(models)} model(s): {', '.join(models)}")
        a.file.close()
    return " · ".join(parts)
