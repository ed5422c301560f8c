"""Per-cluster predicted binding tracks: for each cluster and TF, the mean predicted binding probability of the
cluster's cells along the windows they were scored on, as bigWig files a genome browser loads.

The per-cell predictions are streamed once more through ``scfan.sc.predict.predict_activity`` (its ``on_batch``
hook); each genomic chunk's sums per (cluster, window) are written straight into a temporary HDF5 array, so memory
holds one chunk, never clusters × windows × TFs. A window's value is the mean over the cluster's cells that scored
it; windows no cell of the cluster scored have no value (a gap in the track, not a zero).

Layout: ``<out>/<cluster>/<model>_<TF>.bw`` and ``<out>/tracks.txt`` (UCSC track lines, ``bigDataUrl`` relative to
``tracks.txt``; IGV loads the bigWig files directly).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from scfan.errors import InputFileError, ScfanError

log = logging.getLogger(__name__)

#: Colours cycled over clusters in tracks.txt (R,G,B).
COLOURS = ["31,119,180", "255,127,14", "44,160,44", "214,39,40", "148,103,189", "140,86,75", "227,119,194",
           "127,127,127", "188,189,34", "23,190,207"]


def read_clusters(path: str | Path, cell_ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Cluster index of every cell of ``cell_ids`` from a ``clusters.tsv`` (cell_id, cluster); every cell needed."""
    path = Path(path)
    try:
        tab = pd.read_csv(path, sep="\t", dtype={"cell_id": str, "cluster": str})
    except (OSError, ValueError) as exc:
        raise InputFileError(path, f"cannot read as TSV ({exc.__class__.__name__})") from exc
    if not {"cell_id", "cluster"} <= set(tab.columns):
        raise InputFileError(path, "expected columns cell_id and cluster (from `scfan sc cluster`)", line=1)
    dup = tab["cell_id"].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputFileError(path, "duplicate cell id", line=i + 2, record=tab["cell_id"].iloc[i])
    lookup = dict(zip(tab["cell_id"], tab["cluster"], strict=True))
    missing = [c for c in cell_ids if c not in lookup]
    if missing:
        raise InputFileError(path, f"{len(missing)} cell(s) of the cells file have no cluster, e.g. {missing[0]!r}")
    names = sorted(set(lookup[c] for c in cell_ids), key=lambda v: (len(v), v))
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[lookup[c]] for c in cell_ids], dtype=np.int64), names


