"""Fill numba's on-disk cache at image build time (containers/Dockerfile runs this once).

`scfan sc cluster` (scanpy's neighbours and UMAP, through umap-learn) JIT-compiles numba functions on first use:
about 35 s in every clustering task of a container run, because the cache (``NUMBA_CACHE_DIR``) starts empty in
each fresh container. Running the same calls once here stores the compiled code in the image, where every task finds
it. numba checks each entry against the source file and the CPU it was compiled for, so on another CPU a task simply
compiles again, as before.

Both kinds of input `sc cluster` takes are run: a feature matrix (z-scored, euclidean) and an embedding (cosine).
matplotlib's font cache (``MPLCONFIGDIR``) is built on the way.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    cache = os.environ.get("NUMBA_CACHE_DIR")
    logging.basicConfig(level=logging.INFO, format="warm_numba: %(message)s")
    log = logging.getLogger("warm_numba")
    if not cache:
        log.error("NUMBA_CACHE_DIR is not set; nothing would be kept")
        return 2
    logging.getLogger("scfan").setLevel(logging.WARNING)
    from scfan.sc.cluster import ClusterConfig, FeatureMatrix, cluster_matrix

    rng = np.random.default_rng(0)
    n = 120
    centres = rng.normal(size=(3, 8))
    values = centres[np.arange(n) % 3] + 0.3 * rng.normal(size=(n, 8))
    cells = [f"c{i}" for i in range(n)]
    t0 = time.perf_counter()
    for embedding in (False, True):
        fm = FeatureMatrix(cells=cells, features=[f"f{j}" for j in range(8)], values=values,
                           source=Path("warm_numba"), embedding=embedding)
        cfg = ClusterConfig(obsm="X_warm" if embedding else None, resolution=0.5)
        cluster_matrix(fm, cfg)
    import matplotlib.pyplot  # noqa: F401  (the font cache, for the report and the plots)

    n_files = sum(len(f) for _, _, f in os.walk(cache))
    log.info("%d files in %s after %.0f s", n_files, cache, time.perf_counter() - t0)
    return 0 if n_files else 1


if __name__ == "__main__":
    sys.exit(main())
