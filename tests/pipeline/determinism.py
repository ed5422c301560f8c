"""Determinism: what two `-profile test` runs are compared by. `digests` must agree bit for bit between runs in one
software environment (the kill -9 / -resume run of test_kill_resume.py against the shared local run);
`environment_differences` compares the shared local run with the `-profile test,slurm,podman` run (fresh launch
folder and work directory, nothing cached, another executor, the image's environment), which must publish the same
tables and `.h5ad` matrices but for named floating-point rounding."""

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
            a = ad.read_h5ad(p)
            out[f"{rel}:X"] = _array_digest(a.X)
            out[f"{rel}:obs"] = _array_digest(a.obs)
            out[f"{rel}:var"] = _array_digest(a.var)
            for kind in ("layers", "obsm", "obsp"):
                for key, value in getattr(a, kind).items():
                    out[f"{rel}:{kind}/{key}"] = _array_digest(value)
    return out


def environment_differences(first: Path, second: Path) -> list[str]:
    """What differs between two runs made in different software environments of the same lock file (the host's
    .venv and the container image: another Python build, numba compiling afresh), beyond floating-point rounding.

    Within one environment `digests` must agree everywhere. Across environments a kNN distance may differ in its
    last float32 bit (seen: 229 of 5,600 entries, at most 1.8e-7), the connectivity weights derived from them by
    up to 1e-4, and UMAP's layout, a chaotic optimisation, then lands elsewhere; so a differing kNN graph must have
    the same edges with weights within a tolerance, UMAP coordinates are not compared, and a clusters.tsv must agree
    in every column but umap1/umap2 (the Leiden clusters in obs are compared exactly). Anything else that differs
    is returned."""
    a, b = digests(first), digests(second)
    problems = [f"only in one run: {k}" for k in sorted(set(a) ^ set(b))]
    for key in sorted(k for k in set(a) & set(b) if a[k] != b[k]):
        rel, _, part = key.partition(":")
        if part in ("obsp/distances", "obsp/connectivities"):
            x = ad.read_h5ad(first / rel).obsp[part.split("/")[1]].tocsr()
            y = ad.read_h5ad(second / rel).obsp[part.split("/")[1]].tocsr()
            x.sort_indices()
            y.sort_indices()
            same_graph = np.array_equal(x.indptr, y.indptr) and np.array_equal(x.indices, y.indices)
            # UMAP's connectivity weights come from the distances through a binary search per cell, which turns a
            # last-bit difference into up to ~1e-4 (seen: 7.9e-5); the edges must be the same
            tol = {"rtol": 1e-5, "atol": 1e-6} if part == "obsp/distances" else {"rtol": 0, "atol": 1e-3}
            if not (same_graph and np.allclose(x.data, y.data, **tol)):
                problems.append(f"{key}: another neighbour graph, not rounding")
        elif part == "obsm/X_umap":
            continue
        elif rel.endswith("clusters.tsv") and not part:
            x = pd.read_csv(first / rel, sep="\t").drop(columns=["umap1", "umap2"], errors="ignore")
            y = pd.read_csv(second / rel, sep="\t").drop(columns=["umap1", "umap2"], errors="ignore")
            if not x.equals(y):
                problems.append(f"{key}: clusters differ")
        else:
            problems.append(f"{key}: differs")
    return problems
