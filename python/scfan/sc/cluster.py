"""Clustering of any cells × features matrix, and the features that tell the clusters apart.

``scfan sc cluster`` reads a TF activity ``.h5ad`` (a layer), an embedding (``obsm``), or a matrix made by another
tool (``.h5ad``, or a TSV/CSV with cell ids in the first column and feature names in the header), and runs the
scverse recipe: per-feature z-scores (matrices, not embeddings), PCA when there are more features than
``n_pcs``, a kNN graph (``scanpy.pp.neighbors``), Leiden (igraph) at a resolution picked by a label-free rule,
UMAP (and t-SNE on request), ARI / NMI against labels when given, and differential activity per cluster
(Wilcoxon rank-sum, Benjamini–Hochberg) on the unscaled values of the matrix, or of a second matrix of the same
cells (``diff_matrix``: e.g. TF activity tested between clusters found on the chromatin embedding).

Resolution rule (``resolution=None``, ``resolution_rule='consensus'``): Leiden is run on a grid of resolutions
(0.05–3.0); among the partitions of at least 2 clusters whose mean silhouette width is within
``SILHOUETTE_MARGIN`` (0.1) of the best, the one that agrees most with the partitions at every other resolution of
the grid (mean adjusted Rand index; ties go to the lower resolution) is kept. The silhouette screen keeps a clearly
separated partition where there is one (a 12-TF activity matrix's 4 types at silhouette 0.89 over-split at finer
resolutions); the consensus of the resolution path picks among partitions the silhouette cannot tell apart, where
populations are many, of unequal sizes and overlapping (there the best silhouette alone collapses to 2–3 clusters).
Measured against labels it never sees (``benchmarks/bench_resolution.py``): within 0.05 ARI of the best fixed
resolution on 26 of 27 simulated matrices of 10–20 populations and 25 of 27 held-out ones (worst gap 0.07), on the
real counts and on the ``test`` preset's three matrices. ``resolution_rule='silhouette'`` keeps the highest
silhouette alone (the rule before). Every resolution's clusters, cluster sizes, silhouette, agreement (and ARI,
when labels are given, for the reader only) are in ``cluster.json`` (``resolution_scan``, ``resolution_rule``)
and the report.

Small and degenerate inputs (each fallback is logged as a warning and recorded in ``cluster.json``):

* fewer than 3 cells: refused with a one-line error naming the file (no graph or partition can be compared);
* ``n_neighbors`` >= cells: the kNN graph uses ``cells - 1`` neighbours;
* too few cells for UMAP's spectral start (``cells < UMAP_MIN_SPECTRAL_CELLS``): UMAP starts from random
  positions (``umap_init`` = ``random``);
* t-SNE on no more cells than its perplexity (30): the perplexity is lowered to ``(cells - 1) / 3``
  (``tsne_perplexity``);
* a single cluster (no partition with a defined silhouette): every cell is in cluster 0 and the differential table
  has its header only;
* clusters of one cell: not tested against the rest (a rank-sum of one value is meaningless); they stay in the
  rest of the other clusters' tests and are listed in ``diff_untested_clusters``.

Why this module is long: ``scfan sc cluster`` is one step: the readers of the matrices it accepts, the
representation, the resolution rule, the differential test and the outputs share its config; each is its own
function.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import anndata as ad
import igraph as ig
import leidenalg
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scfan.errors import InputFileError, ScfanError

log = logging.getLogger(__name__)

#: Resolutions tried by the rule (the consensus depends on the grid: benchmarks/results/bench_resolution.md).
RESOLUTION_GRID: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0, 2.5,
                                      3.0)
#: The consensus rule considers the partitions whose mean silhouette is within this of the best one.
SILHOUETTE_MARGIN = 0.1
#: Label-free rules that choose the resolution.
RESOLUTION_RULES = ("consensus", "silhouette")
#: Silhouette widths are computed on at most this many cells (a seeded sample) above it.
SILHOUETTE_MAX_CELLS = 5000
#: UMAP's spectral start needs more cells than embedding dimensions + 1; below this it starts from random positions.
UMAP_MIN_SPECTRAL_CELLS = 4
#: scanpy's default t-SNE perplexity (lowered for fewer cells: it must stay below the number of cells).
TSNE_PERPLEXITY = 30.0


@dataclass(frozen=True)
class ClusterConfig:
    """Settings of ``scfan sc cluster``."""

    layer: str | None = None  # h5ad layer (None: X)
    obsm: str | None = None  # h5ad embedding key instead of a matrix (e.g. X_spectral)
    scale: bool | None = None  # z-score features; None: yes for matrices, no for embeddings
    n_pcs: int = 30  # PCA to this many components when the matrix has more features
    n_neighbors: int = 15
    resolution: float | None = None  # None: resolution_rule over RESOLUTION_GRID
    resolutions: tuple[float, ...] = RESOLUTION_GRID
    resolution_rule: str = "consensus"  # or "silhouette" (RESOLUTION_RULES)
    seed: int = 0
    tsne: bool = False
    label_column: str = "cell_type"
    diff_layer: str | None = None  # layer of diff_matrix tested between clusters (None: X)
    n_iterations: int = 2

    def __post_init__(self) -> None:
        if self.layer and self.obsm:
            raise ScfanError("give either --layer or --obsm, not both")
        if self.n_neighbors < 2:
            raise ScfanError(f"n_neighbors {self.n_neighbors}: expected >= 2")
        if self.resolution is not None and self.resolution <= 0:
            raise ScfanError(f"resolution {self.resolution}: expected > 0")
        if self.resolution_rule not in RESOLUTION_RULES:
            raise ScfanError(f"resolution rule {self.resolution_rule!r}: expected one of {', '.join(RESOLUTION_RULES)}")


@dataclass
class FeatureMatrix:
    """Cells × features values with their ids, plus optional labels and the source AnnData."""

    cells: list[str]
    features: list[str]
    values: np.ndarray
    source: Path
    adata: ad.AnnData | None = None
    labels: pd.Series | None = None
    dropped: list[str] = field(default_factory=list)
    embedding: bool = False  # features are an obsm embedding, not the AnnData's var


def leiden(graph: sp.spmatrix, *, resolution: float = 1.0, seed: int = 0, n_iterations: int = -1) -> np.ndarray:
    """Leiden communities (RB configuration model) of a weighted undirected graph; labels sorted by size."""
    upper = sp.triu(sp.csr_matrix(graph), k=1).tocoo()
    # a numpy edge array: igraph reads it without a Python tuple per edge (10M edges: 14 s, 1.9 GB)
    g = ig.Graph(n=graph.shape[0], edges=np.column_stack([upper.row, upper.col]).astype(np.int64), directed=False)
    g.es["weight"] = upper.data.astype(float)
    part = leidenalg.find_partition(g, leidenalg.RBConfigurationVertexPartition, weights="weight",
                                    resolution_parameter=resolution, seed=seed, n_iterations=n_iterations)
    return _by_size(np.asarray(part.membership))


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber labels by decreasing cluster size (ties by first cell), independent of the algorithm's order."""
    ids, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    remap = np.empty(len(ids), dtype=np.int64)
    remap[order] = np.arange(len(ids))
    return remap[np.searchsorted(ids, labels)]


