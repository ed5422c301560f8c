"""Single-cell preparation: ingest fragments/BAM/counts into AnnData, LSI neighbours, pooled per-cell tracks."""

from scfan.sc.ingest import IngestConfig, ingest_sample, merge_cells
from scfan.sc.neighbors import NeighborsConfig, compute_neighbors
from scfan.sc.pooling import PooledTracks

__all__ = ["IngestConfig", "NeighborsConfig", "PooledTracks", "compute_neighbors", "ingest_sample", "merge_cells"]
