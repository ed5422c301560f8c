"""Single cell: ingest fragments/BAM/counts into AnnData, a spectral (or LSI) embedding's neighbours and pooling
matrix, pooled per-cell tracks, per-cell TF activity from the bulk models, and its clusters, tracks and chromVAR.

Submodules are imported on first use, so ``scfan sc ingest`` does not pay for scikit-learn or pynndescent.
"""

from importlib import import_module

_EXPORTS = {
    "IngestConfig": "scfan.sc.ingest", "ingest_sample": "scfan.sc.ingest", "merge_cells": "scfan.sc.ingest",
    "NeighborsConfig": "scfan.sc.neighbors", "compute_neighbors": "scfan.sc.neighbors",
    "PooledTracks": "scfan.sc.pooling",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'scfan.sc' has no attribute {name!r}")