# --------------------------------------------------------------------------------------------------------- reading


def read_matrix(path: str | Path, *, layer: str | None = None, obsm: str | None = None) -> FeatureMatrix:
    """Read a cells × features matrix from ``.h5ad`` (X, a layer or an obsm embedding) or a TSV/CSV table."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "file not found")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".h5ad"):
        return _read_h5ad(path, layer, obsm)
    if name.endswith((".tsv", ".csv", ".txt")):
        if layer or obsm:
            raise InputFileError(path, "--layer/--obsm apply to .h5ad input only")
        return _read_table(path)
    raise InputFileError(path, "expected a .h5ad, .tsv or .csv file")


def _read_h5ad(path: Path, layer: str | None, obsm: str | None) -> FeatureMatrix:
    try:
        adata = ad.read_h5ad(path)
    except (OSError, KeyError, ValueError) as exc:
        raise InputFileError(path, f"cannot read as AnnData ({exc.__class__.__name__})") from exc
    _check_unique(path, list(map(str, adata.obs_names)))
    if obsm:
        if obsm not in adata.obsm:
            raise InputFileError(path, f"no obsm[{obsm!r}] (has: {', '.join(adata.obsm) or 'none'})")
        values = np.asarray(adata.obsm[obsm], dtype=np.float64)
        features = [f"{obsm}_{i + 1}" for i in range(values.shape[1])]
    else:
        if layer and layer not in adata.layers:
            raise InputFileError(path, f"no layer {layer!r} (has: {', '.join(adata.layers) or 'none'})")
        m = adata.layers[layer] if layer else adata.X
        if m is None:
            raise InputFileError(path, "X is empty")
        values = np.asarray(m.toarray() if sp.issparse(m) else m, dtype=np.float64)
        features = list(map(str, adata.var_names))
    return FeatureMatrix(list(map(str, adata.obs_names)), features, values, path, adata=adata,
                         embedding=obsm is not None)


def _check_unique(path: Path, ids: list[str], first_line: int = 1) -> None:
    seen: dict[str, int] = {}
    for i, c in enumerate(ids):
        if c in seen:
            raise InputFileError(path, f"duplicate cell id (first seen at line {seen[c] + first_line})",
                                 line=i + first_line, record=c)
        seen[c] = i


def _read_table(path: Path) -> FeatureMatrix:
    sep = "," if path.name.lower().removesuffix(".gz").endswith(".csv") else "\t"
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot read as a delimited table ({exc.__class__.__name__}: {exc})") from exc
    if df.shape[1] < 2 or df.shape[0] == 0:
        raise InputFileError(path, "expected a header of feature names and one row per cell (cell id first)")
    cells = df.iloc[:, 0].tolist()
    _check_unique(path, cells, first_line=2)
    body = df.iloc[:, 1:]
    values = np.empty(body.shape, dtype=np.float64)
    for j, col in enumerate(body.columns):
        num = pd.to_numeric(body[col].replace({"": "nan", "NA": "nan"}), errors="coerce")
        bad = num.isna() & ~body[col].str.lower().isin(["", "na", "nan"])
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputFileError(path, f"column {col!r}: expected a number, got {body[col].iloc[i]!r}",
                                 line=i + 2, record=cells[i])
        values[:, j] = num.to_numpy(dtype=np.float64)
    return FeatureMatrix(cells, list(map(str, body.columns)), values, path)


def read_labels(path: str | Path, column: str) -> pd.Series | None:
    """Cell labels from a TSV/CSV: cell ids in ``cell_id`` (or the first column), labels in ``column`` (or the
    second column when there are only two). ``None`` (with a warning) when the label column is missing."""
    path = Path(path)
    sep = "," if path.name.lower().removesuffix(".gz").endswith(".csv") else "\t"
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot read as a delimited table ({exc.__class__.__name__})") from exc
    id_col = "cell_id" if "cell_id" in df.columns else df.columns[0]
    if column in df.columns:
        lab_col = column
    elif df.shape[1] == 2:
        lab_col = df.columns[1]
    else:
        log.warning("%s: no label column %r (columns: %s): ARI/NMI skipped", path, column, ", ".join(df.columns))
        return None
    _check_unique(path, df[id_col].tolist(), first_line=2)
    return pd.Series(df[lab_col].to_numpy(), index=df[id_col].to_numpy(), name=lab_col)


# ---------------------------------------------------------------------------------------------------- preparation


def clean_features(fm: FeatureMatrix) -> FeatureMatrix:
    """Drop all-NaN and constant features (listed in ``fm.dropped``); fill remaining NaNs with the feature mean."""
    v = fm.values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        all_nan = np.isnan(v).all(axis=0)
        sd = np.nanstd(v, axis=0)
    keep = ~all_nan & (sd > 0)
    dropped = [f for f, k in zip(fm.features, keep, strict=True) if not k]
    if dropped:
        log.warning("%s: dropped %d all-NaN or constant feature(s): %s", fm.source, len(dropped),
                    ", ".join(dropped[:10]) + (" …" if len(dropped) > 10 else ""))
    if not keep.any():
        raise InputFileError(fm.source, "every feature is all-NaN or constant: nothing to cluster on")
    v = v[:, keep]
    nan = np.isnan(v)
    if nan.any():
        log.warning("%s: %d missing value(s) filled with the feature mean", fm.source, int(nan.sum()))
        v = np.where(nan, np.nanmean(v, axis=0), v)
    fm.features = [f for f, k in zip(fm.features, keep, strict=True) if k]
    fm.values = v
    fm.dropped = fm.dropped + dropped
    if dropped and fm.adata is not None and not fm.embedding:
        fm.adata = fm.adata[:, keep].copy()
    return fm


def representation(values: np.ndarray, cfg: ClusterConfig, *, embedding: bool) -> tuple[np.ndarray, dict]:
    """The matrix the graph is built on: z-scored features (matrices), then PCA when features > n_pcs."""
    scale = (not embedding) if cfg.scale is None else cfg.scale
    x = values.astype(np.float64)
    if scale:
        x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-12)
    info = {"scaled": bool(scale), "pca_components": 0}
    if x.shape[1] > cfg.n_pcs and x.shape[0] > cfg.n_pcs:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=cfg.n_pcs, svd_solver="randomized", random_state=cfg.seed)
        x = pca.fit_transform(x)
        info.update(pca_components=cfg.n_pcs, pca_variance_ratio=pca.explained_variance_ratio_.tolist())
    return x.astype(np.float32), info


# ------------------------------------------------------------------------------------------------------ analysis


def _silhouette(x: np.ndarray, labels: np.ndarray, metric: str, seed: int) -> float:
    from sklearn.metrics import silhouette_score

    if len(np.unique(labels)) < 2 or len(np.unique(labels)) >= len(labels):
        return float("-inf")
    sample = SILHOUETTE_MAX_CELLS if len(labels) > SILHOUETTE_MAX_CELLS else None
    return float(silhouette_score(x, labels, metric=metric, sample_size=sample, random_state=seed))


def label_metrics(labels: pd.Series | None, clusters: np.ndarray) -> dict:
    """ARI and NMI of clusters against labels; skipped (with a warning) without usable labels."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    if labels is None:
        return {"ari": None, "nmi": None, "n_labelled": 0, "metrics_note": "no labels given"}
    ok = labels.notna().to_numpy() & (labels.astype(str).to_numpy() != "")
    lab = labels.astype(str).to_numpy()[ok]
    if len(np.unique(lab)) < 2:
        log.warning("labels have %d class(es) among %d labelled cells: ARI/NMI skipped", len(np.unique(lab)),
                    int(ok.sum()))
        return {"ari": None, "nmi": None, "n_labelled": int(ok.sum()), "metrics_note": "fewer than 2 label classes"}
    cl = clusters[ok]
    return {"ari": float(adjusted_rand_score(lab, cl)), "nmi": float(normalized_mutual_info_score(lab, cl)),
            "n_labelled": int(ok.sum()), "metrics_note": ""}


