"""Model inputs and batched prediction, shared by bulk evaluation, region prediction and per-cell inference.

Kept free of file formats and genomics readers (only torch + numpy), so GPU benchmarks run with nothing else.

Why this module is long: the networks' runtime is one layer (torch + numpy only): batched prediction, the
fast layouts (``ChannelsLastNet``, ``WindowSharedNet``) and the runtime check that they match the model; moving the
layouts to their own module is part of issue 37's layout.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` without a device is an error."""
    from scfan.errors import ScfanError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ScfanError("--device cuda requested but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise ScfanError(f"--device {name!r}: expected auto, cpu or cuda")
    return torch.device(name)


def encode_inputs(onehot: np.ndarray, accessibility: np.ndarray | None = None,
                  mappability: np.ndarray | None = None) -> torch.Tensor:
    """Stack ``onehot (N, 4, L)``, normalised ``accessibility (N, L)`` and ``mappability (N, L)`` into ``(N, C, L)``.

    With no tracks, returns the 4 DNA channels (sequence-only models).
    """
    onehot = np.asarray(onehot, dtype=np.float32)
    if accessibility is None and mappability is None:
        return torch.from_numpy(np.ascontiguousarray(onehot))
    if accessibility is None or mappability is None:
        raise ValueError("give both accessibility and mappability, or neither")
    x = np.concatenate([onehot, np.asarray(accessibility, dtype=np.float32)[:, None, :],
                        np.asarray(mappability, dtype=np.float32)[:, None, :]], axis=1)
    return torch.from_numpy(x)


def reverse_complement_inputs(x: torch.Tensor) -> torch.Tensor:
    """Reverse complement of encoded inputs ``(N, C, L)``: DNA channels flipped (ACGT→TGCA), all positions reversed."""
    dna = x[:, :4].flip(1)
    return torch.cat([dna, x[:, 4:]], dim=1).flip(-1)


COMPUTE_BLOCK = 64
#: rows per compute block on a GPU: 64-row blocks leave an H200 idle between kernel launches; 1,024 rows run the full
#: model 2.5x faster there and 4,096 another 8 % (benchmarks/results/bench_bulk_gpu.md); one fixed shape is also what
#: a compiled model (``--compile``) needs to be compiled only once
CUDA_COMPUTE_BLOCK = 4096


def compute_block(device: str | torch.device) -> int:
    """Rows per fixed compute block on ``device`` (see :func:`predict_batches`): one number per device type, so
    results never depend on the batch size; CPU and GPU results differ by float rounding anyway."""
    return CUDA_COMPUTE_BLOCK if torch.device(device).type == "cuda" else COMPUTE_BLOCK


@torch.no_grad()
def predict_batches(model: nn.Module, inputs: torch.Tensor | np.ndarray, batch_size: int = 256,
                    *, average_rc: bool = True, device: str | torch.device | None = None,
                    block: int | None = None, amp: bool = False) -> np.ndarray:
    """Probabilities ``(N, n_tfs)`` (float32) in eval mode, forward/RC-averaged, identical for any ``batch_size``.

    CPU/GPU kernels may round differently for different batch shapes and row positions, so the model is always run on
    fixed blocks of ``block`` rows (rows ``k*block … (k+1)*block``, the last one zero-padded; default
    :func:`compute_block` of the device). ``batch_size`` only sets how many rows move to the device at once (rounded
    up to a multiple of ``block``); it never changes a number.
    """
    was_training = model.training
    model.eval()
    x = torch.as_tensor(inputs, dtype=torch.float32)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    block = compute_block(dev) if block is None else int(block)
    n = x.shape[0]
    # a module already in half precision (:class:`ChannelsLastNet` converted with ``.to(torch.bfloat16)``) casts its
    # own inputs; autocast would cast its weights again
    dtype = next(model.parameters()).dtype
    half = dtype != torch.float32
    chunk = max(block, -(-batch_size // block) * block)
    # host-side preparation of a chunk (padding; on CUDA the cast to the module's precision and pinning) runs in a
    # worker thread one chunk ahead, while the device computes the current one (torch releases the GIL)
    cuda = dev.type == "cuda"

    def host_chunk(i: int) -> torch.Tensor:
        xc = x[i : i + chunk]
        pad = (-xc.shape[0]) % block
        if pad:
            xc = torch.cat([xc, xc.new_zeros((pad, *xc.shape[1:]))])
        if cuda:
            # a half-precision module gets half-precision inputs: half the bytes over PCIe, from pinned memory (a
            # pageable fp32 copy moved only ~280k windows/s on an H200, below the compiled model's rate)
            xc = xc.to(dtype) if half else xc
            if xc.device.type == "cpu":  # inputs already on the device (benchmarks) need no staging
                xc = xc.pin_memory()
        return xc

    outs = []
    starts = list(range(0, n, chunk))
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(host_chunk, starts[0]) if starts else None
        for k in range(len(starts)):
            xc = ahead.result()
            ahead = pool.submit(host_chunk, starts[k + 1]) if k + 1 < len(starts) else None
            xc = xc.to(dev, non_blocking=True)
            # a module checked to need float32 (:class:`Float32Only`) never runs under autocast
            autocast = amp and cuda and not half and not getattr(model, "float32_only", False)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
                for j in range(0, xc.shape[0], block):
                    xb = xc[j : j + block]
                    p = torch.sigmoid(model(xb).float())
                    if average_rc:
                        p = 0.5 * (p + torch.sigmoid(model(reverse_complement_inputs(xb)).float()))
                    outs.append(p.cpu())
    model.train(was_training)
    if not outs:
        n_out = model.head[-1].out_features if hasattr(model, "head") else 0
        return np.zeros((0, n_out), dtype=np.float32)
    return torch.cat(outs)[:n].numpy()


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy with every BatchNorm folded into the convolution before it (one op instead of two, the
    same function up to float rounding); dropout is already the identity in eval mode."""
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    for seq in fused.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        layers = list(seq)
        for i in range(len(layers) - 1):
            if isinstance(layers[i], nn.Conv1d) and isinstance(layers[i + 1], nn.BatchNorm1d):
                seq[i] = fuse_conv_bn_eval(layers[i], layers[i + 1])
                seq[i + 1] = nn.Identity()
    return fused


def motif_features(z: torch.Tensor, acc: torch.Tensor | None, knots: Sequence[float], hidden: bool) -> torch.Tensor:
    """The motif branch's input to its output layer(s): the standardised scores ``z`` and their hinges
    ``relu(z - k)``; with tracks (``acc``, the mean accessibility, ``(N, 1)``) each of those times ``acc`` too, and
    for a hidden layer ``acc`` itself. Shared by :class:`~scfan.bulk.model.MotifBranch` and its inference layout."""
    feats = torch.cat([z] + [torch.relu(z - k) for k in knots], dim=1) if knots else z
    if acc is None:
        return feats
    return torch.cat([feats, feats * acc] + ([acc] if hidden else []), dim=1)


def motif_standardisation(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of each filter's score on uniform random sequence, from the weights alone."""
    mean = weight.mean(dim=1).sum(dim=-1) + bias
    sd = torch.sqrt(weight.var(dim=1, unbiased=False).sum(dim=-1) + 1e-6)
    return mean, sd


class _MotifBranch2d(nn.Module):
    """:class:`~scfan.bulk.model.MotifBranch` for inference: both strands in one convolution (the reverse-complement
    filters scan the forward strand; the best score over all placements is the same), the per-filter standardisation
    precomputed, inputs in the 2-D channels-last layout of :class:`ChannelsLastNet`."""

    def __init__(self, branch: nn.Module, in_channels: int):
        super().__init__()
        w, b = branch.conv.weight.detach(), branch.conv.bias.detach()
        n_f, _, width = w.shape
        self.n_filters, self.lo, self.hi, self.uses_tracks = n_f, branch.lo, branch.hi, branch.uses_tracks
        self.conv = nn.Conv2d(in_channels, 2 * n_f, (1, width))
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:n_f, :4, 0] = w
            self.conv.weight[n_f:, :4, 0] = w.flip(1).flip(-1)  # reverse complement: ACGT→TGCA, positions reversed
            self.conv.bias.copy_(torch.cat([b, b]))
        mean, sd = motif_standardisation(w, b)
        self.core_lo = branch.core_lo
        n_scores = 1 if self.core_lo is None else 2
        self.register_buffer("mean", mean.repeat(n_scores))
        self.register_buffer("sd", sd.repeat(n_scores))
        self.expected_max = float(branch._expected_max)
        self.hidden = int(getattr(branch, "hidden", 0))
        self.knots = tuple(getattr(branch, "knots", ()))
        self.out = copy_module(branch.out)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised best score of each filter (and over the core placements): DNA only, ``(N, n_scores)``."""
        scores = self.conv(x[..., self.lo : self.hi])
        s = scores.amax(dim=(2, 3))
        best = torch.maximum(s[:, : self.n_filters], s[:, self.n_filters :])
        if self.core_lo is not None:
            c = scores[..., self.core_lo : scores.shape[-1] - self.core_lo].amax(dim=(2, 3))
            best = torch.cat([best, torch.maximum(c[:, : self.n_filters], c[:, self.n_filters :])], dim=1)
        return (best.float() - self.mean) / self.sd - self.expected_max

    def logits(self, z: torch.Tensor, acc: torch.Tensor | None) -> torch.Tensor:
        """The branch's logits from its scores ``z`` and the mean accessibility ``acc (N, 1)`` of its stretch."""
        feats = motif_features(z, acc, self.knots, self.hidden > 0)
        return self.out(feats.to(next(self.out.parameters()).dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C, 1, L), channels last
        acc = x[:, 4, 0, self.lo : self.hi].float().mean(-1, keepdim=True) if self.uses_tracks else None
        return self.logits(self.scores(x), acc)


def copy_module(m: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(m)


class ChannelsLastNet(nn.Module):
    """The same function as a trained :class:`~scfan.bulk.model.ScFANet`, laid out for tensor cores: BatchNorm folded,
    every 1-D convolution as a ``(1, k)`` 2-D convolution on a channels-last (NHWC) tensor, the input channels
    zero-padded to a multiple of ``channel_multiple`` (8, for tensor cores), dropout gone. Under half precision
    cuDNN then runs implicit-GEMM kernels on the tensor cores instead of converting layouts around every layer
    (benchmarks/results/bench_bulk_gpu.md).
    Takes and returns what the original does: ``(N, C, L)`` inputs, logits ``(N, n_tfs)``."""

    def __init__(self, model: nn.Module, channel_multiple: int = 8):
        super().__init__()
        fused = fuse_for_inference(model)
        first = next(m for m in fused.body if isinstance(m, nn.Conv1d))
        self.in_channels = first.in_channels
        self.padded = -(-self.in_channels // channel_multiple) * channel_multiple
        layers: list[nn.Module] = []
        cin = self.padded
        for m in fused.body:
            if isinstance(m, nn.Conv1d):
                conv = nn.Conv2d(cin, m.out_channels, (1, m.kernel_size[0]))
                with torch.no_grad():
                    conv.weight.zero_()
                    conv.weight[:, : m.in_channels, 0] = m.weight
                    conv.bias.copy_(m.bias)
                layers.append(conv)
                cin = m.out_channels
            elif isinstance(m, nn.ReLU):
                layers.append(nn.ReLU())
            elif isinstance(m, nn.MaxPool1d):
                layers.append(nn.MaxPool2d((1, int(m.kernel_size))))
            elif not isinstance(m, (nn.Identity, nn.Dropout)):
                raise TypeError(f"ChannelsLastNet: unexpected layer {m.__class__.__name__}")
        self.body = nn.Sequential(*layers)
        self.head = copy_module(fused.head)
        self.motif = _MotifBranch2d(fused.motif, self.padded) if fused.motif is not None else None
        self.eval()

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, L)`` → padded ``(N, C8, 1, L)`` channels-last in the convolutions' dtype."""
        dtype = self.body[0].weight.dtype
        if self.padded != x.shape[1]:
            x = torch.cat([x, x.new_zeros((x.shape[0], self.padded - x.shape[1], x.shape[2]))], dim=1)
        return x.to(dtype).unsqueeze(2).contiguous(memory_format=torch.channels_last)

    def body_logits(self, x4: torch.Tensor) -> torch.Tensor:
        """The dense head's logits from prepared inputs ``x4``: the body's output reaches the head in the head's
        dtype (float32 behind bfloat16 convolutions, :meth:`convolutions_to`)."""
        return self.head(self.body(x4).flatten(1).to(self.head[1].weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x4 = self.prepare(x)
        out = self.body_logits(x4)
        return out if self.motif is None else out + self.motif(x4)

    def convolutions_to(self, dtype: torch.dtype) -> ChannelsLastNet:
        """Run the convolutions (the body and the motif scan, nearly all of the work) in ``dtype`` and keep the
        dense layers, the motif standardisation and the outputs in float32 (``sc predict --mode fast`` on a CPU
        with native bfloat16: 1.4x the pairs/s of float32 on the small model, probabilities within a few 1e-2)."""
        self.body.to(dtype)
        if self.motif is not None:
            self.motif.conv.to(dtype)
        return self


class WindowSharedNet(nn.Module):
    """A :class:`ChannelsLastNet` for per-cell inference, where one window is predicted for many cells that differ
    only in the accessibility channel: the motif branch's scores, which read the DNA alone, are computed once per
    window and strand and reused by every (cell, window) pair; per pair the convolutional body runs as before, and
    of the motif branch only its output layer (on the cached scores and the pair's mean accessibility).

    The same function as the network (the same operations on the same numbers: equal up to float rounding,
    ``tests/python/sc/test_predict.py``). On the small model the branch's 24-bp scan is about a fifth of a pair's
    cost on a CPU (``benchmarks/results/bench_sc_infer.md``). Sharing the first convolution's DNA half as well
    (it is linear) was measured and dropped: gathering its cached output costs a CPU more than recomputing it.
    """

    def __init__(self, net: ChannelsLastNet, acc_channel: int = 4):
        super().__init__()
        self.net = net
        self.acc_channel = acc_channel
        self.eval()

    def window_scores(self, xw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Motif scores of windows ``xw (W, C, L)`` on the forward and the reverse-complement strand (None for a
        network without the branch); the accessibility channel is not read."""
        m = self.net.motif
        if m is None:
            return None
        return m.scores(self.net.prepare(xw)), m.scores(self.net.prepare(reverse_complement_inputs(xw)))

    def _logits(self, x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        x4 = self.net.prepare(x)
        out = self.net.body_logits(x4)
        if z is None:
            return out
        m = self.net.motif
        acc = x4[:, self.acc_channel, 0, m.lo : m.hi].float().mean(-1, keepdim=True) if m.uses_tracks else None
        return out + m.logits(z, acc)

    @torch.no_grad()
    def scores_of(self, xw: torch.Tensor, block: int = COMPUTE_BLOCK) -> tuple[torch.Tensor, torch.Tensor] | None:
        """:meth:`window_scores` of every window of ``xw``, in fixed zero-padded blocks of ``block`` windows."""
        if self.net.motif is None:
            return None
        parts = []
        for i in range(0, xw.shape[0], block):
            xb = xw[i : i + block]
            n = xb.shape[0]
            if n < block:
                xb = torch.cat([xb, xb.new_zeros((block - n, *xb.shape[1:]))])
            z_f, z_r = self.window_scores(xb)
            parts.append((z_f[:n], z_r[:n]))
        if not parts:
            n_s = self.net.motif.mean.shape[0]
            return torch.zeros((0, n_s)), torch.zeros((0, n_s))
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    @torch.no_grad()
    def predict_pairs(self, xw: torch.Tensor, scores: tuple[torch.Tensor, torch.Tensor] | None, widx: np.ndarray,
                      acc: np.ndarray, block: int = COMPUTE_BLOCK) -> np.ndarray:
        """Forward/RC-averaged probabilities ``(n, n_tfs)`` of the pairs (window ``widx[i]`` of ``xw (W, C, L)``,
        accessibility channel ``acc[i] (L,)``); ``scores`` = :meth:`scores_of` ``(xw)``. Pairs run in fixed
        zero-padded blocks of ``block`` rows, as :func:`predict_batches` does, so no number depends on how many pairs
        a call gets."""
        widx_t = torch.as_tensor(np.asarray(widx, dtype=np.int64))
        acc_t = torch.as_tensor(np.asarray(acc, dtype=np.float32))
        outs = []
        for j in range(0, len(widx_t), block):
            wi, a = widx_t[j : j + block], acc_t[j : j + block]
            n = len(wi)
            if n < block:
                wi = torch.cat([wi, wi.new_zeros(block - n)])
                a = torch.cat([a, a.new_zeros((block - n, a.shape[1]))])
            x = xw.index_select(0, wi)
            x[:, self.acc_channel] = a
            zf, zr = (scores[0].index_select(0, wi), scores[1].index_select(0, wi)) if scores else (None, None)
            p = torch.sigmoid(self._logits(x, zf).float())
            p = 0.5 * (p + torch.sigmoid(self._logits(reverse_complement_inputs(x), zr).float()))
            outs.append(p[:n])
        if not outs:
            return np.zeros((0, self.net.head[-1].out_features), dtype=np.float32)
        return torch.cat(outs).numpy()


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 convolutions natively on this CPU (AVX512-BF16 or AMX); elsewhere they are
    emulated and slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def prepare_for_inference(model: nn.Module, device: str | torch.device, *, half: bool = True,
                          compile: bool = False, cpu_bf16: bool = False) -> nn.Module:
    """The module :func:`predict_batches` should run for ``model`` on ``device``.

    CPU: :class:`ChannelsLastNet` in float32 (oneDNN's channels-last convolutions: the same numbers as the trained
    network up to float rounding; with pool-before-ReLU 1.1-1.2x the rate of the folded 1-D network in scFAN's
    layer order, ``benchmarks/results/bench_sc_infer.md``; ``half`` and ``compile`` are ignored; inputs padded to 8
    channels as on a GPU: unpadded, the first convolution alone ran 1.35x faster, a whole pair no faster).
    ``cpu_bf16``: the convolutions in bfloat16, the dense layers in float32 (:meth:`ChannelsLastNet.convolutions_to`;
    for a CPU where :func:`cpu_has_native_bf16`).
    CUDA with ``half``: :class:`ChannelsLastNet` in bfloat16 (1.3x the autocast model's forward rate on an H200);
    ``compile`` adds ``torch.compile`` with max-autotune (another 2.4x, for 1-2 minutes of compilation per model and
    process: worth it from some tens of millions of predictions per task; benchmarks/results/bench_bulk_gpu.md).
    """
    dev = torch.device(device)
    if dev.type != "cuda":
        net = ChannelsLastNet(model).to(dev)
        return net.convolutions_to(torch.bfloat16) if cpu_bf16 else net
    if not half:
        return fuse_for_inference(model).to(dev)
    net = ChannelsLastNet(model).to(dev).to(torch.bfloat16)
    if compile:
        net = torch.compile(net, mode="max-autotune-no-cudagraphs")
    return net


# --- the runtime check of every fast path ------------------------------------------------------------------------
# A reduced-precision or re-laid-out module is trusted only after it has given the reference's numbers on this
# machine: oneDNN's bfloat16 convolutions on Intel AMX CPUs returned probabilities off by up to 0.69 (issue 33),
# where the same code on AMD EPYC is right.

#: largest |Δ probability| on the probe for a float32 path (BatchNorm folding, channels-last layout, cuDNN's TF32:
#: float rounding only)
FLOAT32_TOLERANCE = 2e-3
#: largest |Δ probability| on the probe for a path with bfloat16 convolutions: bfloat16 rounding moves probabilities
#: by up to a few 1e-2 (tests/python/bulk/test_model.py), a wrong kernel by tenths
BFLOAT16_TOLERANCE = 0.05
#: windows in the probe batch (each scored on both strands): one at each of eight accessibility levels; the
#: reference kernels are slow (the full model: ~20 ms a window on two cores), so the probe stays small
PROBE_WINDOWS = 8


@contextlib.contextmanager
def onednn_off():
    """PyTorch's own CPU kernels instead of oneDNN's, without the notice torch gives for a TF32 setting that only
    Intel GPUs have."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
        with torch.backends.mkldnn.flags(enabled=False):
            yield


class Float32Only(nn.Module):
    """The trained network itself, in float32 with oneDNN off on a CPU (PyTorch's own convolution kernels): the
    reference every fast path is checked against, and the last fallback. Never run under autocast."""

    float32_only = True

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.float().eval()
        self.head = getattr(model, "head", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu":
            with onednn_off():
                return self.model(x.float())
        return self.model(x.float())


@dataclass(frozen=True)
class PathCheck:
    """What a model was asked to run in, what it runs in after the probe, and the evidence."""

    asked: str
    ran: str
    #: largest |Δ probability| of the path that ran, against the reference, on the probe
    max_abs_diff: float
    tolerance: float
    device: str
    cpu: str
    #: paths refused on this machine, with their |Δ probability|
    refused: tuple[tuple[str, float], ...] = ()
    seconds: float = 0.0
    precision: str = "float32"

    def as_dict(self) -> dict:
        return {"asked": self.asked, "ran": self.ran, "max_abs_diff": float(self.max_abs_diff),
                "tolerance": float(self.tolerance), "device": self.device, "cpu": self.cpu,
                "refused": [f"{name} (max |Δp| {d:.3g})" for name, d in self.refused],
                "seconds": round(float(self.seconds), 3), "precision": self.precision}


@dataclass(frozen=True)
class _Candidate:
    name: str
    precision: str
    tolerance: float
    build: Callable[[], nn.Module] = field(repr=False)


def cpu_description() -> str:
    """CPU model and the flags that decide its fast paths (``lscpu``'s names), e.g.
    ``Intel(R) Xeon(R) Platinum 8480+ (avx2 avx512f avx512_bf16 amx_bf16)``."""
    import platform

    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16")
    shown = [f for f in wanted if f in flags]
    return f"{model} ({' '.join(shown) if shown else 'no avx2/avx512/amx flags'})"


def probe_inputs(n_channels: int, length: int, n: int = PROBE_WINDOWS, seed: int = 0) -> torch.Tensor:
    """A fixed probe batch ``(n, C, L)``: random DNA, and (6 channels) accessibility from none to eight times a
    genome's mean in stretches of 25 bp, mappability 1 with a few unmappable stretches — so the probe reaches
    the probabilities a model gives, low to high."""
    rng = np.random.default_rng(seed)
    onehot = np.zeros((n, 4, length), dtype=np.float32)
    onehot[np.arange(n)[:, None], rng.integers(0, 4, (n, length)), np.arange(length)[None, :]] = 1
    if n_channels == 4:
        return torch.from_numpy(onehot)
    if n_channels != 6:
        raise ValueError(f"probe_inputs: {n_channels} input channels; expected 4 or 6")
    blocks = -(-length // 25)
    level = np.array([0, 0.25, 0.5, 1, 2, 4, 8, 16], dtype=np.float32)[np.arange(n) % 8]
    acc = rng.gamma(0.5, 2.0, (n, blocks)).astype(np.float32).repeat(25, axis=1)[:, :length] * level[:, None]
    mapp = np.ones((n, length), dtype=np.float32)
    for i in range(0, n, 5):
        a = int(rng.integers(0, length))
        mapp[i, a : a + int(rng.integers(10, 100))] = 0
    return encode_inputs(onehot, acc, mapp)


def _in_channels(model: nn.Module) -> int:
    conv = next(m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d)))
    return int(conv.in_channels)


def _candidates(model: nn.Module, device: torch.device, *, half: bool, compile: bool,
                cpu_bf16: bool) -> list[_Candidate]:
    """The paths :func:`prepare_for_inference` would take, fastest first, each with its tolerance."""
    cands: list[_Candidate] = []
    if device.type == "cuda":
        if half:
            name = "bfloat16 (channels-last, tensor cores" + (", torch.compile)" if compile else ")")
            cands.append(_Candidate(name, "bfloat16", BFLOAT16_TOLERANCE,
                                    lambda: prepare_for_inference(model, device, half=True, compile=compile)))
        cands.append(_Candidate("float32 (BatchNorm folded)", "float32", FLOAT32_TOLERANCE,
                                lambda: _float32_only(fuse_for_inference(model).to(device))))
        return cands
    if cpu_bf16:
        cands.append(_Candidate("bfloat16 convolutions, float32 dense layers (oneDNN, channels-last)",
                                "bfloat16 convolutions, float32 dense layers", BFLOAT16_TOLERANCE,
                                lambda: prepare_for_inference(model, device, cpu_bf16=True)))
    cands.append(_Candidate("float32 (oneDNN, channels-last)", "float32", FLOAT32_TOLERANCE,
                            lambda: prepare_for_inference(model, device)))
    return cands


def _float32_only(m: nn.Module) -> nn.Module:
    m.float32_only = True  # predict_batches runs it without autocast
    return m


_WARNED: set[tuple[str, str, str]] = set()


def checked_for_inference(model: nn.Module, device: str | torch.device, length: int, *, half: bool = True,
                          compile: bool = False, cpu_bf16: bool = False, probe: torch.Tensor | None = None,
                          label: str = "model") -> tuple[nn.Module, PathCheck]:
    """:func:`prepare_for_inference`, trusted only after a probe: the fastest path asked for runs on a probe batch
    (:func:`probe_inputs` of ``length`` bp, the model's context; both strands) beside the reference
    (:class:`Float32Only`, on the CPU); past its tolerance (:data:`BFLOAT16_TOLERANCE`, :data:`FLOAT32_TOLERANCE`)
    the next path is tried, down to the reference itself. A refused path gives one warning line per process naming
    the CPU flags and the difference. Returns the module to run and the :class:`PathCheck` to record with the
    outputs."""
    t0 = time.perf_counter()
    dev = torch.device(device)
    model = model.eval()
    ref_model = copy_module(model).float().cpu().eval()
    x = probe if probe is not None else probe_inputs(_in_channels(model), length)
    ref = predict_batches(Float32Only(ref_model), x, device="cpu", block=max(1, len(x)))
    cpu = cpu_description()
    refused: list[tuple[str, float]] = []
    cands = _candidates(model, dev, half=half, compile=compile, cpu_bf16=cpu_bf16)
    asked = cands[0].name
    for cand in cands:
        module = cand.build()
        got = predict_batches(module, x, device=dev, amp=False)
        diff = float(np.abs(got - ref).max()) if len(ref) else 0.0
        if np.isfinite(diff) and diff <= cand.tolerance:
            check = PathCheck(asked, cand.name, diff, cand.tolerance, str(dev), cpu, tuple(refused),
                              time.perf_counter() - t0, cand.precision)
            return module, check
        refused.append((cand.name, diff))
        key = (cand.name, str(dev), cpu)
        if key not in _WARNED:
            _WARNED.add(key)
            log.warning("%s: %s gives probabilities off by %.3g (tolerance %.3g) on this machine (%s; %s): not "
                        "used, falling back to the next path", label, cand.name, diff, cand.tolerance, dev, cpu)
    # the reference itself: PyTorch's own float32 kernels (oneDNN off on a CPU)
    module = Float32Only(copy_module(model).to(dev))
    got = predict_batches(module, x, device=dev, amp=False)
    diff = float(np.abs(got - ref).max()) if len(ref) else 0.0
    name = "float32 (reference kernels, oneDNN off)" if dev.type == "cpu" else "float32 (unfused network)"
    log.warning("%s: running %s on %s (%s)", label, name, dev, cpu)
    return module, PathCheck(asked, name, diff, FLOAT32_TOLERANCE, str(dev), cpu, tuple(refused),
                             time.perf_counter() - t0, "float32")
