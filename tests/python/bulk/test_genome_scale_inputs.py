"""Issue 34: loading only the chromosomes a command needs, bigWigs read as numpy arrays, in-place normalisation.

Every test compares against the loader as it was before (``_reference_load`` below: every chromosome, intervals
read as Python tuples, a normalised copy beside the raw track) and asks for identical numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyBigWig
import pytest
import torch
from bulk_builders import CHROMS

from scfan.bulk import inputs as inputs_mod
from scfan.bulk import windows as windows_mod
from scfan.bulk.data import (
    InputSource,
    negative_pool,
    predict_windows,
    split_arrays,
    window_mean_accessibility,
    windows_arrays,
)
from scfan.bulk.evaluate import EvaluateConfig, evaluate_model
from scfan.bulk.inputs import FlatGenome, TrackStore, read_track
from scfan.bulk.model import ArchConfig, ModelSpec, build_model, channel_names
from scfan.bulk.predict import predict_regions
from scfan.bulk.train import TrainConfig, train_arrays, train_model
from scfan.bulk.windows import (
    blacklist_keep,
    coverage_prefix,
    label_windows,
    overlap_bp,
    read_windows,
    union_overlap_bp,
)
from scfan.errors import InputFileError
from scfan.genome import Genome
from scfan.tracks import TrackNorm, normalize_track, normalize_track_inplace


def _reference_track(path: Path, layout: FlatGenome) -> np.ndarray:
    """The bigWig reader before issue 34: per-chromosome intervals as tuples, filled interval by interval."""
    bw = pyBigWig.open(str(path))
    out = np.zeros(layout.total, dtype=np.float32)
    sizes = bw.chroms()
    for chrom, size in layout.sizes.items():
        if chrom not in sizes:
            continue
        ivals = bw.intervals(chrom, 0, min(size, sizes[chrom]))
        if not ivals:
            continue
        arr = np.asarray(ivals, dtype=np.float64)
        o = layout.offsets[chrom]
        for s, e, v in zip(arr[:, 0].astype(np.int64), np.minimum(arr[:, 1].astype(np.int64), size), arr[:, 2],
                           strict=True):
            out[o + s : o + e] = v
    bw.close()
    return out


def _reference_load(genome_fa: Path, atac: Path, mappability: Path) -> tuple[FlatGenome, np.ndarray, np.ndarray,
                                                                              np.ndarray, TrackNorm]:
    """Every chromosome; the raw ATAC track normalised into a copy (the loader before issue 34)."""
    with Genome(genome_fa) as genome:
        layout, codes = inputs_mod.load_genome_codes(genome)
    raw = _reference_track(atac, layout)
    norm = TrackNorm(mean_per_base=float(np.sum(raw, dtype=np.float64) / max(layout.total, 1)))
    return layout, codes, norm.apply(raw), _reference_track(mappability, layout), norm


def _on(layout: FlatGenome, flat: np.ndarray, chrom: str) -> np.ndarray:
    o = layout.offsets[chrom]
    return flat[o : o + layout.sizes[chrom]]


@pytest.mark.parametrize("chroms", [None, ["chr1"], ["chr3", "chr2"], ["chr2", "chrNotThere"]],
                         ids=["all", "test", "train+valid", "unknown-skipped"])
def test_loading_some_chromosomes_keeps_the_values_of_a_full_load(tiny_bulk, chroms):
    tb = tiny_bulk
    ref_layout, ref_codes, ref_acc, ref_map, ref_norm = _reference_load(tb.genome, tb.atac, tb.mappability)
    src = InputSource.load(tb.genome, tb.atac, tb.mappability, chroms=chroms)
    want = [c for c in CHROMS if chroms is None or c in chroms]
    assert list(src.layout.sizes) == want
    assert src.genome_sizes == CHROMS
    assert src.track_norm == ref_norm  # the genome-wide mean, whatever is kept
    assert src.accessibility.dtype == np.float32 and src.mappability.dtype == np.float32
    for c in want:
        assert np.array_equal(_on(src.layout, src.codes, c), _on(ref_layout, ref_codes, c))
        assert np.array_equal(_on(src.layout, src.accessibility, c), _on(ref_layout, ref_acc, c))
        assert np.array_equal(_on(src.layout, src.mappability, c), _on(ref_layout, ref_map, c))


def test_sequence_only_load_of_some_chromosomes(tiny_bulk):
    src = InputSource.load(tiny_bulk.genome, None, None, chroms=["chr2"])
    assert list(src.layout.sizes) == ["chr2"] and len(src.codes) == CHROMS["chr2"] and not src.uses_tracks


def test_read_track_in_chunks_is_the_same_and_sums_the_whole_genome(tiny_bulk, monkeypatch):
    tb = tiny_bulk
    layout = FlatGenome.from_sizes(CHROMS)
    ref = _reference_track(tb.atac, layout)
    monkeypatch.setattr(inputs_mod, "_BIGWIG_CHUNK", 777)  # many chunks, some ending inside an interval
    sub = FlatGenome.from_sizes({"chr2": CHROMS["chr2"]})
    out, total = read_track(tb.atac, sub, CHROMS)
    assert np.array_equal(out, _on(layout, ref, "chr2"))
    assert total == float(np.sum(ref, dtype=np.float64))
    assert np.array_equal(inputs_mod.load_track(tb.mappability, layout), _reference_track(tb.mappability, layout))


def test_in_place_normalisation_is_bitwise_the_copying_one():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.poisson(0.3, 5000), rng.poisson(40.0, 500), [0, 1, 1e6]]).astype(np.float32)
    for mean in (0.0371, 1.0, 17.3):
        want = normalize_track(x, mean)
        got = normalize_track_inplace(x.copy(), mean)
        assert got.dtype == np.float32 and np.array_equal(got, want)
    with pytest.raises(TypeError):
        normalize_track_inplace(x.astype(np.float64), 1.0)


def _bad_bigwig(path: Path, value: float) -> Path:
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(CHROMS.items()))
    bw.addEntries(["chr1", "chr1"], [100, 5000], ends=[200, 5050], values=[1.0, value])
    bw.addEntries(["chr3"], [10], ends=[20], values=[2.0])
    bw.close()
    return path


@pytest.mark.parametrize(("value", "message"), [(float("nan"), "not a finite number"),
                                                (float("inf"), "not a finite number"), (-2.0, "is negative")])
def test_a_bad_value_is_named_even_on_a_chromosome_not_kept(tiny_bulk, tmp_path, value, message):
    tb = tiny_bulk
    bad = _bad_bigwig(tmp_path / "bad.bw", value)
    with pytest.raises(InputFileError, match=message) as err:
        InputSource.load(tb.genome, bad, tb.mappability, chroms=["chr3"])
    assert "chr1:5000-5050" in str(err.value)


def _spec(src: InputSource) -> ModelSpec:
    return ModelSpec(arch=ArchConfig.preset("small"), tf_names=("TFA", "TFB"), channels=channel_names(True),
                     window=200, context=1000, track_norm=src.track_norm)


def _model(spec: ModelSpec):
    torch.manual_seed(0)
    return build_model(spec).eval()


def test_evaluate_on_the_test_chromosomes_alone_gives_the_same_predictions_and_metrics(tiny_prepared, tmp_path):
    tb, windows = tiny_prepared
    df, _ = read_windows(windows)
    full = InputSource.load(tb.genome, tb.atac, tb.mappability)
    test = df.filter(pl.col("split") == "test")
    some = InputSource.load(tb.genome, tb.atac, tb.mappability, chroms=test["chrom"].unique().to_list(), compact=True)
    assert list(some.layout.sizes) == ["chr1"] and some.accessibility is None and some.acc_counts is not None
    spec = _spec(full)
    model = _model(spec)
    chroms, starts = test["chrom"].to_numpy().astype(str), test["start"].to_numpy()
    p_full = predict_windows(model, spec, full, chroms, starts, 64)
    assert np.array_equal(predict_windows(model, spec, some, chroms, starts, 64), p_full)
    cfg = EvaluateConfig(pwm_baseline=True)
    a = evaluate_model(model, spec, df, full, cfg, tmp_path / "full")
    b = evaluate_model(model, spec, df, some, cfg, tmp_path / "some")
    assert a.equals(b)
    assert (tmp_path / "full" / "metrics.tsv").read_bytes() == (tmp_path / "some" / "metrics.tsv").read_bytes()


def test_predict_on_the_regions_chromosomes_alone_is_the_same(tiny_bulk, tmp_path):
    tb = tiny_bulk
    regions = tmp_path / "regions.bed"
    regions.write_text("chr2\t3000\t3600\tr1\nchr2\t9000\t9200\tr2\n")
    full = InputSource.load(tb.genome, tb.atac, tb.mappability)
    some = InputSource.load(tb.genome, tb.atac, tb.mappability, chroms=["chr2"], compact=True)
    spec = _spec(full)
    model = _model(spec)
    a = predict_regions(model, spec, full, regions, out_parquet=tmp_path / "a.parquet", bigwig_dir=tmp_path / "a")
    b = predict_regions(model, spec, some, regions, out_parquet=tmp_path / "b.parquet", bigwig_dir=tmp_path / "b")
    assert a.equals(b)
    for tf in spec.tf_names:
        wa, wb = pyBigWig.open(str(tmp_path / "a" / f"{tf}.bw")), pyBigWig.open(str(tmp_path / "b" / f"{tf}.bw"))
        assert wa.chroms() == wb.chroms() == CHROMS
        assert wa.intervals("chr2") == wb.intervals("chr2")


def test_training_on_the_train_and_valid_chromosomes_alone_gives_the_same_weights(tiny_prepared, tmp_path):
    tb, windows = tiny_prepared
    df, meta = read_windows(windows)
    cfg = TrainConfig(arch="small", epochs=1, max_train_windows=96, max_valid_windows=48, batch_size=32, seed=3,
                      thin_min_keep=0.5, jitter=20)
    full = InputSource.load(tb.genome, tb.atac, tb.mappability)
    used = df.filter(pl.col("split").is_in(["train", "valid"]))["chrom"].unique().to_list()
    some = InputSource.load(tb.genome, tb.atac, tb.mappability, chroms=used, compact=True)
    assert sorted(some.layout.sizes) == ["chr2", "chr3"] and some.map_codes is not None
    train_model(df, meta, full, cfg, tmp_path / "full")
    train_model(df, meta, some, cfg, tmp_path / "some")
    wa = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["state_dict"]
    wb = torch.load(tmp_path / "some" / "model.pt", weights_only=True)["state_dict"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_window_chromosomes_are_shared_strings_equal_to_the_fixed_width_ones():
    names = ["chr1", "chr1_KI270706v1_random", "chrUn_KI270302v1", "chr2"]
    rng = np.random.default_rng(0)
    df = pl.DataFrame({"chrom": [names[i] for i in rng.integers(0, 4, 1000)], "start": np.arange(1000) * 50,
                       "TFA": rng.integers(0, 2, 1000).astype(np.uint8)})
    chroms, starts, labels = windows_arrays(df, ["TFA"])
    old = df["chrom"].to_numpy().astype(str)
    assert chroms.dtype == object and np.array_equal(chroms, old)
    assert len({id(c) for c in chroms}) == 4  # one str object per chromosome: 8 bytes a window
    assert chroms.nbytes == 8 * len(df) < old.nbytes / 10
    assert np.array_equal(np.unique(chroms), np.unique(old))
    layout = FlatGenome.from_sizes({n: 100_000 for n in names})
    assert np.array_equal(layout.flat_starts(chroms, starts), layout.flat_starts(old, starts))
    assert np.array_equal(negative_pool(chroms, starts, 200, labels[:, 0] > 0, 200),
                          negative_pool(old, starts, 200, labels[:, 0] > 0, 200))
    assert windows_arrays(df[:0], ["TFA"])[0].shape == (0,)


def test_labels_from_merged_peaks_equal_the_per_base_coverage_ones():
    rng = np.random.default_rng(5)
    size, window = 50_000, 200
    starts = np.arange(0, size - window + 1, 50, dtype=np.int64)
    for n in (0, 1, 40, 400):
        ps = rng.integers(-500, size, n)
        pe = ps + rng.integers(1, 3000, n)
        pe = np.minimum(pe, size + 300)
        want = overlap_bp(coverage_prefix(ps, pe, size), starts, starts + window)
        assert np.array_equal(union_overlap_bp(starts, starts + window, ps, pe, size), want)
        for min_overlap in (1, 101, 200):
            assert np.array_equal(label_windows(starts, window, ps, pe, size, min_overlap),
                                  (want >= min_overlap).astype(np.uint8))
        want_keep = overlap_bp(coverage_prefix(ps - 700, pe + 700, size), starts, starts + window) == 0
        got_keep = blacklist_keep(starts, window, ps, pe, size, pad=700)
        assert np.array_equal(got_keep, want_keep if n else np.ones(len(starts), bool))


def test_compact_tracks_give_bitwise_the_same_batches(tiny_bulk):
    tb = tiny_bulk
    full = InputSource.load(tb.genome, tb.atac, tb.mappability)
    small = InputSource.load(tb.genome, tb.atac, tb.mappability, compact=True)
    assert small.accessibility is None and small.acc_counts.dtype == np.uint8
    assert small.mappability is None and small.map_codes.dtype == np.uint8 and len(small.map_table) == 3
    assert small.track_norm == full.track_norm and small.uses_tracks
    four_byte = full.accessibility.nbytes + full.mappability.nbytes
    assert small.acc_counts.nbytes + small.map_codes.nbytes == four_byte // 4
    rng = np.random.default_rng(2)
    chroms = np.array(list(CHROMS))[rng.integers(0, 3, 300)]
    starts = rng.integers(0, 14_000, 300)
    rev = rng.random(300) < 0.5
    keep = rng.uniform(0.05, 1.0, 300)
    a = full.batch(chroms, starts, 1000, rev, keep, np.random.default_rng(9))
    b = small.batch(chroms, starts, 1000, rev, keep, np.random.default_rng(9))
    assert a.dtype == b.dtype and torch.equal(a, b)
    assert np.array_equal(window_mean_accessibility(full, chroms, starts, 200),
                          window_mean_accessibility(small, chroms, starts, 200))


def test_track_store_widens_and_falls_back_exactly():
    counts = TrackStore(10, "counts")
    counts.put(0, np.array([0, 3, 255], np.float32))
    assert counts.result().dtype == np.uint8
    counts.put(3, np.array([256, 7], np.float32))
    assert counts.result().dtype == np.uint16
    counts.put(5, np.array([2.5], np.float32))
    out = counts.result()
    assert out.dtype == np.float32 and out[:6].tolist() == [0, 3, 255, 256, 7, 2.5]
    neg_zero = TrackStore(2, "counts")
    neg_zero.put(0, np.array([-0.0, 1.0], np.float32))
    assert neg_zero.result().dtype == np.float32 and np.signbit(neg_zero.result()[0])
    book = TrackStore(600, "codebook")
    vals = np.array([0.5, 1.0, 0.25, 1.0, 0.0, 1 / 3], np.float32)
    book.put(0, vals)
    codes, table = book.result()
    assert codes.dtype == np.uint8 and np.array_equal(table[codes[:6]], vals)
    more = np.arange(300, dtype=np.float32) / np.float32(300)
    book.put(6, more)
    out = book.result()
    assert out.dtype == np.float32 and np.array_equal(out[:6], vals) and np.array_equal(out[6:306], more)


def test_reading_some_splits_gives_the_rows_a_filter_gives(tiny_prepared, tmp_path):
    _, windows = tiny_prepared
    df, meta = read_windows(windows)
    for splits in (("test",), ("train", "valid")):
        part, part_meta = read_windows(windows, splits=splits)
        assert part_meta == meta
        assert part.equals(df.filter(pl.col("split").is_in(list(splits))))
    other = tmp_path / "other.parquet"
    pl.DataFrame({"a": np.arange(3)}).write_parquet(other)
    with pytest.raises(InputFileError, match="no 'scfan' metadata"):
        read_windows(other, splits=("test",))


def test_split_rows_read_in_batches_are_the_filtered_table(tiny_prepared, monkeypatch):
    _, windows = tiny_prepared
    whole, _ = read_windows(windows)
    original = windows_mod._read_rows
    monkeypatch.setattr(windows_mod, "_read_rows", lambda path, splits: original(path, splits, batch_rows=7))
    for splits in (["test"], ["train", "valid"], ["valid", "train"]):
        part, _ = read_windows(windows, splits=splits)
        assert part.equals(whole.filter(pl.col("split").is_in(splits)))
    assert read_windows(windows, splits=["nothing"])[0].height == 0


def test_split_arrays_are_the_arrays_of_the_filtered_tables_with_compact_labels(tiny_prepared):
    _, windows = tiny_prepared
    df, meta = read_windows(windows)
    tfs = list(meta["tf_names"])
    for split, (chroms, starts, labels) in zip(("train", "test"), split_arrays(df, tfs, ("train", "test")),
                                               strict=True):
        c, s, y = windows_arrays(df.filter(pl.col("split") == split), tfs)
        assert labels.dtype == np.uint8 and y.dtype == np.float32
        assert np.array_equal(chroms, c) and np.array_equal(starts, s) and np.array_equal(labels, y)
        assert starts.dtype == np.int64 and len({id(x) for x in chroms}) == len(set(chroms))


def test_training_on_compact_labels_gives_the_same_weights_as_on_float_labels(tiny_prepared, tmp_path):
    tb, windows = tiny_prepared
    df, meta = read_windows(windows)
    tfs = list(meta["tf_names"])
    src = InputSource.load(tb.genome, tb.atac, tb.mappability, compact=True)
    cfg = TrainConfig(arch="small", epochs=2, max_train_windows=96, max_valid_windows=48, batch_size=32, seed=5,
                      thin_min_keep=0.5, jitter=20, sampler="hard")
    floats = [windows_arrays(df.filter(pl.col("split") == s), tfs) for s in ("train", "valid")]
    train_arrays(*floats, meta, src, cfg, tmp_path / "float")
    train_arrays(*split_arrays(df, tfs, ("train", "valid")), meta, src, cfg, tmp_path / "uint8")
    wa = torch.load(tmp_path / "float" / "model.pt", weights_only=True)["state_dict"]
    wb = torch.load(tmp_path / "uint8" / "model.pt", weights_only=True)["state_dict"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_genome_read_in_chunks_is_the_genome_read_whole(tiny_bulk, monkeypatch):
    with Genome(tiny_bulk.genome) as genome:
        _, whole = inputs_mod.load_genome_codes(genome)
        monkeypatch.setattr(inputs_mod, "_FASTA_CHUNK", 1000)
        _, chunked = inputs_mod.load_genome_codes(genome)
    assert np.array_equal(whole, chunked)