def differential(values: np.ndarray, features: list[str], clusters: np.ndarray,
                 var: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """Wilcoxon rank-sum of each feature, each cluster vs the rest (scanpy), Benjamini–Hochberg per cluster.

    Parameters
    ----------
    values : numpy.ndarray
        Cells × features, unscaled.
    features : list of str
        The feature names (columns of ``values``).
    clusters : numpy.ndarray
        The cluster of each cell (integers).
    var : pandas.DataFrame, optional
        Feature metadata (``model``, ``tf`` columns copied into the table when present).

    Returns
    -------
    pandas.DataFrame
        The long table: one row per tested cluster and feature, best first. Header only with a single cluster.
    dict
        scanpy's ``rank_genes_groups`` result for ``uns`` (empty when nothing was tested).

    Notes
    -----
    Clusters of one cell are not tested (scanpy refuses them, and one value has no rank distribution); they stay
    in the "rest" of the other clusters' tests.
    """
    import scanpy as sc

    groups = pd.Categorical([str(c) for c in clusters], categories=[str(c) for c in np.unique(clusters)])
    b = ad.AnnData(values.astype(np.float32),
                   obs=pd.DataFrame({"leiden": groups}, index=pd.Index([str(i) for i in range(len(groups))])),
                   var=pd.DataFrame(index=pd.Index(features)))
    if len(groups.categories) < 2:
        log.warning("a single cluster: no differential test (differential_tfs.tsv has its header only)")
        return pd.DataFrame(columns=DIFF_COLUMNS), {}
    sizes = pd.Series(np.asarray(groups)).value_counts()
    tested = [g for g in groups.categories if sizes[g] >= 2]
    single = [g for g in groups.categories if sizes[g] < 2]
    if single:
        log.warning("cluster(s) %s have a single cell: not tested (kept in the rest of the other clusters' tests)",
                    ", ".join(single))
    if not tested:
        return pd.DataFrame(columns=DIFF_COLUMNS), {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.tl.rank_genes_groups(b, "leiden", groups=tested, reference="rest", method="wilcoxon",
                                corr_method="benjamini-hochberg", use_raw=False, tie_correct=True, pts=False)
    res = b.uns["rank_genes_groups"]
    rows = []
    idx = {f: i for i, f in enumerate(features)}
    for g in tested:
        member = np.asarray(groups == g)
        names = list(res["names"][g])
        for rank, name in enumerate(names, start=1):
            j = idx[name]
            mean_in = float(values[member, j].mean())
            mean_out = float(values[~member, j].mean())
            rows.append({"cluster": g, "rank": rank, "feature": name,
                         "model": _var_value(var, name, "model"), "tf": _var_value(var, name, "tf") or name,
                         "score": float(res["scores"][g][rank - 1]), "mean_in": mean_in, "mean_out": mean_out,
                         "delta": mean_in - mean_out, "pval": float(res["pvals"][g][rank - 1]),
                         "padj": float(res["pvals_adj"][g][rank - 1])})
    table = pd.DataFrame(rows, columns=DIFF_COLUMNS)
    uns = {k: res[k] for k in ("names", "scores", "pvals", "pvals_adj", "logfoldchanges") if k in res}
    uns["params"] = dict(res["params"])
    return table, uns


DIFF_COLUMNS = ["cluster", "rank", "feature", "model", "tf", "score", "mean_in", "mean_out", "delta", "pval", "padj"]


def _var_value(var: pd.DataFrame | None, name: str, col: str) -> str:
    if var is None or col not in var.columns or name not in var.index:
        return ""
    return str(var.loc[name, col])


@dataclass
class ClusterResult:
    adata: ad.AnnData
    clusters: pd.DataFrame
    diff: pd.DataFrame
    summary: dict


def agreement(partitions: dict[float, np.ndarray]) -> dict[float, float]:
    """Per resolution, the mean adjusted Rand index of its partition against the partitions at every other
    resolution of the grid (None with a single resolution)."""
    from sklearn.metrics import adjusted_rand_score

    keys = list(partitions)
    out = {}
    for r in keys:
        others = [adjusted_rand_score(partitions[r], partitions[o]) for o in keys if o != r]
        out[r] = float(np.mean(others)) if others else None
    return out


def choose_resolution(scan: list[dict], *, fixed: bool = False, rule: str = "consensus") -> tuple[float, str]:
    """The resolution the rule keeps from ``scan`` (rows of ``resolution``, ``n_clusters``, ``silhouette`` and, for
    the consensus rule, ``agreement``, in grid order) and the rule's words for ``cluster.json`` and the report."""
    if fixed:
        return scan[0]["resolution"], "fixed (--resolution)"
    multi = [s for s in scan if s["n_clusters"] >= 2]
    if not multi:
        return scan[0]["resolution"], "one cluster at every resolution of the grid"
    best = max(multi, key=lambda s: s["silhouette"])  # max keeps the first (lowest resolution) of ties
    if rule == "silhouette":
        return best["resolution"], "highest mean silhouette width (at least 2 clusters; ties to the lower resolution)"
    near = [s for s in multi if s["silhouette"] >= best["silhouette"] - SILHOUETTE_MARGIN]
    pick = max(near, key=lambda s: s["agreement"])
    return pick["resolution"], (f"consensus: of the partitions within {SILHOUETTE_MARGIN:g} of the best mean "
                                "silhouette width, the one that agrees most with the other resolutions' partitions "
                                "(mean ARI; at least 2 clusters; ties to the lower resolution)")


def _neighbour_graph(fm: FeatureMatrix, cfg: ClusterConfig, k: int) -> tuple[ad.AnnData, np.ndarray, dict, str]:
    """The representation of the cells and its kNN graph: (AnnData with the graph, representation, its info, metric)."""
    import scanpy as sc

    embedding = cfg.obsm is not None
    x, rep_info = representation(fm.values, cfg, embedding=embedding)
    metric = "cosine" if embedding else "euclidean"
    b = ad.AnnData(x, obs=pd.DataFrame(index=pd.Index(fm.cells, name="cell_id")),
                   var=pd.DataFrame(index=pd.Index([f"rep{i + 1}" for i in range(x.shape[1])])))
    b.obsm["X_rep"] = x
    sc.pp.neighbors(b, n_neighbors=k, use_rep="X_rep", metric=metric, random_state=cfg.seed)
    return b, x, rep_info, metric


def _leiden_scan(b: ad.AnnData, x: np.ndarray, metric: str,
                 cfg: ClusterConfig) -> tuple[list[dict], dict[float, np.ndarray], float, str]:
    """Leiden at each resolution of the grid, and the one the rule keeps: (scan rows, partitions, resolution, rule).

    Sets ``b.obs["leiden"]`` and ``b.uns["leiden"]`` to the kept partition.
    """
    import scanpy as sc

    grid = (cfg.resolution,) if cfg.resolution is not None else tuple(cfg.resolutions)
    scan = []
    partitions = {}
    for r in grid:
        sc.tl.leiden(b, resolution=r, flavor="igraph", n_iterations=cfg.n_iterations, directed=False,
                     random_state=cfg.seed, key_added="_l")
        lab = _by_size(b.obs["_l"].astype(int).to_numpy())
        partitions[r] = lab
        sizes = np.bincount(lab)
        scan.append({"resolution": r, "n_clusters": int(len(sizes)), "median_cluster_size": float(np.median(sizes)),
                     "smallest_cluster": int(sizes.min()),
                     "silhouette": _silhouette(x, lab, metric, cfg.seed)})
    for row, agree in zip(scan, agreement(partitions).values(), strict=True):
        row["agreement"] = agree
    resolution, rule = choose_resolution(scan, fixed=cfg.resolution is not None, rule=cfg.resolution_rule)
    labels = partitions[resolution]
    for row in scan:
        row["chosen"] = row["resolution"] == resolution
    del b.obs["_l"]
    log.info("Leiden: resolution %s → %d clusters (%s)", resolution, labels.max() + 1, rule)
    b.obs["leiden"] = pd.Categorical([str(c) for c in labels], categories=[str(c) for c in range(labels.max() + 1)])
    b.uns["leiden"] = {"params": {"resolution": float(resolution), "random_state": cfg.seed,
                                  "n_iterations": cfg.n_iterations, "flavor": "igraph"}}
    return scan, partitions, resolution, rule


def _embed_2d(b: ad.AnnData, n: int, cfg: ClusterConfig) -> tuple[str, float]:
    """UMAP (and t-SNE if asked) of the graph into ``b.obsm``; returns the UMAP start and the t-SNE perplexity."""
    import scanpy as sc

    umap_init = "spectral"
    if n < UMAP_MIN_SPECTRAL_CELLS:
        log.warning("only %d cells: UMAP starts from random positions (its spectral start needs at least %d)", n,
                    UMAP_MIN_SPECTRAL_CELLS)
        umap_init = "random"
    perplexity = TSNE_PERPLEXITY if n > TSNE_PERPLEXITY else (n - 1) / 3  # t-SNE needs perplexity < cells
    if cfg.tsne and perplexity < TSNE_PERPLEXITY:
        log.warning("only %d cells: t-SNE perplexity lowered from %g to %.3g", n, TSNE_PERPLEXITY, perplexity)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.tl.umap(b, init_pos=umap_init, random_state=cfg.seed)
        if cfg.tsne:
            sc.tl.tsne(b, use_rep="X_rep", perplexity=perplexity, random_state=cfg.seed, n_jobs=1)
    return umap_init, perplexity


def _diff_target(fm: FeatureMatrix, diff: FeatureMatrix | None) -> FeatureMatrix:
    """The matrix tested between clusters: ``diff`` in the clustered cells' order (cleaned), or ``fm`` itself."""
    if diff is None:
        return fm
    missing = [c for c in fm.cells if c not in set(diff.cells)]
    if missing:
        raise InputFileError(diff.source, f"{len(missing)} clustered cell(s) missing, e.g. {missing[0]!r}")
    pos = {c: i for i, c in enumerate(diff.cells)}
    sel = np.array([pos[c] for c in fm.cells])
    return clean_features(FeatureMatrix(fm.cells, diff.features, diff.values[sel], diff.source,
                                        adata=diff.adata[sel].copy() if diff.adata is not None else None))


def _clustered_adata(target: FeatureMatrix, b: ad.AnnData, x: np.ndarray, cfg: ClusterConfig, *, embedding: bool,
                     labels_s: pd.Series | None, rgg: dict) -> ad.AnnData:
    """The AnnData written: the tested matrix with the clusters, labels, 2-D embeddings, graph and their params."""
    out = _output_adata(target, b, cfg, embedding=embedding)
    out.obs["leiden"] = b.obs["leiden"].to_numpy()
    out.obs["leiden"] = out.obs["leiden"].astype(b.obs["leiden"].dtype)
    if labels_s is not None:
        out.obs["label"] = pd.Categorical(labels_s.astype(str).to_numpy())
    out.obsm["X_umap"] = b.obsm["X_umap"]
    if cfg.tsne:
        out.obsm["X_tsne"] = b.obsm["X_tsne"]
    out.obsm["X_cluster_rep"] = x
    out.obsp["distances"] = b.obsp["distances"]
    out.obsp["connectivities"] = b.obsp["connectivities"]
    nb = dict(b.uns["neighbors"])
    nb["params"] = {**dict(nb.get("params", {})), "use_rep": "X_cluster_rep"}
    out.uns["neighbors"] = nb
    out.uns["leiden"] = b.uns["leiden"]
    out.uns["umap"] = dict(b.uns.get("umap", {}))
    if rgg:
        out.uns["rank_genes_groups"] = rgg
    return out


def cluster_matrix(fm: FeatureMatrix, cfg: ClusterConfig, *, diff: FeatureMatrix | None = None) -> ClusterResult:
    """Cluster the cells of ``fm`` and test the features of ``diff`` (default ``fm``) between the clusters.

    The steps: the representation and its kNN graph, Leiden over the resolution grid, the 2-D embeddings, the
    label metrics, the differential test, and the outputs.
    """
    t0 = time.perf_counter()
    n = len(fm.cells)
    if n < 3:
        raise InputFileError(fm.source, f"need at least 3 cells to cluster, got {n}")
    fm = clean_features(fm)
    k = cfg.n_neighbors
    if k >= n:
        log.warning("%d neighbours requested but only %d cells: using %d", k, n, n - 1)
        k = n - 1
    embedding = cfg.obsm is not None
    b, x, rep_info, metric = _neighbour_graph(fm, cfg, k)
    scan, partitions, resolution, rule = _leiden_scan(b, x, metric, cfg)
    labels = partitions[resolution]
    if labels.max() == 0:
        log.warning("%s: all %d cells fall in one cluster (resolution %s)", fm.source, n, resolution)
    umap_init, perplexity = _embed_2d(b, n, cfg)

    labels_s = fm.labels.reindex(fm.cells) if fm.labels is not None else None
    metrics = label_metrics(labels_s, labels)
    if metrics["ari"] is not None:  # for the reader only: the rule above never sees the labels
        for row in scan:
            row["ari"] = label_metrics(labels_s, partitions[row["resolution"]])["ari"]

    target = _diff_target(fm, diff)
    var = target.adata.var if target.adata is not None else None
    diff_table, rgg = differential(target.values, target.features, labels, var)

    tested = set(diff_table["cluster"].astype(int))
    untested = [str(c) for c in range(labels.max() + 1) if c not in tested] if labels.max() > 0 else []
    out = _clustered_adata(target, b, x, cfg, embedding=embedding and diff is None, labels_s=labels_s, rgg=rgg)
    summary = {"n_cells": n, "n_features": len(fm.features), "dropped_features": fm.dropped + (
        target.dropped if diff is not None else []), "resolution": float(resolution), "resolution_rule": rule,
        "resolution_scan": scan,
        "n_clusters": int(labels.max() + 1), "n_neighbors": int(k), "metric": metric, "umap_init": umap_init,
        "tsne_perplexity": float(perplexity) if cfg.tsne else None,
        "diff_untested_clusters": untested, **rep_info, **metrics,
        "source": str(fm.source), "diff_source": str(target.source), "runtime_s": time.perf_counter() - t0,
        "config": asdict(cfg)}
    out.uns["scfan_cluster"] = _uns_safe(summary)
    clusters = pd.DataFrame({"cell_id": fm.cells, "cluster": labels})
    if fm.adata is not None and "sample" in fm.adata.obs:
        clusters.insert(1, "sample", fm.adata.obs["sample"].astype(str).to_numpy())
    if labels_s is not None:
        clusters["label"] = labels_s.astype(str).to_numpy()
    clusters["umap1"], clusters["umap2"] = b.obsm["X_umap"][:, 0], b.obsm["X_umap"][:, 1]
    return ClusterResult(out, clusters, diff_table, summary)


def _output_adata(target: FeatureMatrix, b: ad.AnnData, cfg: ClusterConfig, *, embedding: bool) -> ad.AnnData:
    """The AnnData written: the tested matrix (its layers/var/obs kept when it came from an .h5ad)."""
    if target.adata is not None:
        out = target.adata.copy()
        out.obs_names = list(map(str, out.obs_names))
        if embedding:  # the features were an obsm embedding: keep the source as is
            return out
        return out
    return ad.AnnData(target.values.astype(np.float32), obs=pd.DataFrame(index=pd.Index(target.cells)),
                      var=pd.DataFrame(index=pd.Index(target.features)))


def _uns_safe(obj):
    """JSON-like values h5py can store (None → '')."""
    if isinstance(obj, dict):
        return {str(k): _uns_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        if all(isinstance(v, dict) for v in obj) and obj:
            return {str(i): _uns_safe(v) for i, v in enumerate(obj)}
        return [_uns_safe(v) for v in obj] if obj else []
    if obj is None:
        return ""
    if isinstance(obj, float) and not np.isfinite(obj):
        return float("nan")
    return obj


def write_result(res: ClusterResult, out_dir: str | Path) -> None:
    """Write ``clusters.tsv``, ``differential_tfs.tsv``, ``clustered.h5ad`` and ``cluster.json`` into ``out_dir``,
    all at once (a temporary folder renamed when complete)."""
    import json

    from scfan._io import atomic_path, write_h5ad

    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        res.clusters.to_csv(tmp / "clusters.tsv", sep="\t", index=False)
        res.diff.to_csv(tmp / "differential_tfs.tsv", sep="\t", index=False, float_format="%.6g")
        write_h5ad(res.adata, tmp / "clustered.h5ad")  # a full disk is one clean error, not an HDF5 crash
        (tmp / "cluster.json").write_text(json.dumps(res.summary, indent=2, sort_keys=True, default=str) + "\n")
