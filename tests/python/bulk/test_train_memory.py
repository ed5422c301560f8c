"""Issue 34, the memory of ``bulk train``: the genome at 2 bits a base and mappability as runs
(``InputSource.load(..., packed=True)``) decode to the very codes and values of the flat arrays and train the same
weights; the windows read batch by batch into arrays are those of the whole table."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import torch

from scfan.bulk.data import InputSource, read_split_arrays, split_arrays
from scfan.bulk.inputs import PackedCodes, RunLengthTrack, TrackStore, gather
from scfan.bulk.train import TrainConfig, train_arrays
from scfan.bulk.windows import read_windows
from scfan.errors import InputFileError


def _random_codes(rng: np.random.Generator, n: int) -> np.ndarray:
    codes = rng.integers(0, 4, n).astype(np.uint8)
    for s in rng.integers(0, n, 12):  # N runs of 1 to 40 bases, some at the very start and end
        codes[s : s + rng.integers(1, 41)] = 4
    codes[:3] = 4
    codes[-2:] = 4
    codes[rng.integers(0, n, 30)] = 4  # single Ns
    return codes


@pytest.mark.parametrize("chunk", [1, 3, 5, 8, 4096])
def test_packed_codes_give_back_every_code_and_n(chunk):
    rng = np.random.default_rng(chunk)
    codes = _random_codes(rng, 5003)
    packed = PackedCodes(len(codes))
    for s in range(0, len(codes), chunk):  # chunks that start and end inside a byte
        packed.put(s, codes[s : s + chunk])
    assert packed.packed.nbytes == (len(codes) + 3) // 4 and len(packed) == len(codes)
    for length in (1, 7, 200):
        starts = np.concatenate([[0, len(codes) - length], rng.integers(0, len(codes) - length + 1, 300)])
        got = packed.rows(starts, length)
        assert got.dtype == np.uint8 and np.array_equal(got, gather(codes, starts, length))
    assert packed.rows(np.zeros(0, np.int64), 10).shape == (0, 10)


def test_packed_codes_without_n_hold_no_runs():
    codes = np.tile(np.array([0, 1, 2, 3, 3, 2, 1], np.uint8), 100)
    packed = PackedCodes(len(codes))
    packed.put(0, codes[:333])
    packed.put(333, codes[333:])
    assert len(packed.n_starts) == 0
    assert np.array_equal(packed.rows(np.arange(0, 600, 7), 100), gather(codes, np.arange(0, 600, 7), 100))


def test_run_length_track_gives_back_every_value_with_gaps_as_zero():
    rng = np.random.default_rng(4)
    n = 3000
    dense = np.zeros(n, np.float32)
    runs = RunLengthTrack(n)
    pieces = [(0, 400), (400, 900), (1000, 1500), (1500, 1700), (2100, 2990)]  # gaps 900-1000, 1700-2100, end
    for s, e in pieces:
        vals = np.repeat(rng.choice(np.array([0.0, 0.25, 1.0, 1 / 3], np.float32), 20), (e - s) // 20 + 1)[: e - s]
        dense[s:e] = vals
        runs.put(s, vals)
    runs.finish()
    assert runs.n_runs == len(runs.starts) < n // 10 and runs.values.dtype == np.float32
    assert np.array_equal(runs.dense(), dense)
    starts = np.concatenate([[0, n - 50], rng.integers(0, n - 50, 200)])
    assert np.array_equal(runs.rows(starts, 50), gather(dense, starts, 50))
    ends_high = RunLengthTrack(10)
    ends_high.put(0, np.ones(6, np.float32))  # bases 6-9 never put: 0
    assert ends_high.finish().dense().tolist() == [1] * 6 + [0] * 4


def test_a_track_of_too_many_runs_is_held_as_codes(tmp_path):
    import pyBigWig

    path = tmp_path / "noisy.bw"
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([("chr1", 4000)])
    vals = (np.arange(4000) % 3 / 4).astype(np.float64)  # a new value at every base
    bw.addEntries("chr1", 0, values=vals.tolist(), span=1, step=1)
    bw.close()
    from scfan.bulk.inputs import FlatGenome, read_track

    layout = FlatGenome.from_sizes({"chr1": 4000})
    held, total = read_track(path, layout, layout.sizes, "runs")
    codes, table = held
    assert codes.dtype == np.uint8 and np.array_equal(table[codes], vals.astype(np.float32))
    assert total == pytest.approx(vals.sum())
    assert isinstance(TrackStore(4, "codebook").result(), tuple)


def test_packed_inputs_give_bitwise_the_same_batches_and_weights(tiny_prepared, tmp_path):
    tb, windows = tiny_prepared
    df, meta = read_windows(windows)
    compact = InputSource.load(tb.genome, tb.atac, tb.mappability, compact=True)
    packed = InputSource.load(tb.genome, tb.atac, tb.mappability, compact=True, packed=True)
    assert isinstance(packed.codes, PackedCodes) and packed.map_runs is not None and packed.map_codes is None
    assert packed.codes.nbytes < compact.codes.nbytes / 3
    rng = np.random.default_rng(1)
    names = np.array(list(compact.layout.sizes))
    chroms = names[rng.integers(0, len(names), 300)]
    starts = rng.integers(0, 14_000, 300)
    rev = rng.random(300) < 0.5
    keep = rng.uniform(0.05, 1.0, 300)
    a = compact.batch(chroms, starts, 1000, rev, keep, np.random.default_rng(9))
    b = packed.batch(chroms, starts, 1000, rev, keep, np.random.default_rng(9))
    assert torch.equal(a, b)
    tfs = list(meta["tf_names"])
    cfg = TrainConfig(arch="small", epochs=1, max_train_windows=96, max_valid_windows=48, batch_size=32, seed=3,
                      thin_min_keep=0.5, jitter=20, sampler="hard")
    arrays = split_arrays(df.filter(pl.col("split") != "test"), tfs, ("train", "valid"))
    train_arrays(*arrays, meta, compact, cfg, tmp_path / "compact")
    train_arrays(*arrays, meta, packed, cfg, tmp_path / "packed")
    wa = torch.load(tmp_path / "compact" / "model.pt", weights_only=True)["state_dict"]
    wb = torch.load(tmp_path / "packed" / "model.pt", weights_only=True)["state_dict"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("batch_rows", [7, 1 << 18])
def test_split_arrays_read_batch_by_batch_are_those_of_the_table(tiny_prepared, batch_rows):
    _, windows = tiny_prepared
    df, meta = read_windows(windows)
    for splits in (("train", "valid"), ("test",), ("valid", "train")):
        arrays, chroms, got_meta = read_split_arrays(windows, splits, batch_rows)
        assert got_meta == meta
        assert sorted(chroms) == sorted(df.filter(pl.col("split").is_in(list(splits)))["chrom"].unique().to_list())
        for (c, s, y), (c2, s2, y2) in zip(arrays, split_arrays(df, list(meta["tf_names"]), splits), strict=True):
            assert c.dtype == object and s.dtype == np.int64 and y.dtype == np.uint8
            assert np.array_equal(c, c2) and np.array_equal(s, s2) and np.array_equal(y, y2)
            assert len({id(x) for x in c}) == len(set(c))  # one str object per chromosome, across batches


def test_split_arrays_of_a_bad_table_name_the_file(tiny_prepared, tmp_path):
    _, windows = tiny_prepared
    df, meta = read_windows(windows)
    bad = tmp_path / "bad.parquet"
    table = df.with_columns(pl.when(pl.col("start") == df["start"][5]).then(2).otherwise(pl.col(meta["tf_names"][0]))
                            .cast(pl.UInt8).alias(meta["tf_names"][0])).to_arrow()
    pq.write_table(table.replace_schema_metadata(pq.read_schema(windows).metadata), bad)
    with pytest.raises(InputFileError, match="does not match the windows schema"):
        read_split_arrays(bad, ("train", "valid", "test"), 16)
    plain = tmp_path / "plain.parquet"
    pl.DataFrame({"a": np.arange(3)}).write_parquet(plain)
    with pytest.raises(InputFileError, match="no 'scfan' metadata"):
        read_split_arrays(plain, ("train",))
