"""One-hot and reverse complement, input encoding, batched prediction, and the model file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scfan.bulk.inputs import codes_to_onehot, encode_codes
from scfan.bulk.model import (
    ArchConfig,
    ModelSpec,
    ScFANet,
    build_model,
    load_model,
    save_model,
)
from scfan.inference import encode_inputs, predict_batches, reverse_complement_inputs
from scfan.tracks import TrackNorm

SEQS = ["AACGTTTGCA" + "G" * 7 + "CATCATN", "TTTTACGGGCAGGGACCCTAAN"]  # non-palindromic


def _random_model(n_channels=6, length=200, n_tasks=3, seed=0) -> ScFANet:
    torch.manual_seed(seed)
    m = ScFANet(n_channels, length, n_tasks, ArchConfig.preset("small"))
    # non-trivial BatchNorm running statistics so eval mode is really exercised
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


def one_hot(seq: str) -> np.ndarray:
    """``(4, L)`` one-hot of ``seq`` by the encoder the models are fed with."""
    return codes_to_onehot(encode_codes(seq)[None])[0]


def reverse_complement(seq: str) -> str:
    return seq.translate(str.maketrans("ACGTN", "TGCAN"))[::-1]


def test_one_hot_channels_and_unknown_bases():
    codes = encode_codes("ACGTNa")
    assert codes.dtype == np.uint8 and codes.tolist() == [0, 1, 2, 3, 4, 0]
    x = codes_to_onehot(codes[None])
    assert x.shape == (1, 4, 6) and x.dtype == np.float32
    assert x[0, :, 4].sum() == 0
    np.testing.assert_array_equal(x[0].argmax(0)[[0, 1, 2, 3, 5]], [0, 1, 2, 3, 0])
    assert codes_to_onehot(np.zeros((0, 7), np.uint8)).shape == (0, 4, 7)


def test_one_hot_reverse_complement_is_the_sequence_reverse_complement():
    seq = "AACGTTTGCA" + "GGATC"  # non-palindromic
    assert reverse_complement(seq) == "GATCCTGCAAACGTT"
    x = one_hot(seq)
    np.testing.assert_array_equal(x[::-1, ::-1], one_hot(reverse_complement(seq)))
    np.testing.assert_array_equal(one_hot(reverse_complement(reverse_complement(seq))), x)


def test_reverse_complement_of_encoded_inputs_matches_the_sequence_rc():
    rng = np.random.default_rng(0)
    for s in SEQS:
        assert reverse_complement(s) != s
        oh = one_hot(s)[None]
        acc = rng.random((1, len(s))).astype(np.float32)
        mp = rng.random((1, len(s))).astype(np.float32)
        x = encode_inputs(oh, acc, mp)
        rc = reverse_complement_inputs(x)
        np.testing.assert_array_equal(rc[0, :4].numpy(), one_hot(reverse_complement(s)))
        np.testing.assert_array_equal(rc[0, :4].numpy(), oh[0, ::-1, ::-1])
        np.testing.assert_array_equal(rc[0, 4].numpy(), acc[0, ::-1])
        np.testing.assert_array_equal(rc[0, 5].numpy(), mp[0, ::-1])
        assert not torch.equal(rc, x)
        assert torch.equal(reverse_complement_inputs(rc), x)


def test_encode_inputs_channel_order_and_sequence_only():
    oh = np.stack([one_hot(SEQS[0])])
    acc = np.full((1, oh.shape[-1]), 0.25, np.float32)
    mp = np.full((1, oh.shape[-1]), 0.75, np.float32)
    x = encode_inputs(oh, acc, mp)
    assert x.shape == (1, 6, oh.shape[-1])
    assert torch.all(x[:, 4] == 0.25) and torch.all(x[:, 5] == 0.75)
    assert encode_inputs(oh).shape == (1, 4, oh.shape[-1])
    with pytest.raises(ValueError):
        encode_inputs(oh, acc, None)


def test_full_arch_matches_scfan_layer_sizes():
    m = ScFANet(6, 1000, 5, ArchConfig.preset("full"))
    convs = [c for c in m.body.modules() if isinstance(c, torch.nn.Conv1d)]
    assert [c.out_channels for c in convs] == [160, 240, 240] and {c.kernel_size for c in convs} == {(8,)}
    assert m.head[1].in_features == 240 * 53 and m.head[1].out_features == 919
    assert m.motif.conv.out_channels == 32 and m.motif.conv.kernel_size == (24,) and m.motif.out.in_features == 768
    # 32 filters x (best over the central 400 bp, best centred in the central 200 bp) x (score and its 5 hinges)
    # x (as is, x accessibility)
    assert m(torch.zeros(2, 6, 1000)).shape == (2, 5)


def _with_active_branch(m: ScFANet, seed: int = 5) -> ScFANet:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        m.motif.out.weight.copy_(torch.randn(m.motif.out.weight.shape, generator=g))
    return m.eval()


def test_motif_branch_is_strand_symmetric_and_silent_until_trained():
    m = _random_model(length=1000)
    x = torch.randn(8, 6, 1000)
    with torch.no_grad():
        # a new branch adds nothing: its output layer starts at zero
        torch.testing.assert_close(m(x), m.head(m.body(x)), atol=0, rtol=0)
        _with_active_branch(m)
        b, b_rc = m.motif(x), m.motif(reverse_complement_inputs(x))
    assert b.abs().max() > 0.1
    torch.testing.assert_close(b, b_rc, atol=1e-5, rtol=1e-5)


def test_motif_branch_scans_the_centre_only():
    """A motif inside the central ``motif_pool`` bp moves the branch's score; the same motif in the flank does not."""
    m = _with_active_branch(_random_model(n_channels=4, length=1000))
    motif = torch.from_numpy(one_hot("CCGCGTGGCGCCAGTTACGGATCA"))
    with torch.no_grad():
        m.motif.conv.weight.zero_()
        m.motif.conv.weight[0] = motif - 0.25  # filter 0 is that motif
    x = torch.from_numpy(one_hot("A" * 1000))[None].repeat(3, 1, 1)
    x[1, :, 500:524] = motif  # centre
    x[2, :, 100:124] = motif  # flank, outside the central 400 bp
    with torch.no_grad():
        b = m.motif(x)
    assert (b[1] - b[0]).abs().max() > 1e-3
    torch.testing.assert_close(b[2], b[0])


