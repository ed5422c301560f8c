"""``--threads`` and :func:`scfan.threads.use_threads`: every computing library follows the task's CPUs (issue 34)."""

from __future__ import annotations

import os
import subprocess
import sys

import numba
import numpy as np
import pytest
import threadpoolctl
import torch
from bulk_builders import run_cli

from scfan.bulk.data import InputSource
from scfan.bulk.model import ArchConfig, ModelSpec, build_model, channel_names, save_model
from scfan.errors import ScfanError
from scfan.threads import THREAD_ENV_VARS, available_cpus, use_threads


@pytest.fixture
def restore_threads():
    """Put back what use_threads changes: the variables, torch's and numba's counts, the BLAS/OpenMP limits.

    numba is imported first so that use_threads leaves NUMBA_NUM_THREADS alone (numba refuses a new value once its
    threads have started, which a restored variable would be); torch's inter-op pool cannot be restored.
    """
    old_env = {name: os.environ.get(name) for name in THREAD_ENV_VARS}
    old_torch, old_numba = torch.get_num_threads(), numba.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=None):
        yield
    torch.set_num_threads(old_torch)
    numba.set_num_threads(old_numba)
    for name, value in old_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.mark.parametrize("n", [1, 3])
def test_use_threads_sets_every_loaded_library_to_exactly_n(restore_threads, n):
    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS loaded
    assert use_threads(n) == n
    assert torch.get_num_threads() == n
    assert numba.get_num_threads() == min(n, numba.config.NUMBA_NUM_THREADS)
    assert all(os.environ[name] == str(n) for name in THREAD_ENV_VARS)
    assert {p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"} == {n}


def test_default_is_the_affinity_set_not_the_core_count(restore_threads, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert available_cpus() == 3
    assert use_threads() == 3
    assert torch.get_num_threads() == 3
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # no affinity call on this platform
    assert available_cpus() == 64


@pytest.mark.parametrize("n", [0, -2])
def test_fewer_than_one_thread_is_refused_and_changes_nothing(restore_threads, n):
    before = torch.get_num_threads()
    with pytest.raises(ScfanError, match=rf"^--threads {n}: expected a whole number >= 1$"):
        use_threads(n)
    assert torch.get_num_threads() == before


def test_libraries_imported_after_the_call_follow_it():
    code = ("from scfan.threads import use_threads; use_threads(1); import torch, polars, numba; "
            "print(torch.get_num_threads(), polars.thread_pool_size(), numba.config.NUMBA_NUM_THREADS)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "1", "1"]


@pytest.mark.parametrize("command", [
    ["bulk", "prepare", "--line", "L1", "--genome", "g.fa", "--mappability", "m.bw", "--outdir", "o"],
    ["bulk", "train", "--windows", "w.parquet", "--genome", "g.fa", "--outdir", "o"],
    ["bulk", "evaluate", "--model", "m.pt", "--windows", "w.parquet", "--genome", "g.fa", "--outdir", "o"],
    ["bulk", "predict", "--model", "m.pt", "--regions", "r.bed", "--genome", "g.fa", "--out", "o.parquet"],
    ["bulk", "sequence-only", "--fasta", "p.fa", "--outdir", "o"],
    ["simulate", "--outdir", "o"],
    ["sc", "ingest", "--sample", "s", "--peaks", "p.bed", "--fragments", "f.tsv.gz", "--out", "o.h5ad"],
    ["sc", "merge", "a.h5ad", "--out", "o.h5ad"],
    ["sc", "neighbors", "--cells", "c.h5ad", "--out", "o.h5ad"],
    ["sc", "cluster", "--matrix", "m.tsv", "--out-dir", "o"],
    ["sc", "chromvar", "--cells", "c.h5ad", "--genome", "g.fa", "--out", "o.h5ad"],
    ["sc", "predict", "--cells", "c.h5ad", "--model", "m.pt", "--fragments", "s=f.tsv.gz", "--genome", "g.fa",
     "--mappability", "m.bw", "--out", "o.h5ad"],
    ["sc", "tracks", "--cells", "c.h5ad", "--clusters", "c.tsv", "--model", "m.pt", "--fragments", "s=f.tsv.gz",
     "--genome", "g.fa", "--mappability", "m.bw", "--out-dir", "o"],
], ids=lambda c: " ".join(c[:2]).removesuffix(" --outdir"))
def test_threads_zero_is_one_line_exit_2(restore_threads, monkeypatch, capsys, command):
    assert run_cli(monkeypatch, *command, "--threads", "0") == 2
    assert capsys.readouterr().err == "scfan: error: --threads 0: expected a whole number >= 1\n"


def test_bulk_evaluate_with_threads_1_leaves_torch_on_one_thread(tiny_prepared, tmp_path, monkeypatch,
                                                                  restore_threads):
    tb, windows = tiny_prepared
    src = InputSource.load(tb.genome, tb.atac, tb.mappability)
    spec = ModelSpec(arch=ArchConfig.preset("small"), tf_names=("TFA", "TFB"), channels=channel_names(True),
                     window=200, context=1000, track_norm=src.track_norm)
    save_model(tmp_path / "model.pt", build_model(spec), spec)
    torch.set_num_threads(2)
    assert run_cli(monkeypatch, "bulk", "evaluate", "--model", str(tmp_path / "model.pt"), "--windows", str(windows),
                   "--genome", str(tb.genome), "--atac", str(tb.atac), "--mappability", str(tb.mappability),
                   "--no-pwm", "--max-windows", "64", "--threads", "1", "--outdir", str(tmp_path / "eval")) == 0
    assert torch.get_num_threads() == 1
    assert (tmp_path / "eval" / "metrics.tsv").is_file()