class ClusterTrackAccumulator:
    """Sums and counts of predictions per (cluster, window), written chunk by chunk into an HDF5 file."""

    def __init__(self, group_of_cell: np.ndarray, n_groups: int, h5_path: Path):
        self.group_of_cell = group_of_cell
        self.n_groups = n_groups
        self.h5_path = h5_path
        self.h5: h5py.File | None = None
        self.windows = None
        self.sizes: dict[str, int] = {}
        self.features: list[str] = []
        self.window = 0

    def __call__(self, cell_rows, window_rows, probs, *, windows, sizes, features, window) -> None:
        if self.h5 is None:
            self.windows, self.sizes, self.features, self.window = windows, dict(sizes), list(features), window
            self.h5 = h5py.File(self.h5_path, "w")
            n_w = len(windows)
            chunk = (1, min(n_w, 4096), 1)
            self.h5.create_dataset("sum", shape=(self.n_groups, n_w, len(features)), dtype="f8", chunks=chunk,
                                   fillvalue=0.0)
            self.h5.create_dataset("count", shape=(self.n_groups, n_w), dtype="i8", fillvalue=0)
        wins = np.unique(window_rows)
        lo, hi = int(wins[0]), int(wins[-1]) + 1  # a chunk's windows are consecutive rows
        g = self.group_of_cell[cell_rows]
        key = g * (hi - lo) + (window_rows - lo)
        sums = np.zeros((self.n_groups * (hi - lo), probs.shape[1]))
        np.add.at(sums, key, probs.astype(np.float64))
        counts = np.bincount(key, minlength=self.n_groups * (hi - lo))
        self.h5["sum"][:, lo:hi, :] += sums.reshape(self.n_groups, hi - lo, -1)
        self.h5["count"][:, lo:hi] += counts.reshape(self.n_groups, hi - lo)

    def close(self) -> None:
        if self.h5 is not None:
            self.h5.close()
            self.h5 = None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_bigwigs(acc: ClusterTrackAccumulator, cluster_names: list[str], out_dir: Path) -> int:
    """One bigWig per cluster and feature, plus tracks.txt; returns the number of files written."""
    import pyBigWig

    if acc.windows is None:
        raise ScfanError("no (cell, window) pair was scored: nothing to write")
    chroms = acc.windows["chrom"].to_numpy().astype(str)
    starts = acc.windows["start"].to_numpy().astype(np.int64)
    ends = starts + acc.window
    # non-overlapping intervals: a window reaches to the next window's start at most
    nxt = np.r_[starts[1:], np.iinfo(np.int64).max]
    same = np.r_[chroms[1:] == chroms[:-1], False]
    ends = np.where(same, np.minimum(ends, nxt), ends)
    keep_len = ends > starts
    header = [(c, int(n)) for c, n in acc.sizes.items()]
    lines = []
    n_files = 0
    with h5py.File(acc.h5_path, "r") as h5:
        for gi, cname in enumerate(cluster_names):
            count = h5["count"][gi, :]
            scored = (count > 0) & keep_len
            cdir = out_dir / _safe(cname)
            cdir.mkdir(parents=True, exist_ok=True)
            for fi, feat in enumerate(acc.features):
                model, _, tf = feat.partition(":")
                fname = f"{_safe(model)}_{_safe(tf or model)}.bw"
                mean = h5["sum"][gi, :, fi][scored] / count[scored]
                bw = pyBigWig.open(str(cdir / fname), "w")
                bw.addHeader(header)
                if scored.any():
                    bw.addEntries(list(chroms[scored]), starts[scored].tolist(), ends=ends[scored].tolist(),
                                  values=mean.astype(float).tolist())
                bw.close()
                n_files += 1
                lines.append(f'track type=bigWig name="{cname} {feat}" description="cluster {cname}: mean '
                             f'predicted {feat} binding" bigDataUrl={_safe(cname)}/{fname} visibility=full '
                             f'autoScale=off viewLimits=0:1 color={COLOURS[gi % len(COLOURS)]}')
    (out_dir / "tracks.txt").write_text("\n".join(lines) + "\n")
    return n_files


def cluster_tracks(cells_path: str | Path, clusters_path: str | Path, model_args: Sequence[str],
                   fragments: dict[str, str | Path], genome_fa: str | Path, mappability: str | Path, cfg,
                   out_dir: str | Path) -> int:
    """Predict every cell again (``cfg``, a ``PredictConfig``; shard 1/1) and write the per-cluster tracks
    atomically into ``out_dir``; returns the number of bigWig files."""
    from scfan._io import atomic_path
    from scfan.sc.cells_file import read_cells_for_inference
    from scfan.sc.predict import predict_activity

    if cfg.shard != "1/1":
        raise ScfanError("sc tracks: every cell is needed; run it unsharded (--shard 1/1)")
    adata = read_cells_for_inference(cells_path)
    group, names = read_clusters(clusters_path, list(map(str, adata.obs_names)))
    del adata
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        acc = ClusterTrackAccumulator(group, len(names), tmp / ".sums.h5")
        try:
            predict_activity(cells_path, model_args, fragments, genome_fa, mappability, cfg, on_batch=acc)
        finally:
            acc.close()
        n = write_bigwigs(acc, names, tmp)
        (tmp / ".sums.h5").unlink()
    log.info("wrote %d bigWig track(s) for %d cluster(s) into %s", n, len(names), out_dir)
    return n
