"""Device-side input assembly (`scfan.sc.assembly`) against the host path it replaces, on the CPU device."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from scfan.sc.assembly import DeviceAssembler, sum_by_key
from scfan.sc.pooling import _extract_windows
from scfan.tracks import normalize_track


def test_sums_by_key_are_sequential_sums_in_input_order():
    """Each key's values are added one after the other in their input order: bit for bit a sequential loop, for
    keys of one term and keys of many, whatever the keys' order."""
    rng = np.random.default_rng(0)
    key = rng.integers(0, 40, 2000)
    val = rng.normal(0, 1, 2000) * 10.0 ** rng.integers(-8, 8, 2000)  # magnitudes where the order of sums shows
    ref: dict[int, float] = {}
    for k, v in zip(key.tolist(), val.tolist(), strict=True):
        ref[k] = ref.get(k, 0.0) + v
    keys, sums = sum_by_key(torch.from_numpy(key), torch.from_numpy(val))
    assert keys.tolist() == sorted(ref)
    assert sums.tolist() == [ref[k] for k in sorted(ref)]  # exact
    empty = sum_by_key(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.float64))
    assert empty[0].shape == empty[1].shape == (0,)


def _random_chunk(seed: int, n_cells: int = 70, width: int = 3000):
    """Insertions (cells × positions, float32 counts; some cells without any) and a row-normalised pooling matrix
    (units × cells; the last units pool only cells without insertions)."""
    rng = np.random.default_rng(seed)
    ins = sp.random(n_cells, width, density=0.01, random_state=seed, format="csr", dtype=np.float32)
    ins.data[:] = rng.integers(1, 4, ins.nnz)
    empty = rng.choice(n_cells, 12, replace=False)
    ins = sp.csr_matrix(sp.diags(np.isin(np.arange(n_cells), empty, invert=True).astype(np.float32)) @ ins)
    ins.eliminate_zeros()
    pool = sp.random(30, n_cells, density=0.25, random_state=seed + 1, format="lil")
    for u in (28, 29):  # units whose neighbours have no insertion in the chunk
        pool[u, :] = 0
        pool[u, empty[:4] if u == 28 else empty[4:5]] = rng.random(4 if u == 28 else 1) + 0.1
    pool = sp.csr_matrix(pool)
    pool = sp.csr_matrix(sp.diags(1 / np.asarray(pool.sum(axis=1)).ravel()) @ pool)
    mean = rng.random(pool.shape[0]) * 0.05 + 0.001
    return ins, pool, mean


def _host_windows(pool, ins, mean, units_here, units, offsets, wins, context):
    """What `iter_cell_predictions` builds on the host: raw pooled slices and their normalised values."""
    pooled = sp.csr_matrix(pool[units_here] @ ins.astype(np.float64))
    pooled.sort_indices()
    raw = _extract_windows(pooled, np.searchsorted(units_here, units), offsets[wins], context)
    return raw, normalize_track(raw, mean[units][:, None])


@pytest.mark.parametrize("seed", [0, 1])
def test_device_windows_are_the_host_windows(seed):
    """The pooled windows built with torch (on the CPU device) equal the host's scipy product + window slices bit for
    bit, at the chunk's edges (offsets before 0 or past the end: columns outside are 0) and for units without
    insertions; the normalised channel equals `normalize_track`'s within float32 rounding of log1p."""
    ins, pool, mean = _random_chunk(seed)
    context = 400
    offsets = np.array([-300, -1000, 0, 480, 900, 1234, 2600, 2999, 3200, 2750])
    asm = DeviceAssembler(pool, mean, context, "cpu")
    asm.load_chunk(ins, offsets, torch.zeros((len(offsets), 6, context)))
    rng = np.random.default_rng(seed)
    for units_here in (np.arange(0, 16), np.r_[np.arange(16, 28, 2), 28, 29]):  # two blocks, the second sparse
        asm.pool(units_here)
        units = np.repeat(units_here, len(offsets))
        wins = np.tile(np.arange(len(offsets)), len(units_here))
        perm = rng.permutation(len(units))  # any order of the pairs
        units, wins = units[perm], wins[perm]
        raw, norm = _host_windows(pool, ins, mean, units_here, units, offsets, wins, context)
        got = asm.raw_windows(units, wins).numpy()
        np.testing.assert_array_equal(got, raw)
        np.testing.assert_allclose(asm.accessibility(units, wins).numpy(), norm, rtol=2e-7, atol=0)
        assert raw.any() and not raw[np.isin(units, [28, 29])].any()
        assert not raw[wins == 1].any() and not raw[wins == 8].any()  # wholly outside the chunk
        assert not raw[wins == 0][:, :300].any() and not raw[wins == 7][:, 1:].any()  # the parts outside
    assert asm.raw_windows(units[:0], wins[:0]).shape == (0, context)


def test_a_chunk_without_insertions_gives_zeros():
    ins, pool, mean = _random_chunk(3)
    asm = DeviceAssembler(pool, mean, 100, "cpu")
    xw = asm.load_chunk(sp.csr_matrix(ins.shape, dtype=np.float32), np.array([0, 50]), np.ones((2, 6, 100)))
    assert xw.dtype == torch.float32 and xw.shape == (2, 6, 100)
    asm.pool(np.arange(5))
    assert not asm.accessibility(np.array([0, 4]), np.array([1, 0])).any()


def test_assembler_refuses_what_normalize_track_refuses():
    ins, pool, mean = _random_chunk(4)
    mean[3] = 0
    with pytest.raises(ValueError, match="mean per base must be > 0"):
        DeviceAssembler(pool, mean, 100, "cpu")
    with pytest.raises(RuntimeError, match="before load_chunk"):
        DeviceAssembler(pool, mean + 1, 100, "cpu").pool(np.arange(3))
