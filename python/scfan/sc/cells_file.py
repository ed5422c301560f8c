"""The cells file as per-cell inference reads it: ``obs``, the peaks and the pooling matrix in memory, count rows on
demand (:class:`CellsFile`), checked for what inference needs (:func:`read_cells_for_inference`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scfan.errors import InputFileError


class CellsFile:
    """What per-cell inference reads of a ``cells_nn.h5ad``: ``obs``, the peaks (``var_names``) and
    ``obsp['pooling']`` in memory, rows of the counts ``X`` on demand (:meth:`rows`). A shard never loads the whole
    count matrix, only its cells' neighbours (:func:`~scfan.sc.predict.scored_peaks`), so its memory follows the
    shard, not the data set (a million cells' X is ~12 GB). ``X`` (every row) is still there for tests and
    benchmarks."""

    def __init__(self, path: str | Path):
        import h5py
        from anndata.io import read_elem

        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise InputFileError(path, f"cannot read as AnnData ({exc.__class__.__name__})") from exc
        try:
            f = self._file
            self.obs = read_elem(f["obs"])
            self._var = read_elem(f["var"])
            if "obsp" not in f or "pooling" not in f["obsp"]:
                raise InputFileError(path, "no obsp['pooling'] (the cells' neighbours); run `scfan sc neighbors` "
                                     "first")
            self.obsp = {"pooling": sp.csr_matrix(read_elem(f["obsp"]["pooling"]))}
            self._x = f["X"]
        except InputFileError:
            self.close()
            raise
        except (KeyError, ValueError, TypeError, OSError) as exc:
            self.close()
            raise InputFileError(path, f"cannot read as AnnData ({exc.__class__.__name__})") from exc

    @property
    def obs_names(self) -> pd.Index:
        return self.obs.index

    @property
    def var_names(self) -> pd.Index:
        return self._var.index

    @property
    def n_obs(self) -> int:
        return len(self.obs)

    @property
    def n_vars(self) -> int:
        return len(self._var)

    def rows(self, idx: np.ndarray) -> sp.csr_matrix:
        """Rows ``idx`` (sorted, unique) of the counts, as CSR."""
        import h5py
        from anndata.io import sparse_dataset

        idx = np.asarray(idx, dtype=np.int64)
        if isinstance(self._x, h5py.Dataset):
            return sp.csr_matrix(self._x[idx] if len(idx) else np.zeros((0, self.n_vars), self._x.dtype))
        if len(idx) == 0:
            return sp.csr_matrix((0, self.n_vars), dtype=self._x.attrs.get("dtype", np.float32))
        return sp.csr_matrix(sparse_dataset(self._x)[idx])

    @property
    def X(self) -> sp.csr_matrix:
        return self.rows(np.arange(self.n_obs))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CellsFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_cells_for_inference(path: str | Path) -> CellsFile:
    """A ``cells_nn.h5ad`` with the pooling matrix and per-cell fragment counts (:class:`CellsFile`), or a
    one-line error."""
    cells = CellsFile(path)
    try:
        if "n_fragments" not in cells.obs:
            raise InputFileError(path, "no obs['n_fragments']; expected a cells file written by `scfan sc ingest`")
        if cells.n_obs == 0 or cells.n_vars == 0:
            raise InputFileError(path, f"{cells.n_obs} cells × {cells.n_vars} peaks; expected at least one of each")
    except InputFileError:
        cells.close()
        raise
    return cells