def test_motif_core_score_sees_the_labelled_window_only():
    """The core score moves for a site centred in the central ``motif_core`` bp, on either strand, and not for the
    same site in the rest of the pooled stretch (which still moves the pooled score)."""
    m = _random_model(n_channels=4, length=1000)
    n_f = m.motif.conv.out_channels
    motif = torch.from_numpy(one_hot("CCGCGTGGCGCCAGTTACGGATCA"))
    with torch.no_grad():
        m.motif.conv.weight.zero_()
        m.motif.conv.weight[0] = motif - 0.25  # filter 0 is that motif
        m.motif.out.weight.zero_()
        m.motif.out.weight[0, 0] = 1.0  # TF 0 reads filter 0's pooled score
        m.motif.out.weight[1, n_f] = 1.0  # TF 1 reads filter 0's core score
    x = torch.from_numpy(one_hot("A" * 1000))[None].repeat(5, 1, 1)
    x[1, :, 488:512] = motif  # centred on the window
    x[2, :, 488:512] = torch.from_numpy(one_hot(reverse_complement("CCGCGTGGCGCCAGTTACGGATCA")))
    x[3, :, 340:364] = motif  # in the pooled 400 bp (300-700), centred outside the central 200 bp (400-600)
    x[4, :, 404:428] = motif  # centred at 416: just inside the core
    with torch.no_grad():
        b = m.motif(x)
    assert b[1, 0] - b[0, 0] > 1 and b[1, 1] - b[0, 1] > 1
    torch.testing.assert_close(b[2], b[1])
    assert b[3, 0] - b[0, 0] > 1
    torch.testing.assert_close(b[3, 1], b[0, 1])
    assert b[4, 1] - b[0, 1] > 1


