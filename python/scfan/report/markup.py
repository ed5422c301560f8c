"""The page's building blocks and conventions: a section (anchor, title, body, why an input is missing), tables,
images, and how many TFs are listed per cluster."""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Differential features listed per cluster in the answer table.
TOP_TFS = 3
#: A TF is called a driver of a cluster when its BH-adjusted p-value is below this and it is higher in the cluster.
DRIVER_PADJ = 0.05


@dataclass(frozen=True)
class Section:
    """One section of the report.

    ``body`` is its HTML; a section with an empty body is left off the page. ``missing`` says which input the
    section lacks, or why what it shows is empty (a step not run, nothing to list); ``None`` when it had all it
    shows.
    """

    anchor: str
    title: str
    body: str = ""
    missing: str | None = None

    @property
    def shown(self) -> bool:
        return bool(self.body)


def html_table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    """``df`` as an HTML table; floats formatted with ``floatfmt`` (NaN blank), everything else escaped."""

    def fmt(v):
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else floatfmt.format(v)
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>" for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def img_tag(uri: str, alt: str, width: int | None = None) -> str:
    w = f' style="max-width:{width}px"' if width else ""
    return f'<img src="{uri}" alt="{html.escape(alt)}"{w}>'


def figure_tag(uri: str, alt: str, caption: str) -> str:
    """An image 520 px wide with its caption (``caption`` is HTML: escape what it quotes)."""
    return f"<figure>{img_tag(uri, alt, 520)}<figcaption class='note'>{caption}</figcaption></figure>"
