"""``scfan report``: one self-contained HTML page (plots embedded as PNG data URIs, no network) that answers first.

Order of the page: the answer (cell populations with the TFs that drive them, UMAP beside), then how the
clusterings compare (TF activity, chromatin embedding, chromVAR: ARI/NMI against labels when there are labels),
the heatmap of the top differential TFs, per-cell QC, the bulk models' metrics with ROC/PR curves, what the models
learned (motifs discovered in their attributions, matched to JASPAR), why each cluster's TFs are called (the share
of the call resting on accessibility vs sequence), dropped features, software versions and parameters.

One module per part: :mod:`~scfan.report.inputs` reads the steps' outputs, :mod:`~scfan.report.figures` draws,
:mod:`~scfan.report.clusters`, :mod:`~scfan.report.models` and :mod:`~scfan.report.run` build one
:class:`~scfan.report.markup.Section` each per function (its HTML and why an input is missing), and
:mod:`~scfan.report.page` puts them in order.
"""

from __future__ import annotations

from scfan.report.clusters import answer_section, answer_table, dropped_section, heatmap_section, methods_section
from scfan.report.figures import comparison_plot, heatmap_plot, metrics_plot, qc_plot, umap_plot
from scfan.report.inputs import (
    CELL_INTERPRET_COLUMNS,
    INTERPRET_COLUMNS,
    Analysis,
    ReportInputs,
    read_cell_interpretation,
    read_interpretation,
)
from scfan.report.markup import DRIVER_PADJ, TOP_TFS, Section
from scfan.report.models import bulk_section, learned_section, why_section
from scfan.report.page import CSS, build_report, write_report
from scfan.report.run import cells_section, run_summary, software_section

__all__ = [
    "CELL_INTERPRET_COLUMNS", "CSS", "DRIVER_PADJ", "INTERPRET_COLUMNS", "TOP_TFS", "Analysis", "ReportInputs",
    "Section", "answer_section", "answer_table", "build_report", "bulk_section", "cells_section", "comparison_plot",
    "dropped_section", "heatmap_plot", "heatmap_section", "learned_section", "methods_section", "metrics_plot",
    "qc_plot", "read_cell_interpretation", "read_interpretation", "run_summary", "software_section", "umap_plot",
    "why_section", "write_report",
]