def test_model_file_without_a_motif_core_loads_as_before(tmp_path):
    """Files written before ``motif_core`` load with the branch's pooled score alone, and predict as saved."""
    arch = ArchConfig(filters=(32, 48, 48), dense=64, motif_filters=4)
    torch.manual_seed(0)
    m = _with_active_branch(ScFANet(6, 1000, 2, arch))
    assert m.motif.core_lo is None and m.motif.out.in_features == 8
    spec = ModelSpec(arch=arch, tf_names=("CTCF", "GATA1"),
                     channels=("A", "C", "G", "T", "accessibility", "mappability"), window=200, context=1000,
                     track_norm=TrackNorm(mean_per_base=0.1))
    save_model(tmp_path / "model.pt", m, spec)
    raw = torch.load(tmp_path / "model.pt", weights_only=True)
    raw["arch"].pop("motif_core")
    torch.save(raw, tmp_path / "old.pt")
    m2, spec2 = load_model(tmp_path / "old.pt")
    assert spec2.arch.motif_core == 0 and m2.motif.core_lo is None
    x = torch.randn(3, 6, 1000)
    np.testing.assert_array_equal(predict_batches(m, x), predict_batches(m2, x))


def test_model_file_from_before_the_motif_branch_loads(tmp_path):
    """Files written before the branch existed have no motif_* keys in ``arch``: they load as the plain scFANet."""
    old_arch = ArchConfig(filters=(32, 48, 48), dense=64)
    torch.manual_seed(0)
    m = ScFANet(6, 1000, 2, old_arch).eval()
    assert m.motif is None and not any(k.startswith("motif.") for k in m.state_dict())
    spec = ModelSpec(arch=old_arch, tf_names=("CTCF", "GATA1"),
                     channels=("A", "C", "G", "T", "accessibility", "mappability"), window=200, context=1000,
                     track_norm=TrackNorm(mean_per_base=0.1))
    save_model(tmp_path / "model.pt", m, spec)
    raw = torch.load(tmp_path / "model.pt", weights_only=True)
    raw["arch"] = {k: v for k, v in raw["arch"].items() if not k.startswith("motif_")}
    torch.save(raw, tmp_path / "old.pt")
    m2, spec2 = load_model(tmp_path / "old.pt")
    assert m2.motif is None and spec2.arch.motif_filters == 0
    x = torch.randn(3, 6, 1000)
    np.testing.assert_array_equal(predict_batches(m, x), predict_batches(m2, x))


def test_prediction_identical_for_batch_size_1_and_256():
    m = _random_model()
    x = torch.randn(300, 6, 200)
    p1 = predict_batches(m, x, batch_size=1)
    p256 = predict_batches(m, x, batch_size=256)
    assert p1.shape == (300, 3)
    np.testing.assert_array_equal(p1, p256)
    assert p1.std() > 0


def test_rc_averaged_prediction_is_strand_symmetric():
    m = _random_model()
    x = torch.randn(16, 6, 200)
    np.testing.assert_allclose(predict_batches(m, x), predict_batches(m, reverse_complement_inputs(x)), atol=1e-6)
    # without averaging the model is not symmetric by itself, so the averaging is what makes it so
    assert not np.allclose(predict_batches(m, x, average_rc=False),
                           predict_batches(m, reverse_complement_inputs(x), average_rc=False), atol=1e-4)


def test_first_conv_splits_into_sequence_and_track_halves():
    m = _random_model()
    conv = m.body[0]
    x = torch.randn(4, 6, 200)
    full = conv(x)
    seq_half = torch.nn.functional.conv1d(x[:, :4], conv.weight[:, :4], conv.bias)
    track_half = torch.nn.functional.conv1d(x[:, 4:], conv.weight[:, 4:])
    torch.testing.assert_close(full, seq_half + track_half, atol=1e-5, rtol=1e-5)


