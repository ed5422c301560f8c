"""``scfan report``: one self-contained HTML page (plots embedded as PNG data URIs, no network) that answers first.

Order of the page: the answer (cell populations with the TFs that drive them, UMAP beside), then how the
clusterings compare (TF activity, chromatin embedding, chromVAR: ARI/NMI against labels when there are labels),
the heatmap of the top differential TFs, per-cell QC, the bulk models' metrics with ROC/PR curves, what the models
learned (motifs discovered in their attributions, matched to JASPAR), why each cluster's TFs are called (the share
of the call resting on accessibility vs sequence), dropped features, software versions and parameters.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scfan.errors import InputFileError, ScfanError

log = logging.getLogger(__name__)

#: Differential features listed per cluster in the answer table.
TOP_TFS = 3
#: A TF is called a driver of a cluster when its BH-adjusted p-value is below this and it is higher in the cluster.
DRIVER_PADJ = 0.05


@dataclass
class Analysis:
    """One ``scfan sc cluster`` output folder."""

    name: str
    folder: Path
    clusters: pd.DataFrame
    diff: pd.DataFrame
    summary: dict
    adata: object = None  # anndata.AnnData of clustered.h5ad (read lazily)

    @classmethod
    def read(cls, name: str, folder: str | Path) -> Analysis:
        folder = Path(folder)
        need = ["clusters.tsv", "differential_tfs.tsv", "cluster.json"]
        for n in need:
            if not (folder / n).is_file():
                raise InputFileError(folder, f"not a `scfan sc cluster` output folder (no {n})")
        try:
            clusters = pd.read_csv(folder / "clusters.tsv", sep="\t", dtype={"cluster": str, "label": str})
            diff = pd.read_csv(folder / "differential_tfs.tsv", sep="\t", dtype={"cluster": str})
            summary = json.loads((folder / "cluster.json").read_text())
        except (ValueError, OSError) as exc:
            raise InputFileError(folder, f"cannot read the cluster output ({exc})") from exc
        return cls(name, folder, clusters, diff, summary)

    def load_adata(self):
        import anndata as ad

        if self.adata is None and (self.folder / "clustered.h5ad").is_file():
            self.adata = ad.read_h5ad(self.folder / "clustered.h5ad")
        return self.adata


@dataclass
class ReportInputs:
    analyses: list[tuple[str, Path]]
    metrics: list[tuple[str, Path]] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)
    interpret: list[tuple[str, Path]] = field(default_factory=list)  # (bulk line, `scfan bulk interpret` folder)
    cell_interpret: Path | None = None  # `scfan sc interpret` folder (why each cluster's TFs are called)
    cells: Path | None = None
    activity: Path | None = None
    versions: list[Path] = field(default_factory=list)
    params: Path | None = None
    drivers: Path | None = None
    title: str = "scFAN-nf report"


# -------------------------------------------------------------------------------------------------------- figures


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(uri: str, alt: str, width: int | None = None) -> str:
    w = f' style="max-width:{width}px"' if width else ""
    return f'<img src="{uri}" alt="{html.escape(alt)}"{w}>'


def _palette(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]


def umap_plot(clusters: pd.DataFrame, column: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    values = clusters[column].astype(str)
    cats = sorted(values.unique(), key=lambda v: (len(v), v))
    colors = _palette(len(cats))
    for c, col in zip(cats, colors, strict=True):
        m = (values == c).to_numpy()
        ax.scatter(clusters["umap1"][m], clusters["umap2"][m], s=6, color=col, label=c, linewidths=0)
        if column == "cluster":
            ax.text(np.median(clusters["umap1"][m]), np.median(clusters["umap2"][m]), c, weight="bold",
                    ha="center", va="center", fontsize=11)
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    ax.legend(markerscale=2.5, fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _png(fig)


def heatmap_plot(an: Analysis, top: int = TOP_TFS) -> str | None:
    """Mean value per cluster of each cluster's top differential features, z-scored across clusters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = an.load_adata()
    if a is None or an.diff.empty:
        return None
    feats: list[str] = []
    for _c, d in an.diff.sort_values("rank").groupby("cluster", sort=False):
        for f in d[d["delta"] > 0]["feature"].head(top):
            if f not in feats and f in a.var_names:
                feats.append(f)
    if not feats:
        return None
    x = a[:, feats].X
    x = np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=float)
    groups = a.obs["leiden"].astype(str).to_numpy()
    order = sorted(np.unique(groups), key=lambda v: (len(v), v))
    means = np.vstack([x[groups == g].mean(axis=0) for g in order])
    z = (means - means.mean(axis=0)) / np.maximum(means.std(axis=0), 1e-12)
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * len(feats) + 2), 0.4 * len(order) + 1.6))
    im = ax.imshow(z, cmap="RdBu_r", vmin=-2, vmax=2, aspect="auto")
    ax.set_xticks(range(len(feats)))
    ax.set_xticklabels(feats, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([f"cluster {g}" for g in order], fontsize=8)
    fig.colorbar(im, ax=ax, label="z-score across clusters", shrink=0.8)
    ax.set_title(f"Top differential TFs per cluster ({an.name})")
    return _png(fig)


def qc_plot(obs: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in ("n_fragments", "frac_in_peaks", "n_peaks") if c in obs.columns]
    fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.2), squeeze=False)
    samples = obs["sample"].astype(str) if "sample" in obs.columns else pd.Series("all", index=obs.index)
    for ax, c in zip(axes[0], cols, strict=True):
        for s in sorted(samples.unique()):
            v = obs.loc[(samples == s).to_numpy(), c].to_numpy(dtype=float)
            if c != "frac_in_peaks":
                v = np.log10(np.maximum(v, 1))
            ax.hist(v, bins=30, alpha=0.55, label=s)
        ax.set_xlabel(("log10 " if c != "frac_in_peaks" else "") + c)
        ax.set_ylabel("cells")
    axes[0][0].legend(fontsize=7, frameon=False)
    fig.suptitle("Cell QC by sample")
    return _png(fig)


