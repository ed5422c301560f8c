"""The sections on the models: their metrics on held-out chromosomes, what they learned (motifs in their
attributions, matched to JASPAR) and why each cluster's TFs are called (accessibility vs sequence)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from scfan.report.figures import file_uri, metrics_plot
from scfan.report.inputs import params_or_empty, read_cell_interpretation, read_interpretation, read_metrics
from scfan.report.markup import Section, figure_tag, html_table, img_tag


def bulk_section(metrics: Sequence[tuple[str, Path]], figures: Sequence[tuple[str, Path]] = ()) -> Section:
    """Mean AUROC/AUPRC per model and method, per TF in a plot and a folded table, with the evaluation's figures;
    left off without metrics (the figures are shown only beside them)."""
    title = "Bulk models"
    if not metrics:
        return Section("bulk", title, missing="no --metrics given")
    m = read_metrics(metrics)
    keep = [c for c in ("model", "tf", "method", "auroc", "auprc", "auroc_open", "auprc_open",
                        "recall_at_10fdr", "n_pos") if c in m.columns]
    mean = m.groupby(["model", "method"], observed=True)[["auroc", "auprc"]].mean().reset_index()
    body = ("<p>Mean over TFs per model and method (scfan = the CNN; pwm = a JASPAR motif scan):</p>"
            + html_table(mean) + img_tag(metrics_plot(m), "bulk AUROC and AUPRC per TF"))
    if figures:
        body += '<div class="row">' + "".join(
            figure_tag(file_uri(p), cap, html.escape(cap)) for cap, p in figures) + "</div>"
    body += "<details><summary>Every TF</summary>" + html_table(m[keep]) + "</details>"
    return Section("bulk", title, body, None if figures else "no --figure given")


LEARNED_NOTE = (
    "<p class='note'>Per TF, the positive test windows the model is surest of are explained (DeepLIFT/SHAP "
    "attributions), motifs are discovered in the attributions (TF-MoDISco) and matched to JASPAR (TOMTOM). "
    "Two parts per TF: <b>network</b> = scFAN's convolutional network alone (motif branch off): what it "
    "learned; <b>model</b> = the whole model, whose motif branch starts from the TFs' JASPAR matrices, so its "
    "matches are partly by construction. A row in red: the TF's own motif was not recovered, a model to "
    "distrust. On accessibility: the share of the calls resting on the ATAC track rather than the "
    "sequence.</p>")


def _learned_row(folder: Path, r) -> str:
    """One TF and part: logo of its top motif, JASPAR match, q-value, own motif recovered (red when not), share."""
    logo = folder / "logos" / f"{r.tf}_{r.part}_{r.top_motif}.png"
    logo_html = (img_tag(file_uri(logo), f"{r.tf} {r.part} {r.top_motif}") if r.top_motif and logo.is_file()
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
    return (f"<tr{cls}><td>{html.escape(r.tf)}</td><td>{html.escape(r.part)}</td>"
            f"<td class='logo'>{logo_html}</td><td>{html.escape(match)}</td><td>{q}</td><td>{own}</td>"
            f"<td>{share}</td><td>{note}</td></tr>")


def _learned_line(line: str, folder: Path) -> str:
    """One bulk line: its table of TFs and parts, and each TF's attribution track folded away."""
    df = read_interpretation(folder)
    head = "".join(f"<th>{h}</th>" for h in ("TF", "part", "top motif", "JASPAR match", "q-value",
                                              "own motif recovered", "on accessibility", "note"))
    rows = [_learned_row(folder, r) for r in df.itertuples(index=False)]
    body = (f"<h3>{html.escape(line)}</h3><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")
    tracks = []
    for tf in dict.fromkeys(df["tf"]):
        track = next((p for p in (folder / "tracks" / f"{tf}_model.png", folder / "tracks" / f"{tf}_network.png")
                      if p.is_file()), None)
        if track is not None:
            tracks.append(figure_tag(file_uri(track), f"{tf} attribution track",
                                     f"{html.escape(tf)} ({html.escape(track.stem.split('_')[-1])})"))
    if tracks:
        body += (f"<details><summary>Attribution track of each TF's top window ({html.escape(line)})</summary>"
                 f"<div class='row'>{''.join(tracks)}</div></details>")
    return body


def learned_section(interpret: Sequence[tuple[str, Path]], params: Path | None = None) -> Section:
    """Per bulk line, one row per TF and part: the top discovered motif's logo, its JASPAR match, whether the TF's
    own motif was recovered (a row flagged in red when not), the share of the calls resting on accessibility.
    Without ``scfan bulk interpret`` output, says why it was not run (pre-trained models, or --interpret false)."""
    title = "What the models learned"
    if not interpret:
        if params_or_empty(params).get("models"):
            return Section("learned", title, "<p>Interpretation was not run: the models were given pre-trained "
                           "(--models); <code>scfan bulk interpret</code> explains them.</p>",
                           "no --interpret given (pre-trained models)")
        return Section("learned", title, "<p>Interpretation was not run (--interpret false).</p>",
                       "no --interpret given")
    body = LEARNED_NOTE + "".join(_learned_line(line, Path(folder)) for line, folder in interpret)
    return Section("learned", title, body)


WHY_NOTE = (
    "<p class='note'>For each cluster and its top differential TFs, the windows the model is surest of on "
    "the cluster's pooled input (the mean of its cells' neighbourhood accessibility) are explained with "
    "DeepLIFT/SHAP. <b>On accessibility</b> / <b>on sequence</b>: the share of the call resting on the ATAC "
    "track vs the DNA. Motif instances: seqlets of the attributions matched to JASPAR (TOMTOM p &lt; 0.01); "
    "in brackets, those matching the TF's own JASPAR matrix or name.</p>")


def _why_table(df: pd.DataFrame) -> str:
    """One row per cluster and TF, the cluster's cell spanning its TFs."""
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
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def why_section(cell_interpret: Path | None, params: Path | None = None) -> Section:
    """Per cluster, its top differential TFs explained on the cluster's pooled input (``scfan sc interpret``): how much
    of each call rests on accessibility and how much on sequence, and the motifs found in the attributions.
    Without that output, says why it was not run."""
    title = "Why each cluster's TFs are called"
    if cell_interpret is None:
        if params_or_empty(params).get("interpret") is False:
            return Section("why", title, "<p>The per-cluster interpretation was not run (--interpret false).</p>",
                           "no --sc-interpret given (--interpret false)")
        return Section("why", title, "<p>The per-cluster interpretation was not run: <code>scfan sc interpret</code> "
                       "explains a clustering's calls.</p>", "no --sc-interpret given")
    folder = Path(cell_interpret)
    df = read_cell_interpretation(folder)
    if df.empty:
        return Section("why", title, WHY_NOTE + "<p>No cluster had a TF significantly higher than in the other "
                       "clusters: nothing to explain.</p>", "no TF to explain")
    body = WHY_NOTE + _why_table(df)
    tracks = []
    for r in df.itertuples(index=False):
        safe = r.feature.replace(":", "_").replace("/", "_")
        track = folder / "tracks" / f"{r.cluster}_{safe}.png"
        if track.is_file():
            tracks.append(figure_tag(file_uri(track), f"cluster {r.cluster} {r.feature} attribution",
                                     f"cluster {html.escape(str(r.cluster))}, {html.escape(r.feature)}"))
    if tracks:
        body += ("<details><summary>Attribution track of each cluster's top window per TF</summary>"
                 f"<div class='row'>{''.join(tracks)}</div></details>")
    return Section("why", title, body)