def test_model_file_round_trip_weights_only(tmp_path):
    m = _random_model(length=1000, n_tasks=2)
    spec = ModelSpec(arch=ArchConfig.preset("small"), tf_names=("CTCF", "GATA1"),
                     channels=("A", "C", "G", "T", "accessibility", "mappability"), window=200, context=1000,
                     track_norm=TrackNorm(mean_per_base=0.123), train_config={"seed": 3})
    save_model(tmp_path / "model.pt", m, spec)
    raw = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(raw) >= {"state_dict", "arch", "tf_names", "channels", "window", "context", "track_norm",
                        "package_version", "train_config"}
    assert raw["track_norm"]["mean_per_base"] == pytest.approx(0.123)
    m2, spec2 = load_model(tmp_path / "model.pt")
    assert spec2.tf_names == ("CTCF", "GATA1") and spec2.track_norm.mean_per_base == pytest.approx(0.123)
    x = torch.randn(5, 6, 1000)
    np.testing.assert_array_equal(predict_batches(m, x), predict_batches(m2, x))
    assert isinstance(build_model(spec2), ScFANet)


def test_full_size_prediction_identical_for_batch_sizes():
    torch.manual_seed(1)
    m = ScFANet(6, 1000, 2, ArchConfig.preset("full")).eval()
    x = torch.randn(70, 6, 1000)
    p1, p256, p7 = (predict_batches(m, x, batch_size=b) for b in (1, 256, 7))
    np.testing.assert_array_equal(p1, p256)
    np.testing.assert_array_equal(p1, p7)


def test_gpu_block_size_keeps_batch_size_invariance():
    """The GPU's larger compute block (CUDA_COMPUTE_BLOCK rows) keeps predictions independent of the batch size;
    run here on the CPU with that block, since the rule is the same on every device."""
    from scfan.inference import COMPUTE_BLOCK, CUDA_COMPUTE_BLOCK, compute_block

    assert compute_block("cpu") == COMPUTE_BLOCK == 64
    assert compute_block("cuda") == compute_block(torch.device("cuda", 0)) == CUDA_COMPUTE_BLOCK == 4096
    m = _random_model()
    x = torch.randn(4200, 6, 200)
    big = [predict_batches(m, x, batch_size=b, block=CUDA_COMPUTE_BLOCK) for b in (1, 300, 9000)]
    np.testing.assert_array_equal(big[0], big[1])
    np.testing.assert_array_equal(big[0], big[2])
    # the same function as with the CPU's block, up to float rounding
    np.testing.assert_allclose(big[0], predict_batches(m, x), atol=1e-5)


def _live_model(arch: str, n_channels: int, length: int = 1000, n_tasks: int = 5, seed: int = 0) -> ScFANet:
    """A model with non-trivial BatchNorm statistics and a live motif branch (its output layer starts at zero)."""
    torch.manual_seed(seed)
    m = ScFANet(n_channels, length, n_tasks, ArchConfig.preset(arch))
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    torch.nn.init.normal_(m.motif.out.weight, std=0.2)
    return m.eval()


def _windows(n: int, n_channels: int, length: int = 1000, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, n_channels, length)
    x[:, :4] = torch.nn.functional.one_hot(torch.randint(0, 4, (n, length), generator=gen), 4).permute(0, 2, 1)
    if n_channels > 4:
        x[:, 4:] = torch.rand(n, n_channels - 4, length, generator=gen) * 3
    return x