def metrics_plot(metrics: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = metrics.copy()
    m["label"] = m["model"].astype(str) + ":" + m["tf"].astype(str)
    labels = list(dict.fromkeys(m["label"]))
    methods = list(dict.fromkeys(m["method"]))
    fig, axes = plt.subplots(1, 2, figsize=(max(6, 0.5 * len(labels) + 3), 3.4))
    width = 0.8 / max(1, len(methods))
    for ax, metric in zip(axes, ("auroc", "auprc"), strict=True):
        for i, meth in enumerate(methods):
            d = m[m["method"] == meth].set_index("label").reindex(labels)
            ax.bar(np.arange(len(labels)) + i * width, d[metric], width, label=meth)
        ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2)
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel(metric.upper())
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=7, frameon=False)
    fig.suptitle("Bulk models on held-out chromosomes")
    return _png(fig)


def comparison_plot(rows: list[dict]) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["ari"] is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(1.3 * len(rows) + 2, 3))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["ari"] for r in rows], 0.4, label="ARI")
    ax.bar(x + 0.2, [r["nmi"] for r in rows], 0.4, label="NMI")
    ax.set_xticks(x)
    ax.set_xticklabels([r["name"] for r in rows], fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("Clusters vs cell labels")
    return _png(fig)


# ----------------------------------------------------------------------------------------------------- the tables


def answer_table(an: Analysis, drivers: pd.DataFrame | None) -> pd.DataFrame:
    """One row per cluster: size, majority label (share), top TFs higher in the cluster (padj < 0.05)."""
    cl = an.clusters
    rows = []
    for c, d in cl.groupby("cluster", sort=False):
        row = {"cluster": c, "cells": len(d)}
        if "label" in d.columns and d["label"].notna().any():
            vc = d["label"].value_counts()
            row["majority label"] = f"{vc.index[0]} ({vc.iloc[0] / len(d):.0%})"
            top_label = vc.index[0]
        else:
            top_label = None
        dd = an.diff[(an.diff["cluster"] == c) & (an.diff["delta"] > 0) & (an.diff["padj"] < DRIVER_PADJ)]
        dd = dd.sort_values("rank")
        row["top TFs (Wilcoxon, BH)"] = ", ".join(
            f"{t} (padj {p:.1e})" for t, p in zip(dd["feature"].head(TOP_TFS), dd["padj"].head(TOP_TFS),
                                                   strict=True)) or "none significant"
        if drivers is not None and top_label is not None:
            ranked = list(dict.fromkeys(an.diff[an.diff["cluster"] == c].sort_values("rank")["tf"]))
            truth = sorted(drivers.loc[drivers["cell_type"] == top_label, "tf"])
            row["true drivers (rank)"] = ", ".join(
                f"{t} ({ranked.index(t) + 1 if t in ranked else '–'})" for t in truth) or "–"
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.sort_values("cluster", key=lambda s: s.astype(int) if s.str.isdigit().all() else s)


def _table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    def fmt(v):
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else floatfmt.format(v)
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>" for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _resolution_details(an) -> str:
    """How the Leiden resolution was chosen, and every resolution of the grid with its clusters and score."""
    s = an.summary
    scan = s.get("resolution_scan") or []
    if not scan:
        return ""
    rows = []
    for r in scan:
        row = {"resolution": r.get("resolution"), "clusters": r.get("n_clusters"),
               "silhouette": "–" if not np.isfinite(float(r.get("silhouette", float("nan")))) else
               f"{float(r['silhouette']):.3f}"}
        if r.get("agreement") is not None:
            row["agreement (mean ARI with the other resolutions)"] = f"{float(r['agreement']):.3f}"
        if "smallest_cluster" in r:
            row["smallest / median cluster (cells)"] = f"{r['smallest_cluster']} / {r['median_cluster_size']:g}"
        if r.get("ari") is not None:
            row["ARI vs labels (not used to choose)"] = f"{float(r['ari']):.3f}"
        row["chosen"] = "✔" if r.get("chosen", r.get("resolution") == s.get("resolution")) else ""
        rows.append(row)
    rule = s.get("resolution_rule") or "highest mean silhouette width"
    nested = ("" if not str(rule).startswith("consensus") else " The consensus rule keeps a clearly separated "
              "partition where there is one, so nested types (families of similar cell types) stay merged.")
    return (f"<details><summary>How the resolution was chosen — {html.escape(str(rule))} — and the alternatives"
            f"</summary>{_table(pd.DataFrame(rows))}<p class='note'>No rule sees the labels. Fix the resolution with "
            f"<code>--cluster_resolution</code> where another partition of the table fits what you know of the "
            f"cells.{nested} How the rules compare: benchmarks/results/bench_resolution.md.</p></details>")


def _numerics_table(activity) -> pd.DataFrame:
    """Per model: the path asked for, the path that ran and the probe's difference (``uns['scfan_activity']``)."""
    if activity is None:
        return pd.DataFrame()
    import anndata as ad

    info = ad.read_h5ad(activity, backed="r").uns.get("scfan_activity", {})
    checks = info.get("fast_path_check", {}) if isinstance(info, dict) else {}
    rows = []
    for name, c in checks.items():
        refused = c.get("refused", [])
        refused = [str(r) for r in (refused.tolist() if hasattr(refused, "tolist") else refused)]
        rows.append({"model": name, "asked": c.get("asked"), "ran": c.get("ran"),
                     "max |Δp| on the probe": f"{float(c.get('max_abs_diff', float('nan'))):.2g}",
                     "tolerance": c.get("tolerance"), "device": c.get("device"), "CPU": c.get("cpu"),
                     "refused on this machine": "; ".join(refused) or "none"})
    by_shard = info.get("precision_by_shard", {}) if isinstance(info, dict) else {}
    if rows and len(set(map(str, by_shard.values()))) > 1:
        rows.append({"model": "all", "asked": "", "ran": "mixed: " + ", ".join(
            f"shard {k}: {v}" for k, v in by_shard.items())})
    return pd.DataFrame(rows)


def _sampling_note(activity) -> str:
    """A paragraph on the window sample the activity was estimated from (``--infer_window_share`` < 1), else ''."""
    if activity is None:
        return ""
    import anndata as ad

    info = ad.read_h5ad(activity, backed="r").uns.get("scfan_activity", {})
    ws = info.get("window_sampling") if isinstance(info, dict) else None
    if not isinstance(ws, dict):
        return ""

    def f(key: str) -> str:
        v = float(ws.get(key, float("nan")))
        return f"{v:.3g}"

    return ("<h3>Activity from a window sample</h3><p class='note'>Each cell's activity was estimated from a random "
            f"share {float(ws['share']):g} of its scored windows (seed {int(ws['seed'])}; the same windows for every "
            f"cell; cells with fewer than {int(ws['min_sampled_windows'])} sampled windows were scored on all of "
            f"theirs): a median {float(ws['median_scored_share']):.0%} of a cell's windows were predicted. Standard "
            "errors are in the activity file's layers <code>top_k_freq_se</code>, <code>mean_prob_se</code> and "
            f"<code>frac_bound_se</code>; median standard error {f('median_se_X')} for X (relative "
            f"{f('median_relative_se_X')}), {f('median_se_mean_prob')} for mean_prob (relative "
            f"{f('median_relative_se_mean_prob')}), {f('median_se_frac_bound')} for frac_bound. Per-cluster tracks "
            "score every window.</p>")


def _versions(paths: list[Path]) -> pd.DataFrame:
    import yaml

    data: dict = {}
    for path in paths:
        try:
            block = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputFileError(path, f"cannot read versions YAML ({exc.__class__.__name__})") from exc
        if not isinstance(block, dict):
            raise InputFileError(path, "expected a versions.yml mapping of process → {tool: version}")
        data.update(block)
    seen: dict[tuple[str, str], list[str]] = {}
    for proc, tools in data.items():
        if not isinstance(tools, dict):
            continue
        for tool, ver in tools.items():
            if tool.endswith("_python"):
                continue
            seen.setdefault((str(tool), str(ver)), []).append(str(proc).split(":")[-1])
    rows = [{"software": t, "version": v, "processes": ", ".join(sorted(set(p)))} for (t, v), p in seen.items()]
    return pd.DataFrame(rows).sort_values(["software", "version"]) if rows else pd.DataFrame()


# ------------------------------------------------------------------------------------------------------ assembly

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1d2430;background:#fff}
header{background:#1f3b57;color:#fff;padding:14px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;font-size:13px;opacity:.85}nav{padding:6px 28px;background:#eef2f6;font-size:13px}
nav a{margin-right:14px;color:#1f3b57}main{padding:8px 28px 40px}h2{border-bottom:2px solid #dde3ea;
padding-bottom:4px;margin-top:28px}table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #d4dbe3;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f6f9}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}.note{color:#5a6675;font-size:13px}
img{max-width:100%}.kpi{display:inline-block;margin-right:22px;font-size:13px}.kpi b{font-size:18px;display:block}
tr.distrust td{background:#fdecea}.distrust .flag{color:#b3261e;font-weight:bold}.logo img{max-width:240px}
"""


def build_report(inp: ReportInputs) -> str:
    """The report's HTML (one string, every image embedded)."""
    from scfan import __version__

    if not inp.analyses:
        raise ScfanError("report: give at least one --analysis NAME=folder (from `scfan sc cluster`)")
    analyses = [Analysis.read(n, p) for n, p in inp.analyses]
    primary = analyses[0]
    drivers = None
    if inp.drivers is not None:
        drivers = pd.read_csv(inp.drivers, sep="\t")
        if not {"cell_type", "tf"} <= set(drivers.columns):
            raise InputFileError(inp.drivers, "expected columns cell_type and tf", line=1)
    sections: list[tuple[str, str, str]] = []  # (anchor, title, html)

    # --- the answer
    ans = answer_table(primary, drivers)
    figs = [_img(umap_plot(primary.clusters, "cluster", f"Clusters ({primary.name})"), "UMAP by cluster")]
    if "label" in primary.clusters.columns and primary.clusters["label"].notna().any():
        figs.append(_img(umap_plot(primary.clusters, "label", "Cell labels"), "UMAP by label"))
    s = primary.summary
    kpis = [("cells", s["n_cells"]), ("clusters", s["n_clusters"]), ("Leiden resolution", s["resolution"])]
    if s.get("ari") not in (None, ""):
        kpis += [("ARI vs labels", f"{s['ari']:.3f}"), ("NMI vs labels", f"{s['nmi']:.3f}")]
    body = "".join(f'<span class="kpi"><b>{html.escape(str(v))}</b>{html.escape(k)}</span>' for k, v in kpis)
    cfg = s.get("config", {}) if isinstance(s.get("config"), dict) else {}
    rep = f" obsm {cfg['obsm']}" if cfg.get("obsm") else (f" layer {cfg['layer']}" if cfg.get("layer") else "")
    body += (f'<p class="note">Clusters: {html.escape(primary.name)} (Leiden on '
             f'{html.escape(Path(s["source"]).name + rep)}); TFs: '
             f'Wilcoxon rank-sum of {html.escape(Path(s["diff_source"]).name)} in the cluster vs all other cells, '
             f'Benjamini–Hochberg; listed when higher in the cluster with padj &lt; {DRIVER_PADJ}.</p>')
    body += _table(ans) + f'<div class="row">{"".join(figs)}</div>'
    body += _resolution_details(primary)
    sections.append(("answer", "Cell populations and the TFs that drive them", body))

    # --- heatmap
    heat = heatmap_plot(primary)
    if heat:
        sections.append(("heatmap", "Top differential TFs", _img(heat, "heatmap of top differential TFs")))

    # --- method comparison
    rows = []
    for an in analyses:
        sm = an.summary
        ari = sm.get("ari")
        rows.append({"name": an.name, "clusters": sm["n_clusters"], "ari": None if ari in (None, "") else ari,
                     "nmi": None if sm.get("nmi") in (None, "") else sm["nmi"],
                     "features": sm["n_features"], "runtime_s": sm.get("runtime_s", float("nan"))})
    comp = pd.DataFrame(rows).rename(columns={"name": "clustering on", "ari": "ARI", "nmi": "NMI",
                                              "runtime_s": "clustering time (s)"})
    body = _table(comp.astype(object).where(comp.notna(), "–"))
    cplot = comparison_plot(rows)
    if cplot:
        body += _img(cplot, "ARI and NMI per clustering", 560)
    if len(analyses) > 1:
        body += '<div class="row">' + "".join(
            _img(umap_plot(an.clusters, "cluster", f"Clusters ({an.name})"), f"UMAP {an.name}")
            for an in analyses[1:]) + "</div>"
    sections.append(("methods", "Clusterings compared", body))

    # --- QC
    if inp.cells is not None or inp.activity is not None:
        import anndata as ad

        obs = None
        body = ""
        numerics = _numerics_table(inp.activity)
        if inp.cells is not None:
            obs = ad.read_h5ad(inp.cells, backed="r").obs.copy()
            per = obs.groupby("sample", observed=True).agg(
                cells=("n_fragments", "size"), median_fragments=("n_fragments", "median"),
                median_frac_in_peaks=("frac_in_peaks", "median")).reset_index()
            body += _table(per) + _img(qc_plot(obs), "cell QC histograms")
        if inp.activity is not None:
            act = ad.read_h5ad(inp.activity, backed="r")
            n_empty = int(act.obs["no_scored_windows"].sum()) if "no_scored_windows" in act.obs else 0
            info = act.uns.get("scfan_activity", {})
            cfg = info.get("config", {}) if isinstance(info, dict) else {}
            body += (f"<p>TF activity: {act.n_obs} cells × {act.n_vars} TFs from "
                     f"{html.escape(', '.join(map(str, act.var['model'].unique())))}; inference mode "
                     f"{html.escape(str(cfg.get('mode', '?')))}; median scored windows per cell "
                     f"{float(np.median(act.obs['n_scored_windows'])):.0f}; {n_empty} cell(s) without a scored "
                     f"window (kept, activity zero).</p>")
        sections.append(("qc", "Cells", body))

    # --- bulk models
    if inp.metrics:
        frames = []
        for line, p in inp.metrics:
            try:
                df = pd.read_csv(p, sep="\t")
            except (OSError, ValueError) as exc:
                raise InputFileError(p, f"cannot read metrics ({exc})") from exc
            missing = {"tf", "method", "auroc", "auprc"} - set(df.columns)
            if missing:
                raise InputFileError(p, f"not a metrics.tsv of `scfan bulk evaluate` (no {', '.join(sorted(missing))})",
                                     line=1)
            if "model" not in df.columns:
                df.insert(0, "model", line)
            frames.append(df)
        m = pd.concat(frames, ignore_index=True)
        keep = [c for c in ("model", "tf", "method", "auroc", "auprc", "auroc_open", "auprc_open",
                            "recall_at_10fdr", "n_pos") if c in m.columns]
        mean = m.groupby(["model", "method"], observed=True)[["auroc", "auprc"]].mean().reset_index()
        body = ("<p>Mean over TFs per model and method (scfan = the CNN; pwm = a JASPAR motif scan):</p>"
                + _table(mean) + _img(metrics_plot(m), "bulk AUROC and AUPRC per TF"))
        if inp.figures:
            body += '<div class="row">' + "".join(
                f"<figure>{_img(_file_uri(p), cap, 520)}<figcaption class='note'>{html.escape(cap)}</figcaption>"
                f"</figure>" for cap, p in inp.figures) + "</div>"
        body += "<details><summary>Every TF</summary>" + _table(m[keep]) + "</details>"
        sections.append(("bulk", "Bulk models", body))

    # --- what the models learned
    sections.append(("learned", "What the models learned", _learned_section(inp)))
    sections.append(("why", "Why each cluster's TFs are called", _why_section(inp)))

    # --- dropped features
    dropped = [(an.name, f) for an in analyses for f in an.summary.get("dropped_features", []) or []]
    if dropped:
        sections.append(("dropped", "Features dropped before clustering",
                         "<p class='note'>All-NaN or constant columns carry no information and were left out:</p>"
                         + _table(pd.DataFrame(dropped, columns=["clustering", "feature"]))))

    # --- versions and parameters
    body = ""
    if inp.activity is not None and not numerics.empty:
        body += ("<h3>Numerics of per-cell inference</h3><p class='note'>What each model ran in, after a probe on the "
                 "machine that ran it against PyTorch's float32 reference kernels (fast paths past their tolerance "
                 "are refused and named).</p>" + _table(numerics))
    body += _sampling_note(inp.activity)
    if inp.versions:
        v = _versions(inp.versions)
        body += "<h3>Software</h3>" + (_table(v) if not v.empty else "<p>none recorded</p>")
    if inp.params is not None:
        try:
            params = json.loads(Path(inp.params).read_text())
        except (OSError, ValueError) as exc:
            raise InputFileError(inp.params, f"cannot read params JSON ({exc})") from exc
        body += "<h3>Parameters</h3>" + _table(pd.DataFrame(
            [{"parameter": k, "value": json.dumps(v) if not isinstance(v, str) else v} for k, v in params.items()]))
    if body:
        sections.append(("software", "Software and parameters", body))

    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    run = _run_summary(inp)
    nav = "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t, _ in sections)
    main = "".join(f'<section id="{a}"><h2>{html.escape(t)}</h2>{b}</section>' for a, t, b in sections)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(inp.title)}</title>"
            f"<style>{CSS}</style></head><body><header><h1>{html.escape(inp.title)}</h1><p>scfan {__version__}"
            f" · {now} · {s['n_cells']} cells · {s['n_clusters']} clusters</p><p>{html.escape(run)}</p></header>"
            f"<nav>{nav}</nav>"
            f"<main>{main}</main></body></html>\n")


def _read_step_table(folder: str | Path, name: str, step: str, columns: Sequence[str],
                     dtype: dict[str, type]) -> tuple[Path, pd.DataFrame]:
    """``folder/name``, a TSV written by ``step``, with at least ``columns``; refused in one line naming the file."""
    path = Path(folder) / name
    if not path.is_file():
        raise InputFileError(folder, f"not a `{step}` output folder (no {name})")
    try:
        df = pd.read_csv(path, sep="\t", dtype=dtype)
    except (OSError, ValueError) as exc:
        raise InputFileError(path, f"cannot read {name} of `{step}` ({exc})") from exc
    missing = set(columns) - set(df.columns)
    if missing:
        raise InputFileError(path, f"not a {name} of `{step}` (no {', '.join(sorted(missing))})", line=1)
    return path, df


#: Columns of ``summary.tsv`` (``scfan bulk interpret``) the report shows.
INTERPRET_COLUMNS = ("tf", "part", "top_motif", "top_jaspar_id", "top_jaspar_name", "top_q_value",
                     "own_motif_recovered", "accessibility_share", "note")


def read_interpretation(folder: str | Path) -> pd.DataFrame:
    """``summary.tsv`` of a ``scfan bulk interpret`` folder: one row per TF and part, ``own_motif_recovered`` bool."""
    path, df = _read_step_table(folder, "summary.tsv", "scfan bulk interpret", INTERPRET_COLUMNS,
                                {"tf": str, "part": str, "top_motif": str, "top_jaspar_id": str,
                                 "top_jaspar_name": str, "note": str, "own_motif_recovered": str})
    recovered = df["own_motif_recovered"].fillna("").str.strip().str.lower()
    if not recovered.isin(["true", "false"]).all():
        raise InputFileError(path, "own_motif_recovered: expected true or false", line=1)
    df["own_motif_recovered"] = recovered == "true"
    for c in ("top_motif", "top_jaspar_id", "top_jaspar_name", "note"):
        df[c] = df[c].fillna("")
    return df


def _learned_section(inp: ReportInputs) -> str:
    """Per bulk line, one row per TF and part: the top discovered motif's logo, its JASPAR match, whether the TF's
    own motif was recovered (a row flagged in red when not), the share of the calls resting on accessibility."""
    if not inp.interpret:
        params = {}
        if inp.params is not None:
            try:
                params = json.loads(Path(inp.params).read_text())
            except (OSError, ValueError):
                params = {}
        if params.get("models"):
            return ("<p>Interpretation was not run: the models were given pre-trained (--models); "
                    "<code>scfan bulk interpret</code> explains them.</p>")
        return "<p>Interpretation was not run (--interpret false).</p>"
    body = ("<p class='note'>Per TF, the positive test windows the model is surest of are explained (DeepLIFT/SHAP "
            "attributions), motifs are discovered in the attributions (TF-MoDISco) and matched to JASPAR (TOMTOM). "
            "Two parts per TF: <b>network</b> = scFAN's convolutional network alone (motif branch off): what it "
            "learned; <b>model</b> = the whole model, whose motif branch starts from the TFs' JASPAR matrices, so its "
            "matches are partly by construction. A row in red: the TF's own motif was not recovered, a model to "
            "distrust. On accessibility: the share of the calls resting on the ATAC track rather than the "
            "sequence.</p>")
    head = "".join(f"<th>{h}</th>" for h in ("TF", "part", "top motif", "JASPAR match", "q-value",
                                              "own motif recovered", "on accessibility", "note"))
    for line, folder in inp.interpret:
        folder = Path(folder)
        df = read_interpretation(folder)
        rows = []
        for r in df.itertuples(index=False):
            logo = folder / "logos" / f"{r.tf}_{r.part}_{r.top_motif}.png"
            logo_html = (_img(_file_uri(logo), f"{r.tf} {r.part} {r.top_motif}") if r.top_motif and logo.is_file()
                         else html.escape(r.top_motif or "–"))
            match = f"{r.top_jaspar_name} ({r.top_jaspar_id})" if r.top_jaspar_id else "–"
            # summary.tsv holds 6 decimals: a 0 there is below 1e-6
            q = "–" if pd.isna(r.top_q_value) else ("&lt; 1e-06" if r.top_q_value == 0 else f"{r.top_q_value:.2g}")
            share = "–" if pd.isna(r.accessibility_share) else f"{100 * r.accessibility_share:.0f}%"
            own = "yes" if r.own_motif_recovered else "no"
            note = html.escape(r.note)
            if not r.own_motif_recovered:
                note = f"<span class='flag'>{note or 'model to distrust'}</span>"
            cls = "" if r.own_motif_recovered else " class='distrust'"
            rows.append(f"<tr{cls}><td>{html.escape(r.tf)}</td><td>{html.escape(r.part)}</td>"
                        f"<td class='logo'>{logo_html}</td><td>{html.escape(match)}</td><td>{q}</td><td>{own}</td>"
                        f"<td>{share}</td><td>{note}</td></tr>")
        body += (f"<h3>{html.escape(line)}</h3><table><thead><tr>{head}</tr></thead>"
                 f"<tbody>{''.join(rows)}</tbody></table>")
        tracks = []
        for tf in dict.fromkeys(df["tf"]):
            track = next((p for p in (folder / "tracks" / f"{tf}_model.png", folder / "tracks" / f"{tf}_network.png")
                          if p.is_file()), None)
            if track is not None:
                tracks.append(f"<figure>{_img(_file_uri(track), f'{tf} attribution track', 520)}"
                              f"<figcaption class='note'>{html.escape(tf)} ({html.escape(track.stem.split('_')[-1])})"
                              f"</figcaption></figure>")
        if tracks:
            body += (f"<details><summary>Attribution track of each TF's top window ({html.escape(line)})</summary>"
                     f"<div class='row'>{''.join(tracks)}</div></details>")
    return body


#: Columns of ``clusters.tsv`` (``scfan sc interpret``) the report shows.
CELL_INTERPRET_COLUMNS = ("cluster", "feature", "n_windows", "mean_probability", "accessibility_share",
                          "n_instances", "n_own_motif_instances", "top_instance_motifs")


def read_cell_interpretation(folder: str | Path) -> pd.DataFrame:
    """``clusters.tsv`` of a ``scfan sc interpret`` folder: one row per cluster and explained TF."""
    path, df = _read_step_table(folder, "clusters.tsv", "scfan sc interpret", CELL_INTERPRET_COLUMNS,
                                {"cluster": str, "feature": str, "top_instance_motifs": str})
    share = df["accessibility_share"]
    if not share.dropna().between(0.0, 1.0).all():
        raise InputFileError(path, "accessibility_share: expected a share between 0 and 1", line=1)
    df["top_instance_motifs"] = df["top_instance_motifs"].fillna("")
    return df


def _why_section(inp: ReportInputs) -> str:
    """Per cluster, its top differential TFs explained on the cluster's pooled input (``scfan sc interpret``): how much
    of each call rests on accessibility and how much on sequence, and the motifs found in the attributions."""
    if inp.cell_interpret is None:
        params = {}
        if inp.params is not None:
            try:
                params = json.loads(Path(inp.params).read_text())
            except (OSError, ValueError):
                params = {}
        if params.get("interpret") is False:
            return "<p>The per-cluster interpretation was not run (--interpret false).</p>"
        return ("<p>The per-cluster interpretation was not run: <code>scfan sc interpret</code> explains a "
                "clustering's calls.</p>")
    folder = Path(inp.cell_interpret)
    df = read_cell_interpretation(folder)
    body = ("<p class='note'>For each cluster and its top differential TFs, the windows the model is surest of on "
            "the cluster's pooled input (the mean of its cells' neighbourhood accessibility) are explained with "
            "DeepLIFT/SHAP. <b>On accessibility</b> / <b>on sequence</b>: the share of the call resting on the ATAC "
            "track vs the DNA. Motif instances: seqlets of the attributions matched to JASPAR (TOMTOM p &lt; 0.01); "
            "in brackets, those matching the TF's own JASPAR matrix or name.</p>")
    if df.empty:
        return body + ("<p>No cluster had a TF significantly higher than in the other clusters: nothing to "
                       "explain.</p>")
    head = "".join(f"<th>{h}</th>" for h in ("cluster", "TF", "windows", "mean probability", "on accessibility",
                                              "on sequence", "motif instances (own)", "top motifs in the attributions"))
    rows = []
    for cluster, grp in df.groupby("cluster", sort=False):
        for i, r in enumerate(grp.itertuples(index=False)):
            cell = f"<td rowspan='{len(grp)}'>{html.escape(str(cluster))}</td>" if i == 0 else ""
            acc = "–" if pd.isna(r.accessibility_share) else f"{100 * r.accessibility_share:.0f}%"
            seq = "–" if pd.isna(r.accessibility_share) else f"{100 * (1 - r.accessibility_share):.0f}%"
            rows.append(f"<tr>{cell}<td>{html.escape(r.feature)}</td><td>{r.n_windows}</td>"
                        f"<td>{r.mean_probability:.2f}</td><td>{acc}</td><td>{seq}</td>"
                        f"<td>{r.n_instances} ({r.n_own_motif_instances})</td>"
                        f"<td>{html.escape(r.top_instance_motifs or '–')}</td></tr>")
    body += f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    tracks = []
    for r in df.itertuples(index=False):
        safe = r.feature.replace(":", "_").replace("/", "_")
        track = folder / "tracks" / f"{r.cluster}_{safe}.png"
        if track.is_file():
            tracks.append(f"<figure>{_img(_file_uri(track), f'cluster {r.cluster} {r.feature} attribution', 520)}"
                          f"<figcaption class='note'>cluster {html.escape(str(r.cluster))}, "
                          f"{html.escape(r.feature)}</figcaption></figure>")
    if tracks:
        body += ("<details><summary>Attribution track of each cluster's top window per TF</summary>"
                 f"<div class='row'>{''.join(tracks)}</div></details>")
    return body


def _run_summary(inp: ReportInputs) -> str:
    """One line: what data the run was on, and which models."""
    parts = []
    if inp.params is not None:
        try:
            p = json.loads(Path(inp.params).read_text())
        except (OSError, ValueError):
            p = {}
        if p.get("simulate_preset") and not p.get("genome"):
            parts.append(f"data: simulated (preset {p['simulate_preset']}, seed {p.get('seed')})")
        elif p.get("sc_samplesheet"):
            parts.append(f"data: {Path(str(p['sc_samplesheet'])).name} on {Path(str(p.get('genome'))).name}")
        if p.get("models"):
            parts.append(f"pre-trained models: {p['models']}")
    if inp.activity is not None:
        import anndata as ad

        a = ad.read_h5ad(inp.activity, backed="r")
        models = list(dict.fromkeys(map(str, a.var["model"]))) if "model" in a.var else []
        parts.append(f"{a.n_vars} TFs from {len(models)} model(s): {', '.join(models)}")
        a.file.close()
    return " · ".join(parts)


def _file_uri(path: Path) -> str:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputFileError(p, f"cannot read figure ({exc.strerror})") from exc
    if not data.startswith(b"\x89PNG"):
        raise InputFileError(p, "expected a PNG image")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def write_report(inp: ReportInputs, out: str | Path) -> Path:
    from scfan._io import atomic_path

    text = build_report(inp)
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    log.info("wrote %s (%.1f kB)", out, out.stat().st_size / 1024)
    return out
