"""``scfan report``: the run's self-contained HTML report."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

log = logging.getLogger("scfan")


def _pairs(items: list[str] | None, option: str) -> list[tuple[str, Path]]:
    from scfan.args import split_named

    return [(name, Path(path)) for name, path in
            (split_named(item, option, default_name=lambda p: Path(p).stem) for item in items or [])]


def report_cmd(
    analysis: list[str] = typer.Option(..., "--analysis", help="NAME=folder of `scfan sc cluster` output; the "
                                       "first is the answer (repeat for the clusterings compared)."),
    metrics: list[str] = typer.Option(None, "--metrics", help="LINE=metrics.tsv of `scfan bulk evaluate`."),
    figure: list[str] = typer.Option(None, "--figure", help="CAPTION=figure.png to embed in the bulk section."),
    interpret: list[str] = typer.Option(None, "--interpret", help="LINE=folder of `scfan bulk interpret` output "
                                        "(none: the report says the step was not run)."),
    sc_interpret: Path = typer.Option(None, "--sc-interpret", help="Folder of `scfan sc interpret` output: why each "
                                      "cluster's TFs are called (none: the report says the step was not run)."),
    cells: Path = typer.Option(None, help="cells.h5ad (QC per sample)."),
    activity: Path = typer.Option(None, help="tf_activity.h5ad (inference summary)."),
    versions: list[Path] = typer.Option(None, "--versions", help="versions.yml of the run, or of each task "
                                        "(repeat)."),
    params: Path = typer.Option(None, help="params.json of the run."),
    drivers: Path = typer.Option(None, help="TSV cell_type, tf of known drivers (the simulator's truth)."),
    title: str = typer.Option("scFAN-nf report", help="Page title."),
    out: Path = typer.Option(..., help="Output report.html."),
) -> None:
    """One self-contained HTML page: clusters and their TFs first, then methods, QC, bulk models, what
    they learned, why each cluster's TFs are called, versions."""
    from scfan.report import ReportInputs, write_report

    inp = ReportInputs(analyses=_pairs(analysis, "--analysis"), metrics=_pairs(metrics, "--metrics"),
                       figures=_pairs(figure, "--figure"),
                       interpret=_pairs(interpret, "--interpret"), cell_interpret=sc_interpret, cells=cells,
                       activity=activity, versions=list(versions or []), params=params, drivers=drivers, title=title)
    write_report(inp, out)


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
