"""The page: every section in reading order, the header and the style, as one self-contained HTML string."""

from __future__ import annotations

import datetime as _dt
import html
import logging
from collections.abc import Sequence
from pathlib import Path

from scfan.errors import ScfanError
from scfan.report.clusters import answer_section, dropped_section, heatmap_section, methods_section
from scfan.report.inputs import Analysis, ReportInputs, read_drivers
from scfan.report.markup import Section
from scfan.report.models import bulk_section, learned_section, why_section
from scfan.report.run import cells_section, run_summary, software_section

log = logging.getLogger("scfan.report")

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


def sections_of(inp: ReportInputs, analyses: Sequence[Analysis]) -> list[Section]:
    """Every section in the page's order, each built from its own inputs (the first clustering is the answer)."""
    primary = analyses[0]
    drivers = read_drivers(inp.drivers) if inp.drivers is not None else None
    return [answer_section(primary, drivers), heatmap_section(primary), methods_section(analyses),
            cells_section(inp.cells, inp.activity), bulk_section(inp.metrics, inp.figures),
            learned_section(inp.interpret, inp.params), why_section(inp.cell_interpret, inp.params),
            dropped_section(analyses), software_section(inp.activity, inp.versions, inp.params)]


def render_page(title: str, summary: dict, run: str, sections: Sequence[Section]) -> str:
    """The HTML page: header (version, time, cells and clusters of the answer, ``run``), navigation, sections."""
    from scfan import __version__

    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    main = "".join(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>{s.body}</section>' for s in sections)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><header><h1>{html.escape(title)}</h1><p>scfan {__version__}"
            f" · {now} · {summary['n_cells']} cells · {summary['n_clusters']} clusters</p><p>{html.escape(run)}</p>"
            f"</header><nav>{nav}</nav>"
            f"<main>{main}</main></body></html>\n")


def build_report(inp: ReportInputs) -> str:
    """The report's HTML (one string, every image embedded); a section whose input is missing says so, or is left
    off (logged)."""
    if not inp.analyses:
        raise ScfanError("report: give at least one --analysis NAME=folder (from `scfan sc cluster`)")
    analyses = [Analysis.read(n, p) for n, p in inp.analyses]
    sections = sections_of(inp, analyses)
    for s in sections:
        if s.missing:
            log.info("report section %r %s: %s", s.anchor, "shown" if s.shown else "left off", s.missing)
    run = run_summary(inp.params, inp.activity)
    return render_page(inp.title, analyses[0].summary, run, [s for s in sections if s.shown])


def write_report(inp: ReportInputs, out: str | Path) -> Path:
    """The report written to ``out`` (atomically)."""
    from scfan._io import atomic_path

    text = build_report(inp)
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    log.info("wrote %s (%.1f kB)", out, out.stat().st_size / 1024)
    return out
