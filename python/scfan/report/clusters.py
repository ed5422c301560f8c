"""The sections on the clusterings: the answer (populations and their TFs), the heatmap of their top TFs, the
clusterings compared, and the features dropped before clustering."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from scfan.report.figures import comparison_plot, heatmap_plot, umap_plot
from scfan.report.inputs import Analysis
from scfan.report.markup import DRIVER_PADJ, TOP_TFS, Section, html_table, img_tag


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


def resolution_details(an: Analysis) -> str:
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
            f"</summary>{html_table(pd.DataFrame(rows))}<p class='note'>No rule sees the labels. Fix the resolution "
            f"with <code>--cluster_resolution</code> where another partition of the table fits what you know of the "
            f"cells.{nested} How the rules compare: benchmarks/results/bench_resolution.md.</p></details>")


def answer_section(primary: Analysis, drivers: pd.DataFrame | None) -> Section:
    """The answer: key figures, one row per cluster with its top TFs (and the true drivers' ranks when known), the
    UMAP by cluster and by label, and how the Leiden resolution was chosen."""
    ans = answer_table(primary, drivers)
    figs = [img_tag(umap_plot(primary.clusters, "cluster", f"Clusters ({primary.name})"), "UMAP by cluster")]
    labelled = "label" in primary.clusters.columns and primary.clusters["label"].notna().any()
    if labelled:
        figs.append(img_tag(umap_plot(primary.clusters, "label", "Cell labels"), "UMAP by label"))
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
    body += html_table(ans) + f'<div class="row">{"".join(figs)}</div>'
    body += resolution_details(primary)
    missing = [w for w, absent in (("cell labels", not labelled), ("known drivers (--drivers)", drivers is None))
               if absent]
    return Section("answer", "Cell populations and the TFs that drive them", body,
                   f"no {' and no '.join(missing)}" if missing else None)


def heatmap_section(primary: Analysis, top: int = TOP_TFS) -> Section:
    """The mean of each cluster's top differential TFs per cluster, z-scored: left off when there is nothing to
    draw (no clustered.h5ad, no differential TFs, none higher in a cluster)."""
    title = "Top differential TFs"
    if primary.load_adata() is None:
        return Section("heatmap", title, missing=f"no clustered.h5ad in {primary.folder}")
    if primary.diff.empty:
        return Section("heatmap", title, missing=f"no differential TFs in {primary.folder}")
    heat = heatmap_plot(primary, top)
    if not heat:
        return Section("heatmap", title, missing="no differential TF higher in a cluster")
    return Section("heatmap", title, img_tag(heat, "heatmap of top differential TFs"))


def methods_section(analyses: Sequence[Analysis]) -> Section:
    """Every clustering: its clusters, ARI/NMI against the labels (when there are labels), features and time."""
    rows = []
    for an in analyses:
        sm = an.summary
        ari = sm.get("ari")
        rows.append({"name": an.name, "clusters": sm["n_clusters"], "ari": None if ari in (None, "") else ari,
                     "nmi": None if sm.get("nmi") in (None, "") else sm["nmi"],
                     "features": sm["n_features"], "runtime_s": sm.get("runtime_s", float("nan"))})
    comp = pd.DataFrame(rows).rename(columns={"name": "clustering on", "ari": "ARI", "nmi": "NMI",
                                              "runtime_s": "clustering time (s)"})
    body = html_table(comp.astype(object).where(comp.notna(), "–"))
    cplot = comparison_plot(rows)
    if cplot:
        body += img_tag(cplot, "ARI and NMI per clustering", 560)
    if len(analyses) > 1:
        body += '<div class="row">' + "".join(
            img_tag(umap_plot(an.clusters, "cluster", f"Clusters ({an.name})"), f"UMAP {an.name}")
            for an in analyses[1:]) + "</div>"
    missing = None if cplot else "no cell labels: no ARI or NMI"
    return Section("methods", "Clusterings compared", body, missing)


def dropped_section(analyses: Sequence[Analysis]) -> Section:
    """The all-NaN or constant features each clustering left out; left off when none was."""
    title = "Features dropped before clustering"
    dropped = [(an.name, f) for an in analyses for f in an.summary.get("dropped_features", []) or []]
    if not dropped:
        return Section("dropped", title, missing="no feature dropped")
    return Section("dropped", title,
                   "<p class='note'>All-NaN or constant columns carry no information and were left out:</p>"
                   + html_table(pd.DataFrame(dropped, columns=["clustering", "feature"])))
