"""The domain-shift remedy: training on the bulk ATAC thinned to a pooled neighbourhood's depth (--thin-min-keep)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from scfan.bulk.data import InputSource, check_insertion_counts, thin_accessibility
from scfan.bulk.train import TrainConfig, thin_shares, train_model
from scfan.bulk.windows import read_windows
from scfan.errors import InputFileError, ScfanError
from scfan.tracks import normalize_track

FAST = {"arch": "small", "epochs": 1, "patience": 5, "max_train_windows": 120, "max_valid_windows": 60,
        "batch_size": 32, "seed": 3}


def _counts(rng, rows=64, length=1000, lam=0.8):
    return rng.poisson(lam, (rows, length)).astype(np.float32)


def test_keeping_everything_changes_nothing():
    rng = np.random.default_rng(0)
    mean = 0.37
    acc = normalize_track(_counts(rng), mean)
    out = thin_accessibility(acc, mean, np.ones(len(acc)), np.random.default_rng(1))
    np.testing.assert_allclose(out, acc, rtol=0, atol=1e-6)


def test_thinning_keeps_the_share_asked_and_the_scale_of_the_signal():
    rng = np.random.default_rng(0)
    mean = 0.8
    counts = _counts(rng, rows=4, length=200_000, lam=mean)
    acc = normalize_track(counts, mean)
    keep = np.array([1.0, 0.5, 0.1, 0.02])
    out = thin_accessibility(acc, mean, keep, np.random.default_rng(1))
    kept = np.expm1(out.astype(np.float64)) * keep[:, None] * mean  # back to thinned counts
    assert np.allclose(kept, np.rint(kept), atol=1e-3)  # whole insertions
    assert np.all(kept <= counts + 1e-3)  # an insertion is kept or dropped, never made
    share = kept.sum(axis=1) / counts.sum(axis=1)
    np.testing.assert_allclose(share, keep, rtol=0.03)
    # normalised by the thinned library's own mean, the expected signal is unchanged; only its noise grows
    level = np.expm1(out.astype(np.float64)).mean(axis=1)
    np.testing.assert_allclose(level, np.expm1(acc.astype(np.float64)).mean(axis=1), rtol=0.03)
    zeros = (kept == 0).mean(axis=1)
    assert np.all(np.diff(zeros) > 0)  # sparser as the share falls


def test_thinning_is_seeded():
    rng = np.random.default_rng(0)
    acc = normalize_track(_counts(rng), 0.5)
    keep = np.full(len(acc), 0.2)
    a = thin_accessibility(acc, 0.5, keep, np.random.default_rng(5))
    b = thin_accessibility(acc, 0.5, keep, np.random.default_rng(5))
    c = thin_accessibility(acc, 0.5, keep, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("keep", [[0.0], [1.5], [0.5, 0.5]])
def test_thinning_refuses_a_share_outside_0_1_or_one_per_row(keep):
    acc = np.zeros((1, 10), np.float32)
    with pytest.raises(ValueError, match="one fraction in"):
        thin_accessibility(acc, 1.0, np.array(keep), np.random.default_rng(0))


def test_shares_are_log_uniform_and_off_draws_nothing():
    rng = np.random.default_rng(0)
    assert thin_shares(rng, 10, None) is None and thin_shares(rng, 10, 1.0) is None
    assert rng.random() == np.random.default_rng(0).random()  # nothing drawn while off
    s = thin_shares(np.random.default_rng(1), 100_000, 0.01)
    assert s.min() >= 0.01 and s.max() <= 1
    logs = np.log10(s)
    np.testing.assert_allclose(np.histogram(logs, bins=4, range=(-2, 0))[0] / len(s), 0.25, atol=0.01)


@pytest.mark.parametrize("value", [0.0, -0.1, 1.5])
def test_config_refuses_a_share_outside_0_1(value):
    with pytest.raises(ScfanError, match="--thin-min-keep"):
        TrainConfig(thin_min_keep=value)


def _src(tiny_prepared):
    tb, windows = tiny_prepared
    df, meta = read_windows(windows)
    return df, meta, InputSource.load(tb.genome, tb.atac, tb.mappability)


def test_training_on_thinned_tracks_is_seeded_and_differs_from_plain(tiny_prepared, tmp_path):
    df, meta, src = _src(tiny_prepared)
    for name, keep in (("plain", None), ("thin_a", 0.05), ("thin_b", 0.05)):
        train_model(df, meta, src, TrainConfig(**FAST, thin_min_keep=keep), tmp_path / name)
    w = {n: torch.load(tmp_path / n / "model.pt", weights_only=True) for n in ("plain", "thin_a", "thin_b")}
    a, b, p = (w[n]["state_dict"] for n in ("thin_a", "thin_b", "plain"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], p[k]) for k in a)
    assert w["thin_a"]["train_config"]["thin_min_keep"] == 0.05
    assert w["plain"]["train_config"]["thin_min_keep"] is None
    assert TrainConfig().thin_min_keep == 0.01  # on by default (bench_domain_shift.md)


def test_a_scaled_track_is_refused_naming_file_and_base(tiny_prepared):
    _, _, src = _src(tiny_prepared)
    check_insertion_counts(src)  # the builder's track holds counts
    src.accessibility = normalize_track(np.expm1(src.accessibility) * src.track_norm.mean_per_base * 1.37,
                                        src.track_norm.mean_per_base)
    with pytest.raises(InputFileError) as err:
        check_insertion_counts(src)
    msg = str(err.value)
    assert "atac.bw" in msg and "not a whole number" in msg and "chr" in msg and "\n" not in msg
    assert "--thin-min-keep 1" in msg


def test_off_is_off_and_sequence_only_models_ignore_it(tiny_prepared, tmp_path):
    tb, windows = tiny_prepared
    df, meta, src = _src(tiny_prepared)
    train_model(df, meta, src, TrainConfig(**FAST, thin_min_keep=None), tmp_path / "none")
    train_model(df, meta, src, TrainConfig(**FAST, thin_min_keep=1.0), tmp_path / "one")
    seq = InputSource.load(tb.genome, None, None)
    train_model(df, meta, seq, TrainConfig(**FAST, thin_min_keep=None), tmp_path / "seq_none")
    train_model(df, meta, seq, TrainConfig(**FAST), tmp_path / "seq_default")
    for a, b in (("none", "one"), ("seq_none", "seq_default")):
        wa, wb = (torch.load(tmp_path / n / "model.pt", weights_only=True)["state_dict"] for n in (a, b))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), (a, b)


def test_cli_refuses_a_bad_share_with_exit_2_and_no_output(tiny_prepared, tmp_path):
    tb, windows = tiny_prepared
    out = tmp_path / "train"
    r = subprocess.run([sys.executable, "-m", "scfan", "bulk", "train", "--windows", str(windows), "--genome",
                        str(tb.genome), "--atac", str(tb.atac), "--mappability", str(tb.mappability),
                        "--thin-min-keep", "1.5", "--outdir", str(out)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "--thin-min-keep 1.5" in r.stderr and "(0, 1]" in r.stderr
    assert not out.exists() or not any(out.iterdir())
