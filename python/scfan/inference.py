"""Model inputs and batched prediction, shared by bulk evaluation, region prediction and per-cell inference.

Kept free of file formats and genomics readers (only torch + numpy), so GPU benchmarks run with nothing else.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from scfan.bulk.data import InputSource
    from scfan.bulk.model import ModelSpec


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
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp and cuda and not half):
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


def predict_windows(model: nn.Module, spec: ModelSpec, src: InputSource, chroms: np.ndarray, starts: np.ndarray,
                    batch_size: int = 256, chunk: int = 8192) -> np.ndarray:
    """Model probabilities ``(N, n_tfs)`` for bulk windows, built chunk by chunk from the in-memory inputs."""
    from scfan.logging_utils import progress_enabled

    cs = np.asarray(starts, dtype=np.int64) - (spec.context - spec.window) // 2
    out = []
    chunks = range(0, len(starts), chunk)
    if progress_enabled():
        from tqdm import tqdm

        chunks = tqdm(chunks, desc="predict", unit="chunk", leave=False)
    for i in chunks:
        x = src.batch(chroms[i : i + chunk], cs[i : i + chunk], spec.context)
        out.append(predict_batches(model, x, batch_size))
    return np.concatenate(out) if out else np.zeros((0, len(spec.tf_names)), np.float32)


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
        from scfan.bulk.model import motif_standardisation

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
        from scfan.bulk.model import motif_features

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
