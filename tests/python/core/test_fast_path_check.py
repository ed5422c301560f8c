"""The runtime check of fast paths (issue 33): a reduced-precision or re-laid-out module runs only after it gave the
reference's numbers on a probe on this machine. Wrong kernels are forced here with stand-in convolutions, so these
tests hold on every CPU."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from scfan.bulk.model import ArchConfig, ScFANet
from scfan.inference import (
    BFLOAT16_TOLERANCE,
    FLOAT32_TOLERANCE,
    PROBE_WINDOWS,
    ChannelsLastNet,
    Float32Only,
    checked_for_inference,
    cpu_description,
    onednn_off,
    predict_batches,
    prepare_for_inference,
    probe_inputs,
)

LENGTH = 300


def _model(n_channels: int = 6, seed: int = 0) -> ScFANet:
    torch.manual_seed(seed)
    m = ScFANet(n_channels, LENGTH, 4, ArchConfig.preset("small"))
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    if m.motif is not None:
        torch.nn.init.normal_(m.motif.out.weight, std=0.2)
    return m.eval()


def _inputs(n: int = 40, seed: int = 3) -> torch.Tensor:
    return probe_inputs(6, LENGTH, n=n, seed=seed)  # another seed than the probe's: inputs the check never saw


@pytest.fixture
def broken_bf16_conv(monkeypatch):
    """A stand-in for oneDNN's bfloat16 convolution on Intel AMX: right in float32, wrong in bfloat16 (output
    channels shuffled and scaled: errors of the outputs' own magnitude, as measured there)."""
    real = torch.nn.Conv2d.forward

    def forward(self, x):
        out = real(self, x)
        return -2 * out.roll(1, dims=1) if x.dtype == torch.bfloat16 else out

    monkeypatch.setattr(torch.nn.Conv2d, "forward", forward)


@pytest.fixture
def broken_conv2d(monkeypatch):
    """Every channels-last (2-D) convolution wrong, whatever its precision."""
    real = torch.nn.Conv2d.forward
    monkeypatch.setattr(torch.nn.Conv2d, "forward", lambda self, x: real(self, x).roll(1, dims=1))


def test_probe_reaches_low_and_high_probabilities():
    """The probe spans accessibility from none to 16x a genome's mean, so the model's probabilities spread and a
    wrong kernel shows; it is fixed (same seed, same batch)."""
    m = _model()
    p = predict_batches(m, probe_inputs(6, LENGTH))
    assert p.shape == (PROBE_WINDOWS, 4) and p.std() > 0.02
    torch.testing.assert_close(probe_inputs(6, LENGTH), probe_inputs(6, LENGTH))
    assert probe_inputs(4, LENGTH).shape == (PROBE_WINDOWS, 4, LENGTH)
    with pytest.raises(ValueError, match="5 input channels"):
        probe_inputs(5, LENGTH)


def test_a_right_float32_path_is_kept():
    m = _model()
    module, check = checked_for_inference(m, "cpu", LENGTH)
    assert isinstance(module, ChannelsLastNet) and check.refused == ()
    assert check.ran == check.asked == "float32 (oneDNN, channels-last)" and check.precision == "float32"
    assert check.max_abs_diff <= FLOAT32_TOLERANCE and check.tolerance == FLOAT32_TOLERANCE
    x = _inputs()
    np.testing.assert_allclose(predict_batches(module, x), predict_batches(prepare_for_inference(m, "cpu"), x),
                               rtol=0, atol=0)
    assert check.as_dict()["cpu"] == cpu_description() and "(" in check.as_dict()["cpu"]


def test_wrong_bfloat16_convolutions_are_refused_and_said(broken_bf16_conv, caplog):
    """The AMX case: bfloat16 convolutions give wrong numbers; fast mode's module falls back to float32 with one
    warning line naming the CPU flags and the difference, and the check records both paths."""
    m = _model()
    with caplog.at_level(logging.WARNING, logger="scfan.inference"):
        module, check = checked_for_inference(m, "cpu", LENGTH, cpu_bf16=True, label="--model lineA")
    assert check.asked.startswith("bfloat16 convolutions") and check.ran == "float32 (oneDNN, channels-last)"
    assert check.precision == "float32" and check.max_abs_diff <= FLOAT32_TOLERANCE
    (name, diff), = check.refused
    assert name == check.asked and diff > BFLOAT16_TOLERANCE
    assert {p.dtype for p in module.parameters()} == {torch.float32}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "--model lineA" in warnings[0] and f"{diff:.3g}" in warnings[0] and cpu_description() in warnings[0]
    x = _inputs()
    np.testing.assert_allclose(predict_batches(module, x), predict_batches(m, x), rtol=0, atol=1e-5)
    assert check.as_dict()["refused"] == [f"{name} (max |Δp| {diff:.3g})"]


def test_every_fast_path_wrong_falls_back_to_the_reference_kernels(broken_conv2d, caplog):
    """If even the float32 channels-last convolutions are wrong, the network runs as trained, with PyTorch's own
    kernels (oneDNN off): the reference, exactly."""
    m = _model()
    with caplog.at_level(logging.WARNING, logger="scfan.inference"):
        module, check = checked_for_inference(m, "cpu", LENGTH, cpu_bf16=True)
    assert isinstance(module, Float32Only) and module.float32_only
    assert check.ran == "float32 (reference kernels, oneDNN off)" and len(check.refused) == 2
    assert all(d > FLOAT32_TOLERANCE for _, d in check.refused)
    assert check.max_abs_diff == 0.0
    x = _inputs()
    with onednn_off():
        want = predict_batches(m, x)
    np.testing.assert_array_equal(predict_batches(module, x), want)
    assert np.abs(predict_batches(prepare_for_inference(m, "cpu"), x) - want).max() > FLOAT32_TOLERANCE
    assert sum("running float32 (reference kernels" in r.getMessage() for r in caplog.records) == 1


def test_the_warning_is_given_once_per_process(broken_bf16_conv, caplog):
    m1, m2 = _model(seed=0), _model(seed=1)
    with caplog.at_level(logging.WARNING, logger="scfan.inference"):
        checked_for_inference(m1, "cpu", LENGTH, cpu_bf16=True)
        caplog.clear()
        _, check = checked_for_inference(m2, "cpu", LENGTH, cpu_bf16=True)
    assert check.refused and not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_sequence_only_models_are_checked_on_dna_alone(broken_bf16_conv):
    m = _model(n_channels=4)
    module, check = checked_for_inference(m, "cpu", LENGTH, cpu_bf16=True)
    assert check.precision == "float32" and check.refused
    x = probe_inputs(4, LENGTH, n=10, seed=5)
    np.testing.assert_allclose(predict_batches(module, x), predict_batches(m, x), rtol=0, atol=1e-5)


def test_float32_only_is_never_autocast():
    """The fallback module carries ``float32_only``: predict_batches gives it no autocast even with ``amp``."""
    m = _model()
    module = Float32Only(m)
    x = _inputs(8)
    np.testing.assert_array_equal(predict_batches(module, x, amp=True), predict_batches(module, x))
