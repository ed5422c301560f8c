"""Leiden clustering of the cells' kNN graph (``obsp['connectivities']``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import igraph as ig
import leidenalg
import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterConfig:
    """Settings of ``scfan sc cluster``."""

    resolution: float = 1.0
    seed: int = 0
    n_iterations: int = -1


def leiden(graph: sp.spmatrix, *, resolution: float = 1.0, seed: int = 0, n_iterations: int = -1) -> np.ndarray:
    """Leiden communities (RB configuration model) of a weighted undirected graph; labels sorted by size."""
    upper = sp.triu(sp.csr_matrix(graph), k=1).tocoo()
    g = ig.Graph(n=graph.shape[0], edges=np.column_stack([upper.row, upper.col]).tolist(), directed=False)
    g.es["weight"] = upper.data.astype(float).tolist()
    part = leidenalg.find_partition(g, leidenalg.RBConfigurationVertexPartition, weights="weight",
                                    resolution_parameter=resolution, seed=seed, n_iterations=n_iterations)
    labels = np.asarray(part.membership)
    # Renumber by decreasing size (ties by first cell), independent of leidenalg's internal order.
    ids, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    remap = np.empty(len(ids), dtype=np.int64)
    remap[order] = np.arange(len(ids))
    return remap[np.searchsorted(ids, labels)]
