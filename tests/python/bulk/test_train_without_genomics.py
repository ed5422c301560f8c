"""The GPU machine has torch, numpy and scikit-learn but none of the genomics packages: training on arrays
(``train_arrays``, which ``benchmarks/bench_bulk_gpu.py run`` calls there) and prediction must import without them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

SCRIPT = textwrap.dedent('''
    import importlib.abc, importlib.machinery, sys
    BLOCKED = {"polars", "pyarrow", "pandera", "pyfaidx", "pysam", "pyBigWig", "anndata", "tqdm", "matplotlib",
               "scanpy", "pyjaspar"}

    class Loader(importlib.abc.Loader):
        def create_module(self, spec):
            raise ModuleNotFoundError(f"No module named {spec.name!r}")

        def exec_module(self, module):
            pass

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                return importlib.machinery.ModuleSpec(name, Loader())

    sys.meta_path.insert(0, Finder())
    sys.path.insert(0, sys.argv[2])
    import numpy as np
    from scfan.bulk.data import InputSource
    from scfan.bulk.inputs import FlatGenome
    from scfan.bulk.model import load_model
    from scfan.bulk.train import TrainConfig, train_arrays
    from scfan.bulk.data import predict_windows
    from scfan.tracks import TrackNorm

    rng = np.random.default_rng(0)
    layout = FlatGenome.from_sizes({"chr1": 20000, "chr2": 8000})
    src = InputSource(layout, rng.integers(0, 4, layout.total).astype(np.uint8),
                      np.log1p(rng.poisson(1.0, layout.total)).astype(np.float32),  # insertion counts, mean 1
                      np.ones(layout.total, np.float32),
                      TrackNorm(mean_per_base=1.0))

    def split(chrom, n):
        starts = np.arange(1000, 1000 + 50 * n, 50, dtype=np.int64)
        labels = (rng.random((n, 2)) < 0.2).astype(np.float32)
        return np.array([chrom] * n), starts, labels

    meta = {"tf_names": ["TF1", "TF2"], "window": 200, "context": 1000}
    cfg = TrainConfig(epochs=1, motif_init=False, max_valid_windows=64, device="cpu", num_threads=1)
    summary = train_arrays(split("chr1", 300), split("chr2", 80), meta, src, cfg, sys.argv[1])
    model, spec = load_model(sys.argv[1] + "/model.pt")
    probs = predict_windows(model, spec, src, np.array(["chr2"] * 5), np.arange(1000, 1250, 50))
    assert probs.shape == (5, 2) and summary["epochs_run"] == 1
    loaded = sorted(m for m in BLOCKED if m in sys.modules)
    assert not loaded, loaded
    print("ok")
''')


def test_train_arrays_and_prediction_need_no_genomics_packages(tmp_path):
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "train"), str(REPO / "python")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().endswith("ok")
    assert (tmp_path / "train" / "model.pt").is_file()