def test_pooling_before_relu_is_scfans_relu_then_pool_exactly():
    """The body max-pools before its ReLU (cheaper); scFAN's order (ReLU, then pool) gives bit-identical outputs and
    gradients, in training mode too, so the reordering changes no trained model and no prediction."""
    m = _live_model("small", 6, length=300).train()
    body = list(m.body)
    pools = [i for i, mod in enumerate(body) if isinstance(mod, torch.nn.MaxPool1d)]
    assert len(pools) == 2 and all(isinstance(body[i + 1], torch.nn.ReLU) for i in pools)
    scfan_order = list(body)
    for i in pools:
        scfan_order[i], scfan_order[i + 1] = scfan_order[i + 1], scfan_order[i]
    x = _windows(8, 6, 300) - 1.0  # negative inputs too, so whole pooling windows fall below zero
    outs, grads = [], []
    for layers in (body, scfan_order):
        m.zero_grad()
        torch.manual_seed(3)  # the same dropout masks
        y = torch.nn.Sequential(*layers)(x)
        y.square().sum().backward()
        outs.append(y.detach())
        grads.append(m.body[0].weight.grad.clone())
    assert (outs[0] == 0).any() and (outs[0] > 0).any()
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(grads[0], grads[1]) and grads[0].abs().sum() > 0


@pytest.mark.parametrize("arch,n_channels", [("small", 6), ("full", 6), ("small", 4)])
def test_channels_last_net_is_the_same_function(arch, n_channels):
    """The GPU layout (2-D channels-last convolutions, inputs padded to 8 channels, BatchNorm folded, both strands of
    the motif branch in one convolution) computes what the trained network computes."""
    from scfan.inference import ChannelsLastNet

    m = _live_model(arch, n_channels)
    x = _windows(6, n_channels)
    with torch.no_grad():
        want, got = m(x), ChannelsLastNet(m)(x)
    assert want.abs().max() > 0.1  # a live network, not zeros on both sides
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)
    cl = ChannelsLastNet(m)
    assert cl.padded == 8 and cl.body[0].in_channels == 8
    assert cl.prepare(x).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("arch", ["small", "full"])
