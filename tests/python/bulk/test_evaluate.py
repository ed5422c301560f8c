"""Evaluation: open-chromatin metrics beside the plain ones; NaN rows with a reason for a TF without positives."""

from __future__ import annotations

import logging

import numpy as np
import polars as pl
import pyBigWig
import pytest
import torch
from torch import nn

from scfan.bulk.data import InputSource
from scfan.bulk.evaluate import (
    METRIC_COLUMNS,
    EvaluateConfig,
    binary_metrics,
    evaluate_model,
    missing_class_note,
    open_window_mask,
)
from scfan.bulk.model import ArchConfig, ModelSpec, channel_names
from scfan.bulk.windows import read_windows


class AccessibilityOnly(nn.Module):
    """A sequence-blind toy model: every TF's logit is the mean accessibility over the labelled window."""

    def __init__(self, n_tfs: int, window: int = 200, context: int = 1000):
        super().__init__()
        self.n_tfs, self.lo, self.hi = n_tfs, (context - window) // 2, (context + window) // 2
        self.unused = nn.Parameter(torch.zeros(1))  # predict_batches reads the device from a parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 4, self.lo : self.hi].mean(dim=1, keepdim=True).expand(-1, self.n_tfs)


def _spec(src: InputSource) -> ModelSpec:
    return ModelSpec(arch=ArchConfig.preset("small"), tf_names=("TFA", "TFB"), channels=channel_names(True),
                     window=200, context=1000, track_norm=src.track_norm)


def test_open_windows_are_those_strictly_above_the_median():
    assert open_window_mask(np.array([0.0, 0.0, 0.0, 1.0, 2.0])).tolist() == [False, False, False, True, True]
    assert open_window_mask(np.array([3.0, 1.0, 2.0, 4.0])).tolist() == [True, False, False, True]
    assert open_window_mask(np.zeros(0)).tolist() == []
    assert missing_class_note(0, 5, "test") == "no positive window in split 'test'"
    assert missing_class_note(3, 0, "valid", "open") == "no negative window in open windows of split 'valid'"
    assert missing_class_note(3, 5, "test") is None


def test_open_chromatin_metrics_match_the_subset_and_expose_a_sequence_blind_model(tiny_prepared, tmp_path):
    tb, windows = tiny_prepared
    df, _ = read_windows(windows)
    src = InputSource.load(tb.genome, tb.atac, tb.mappability)
    table = evaluate_model(AccessibilityOnly(2), _spec(src), df, src, EvaluateConfig(pwm_baseline=False),
                           tmp_path / "eval", model_name="L1")
    assert table.columns == METRIC_COLUMNS
    written = pl.read_csv(tmp_path / "eval" / "metrics.tsv", separator="\t")
    assert written.columns == METRIC_COLUMNS and written["note"].is_null().all()

    # recompute the open set independently, from the bigWig file itself
    test = df.filter(pl.col("split") == "test")
    bw = pyBigWig.open(str(tb.atac))
    acc = np.array([src.track_norm.apply(np.nan_to_num(bw.values(c, s, s + 200, numpy=True))).mean()
                    for c, s in zip(test["chrom"], test["start"], strict=True)])
    bw.close()
    is_open = acc > np.median(acc)
    assert 0.3 < is_open.mean() <= 0.5
    for tf in ("TFA", "TFB"):
        row = table.filter(pl.col("tf") == tf).row(0, named=True)
        y = test[tf].to_numpy().astype(float)
        expect = binary_metrics(y[is_open], acc[is_open])
        assert row["n_pos_open"] == expect["n_pos"] and row["n_neg_open"] == expect["n_neg"]
        assert row["n_pos_open"] + row["n_neg_open"] == int(is_open.sum())
        assert row["auroc_open"] == pytest.approx(expect["auroc"], abs=0.02)
        # accessibility alone ranks open chromatin: good on all windows, worse once the easy closed ones are gone
        assert row["auroc"] > 0.85, row
        assert row["auroc_open"] < row["auroc"], row


def test_tf_without_positives_in_the_split_gets_nan_and_a_reason(tiny_prepared, tmp_path, caplog):
    tb, windows = tiny_prepared
    df, _ = read_windows(windows)
    df = df.with_columns(pl.when(pl.col("split") == "test").then(0).otherwise(pl.col("TFB")).cast(pl.UInt8)
                         .alias("TFB"))
    src = InputSource.load(tb.genome, tb.atac, tb.mappability)
    with caplog.at_level(logging.WARNING, logger="scfan.bulk.evaluate"):
        table = evaluate_model(AccessibilityOnly(2), _spec(src), df, src, EvaluateConfig(pwm_baseline=False),
                               tmp_path / "eval")
    assert any("TFB" in r.getMessage() and "'test'" in r.getMessage() for r in caplog.records if
               r.levelno == logging.WARNING), caplog.text
    written = pl.read_csv(tmp_path / "eval" / "metrics.tsv", separator="\t")
    b = written.filter(pl.col("tf") == "TFB").row(0, named=True)
    assert b["n_pos"] == 0 and b["note"] == "no positive window in split 'test'"
    assert all(b[c] is None or np.isnan(b[c]) for c in ("auroc", "auprc", "auroc_open", "auprc_open"))
    a = table.filter(pl.col("tf") == "TFA").row(0, named=True)
    assert a["note"] is None and a["auroc"] > 0.5 and a["n_pos"] > 0
