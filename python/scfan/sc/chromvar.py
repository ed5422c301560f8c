"""chromVAR baseline: per-cell motif accessibility deviations (pychromvar) for the TFs the models predict.

The steps are chromVAR's, as pychromvar runs them: GC content of each peak, background peaks matched on GC and
total count, MOODS motif matches, then deviations against the background. pychromvar does GC and motif matching;
two steps are done here, with the same formulas: background peaks by exact nearest neighbours (pychromvar's
NNDescent costs ~50 s of numba compilation per process and draws from numpy's global RNG; it stays available as
``background="pynndescent"``, seeded), and the deviations with sparse products (``pychromvar.compute_deviations``
densifies cells × peaks, copies it to every worker and returns only the z-scores). All-zero peaks are dropped first
(the background step takes ``log10`` of each peak's total), and pychromvar's ``n_jobs=-1`` (all cores) is never used.

Why this module is long: chromVAR is one step whose parts (motif resolution from JASPAR, counts, peak
sequences, background peaks, sparse deviations, writing) share its config and seeded randomness.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache, partial
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scfan.args import named_error, split_named
from scfan.errors import InputFileError, ScfanError
from scfan.intervals import parse_region_id

log = logging.getLogger(__name__)

#: JASPAR matrix ids: ``MA0139.2`` (or a base id ``MA0139``, taken at its latest version).
_MATRIX_ID = re.compile(r"^[A-Z]{2,3}\d{4}(\.\d+)?$")
#: the form of a named motif argument
NAMED_MOTIF = "NAME=MATRIX_ID, e.g. GATA1=MA0035.5"
BACKGROUND_METHODS = ("exact", "pynndescent")
_VERSION_PACKAGES = ("scfan", "pychromvar", "MOODS-python", "pyjaspar", "pynndescent", "scikit-learn", "numpy",
                     "scipy", "anndata")


@dataclass(frozen=True)
class ChromvarConfig:
    """Settings of ``scfan sc chromvar`` (written into the output's ``uns['scfan_chromvar']``).

    ``motifs`` holds the motif items as given: JASPAR matrix ids (``MA0139.2``), TF names looked up in JASPAR
    (CORE collection, vertebrates), or ``NAME=MATRIX_ID`` to name a matrix.
    """

    motifs: tuple[str, ...] = ()
    seed: int = 0
    n_jobs: int = 1
    n_background_iterations: int = 50
    p_value: float = 5e-5
    background: str = "exact"

    def __post_init__(self) -> None:
        object.__setattr__(self, "motifs", tuple(str(m) for m in self.motifs))
        if self.n_jobs < 1:
            raise ScfanError(f"--n-jobs {self.n_jobs}: expected >= 1 (pychromvar's -1, all cores, is refused: it "
                             "copies the count matrix to every worker)")
        if self.n_background_iterations < 2:
            raise ScfanError(f"--n-background-iterations {self.n_background_iterations}: expected >= 2")
        if not 0 < self.p_value < 1:
            raise ScfanError(f"--p-value {self.p_value}: expected a probability in (0, 1)")
        if self.background not in BACKGROUND_METHODS:
            raise ScfanError(f"--background {self.background!r}: expected one of {', '.join(BACKGROUND_METHODS)}")
        if self.seed < 0:
            raise ScfanError(f"--seed {self.seed}: expected >= 0")


@dataclass(frozen=True)
class ResolvedMotif:
    """One motif item resolved to a JASPAR matrix; ``tf`` is the name the output uses."""

    item: str
    tf: str
    jaspar_id: str
    jaspar_name: str
    matrix: object  # Bio.motifs.jaspar.Motif (counts, matrix_id, name), as pychromvar.match_motif expects


# ---------------------------------------------------------------------------------------------------------------
# motifs


@lru_cache(maxsize=1)
def _jaspar():
    from pyjaspar import jaspardb

    return jaspardb()  # pyjaspar's default: the latest release it ships


@lru_cache(maxsize=1)
def _vertebrate_core_by_name() -> dict[str, list[tuple[int, int, str]]]:
    """Upper-case TF name → ``(base number, version, matrix id)`` of every CORE vertebrate matrix."""
    out: dict[str, list[tuple[int, int, str]]] = {}
    for m in _jaspar().fetch_motifs(collection="CORE", tax_group=["vertebrates"], all_versions=True):
        base, _, version = m.matrix_id.partition(".")
        out.setdefault(str(m.name).upper(), []).append((int(base[-4:]), int(version or 0), m.matrix_id))
    return out


def _fetch_matrix(matrix_id: str, item: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Biopython warns on unknown ids; the error below says it in one line
        m = _jaspar().fetch_motif_by_id(matrix_id)
    if m is None:
        raise ScfanError(f"--motif {item!r}: JASPAR {_jaspar().release} has no matrix {matrix_id}")
    return m


def _lookup_name(name: str, item: str) -> str:
    """Matrix id of a TF name: case-insensitive exact match among CORE vertebrate matrices, latest version.

    A name with several matrices (e.g. CTCF: MA0139, MA1929, MA1930) takes the lowest-numbered one, JASPAR's
    first profile of that TF; name another one with ``NAME=MATRIX_ID``.
    """
    hits = _vertebrate_core_by_name().get(name.upper())
    if not hits:
        raise ScfanError(f"--motif {item!r}: no TF named {name!r} in JASPAR {_jaspar().release} (CORE, "
                         "vertebrates); give a matrix id such as MA0139.2 or NAME=MATRIX_ID")
    base = min(h[0] for h in hits)
    best = max(h for h in hits if h[0] == base)
    others = sorted({h[2].split(".")[0] for h in hits} - {best[2].split(".")[0]})
    if others:
        log.info("motif %s: %s (JASPAR also has %s under this name)", name, best[2], ", ".join(others))
    return best[2]


def resolve_motifs(items: Sequence[str]) -> list[ResolvedMotif]:
    """Resolve motif items (matrix id, TF name or ``NAME=MATRIX_ID``) against the JASPAR shipped with pyjaspar.

    Repeats of the same (name, matrix) are dropped; one name given two different matrices is an error.
    """
    if not items:
        raise ScfanError("no motifs: give --motif (a JASPAR matrix id or TF name) or --motifs-from-activity")
    out: list[ResolvedMotif] = []
    by_tf: dict[str, ResolvedMotif] = {}
    for raw in items:
        item = str(raw).strip()
        if "=" in item:
            name, mid = split_named(item, "--motif", NAMED_MOTIF)
            if not _MATRIX_ID.match(mid):
                raise named_error("--motif", item, NAMED_MOTIF)
        elif _MATRIX_ID.match(item):
            name, mid = "", item
        elif item:
            name, mid = item, _lookup_name(item, item)
        else:
            raise ScfanError("--motif '': expected a JASPAR matrix id or a TF name")
        matrix = _fetch_matrix(mid, item)
        tf = name or str(matrix.name)
        motif = ResolvedMotif(item=item, tf=tf, jaspar_id=str(matrix.matrix_id), jaspar_name=str(matrix.name),
                              matrix=matrix)
        seen = by_tf.get(tf.upper())
        if seen is not None:
            if seen.jaspar_id != motif.jaspar_id:
                raise ScfanError(f"--motif {item!r}: TF {tf!r} is already {seen.jaspar_id} (from {seen.item!r}); "
                                 "name one of them differently with NAME=MATRIX_ID")
            continue
        by_tf[tf.upper()] = motif
        out.append(motif)
    return out


def tfs_from_activity(path: str | Path) -> list[str]:
    """Unique TF names of an activity ``.h5ad``'s ``var['tf']`` (``scfan sc predict``), in order of appearance."""
    try:
        a = ad.read_h5ad(path, backed="r")
    except (OSError, KeyError, ValueError) as exc:
        raise InputFileError(path, f"cannot read as AnnData ({exc.__class__.__name__})") from exc
    try:
        if "tf" not in a.var.columns:
            raise InputFileError(path, "no var['tf']; expected a TF activity file written by `scfan sc predict`")
        tfs = list(dict.fromkeys(str(t) for t in a.var["tf"]))
    finally:
        a.file.close()
    if not tfs:
        raise InputFileError(path, "var['tf'] is empty; expected at least one TF")
    return tfs


# ---------------------------------------------------------------------------------------------------------------
# cells and peaks


def read_counts(path: str | Path) -> ad.AnnData:
    """A cells × peaks ``.h5ad`` (``scfan sc ingest/merge``) with integer counts in CSR, or a one-line error."""
    try:
        adata = ad.read_h5ad(path)
    except (OSError, KeyError, ValueError) as exc:
        raise InputFileError(path, f"cannot read as AnnData ({exc.__class__.__name__})") from exc
    if adata.n_obs < 2:
        raise InputFileError(path, f"{adata.n_obs} cell(s); chromVAR needs at least 2 cells")
    if adata.n_vars == 0:
        raise InputFileError(path, "no peaks; expected a cells × peaks count matrix")
    X = sp.csr_matrix(adata.X)
    X.sum_duplicates()
    X.eliminate_zeros()
    bad = np.flatnonzero((X.data < 0) | (np.mod(X.data, 1) != 0) | ~np.isfinite(X.data))
    if len(bad):
        row = int(np.searchsorted(X.indptr, bad[0], side="right") - 1)
        col = int(X.indices[bad[0]])
        raise InputFileError(path, f"count {X.data[bad[0]]!r} is not a non-negative integer; expected the raw "
                             "Tn5 insertion counts of `scfan sc ingest`",
                             record=f"{adata.obs_names[row]} × {adata.var_names[col]}")
    if X.nnz == 0:
        raise InputFileError(path, f"all {adata.n_obs} × {adata.n_vars} counts are zero")
    adata.X = X.astype(np.float64)
    return adata


def peak_coordinates(adata: ad.AnnData, path: str | Path) -> pd.DataFrame:
    """``chrom``, ``start``, ``end`` of every peak: from ``var`` columns, else from ``chrom:start-end`` names."""
    if {"chrom", "start", "end"} <= set(adata.var.columns):
        df = pd.DataFrame({"chrom": adata.var["chrom"].astype(str).to_numpy(),
                           "start": pd.to_numeric(adata.var["start"], errors="coerce").to_numpy(),
                           "end": pd.to_numeric(adata.var["end"], errors="coerce").to_numpy()},
                          index=adata.var_names)
        bad = ~(np.isfinite(df["start"]) & np.isfinite(df["end"]))
        bad |= ~bad & ((df["start"] % 1 != 0) | (df["end"] % 1 != 0))
        if bad.any():
            raise InputFileError(path, "var start/end are not integers", record=str(df.index[np.argmax(bad)]))
        df = df.astype({"start": np.int64, "end": np.int64})
    else:
        rows = []
        for rid in adata.var_names:
            try:
                rows.append(parse_region_id(str(rid)))
            except ValueError:
                raise InputFileError(path, "no peak coordinates: var has no chrom/start/end columns and the peak "
                                     "name is not chrom:start-end; expected a cells file from `scfan sc ingest`",
                                     record=str(rid)) from None
        df = pd.DataFrame(rows, columns=["chrom", "start", "end"], index=adata.var_names)
    bad = (df["start"] < 0) | (df["end"] <= df["start"])
    if bad.any():
        raise InputFileError(path, "peak must have 0 <= start < end", record=str(df.index[np.argmax(bad)]))
    return df


def peak_sequences(peaks: pd.DataFrame, genome_fasta: str | Path, cells_path: str | Path) -> list[str]:
    """Upper-case sequence of every peak (the FASTA opened once); peaks must lie on the genome."""
    from scfan.genome import Genome

    seqs = np.empty(len(peaks), dtype=object)
    starts, ends = peaks["start"].to_numpy(), peaks["end"].to_numpy()
    with Genome(genome_fasta) as genome:
        for chrom, idx in peaks.groupby("chrom", sort=False).indices.items():
            if chrom not in genome.sizes:
                raise InputFileError(cells_path, f"peak on chromosome {chrom!r}, which {genome_fasta} does not "
                                     "have; expected the genome the peaks were called on",
                                     record=str(peaks.index[idx[0]]))
            size = genome.sizes[chrom]
            if (ends[idx] > size).any():
                k = idx[np.argmax(ends[idx] > size)]
                raise InputFileError(cells_path, f"peak ends beyond {chrom} ({size} bp in {genome_fasta}); "
                                     "expected the genome build the peaks were called on", record=str(peaks.index[k]))
            for k in idx:
                seqs[k] = genome.fetch(chrom, int(starts[k]), int(ends[k]))
    return list(seqs)


# ---------------------------------------------------------------------------------------------------------------
# chromVAR steps


@contextlib.contextmanager
def _quiet_tqdm(*modules: str) -> Iterator[None]:
    """pychromvar draws a tqdm bar per step; show it only where scfan shows progress (a terminal)."""
    from tqdm import tqdm

    from scfan.logging_utils import progress_enabled

    mods = [importlib.import_module(m) for m in modules]
    saved = [m.tqdm for m in mods]
    try:
        for m in mods:
            m.tqdm = partial(tqdm, disable=not progress_enabled(), leave=False)
        yield
    finally:
        for m, t in zip(mods, saved, strict=True):
            m.tqdm = t


@contextlib.contextmanager
def _seeded_global_numpy(seed: int) -> Iterator[None]:
    """pychromvar builds its NNDescent index with ``random_state=None``, i.e. numpy's global RNG: seed it for the
    block and give the caller's state back afterwards."""
    state = np.random.get_state()  # noqa: NPY002 (the global RNG is what pychromvar draws from)
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _whitened_peaks(work: ad.AnnData) -> np.ndarray:
    """``(peaks, 2)`` log10 total count and GC content, decorrelated as in ``pychromvar.get_bg_peaks``."""
    from scipy.linalg import solve_triangular

    mat = np.array([np.log10(np.asarray(work.X.sum(axis=0)).ravel()), work.var["gc_bias"].to_numpy()])
    try:
        chol = np.linalg.cholesky(np.cov(mat))
    except np.linalg.LinAlgError as exc:
        raise ScfanError("chromVAR background peaks: the peaks' GC content and total counts have a singular "
                         f"covariance ({exc}); expected peaks that differ in GC and depth") from exc
    return solve_triangular(chol, mat, lower=True).T


def background_peaks(work: ad.AnnData, cfg: ChromvarConfig) -> np.ndarray:
    """``(peaks, n_background_iterations)`` indices of background peaks: each peak's nearest peaks in
    (log count, GC) after whitening, the peak itself first.

    ``exact`` finds them with a KD-tree (scikit-learn; exact, deterministic, no JIT). ``pynndescent`` calls
    ``pychromvar.get_bg_peaks`` (approximate NNDescent, ~50 s of numba compilation per process) with numpy's
    global RNG seeded from ``cfg.seed``.
    """
    if cfg.background == "pynndescent":
        import pychromvar

        with _seeded_global_numpy(cfg.seed):
            _whitened_peaks(work)  # the same checks, one clear error
            pychromvar.get_bg_peaks(work, niterations=cfg.n_background_iterations, n_jobs=cfg.n_jobs)
        return np.asarray(work.varm["bg_peaks"], dtype=np.int64)
    from sklearn.neighbors import NearestNeighbors

    points = _whitened_peaks(work)
    nn = NearestNeighbors(n_neighbors=cfg.n_background_iterations, algorithm="kd_tree", n_jobs=cfg.n_jobs)
    idx = nn.fit(points).kneighbors(points, return_distance=False)
    return np.asarray(idx, dtype=np.int64)


def compute_deviations(counts: sp.csr_matrix, motif_match: sp.csr_matrix,
                       bg_peaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """chromVAR deviations ``(cells, motifs)``: bias-corrected deviations and their z-scores.

    For motif peak set ``M``, expected counts ``E = rowsum ⊗ colsum / total`` and ``dev = (X M − E M) / E M``;
    the same with each column of ``bg_peaks`` standing in for the peaks gives the background deviations, whose
    mean and (population) standard deviation make ``deviation = dev − mean`` and ``z = deviation / std``, as in
    ``pychromvar.compute_deviations``. Non-finite values (a cell or motif without counts) become 0.
    """
    X = sp.csr_matrix(counts, dtype=np.float64)
    cell_tot = np.asarray(X.sum(axis=1)).ravel()
    peak_frac = np.asarray(X.sum(axis=0)).ravel() / cell_tot.sum()
    M = sp.csr_matrix(motif_match, dtype=np.float64)

    def dev(m: sp.csr_matrix) -> np.ndarray:
        observed = np.asarray((X @ m).todense())
        expected = np.outer(cell_tot, m.T @ peak_frac)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (observed - expected) / expected

    obs = dev(M)
    # Welford's running mean and variance: one background set in memory at a time, not iterations × cells × motifs
    mean = np.zeros_like(obs)
    m2 = np.zeros_like(obs)
    for i in range(bg_peaks.shape[1]):
        d = dev(M[bg_peaks[:, i]])
        delta = d - mean
        mean += delta / (i + 1)
        m2 += delta * (d - mean)
    deviation = obs - mean
    with np.errstate(divide="ignore", invalid="ignore"):
        z = deviation / np.sqrt(m2 / bg_peaks.shape[1])
    deviation[~np.isfinite(deviation)] = 0.0
    z[~np.isfinite(z)] = 0.0
    return deviation.astype(np.float32), z.astype(np.float32)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in _VERSION_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_chromvar(cells_path: str | Path, genome_fasta: str | Path, motifs: Sequence[str] | None = None,
                 cfg: ChromvarConfig | None = None) -> ad.AnnData:
    """chromVAR on a cells × peaks ``.h5ad``: cells × motifs AnnData (X z-scores, ``layers['deviations']``).

    ``motifs`` defaults to ``cfg.motifs``. ``var`` has ``tf``, ``jaspar_id``, ``jaspar_name`` and
    ``n_peaks_matched``; ``obs`` is the input's; ``uns['scfan_chromvar']`` holds settings, runtime and versions.
    """
    import pychromvar

    t0 = time.perf_counter()
    cfg = cfg or ChromvarConfig(motifs=tuple(motifs or ()))
    items = list(motifs) if motifs is not None else list(cfg.motifs)
    resolved = resolve_motifs(items)
    adata = read_counts(cells_path)
    peaks = peak_coordinates(adata, cells_path)
    X = adata.X
    peak_tot = np.asarray(X.sum(axis=0)).ravel()
    keep = np.flatnonzero(peak_tot > 0)
    n_zero = adata.n_vars - len(keep)
    if n_zero:
        log.info("%s: %d of %d peaks have no count in any cell and are left out (pychromvar's background-peak "
                 "search cannot take them)", cells_path, n_zero, adata.n_vars)
    if len(keep) <= cfg.n_background_iterations:
        raise InputFileError(cells_path, f"{len(keep)} peaks with counts; chromVAR needs more than "
                             f"--n-background-iterations ({cfg.n_background_iterations})")
    peaks = peaks.iloc[keep]
    counts = sp.csr_matrix(X[:, keep])
    seqs = peak_sequences(peaks, genome_fasta, cells_path)
    work = ad.AnnData(X=counts, var=pd.DataFrame(index=peaks.index.astype(str)))
    work.uns["peak_seq"] = seqs
    with _quiet_tqdm("pychromvar.preprocessing", "pychromvar.match_motif"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The method uns_keys", category=FutureWarning)
        pychromvar.match_motif(work, motifs=[m.matrix for m in resolved], p_value=cfg.p_value)
        match = sp.csr_matrix(np.asarray(work.varm["motif_match"], dtype=np.uint8))
        n_matched = np.asarray(match.sum(axis=0)).ravel().astype(np.int64)
        if not n_matched.any():
            raise InputFileError(cells_path, f"no motif ({', '.join(m.tf for m in resolved)}) matches any of the "
                                 f"{len(keep)} peaks with counts at p < {cfg.p_value:g} in {genome_fasta}; expected "
                                 "peak sequences that hold motifs")
        pychromvar.add_gc_bias(work)
        bg = background_peaks(work, cfg)
    if (n_matched == 0).any():
        log.warning("motif(s) %s match no peak: deviations 0", ", ".join(
            m.tf for m, n in zip(resolved, n_matched, strict=True) if n == 0))
    cell_tot = np.asarray(counts.sum(axis=1)).ravel()
    if (cell_tot == 0).any():
        log.warning("%d cell(s) have no count in any peak: deviations 0", int((cell_tot == 0).sum()))
    deviation, z = compute_deviations(counts, match, bg)
    var = pd.DataFrame({"tf": [m.tf for m in resolved], "jaspar_id": [m.jaspar_id for m in resolved],
                        "jaspar_name": [m.jaspar_name for m in resolved], "n_peaks_matched": n_matched},
                       index=pd.Index([m.tf for m in resolved]))
    out = ad.AnnData(X=z, obs=adata.obs.copy(), var=var, layers={"deviations": deviation})
    runtime = time.perf_counter() - t0
    out.uns["scfan_chromvar"] = {
        "config": {**asdict(cfg), "motifs": items},
        "jaspar_release": str(_jaspar().release),
        "cells_file": Path(cells_path).name, "genome_file": Path(genome_fasta).name,
        "n_cells": int(adata.n_obs), "n_peaks": int(adata.n_vars), "n_peaks_used": int(len(keep)),
        "n_peaks_zero_dropped": int(n_zero), "runtime_s": round(runtime, 3), "versions": _versions(),
        "X": "chromVAR deviation z-scores (layers['deviations']: bias-corrected deviations)",
    }
    log.info("chromVAR: %d cells × %d motifs from %d peaks (%d without counts left out), %.1f s", out.n_obs,
             out.n_vars, len(keep), n_zero, runtime)
    return out


def write_chromvar(adata: ad.AnnData, out: str | Path) -> None:
    """Write the chromVAR AnnData under a temporary name and rename it to ``out`` when complete."""
    from scfan._io import write_h5ad

    write_h5ad(adata, out)
