"""The report's plots, each returned as a PNG data URI (no file, no network), and PNG files embedded the same way."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd

from scfan.errors import InputFileError
from scfan.report.inputs import Analysis
from scfan.report.markup import TOP_TFS


def png_uri(fig) -> str:
    """``fig`` as a PNG data URI; the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def file_uri(path: Path) -> str:
    """A PNG file as a data URI; refused in one line naming the file when it cannot be read or is not a PNG."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputFileError(p, f"cannot read figure ({exc.strerror})") from exc
    if not data.startswith(b"\x89PNG"):
        raise InputFileError(p, "expected a PNG image")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


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
    return png_uri(fig)


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
    return png_uri(fig)


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
    return png_uri(fig)


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
    return png_uri(fig)


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
    return png_uri(fig)
