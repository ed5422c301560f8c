"""Determinism: what runs and tasks are compared by. `digests` must agree bit for bit between runs in one software
environment (the kill -9 / -resume run of test_kill_resume.py against the shared local run); `h5ad_digests` also
between a task of the shared local run and the same task replayed in the container image (test_podman.py: the
image holds the lock file's pins, and the replayed step, merging the per-cell activity shards, rounds nothing
differently there).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import polars as pl
import scipy.sparse as sp

TABLES = (".tsv", ".csv", ".parquet", ".bed")


def _array_digest(x) -> str:
    if sp.issparse(x):
        x = x.tocsr()
        x.sort_indices()
        parts = [x.data, x.indices, x.indptr, np.asarray(x.shape)]
    elif isinstance(x, pd.DataFrame):
        return hashlib.sha256(x.to_csv().encode()).hexdigest()
    else:
        parts = [np.ascontiguousarray(np.asarray(x)), np.asarray(np.shape(x))]
    h = hashlib.sha256()
    for p in parts:
        h.update(str(p.dtype).encode())
        h.update(p.tobytes())
    return h.hexdigest()


def h5ad_digests(path: Path, name: str) -> dict[str, str]:
    """sha256 of every matrix and annotation of one `.h5ad`, keyed ``name:part`` (the HDF5 container itself carries
    creation details, so its bytes are not compared)."""
    a = ad.read_h5ad(path)
    out = {f"{name}:X": _array_digest(a.X), f"{name}:obs": _array_digest(a.obs), f"{name}:var": _array_digest(a.var)}
    for kind in ("layers", "obsm", "obsp"):
        for key, value in getattr(a, kind).items():
            out[f"{name}:{kind}/{key}"] = _array_digest(value)
    return out


def digests(outdir: Path) -> dict[str, str]:
    """sha256 of every published table, and of every matrix and annotation of every `.h5ad` (the HDF5 container
    itself carries creation details, so its bytes are not compared). Exceptions, each named: the rows of a parquet
    file (not its metadata, which records input paths) and the training log without its timing column."""
    out = {}
    for p in sorted(outdir.rglob("*")):
        rel = str(p.relative_to(outdir))
        if not p.is_file() or rel.startswith("pipeline_info"):
            continue
        if p.suffix == ".parquet":  # the file's key-value metadata names the run's input paths: compare the table
            df = pl.read_parquet(p)
            out[rel] = hashlib.sha256(str(df.schema).encode() + df.hash_rows(seed=0).to_numpy().tobytes()).hexdigest()
        elif p.name == "train_log.tsv":  # every column but windows_per_s, a timing
            out[rel] = hashlib.sha256(pl.read_csv(p, separator="\t").drop("windows_per_s").write_csv()
                                      .encode()).hexdigest()
        elif p.suffix in TABLES or p.name.endswith((".tsv.gz", ".bed.gz")):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.suffix == ".h5ad":
            out.update(h5ad_digests(p, rel))
    return out
