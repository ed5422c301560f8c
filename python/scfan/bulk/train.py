"""Training scFANet on labelled bulk windows: multi-task BCE, Adam, per-epoch negatives, early stopping, resumable.

Determinism: every epoch seeds its own numpy and torch generators from ``(seed, epoch)``, so a run killed after
epoch *k* and resumed from ``checkpoints/last.pt`` replays epochs *k+1…* exactly as an uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch import nn

from scfan import __version__
from scfan._io import atomic_path, write_json, write_text
from scfan.bulk.data import (
    InputSource,
    context_starts,
    jittered_context_starts,
    negative_pool,
    positive_mask,
    sample_epoch,
    windows_arrays,
)
from scfan.bulk.model import ArchConfig, ModelSpec, ScFANet, build_model, channel_names, save_model
from scfan.errors import ScfanError
from scfan.logging_utils import progress_enabled

log = logging.getLogger(__name__)

# Config fields that may change between a killed run and its resumption.
_RESUMABLE_CHANGES = {"epochs", "patience", "device", "amp", "num_threads"}


@dataclass(frozen=True)
class TrainConfig:
    """Parameters of ``scfan bulk train`` (written to ``train.json`` and into the model file)."""

    arch: str = "small"
    epochs: int = 20
    patience: int = 3
    batch_size: int = 100
    lr: float = 1e-3
    neg_ratio: float = 1.0
    neg_margin: int = 200
    jitter: int = 20
    rc_augment: bool = True
    max_train_windows: int | None = None
    max_valid_windows: int | None = 20000
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_threads: int | None = None

    def __post_init__(self) -> None:
        ArchConfig.preset(self.arch)
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.neg_ratio < 0 or self.jitter < 0:
            raise ScfanError("epochs and batch-size must be >= 1, lr > 0, neg-ratio and jitter >= 0")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ScfanError(f"--device {self.device!r}: expected auto, cpu or cuda")


@dataclass
class TrainState:
    """What a checkpoint holds besides the config: resumable progress."""

    epoch: int = 0  # epochs completed
    best_loss: float = float("inf")
    best_epoch: int = 0
    bad_epochs: int = 0
    finished: bool = False
    log_rows: list | None = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ScfanError("--device cuda requested but no CUDA device is available")
    return torch.device(name)


@contextlib.contextmanager
def deterministic_cpu(num_threads: int | None) -> None:
    """Deterministic algorithms and a fixed thread count for the duration of a CPU run."""
    old_det, old_threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(num_threads or max(1, min(os.cpu_count() or 1, 8)))
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


def _epoch_generators(seed: int, epoch: int) -> tuple[np.random.Generator, int]:
    ss = np.random.SeedSequence([seed, epoch])
    return np.random.default_rng(ss), int(ss.generate_state(1, dtype=np.uint64)[0] % (2**63))


def _init_model(spec: ModelSpec, seed: int) -> ScFANet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(spec)


def _valid_indices(is_pos: np.ndarray, pool: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """A fixed validation subset: positives + negatives at the training ratio (same every epoch)."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 10**6]))
    idx = sample_epoch(np.flatnonzero(is_pos), pool, cfg.neg_ratio, cfg.max_valid_windows, rng)
    return np.sort(idx)


def _run_epoch(model: nn.Module, src: InputSource, chroms, starts, labels, idx: np.ndarray, spec: ModelSpec,
               cfg: TrainConfig, rng: np.random.Generator, opt, scaler, device, train: bool,
               desc: str = "") -> float:
    model.train(train)
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
    total, n = 0.0, 0
    batches = range(0, len(idx), cfg.batch_size)
    if progress_enabled():
        from tqdm import tqdm

        batches = tqdm(batches, desc=desc, leave=False, unit="batch")
    use_amp = cfg.amp and device.type == "cuda"
    for b0 in batches:
        bi = idx[b0 : b0 + cfg.batch_size]
        if train:
            cs = jittered_context_starts(chroms[bi], starts[bi], spec.window, spec.context, cfg.jitter, src.layout,
                                         rng)
            rev = rng.random(len(bi)) < 0.5 if cfg.rc_augment else None
        else:
            cs, rev = context_starts(starts[bi], spec.window, spec.context), None
        x = src.batch(chroms[bi], cs, spec.context, rev).to(device, non_blocking=True)
        y = torch.from_numpy(labels[bi]).to(device, non_blocking=True)
        with torch.set_grad_enabled(train), torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        if train:
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss / len(bi)).backward()
            scaler.step(opt)
            scaler.update()
        total += float(loss.detach()) / max(labels.shape[1], 1)
        n += len(bi)
    return total / max(n, 1)


def _checkpoint_payload(model, opt, scaler, best_state, state: TrainState, cfg: TrainConfig) -> dict:
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
            "best_state": best_state, "state": asdict(state), "config": asdict(cfg)}


def _compatible(saved: dict, cfg: TrainConfig) -> list[str]:
    now = asdict(cfg)
    return [k for k in now if k not in _RESUMABLE_CHANGES and saved.get(k) != now[k]]


