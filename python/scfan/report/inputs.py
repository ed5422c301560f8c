"""What the report reads: the outputs of the steps it is given, each checked and refused in one line naming the file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scfan.errors import InputFileError


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


def read_drivers(path: str | Path) -> pd.DataFrame:
    """The known drivers (``cell_type``, ``tf``; the simulator's truth)."""
    drivers = pd.read_csv(path, sep="\t")
    if not {"cell_type", "tf"} <= set(drivers.columns):
        raise InputFileError(path, "expected columns cell_type and tf", line=1)
    return drivers


def read_params(path: str | Path) -> dict:
    """The run's ``params.json``; refused in one line naming the file when it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputFileError(path, f"cannot read params JSON ({exc})") from exc


def params_or_empty(path: str | Path | None) -> dict:
    """The run's ``params.json`` for a hint (why a step did not run, what data the run was on): ``{}`` when not
    given or unreadable (the software section, which lists them, refuses an unreadable file)."""
    if path is None:
        return {}
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


#: Columns of ``metrics.tsv`` (``scfan bulk evaluate``) the report needs.
METRICS_COLUMNS = ("tf", "method", "auroc", "auprc")


def read_metrics(metrics: Sequence[tuple[str, Path]]) -> pd.DataFrame:
    """Every ``(line, metrics.tsv)`` in one table; a ``model`` column (the line) added where the file has none."""
    frames = []
    for line, p in metrics:
        try:
            df = pd.read_csv(p, sep="\t")
        except (OSError, ValueError) as exc:
            raise InputFileError(p, f"cannot read metrics ({exc})") from exc
        missing = set(METRICS_COLUMNS) - set(df.columns)
        if missing:
            raise InputFileError(p, f"not a metrics.tsv of `scfan bulk evaluate` (no {', '.join(sorted(missing))})",
                                 line=1)
        if "model" not in df.columns:
            df.insert(0, "model", line)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def read_versions(paths: Sequence[Path]) -> pd.DataFrame:
    """``versions.yml`` files merged: one row per software and version with the processes that ran it."""
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


def read_step_table(folder: str | Path, name: str, step: str, columns: Sequence[str],
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
    path, df = read_step_table(folder, "summary.tsv", "scfan bulk interpret", INTERPRET_COLUMNS,
                               {"tf": str, "part": str, "top_motif": str, "top_jaspar_id": str,
                                "top_jaspar_name": str, "note": str, "own_motif_recovered": str})
    recovered = df["own_motif_recovered"].fillna("").str.strip().str.lower()
    if not recovered.isin(["true", "false"]).all():
        raise InputFileError(path, "own_motif_recovered: expected true or false", line=1)
    df["own_motif_recovered"] = recovered == "true"
    for c in ("top_motif", "top_jaspar_id", "top_jaspar_name", "note"):
        df[c] = df[c].fillna("")
    return df


#: Columns of ``clusters.tsv`` (``scfan sc interpret``) the report shows.
CELL_INTERPRET_COLUMNS = ("cluster", "feature", "n_windows", "mean_probability", "accessibility_share",
                          "n_instances", "n_own_motif_instances", "top_instance_motifs")


def read_cell_interpretation(folder: str | Path) -> pd.DataFrame:
    """``clusters.tsv`` of a ``scfan sc interpret`` folder: one row per cluster and explained TF."""
    path, df = read_step_table(folder, "clusters.tsv", "scfan sc interpret", CELL_INTERPRET_COLUMNS,
                               {"cluster": str, "feature": str, "top_instance_motifs": str})
    share = df["accessibility_share"]
    if not share.dropna().between(0.0, 1.0).all():
        raise InputFileError(path, "accessibility_share: expected a share between 0 and 1", line=1)
    df["top_instance_motifs"] = df["top_instance_motifs"].fillna("")
    return df
