"""Model inputs and batched prediction, shared by bulk evaluation, region prediction and per-cell inference.

Kept free of file formats and genomics readers (only torch + numpy), so GPU benchmarks run with nothing else.
"""

from __future__ import annotations

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
#: model 2.5x faster there (benchmarks/results/bench_bulk_gpu.md), and 4,096 only 5 % more
CUDA_COMPUTE_BLOCK = 1024


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
    chunk = max(block, -(-batch_size // block) * block)
    outs = []
    for i in range(0, n, chunk):
        xc = x[i : i + chunk]
        pad = (-xc.shape[0]) % block
        if pad:
            xc = torch.cat([xc, xc.new_zeros((pad, *xc.shape[1:]))])
        xc = xc.to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp and dev.type == "cuda"):
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