def test_window_shared_net_predicts_what_the_network_predicts(arch):
    """Per-cell inference computes the motif scores once per window and reuses them for every (cell, window) pair:
    the same probabilities as the whole network on the assembled inputs, for any number of pairs per call, and a
    pair's accessibility really reaches both the body and the motif branch's output layer."""
    from scfan.inference import ChannelsLastNet, WindowSharedNet

    m = _live_model(arch, 6, length=600)
    net = ChannelsLastNet(m)
    shared = WindowSharedNet(net, acc_channel=4)
    xw = _windows(70, 6, 600)  # more windows than one block of 64
    xw[:, 4] = 99.0  # a window's own accessibility channel must not be read
    rng = np.random.default_rng(1)
    widx = rng.integers(0, 70, 150)
    acc = (rng.random((150, 600)) < 0.05) * rng.random((150, 600)) * 4
    x = xw[torch.as_tensor(widx)].clone()
    x[:, 4] = torch.as_tensor(acc, dtype=torch.float32)
    want = predict_batches(net, x)
    scores = shared.scores_of(xw)
    got = shared.predict_pairs(xw, scores, widx, acc)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    # in pieces of any size, and with the scores of another set of windows that holds the same ones
    part = shared.predict_pairs(xw, scores, widx[:7], acc[:7])
    np.testing.assert_allclose(part, got[:7], rtol=0, atol=1e-6)
    sub = shared.scores_of(xw[torch.as_tensor(widx[:7])])
    np.testing.assert_allclose(shared.predict_pairs(xw[torch.as_tensor(widx[:7])], sub, np.arange(7), acc[:7]),
                               got[:7], rtol=0, atol=1e-6)
    # the accessibility matters, through the body and through the motif branch's output layer
    assert np.abs(shared.predict_pairs(xw, scores, widx, acc * 0) - got).max() > 1e-3
    net.motif.out.weight.data[:, : net.motif.out.in_features // 2] = 0  # keep only the score x accessibility inputs
    with_acc = shared.predict_pairs(xw, shared.scores_of(xw), widx, acc)
    net.motif.out.weight.data.zero_()
    assert np.abs(with_acc - shared.predict_pairs(xw, shared.scores_of(xw), widx, acc)).max() > 1e-4
    assert shared.predict_pairs(xw, scores, widx[:0], acc[:0]).shape == (0, 5)


def test_channels_last_net_refuses_a_layer_it_does_not_know():
    from scfan.inference import ChannelsLastNet

    m = _live_model("small", 6, length=200)
    m.body[2] = torch.nn.GELU()
    with pytest.raises(TypeError, match="GELU"):
        ChannelsLastNet(m)


def test_prepare_for_inference_keeps_float32_on_the_cpu():
    from scfan.inference import ChannelsLastNet, prepare_for_inference

    m = _live_model("small", 6, length=200)
    ready = prepare_for_inference(m, "cpu", half=True, compile=True)  # half and compile apply on CUDA only
    assert isinstance(ready, ChannelsLastNet)  # oneDNN's channels-last kernels, not torch.compile
    assert {p.dtype for p in ready.parameters()} == {torch.float32}
    assert not any(isinstance(mod, torch.nn.BatchNorm1d) for mod in ready.modules())
    x = _windows(20, 6, 200)
    np.testing.assert_allclose(predict_batches(ready, x), predict_batches(m, x), atol=1e-5)


@pytest.mark.parametrize("arch", ["small", "full"])
def test_bfloat16_convolutions_keep_the_dense_layers_in_float32(arch):
    """``sc predict --mode fast`` on a CPU: ``prepare_for_inference(cpu_bf16=True)`` runs the body and the motif
    scan in bfloat16 and the rest in float32. What runs is decided by the runtime check: where this CPU's bfloat16
    convolutions are right, the checked module is the bfloat16 one and stays within its tolerance on inputs the probe
    never saw (batch size changes no number, the window-sharing path gives what the module gives); where they are
    wrong (oneDNN on Intel AMX), the check refuses them and the module gives float32's numbers."""
    from scfan.inference import BFLOAT16_TOLERANCE, WindowSharedNet, checked_for_inference, prepare_for_inference

    m = _live_model(arch, 6, length=600)
    ref = prepare_for_inference(m, "cpu")
    low = prepare_for_inference(m, "cpu", cpu_bf16=True)
    assert {p.dtype for p in low.body.parameters()} == {p.dtype for p in low.motif.conv.parameters()} == {
        torch.bfloat16}
    assert {p.dtype for p in low.head.parameters()} == {p.dtype for p in low.motif.out.parameters()} == {
        torch.float32}
    xw = _windows(70, 6, 600)
    rng = np.random.default_rng(2)
    widx = rng.integers(0, 70, 150)
    acc = (rng.random((150, 600)) < 0.05) * rng.random((150, 600)) * 4
    x = xw[torch.as_tensor(widx)].clone()
    x[:, 4] = torch.as_tensor(acc, dtype=torch.float32)
    want = predict_batches(ref, x)
    module, check = checked_for_inference(m, "cpu", 600, cpu_bf16=True)
    got = predict_batches(module, x)
    assert got.dtype == np.float32
    diff = np.abs(got - want)
    if check.precision.startswith("bfloat16"):
        assert check.refused == () and check.max_abs_diff <= BFLOAT16_TOLERANCE
        assert 0 < diff.max() < BFLOAT16_TOLERANCE and diff.mean() < 0.01, (diff.max(), diff.mean())
        np.testing.assert_array_equal(predict_batches(module, x, batch_size=1), got)
        shared = WindowSharedNet(module, acc_channel=4)
        np.testing.assert_allclose(shared.predict_pairs(xw, shared.scores_of(xw), widx, acc), got, rtol=0,
                                   atol=1e-5)
    else:  # this CPU computes bfloat16 convolutions wrongly: refused and said, float32 runs
        assert check.refused[0][0].startswith("bfloat16") and check.refused[0][1] > BFLOAT16_TOLERANCE
        assert check.precision == "float32"
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_bfloat16_channels_last_net_through_predict_batches():
    """The module ``sc predict`` runs on a GPU (ChannelsLastNet in bfloat16) goes through predict_batches as is
    (inputs cast by the module, not by autocast): batch-size independent, really in bfloat16, within bfloat16
    rounding of float32 and strand-symmetric wherever this machine's bfloat16 convolutions pass the runtime check
    (where they do not, the check refuses them)."""
    from scfan.inference import BFLOAT16_TOLERANCE, ChannelsLastNet, checked_for_inference

    m = _live_model("small", 6, length=200)
    half = ChannelsLastNet(m).to(torch.bfloat16)
    x = _windows(70, 6, 200)
    p = [predict_batches(half, x, batch_size=b, amp=True) for b in (1, 64, 500)]
    np.testing.assert_array_equal(p[0], p[1])
    np.testing.assert_array_equal(p[0], p[2])
    assert p[0].dtype == np.float32
    assert not np.allclose(p[0], predict_batches(m, x), atol=1e-6)  # it really ran in bfloat16
    _, check = checked_for_inference(m, "cpu", 200, cpu_bf16=True)
    if not check.precision.startswith("bfloat16"):
        assert check.refused and check.refused[0][1] > BFLOAT16_TOLERANCE
        return
    np.testing.assert_allclose(p[0], predict_batches(m, x), atol=0.03)
    rc = predict_batches(half, reverse_complement_inputs(x), batch_size=64)
    np.testing.assert_allclose(rc, p[0], atol=0.02)


@pytest.mark.parametrize("n_channels", [6, 4])
def test_motif_branch_with_a_hidden_layer(tmp_path, n_channels):
    """``motif_hidden`` puts a ReLU layer between the branch's scores (and the accessibility) and the logits: silent
    until trained, strand-symmetric, the same function in the GPU layout, and kept by the model file; files written
    before the field load with the linear layer."""
    from scfan.inference import ChannelsLastNet

    arch = ArchConfig(filters=(32, 48, 48), dense=64, motif_filters=4, motif_core=200, motif_hidden=8)
    torch.manual_seed(0)
    m = ScFANet(n_channels, 1000, 2, arch).eval()
    n_in = 4 * 2 * (2 if n_channels > 4 else 1) + (1 if n_channels > 4 else 0)
    assert m.motif.out[0].in_features == n_in and m.motif.out[2].out_features == 2
    x = _windows(6, n_channels)
    with torch.no_grad():
        torch.testing.assert_close(m(x), m.head(m.body(x)), atol=0, rtol=0)  # last layer starts at zero
        torch.nn.init.normal_(m.motif.out[2].weight, std=0.5)
        b, b_rc = m.motif(x), m.motif(reverse_complement_inputs(x))
        want, got = m(x), ChannelsLastNet(m)(x)
    assert b.abs().max() > 0.05
    torch.testing.assert_close(b, b_rc, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)
    if n_channels > 4:  # the accessibility itself is an input of the hidden layer
        x2 = x.clone()
        x2[:, 4] += 1.0
        with torch.no_grad():
            assert (m.motif(x2) - b).abs().max() > 1e-4
    channels = ("A", "C", "G", "T", "accessibility", "mappability")[:n_channels]
    spec = ModelSpec(arch=arch, tf_names=("CTCF", "GATA1"), channels=channels, window=200, context=1000,
                     track_norm=TrackNorm(mean_per_base=0.1) if n_channels > 4 else None)
    save_model(tmp_path / "model.pt", m, spec)
    m2, spec2 = load_model(tmp_path / "model.pt")
    assert spec2.arch.motif_hidden == 8
    np.testing.assert_array_equal(predict_batches(m, x), predict_batches(m2, x))
    linear_arch = ArchConfig(filters=(32, 48, 48), dense=64, motif_filters=4, motif_core=200)
    save_model(tmp_path / "linear.pt", ScFANet(n_channels, 1000, 2, linear_arch),
               ModelSpec(arch=linear_arch, tf_names=("CTCF", "GATA1"), channels=channels, window=200, context=1000,
                         track_norm=spec.track_norm))
    raw = torch.load(tmp_path / "linear.pt", weights_only=True)
    raw["arch"].pop("motif_hidden")
    torch.save(raw, tmp_path / "old.pt")
    m3, spec3 = load_model(tmp_path / "old.pt")
    assert spec3.arch.motif_hidden == 0 and isinstance(m3.motif.out, torch.nn.Linear)


def test_motif_features_hinges_and_accessibility():
    """The branch's features: the scores, one hinge ``relu(z - k)`` per knot, each of those times the accessibility,
    and the accessibility itself only for a hidden layer."""
    from scfan.inference import motif_features

    z = torch.tensor([[-1.0, 0.5, 3.0]])
    acc = torch.tensor([[2.0]])
    plain = motif_features(z, None, (), hidden=False)
    torch.testing.assert_close(plain, z)
    hinged = motif_features(z, None, (1.0, 2.5), hidden=False)
    torch.testing.assert_close(hinged, torch.tensor([[-1.0, 0.5, 3.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.5]]))
    with_acc = motif_features(z, acc, (1.0, 2.5), hidden=False)
    torch.testing.assert_close(with_acc, torch.cat([hinged, 2 * hinged], dim=1))
    torch.testing.assert_close(motif_features(z, acc, (1.0,), hidden=True)[:, -1], acc[:, 0])


@pytest.mark.parametrize("n_channels", [6, 4])
def test_motif_branch_with_knots(tmp_path, n_channels):
    """``motif_knots`` widen the branch's output layer by one hinge feature per knot and score: silent until
    trained, strand-symmetric, the same function in the GPU layout, kept by the model file; the presets carry the
    default knots, and files written before the field load without them."""
    from scfan.bulk.model import DEFAULT_MOTIF_KNOTS
    from scfan.inference import ChannelsLastNet

    assert ArchConfig.preset("small").motif_knots == DEFAULT_MOTIF_KNOTS
    assert ArchConfig.preset("full").motif_knots == DEFAULT_MOTIF_KNOTS
    arch = ArchConfig(filters=(32, 48, 48), dense=64, motif_filters=4, motif_core=200, motif_knots=(1.0, 2.5))
    torch.manual_seed(0)
    m = ScFANet(n_channels, 1000, 2, arch).eval()
    assert m.motif.out.in_features == 4 * 2 * 3 * (2 if n_channels > 4 else 1)
    x = _windows(6, n_channels)
    with torch.no_grad():
        torch.testing.assert_close(m(x), m.head(m.body(x)), atol=0, rtol=0)  # the output layer starts at zero
        torch.nn.init.normal_(m.motif.out.weight, std=0.5)
        b, b_rc = m.motif(x), m.motif(reverse_complement_inputs(x))
        want, got = m(x), ChannelsLastNet(m)(x)
    assert b.abs().max() > 0.05
    torch.testing.assert_close(b, b_rc, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)
    channels = ("A", "C", "G", "T", "accessibility", "mappability")[:n_channels]
    spec = ModelSpec(arch=arch, tf_names=("CTCF", "GATA1"), channels=channels, window=200, context=1000,
                     track_norm=TrackNorm(mean_per_base=0.1) if n_channels > 4 else None)
    save_model(tmp_path / "model.pt", m, spec)
    m2, spec2 = load_model(tmp_path / "model.pt")
    assert spec2.arch.motif_knots == (1.0, 2.5)
    np.testing.assert_array_equal(predict_batches(m, x), predict_batches(m2, x))
    raw = torch.load(tmp_path / "model.pt", weights_only=True)
    raw["arch"].pop("motif_knots")
    n_plain = 4 * 2 * (2 if n_channels > 4 else 1)
    raw["state_dict"]["motif.out.weight"] = raw["state_dict"]["motif.out.weight"][:, :n_plain].clone()
    torch.save(raw, tmp_path / "old.pt")
    m3, spec3 = load_model(tmp_path / "old.pt")
    assert spec3.arch.motif_knots == () and m3.motif.out.in_features == n_plain