def train_model(windows: pl.DataFrame, meta: dict, src: InputSource, cfg: TrainConfig, outdir: str | Path,
                on_epoch_end: Callable[[int], None] | None = None) -> dict:
    """Train (or resume) and write ``model.pt``, ``checkpoints/last.pt``, ``train_log.tsv``, ``train.json``.

    ``on_epoch_end(epoch)`` is called after each epoch's checkpoint is written (tests use it to simulate a kill).
    Returns the summary written to ``train.json``.
    """
    outdir = Path(outdir)
    tf_names = list(meta["tf_names"])
    device = resolve_device(cfg.device)
    spec = ModelSpec(arch=ArchConfig.preset(cfg.arch), tf_names=tuple(tf_names),
                     channels=channel_names(src.uses_tracks), window=int(meta["window"]),
                     context=int(meta["context"]), track_norm=src.track_norm, train_config=asdict(cfg),
                     motifs=meta.get("motifs", {}))
    train_df = windows.filter(pl.col("split") == "train")
    valid_df = windows.filter(pl.col("split") == "valid")
    tr_chroms, tr_starts, tr_labels = windows_arrays(train_df, tf_names)
    va_chroms, va_starts, va_labels = windows_arrays(valid_df, tf_names)
    tr_pos = positive_mask(tr_labels)
    if not tr_pos.any():
        raise ScfanError("no positive training window for any TF")
    tr_pool = negative_pool(tr_chroms, tr_starts, spec.window, tr_pos, cfg.neg_margin)
    va_pos = positive_mask(va_labels)
    va_idx = _valid_indices(va_pos, negative_pool(va_chroms, va_starts, spec.window, va_pos, cfg.neg_margin), cfg)
    if not len(va_idx):
        raise ScfanError("the validation chromosomes have no windows; choose other --valid-chroms in prepare")
    log.info("train: %d positive windows, %d negative candidates; valid subset %d windows; device %s",
             int(tr_pos.sum()), len(tr_pool), len(va_idx), device)

    ckpt_path = outdir / "checkpoints" / "last.pt"
    with contextlib.ExitStack() as stack:
        if device.type == "cpu":
            stack.enter_context(deterministic_cpu(cfg.num_threads))
        model = _init_model(spec, cfg.seed).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda")
        state, best_state = TrainState(log_rows=[]), None
        if ckpt_path.exists():
            ck = torch.load(ckpt_path, map_location=device, weights_only=True)
            diff = _compatible(ck["config"], cfg)
            if diff:
                raise ScfanError(f"{ckpt_path}: written with different settings ({', '.join(diff)}); "
                                 "use a new --outdir or delete the checkpoints folder to start over")
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            scaler.load_state_dict(ck["scaler"])
            best_state, state = ck["best_state"], TrainState(**ck["state"])
            state.finished = state.finished and state.epoch >= cfg.epochs or state.bad_epochs >= cfg.patience
            log.info("resuming from %s after epoch %d", ckpt_path, state.epoch)
        t_start = time.perf_counter()
        n_seen = 0
        while not state.finished and state.epoch < cfg.epochs:
            epoch = state.epoch + 1
            rng, torch_seed = _epoch_generators(cfg.seed, epoch)
            torch.manual_seed(torch_seed)  # dropout; reseeded per epoch so resumption replays exactly
            idx = sample_epoch(np.flatnonzero(tr_pos), tr_pool, cfg.neg_ratio, cfg.max_train_windows, rng)
            t0 = time.perf_counter()
            tr_loss = _run_epoch(model, src, tr_chroms, tr_starts, tr_labels, idx, spec, cfg, rng, opt, scaler,
                                 device, True, f"epoch {epoch}")
            dt = time.perf_counter() - t0
            n_seen += len(idx)
            va_loss = _run_epoch(model, src, va_chroms, va_starts, va_labels, va_idx, spec, cfg, rng, opt, scaler,
                                 device, False, "valid")
            improved = va_loss < state.best_loss
            if improved:
                state.best_loss, state.best_epoch, state.bad_epochs = va_loss, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                state.bad_epochs += 1
            state.epoch = epoch
            state.log_rows.append([epoch, len(idx), round(tr_loss, 6), round(va_loss, 6), round(len(idx) / dt, 1),
                                   int(improved)])
            state.finished = state.bad_epochs >= cfg.patience or epoch >= cfg.epochs
            log.info("epoch %d: train loss %.4f, valid loss %.4f, %.0f windows/s%s", epoch, tr_loss, va_loss,
                     len(idx) / dt, " (best)" if improved else "")
            with atomic_path(ckpt_path) as tmp:
                torch.save(_checkpoint_payload(model, opt, scaler, best_state, state, cfg), tmp)
            if on_epoch_end is not None:
                on_epoch_end(epoch)
        if best_state is None:
            raise ScfanError(f"{ckpt_path}: no completed epoch to take a model from")
        model.load_state_dict(best_state)
        elapsed = time.perf_counter() - t_start

    header = "epoch\tn_windows\ttrain_loss\tvalid_loss\twindows_per_s\timproved\n"
    write_text(outdir / "train_log.tsv", header + "".join("\t".join(map(str, r)) + "\n" for r in state.log_rows))
    summary = {"config": asdict(cfg), "tf_names": tf_names, "epochs_run": state.epoch, "best_epoch": state.best_epoch,
               "best_valid_loss": state.best_loss, "device": str(device), "package_version": __version__,
               "train_windows_per_s_this_session": round(n_seen / elapsed, 1) if n_seen and elapsed else None,
               "line": meta.get("line")}
    write_json(outdir / "train.json", summary)
    save_model(outdir / "model.pt", model.cpu(), replace(spec))
    log.info("model written: %s (best epoch %d, valid loss %.4f)", outdir / "model.pt", state.best_epoch,
             state.best_loss)
    return summary
