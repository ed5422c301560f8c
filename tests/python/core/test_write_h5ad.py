"""_io.write_h5ad: small files through an in-memory image, large ones written by HDF5 after a free-space check."""

from __future__ import annotations

import shutil
from collections import namedtuple

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scfan import _io
from scfan.errors import OutputError


def _adata() -> ad.AnnData:
    rng = np.random.default_rng(0)
    X = sp.random(50, 30, density=0.2, format="csr", random_state=1, dtype=np.float32)
    a = ad.AnnData(X=X, obs=pd.DataFrame({"sample": ["s1"] * 25 + ["s2"] * 25}, index=[f"c{i}" for i in range(50)]),
                   var=pd.DataFrame(index=[f"p{j}" for j in range(30)]))
    a.obsm["X_emb"] = rng.random((50, 4)).astype(np.float32)
    a.obsp["pooling"] = sp.identity(50, format="csr", dtype=np.float32)
    return a


def _same(a: ad.AnnData, b: ad.AnnData) -> None:
    assert (a.X != b.X).nnz == 0
    np.testing.assert_array_equal(a.obsm["X_emb"], b.obsm["X_emb"])
    assert (a.obsp["pooling"] != b.obsp["pooling"]).nnz == 0
    pd.testing.assert_frame_equal(a.obs, b.obs)


def test_large_files_are_written_by_hdf5_with_the_same_content(tmp_path, monkeypatch):
    small, large = tmp_path / "small.h5ad", tmp_path / "large.h5ad"
    _io.write_h5ad(_adata(), small)
    monkeypatch.setattr(_io, "IN_MEMORY_H5AD_LIMIT", 0)
    _io.write_h5ad(_adata(), large)
    _same(ad.read_h5ad(small), ad.read_h5ad(large))
    assert _io._approx_nbytes(_adata()) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["large.h5ad", "small.h5ad"]


def test_a_large_file_that_cannot_fit_is_refused_before_writing(tmp_path, monkeypatch):
    keep = tmp_path / "cells.h5ad"
    keep.write_bytes(b"earlier result")
    monkeypatch.setattr(_io, "IN_MEMORY_H5AD_LIMIT", 0)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 100, 100))
    with pytest.raises(OutputError, match=r"cells\.h5ad: no space left on device .*GiB free"):
        _io.write_h5ad(_adata(), keep)
    assert keep.read_bytes() == b"earlier result"
    assert [p.name for p in tmp_path.iterdir()] == ["cells.h5ad"]
