"""Training scFANet on labelled bulk windows: multi-task BCE, Adam, per-epoch negatives, early stopping, resumable.

Each epoch sees every positive window and fresh negatives, part of them hard (open in the line's ATAC, bound by no
TF); the model kept, and early stopping, follow the mean AUPRC over TFs on a fixed validation subset.

Determinism: every epoch seeds its own numpy and torch generators from ``(seed, epoch)``, so a run killed after
epoch *k* and resumed from ``checkpoints/last.pt`` replays epochs *k+1…* exactly as an uninterrupted run would.

Why this module is long: training is one job whose parts (sampling, motif seeding, validation, checkpoint and
resume, the epoch loop) share the config, the state and the determinism contract; each part is its own function.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from scfan import __version__
from scfan._io import atomic_path, write_json, write_text
from scfan.bulk.data import (
    InputSource,
    check_insertion_counts,
    context_starts,
    jittered_context_starts,
    negative_pool,
    open_negative_pool,
    positive_mask,
    sample_epoch,
    sample_epoch_hard,
    split_arrays,
    window_mean_accessibility,
)
from scfan.bulk.model import ArchConfig, ModelSpec, ScFANet, build_model, channel_names, save_model
from scfan.bulk.train_config import TrainConfig
from scfan.errors import ScfanError
from scfan.inference import predict_batches, resolve_device
from scfan.logging_utils import progress_enabled
from scfan.threads import available_cpus

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)

# Config fields that may change between a killed run and its resumption.
_RESUMABLE_CHANGES = {"epochs", "patience", "device", "amp", "num_threads"}


@dataclass
class TrainState:
    """What a checkpoint holds besides the config: resumable progress."""

    epoch: int = 0  # epochs completed
    best_score: float = float("-inf")  # validation mean AUPRC (or minus the loss when no TF has a valid positive)
    best_loss: float = float("nan")
    best_epoch: int = 0
    bad_epochs: int = 0
    finished: bool = False
    log_rows: list | None = None
    ema_steps: int = 0  # optimiser steps folded into the weight average (``ema_decay`` > 0)


@contextlib.contextmanager
def deterministic_cpu(num_threads: int | None) -> None:
    """Deterministic algorithms and a fixed thread count for the duration of a CPU run.

    Parameters
    ----------
    num_threads : int or None
        torch threads; None for the CPUs this process may use (:func:`scfan.threads.available_cpus`, no cap).
    """
    old_det, old_threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(num_threads or available_cpus())
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


def best_kmer_window(pwm: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` consecutive columns of a log-odds matrix ``(4, W)`` with the highest summed column maximum.

    Columns are centred (mean 0 over the four bases) so that a filter built from them scores background near 0; a
    matrix narrower than ``k`` is padded with zero columns on both sides.
    """
    pwm = pwm - pwm.mean(axis=0, keepdims=True)
    if pwm.shape[1] < k:
        left = (k - pwm.shape[1]) // 2
        return np.pad(pwm, ((0, 0), (left, k - pwm.shape[1] - left)))
    score = np.convolve(pwm.max(axis=0), np.ones(k), mode="valid")
    start = int(np.argmax(score))
    return pwm[:, start : start + k]


def motif_initialise(model: ScFANet, spec: ModelSpec) -> list[str]:
    """Seed first-layer filters with the JASPAR matrices of the model's TFs (both strands when they fit).

    Filter ``2i`` holds TF *i*'s most informative ``kernel``-bp stretch, filter ``2i + 1`` its reverse complement
    (forward strands only when ``2 × n_tfs`` exceeds half the filters); track weights of these filters start at 0,
    so each starts as a motif scanner that training then refines. The motif branch's filter *i*, when the model has
    one, gets the *i*-th matrix found (its most informative ``motif_width`` bp when longer) and its other filters are
    emptied; without any matrix the branch keeps its random filters. Returns the TFs that got a filter.
    """
    from scfan.bulk.pwm import jaspar_counts, log_odds, motif_for_tf

    conv = model.body[0]
    n_filters, k = conv.out_channels, conv.kernel_size[0]
    kernels, used, matrices = [], [], []
    for tf in spec.tf_names:
        motif = motif_for_tf(tf, spec.motifs.get(tf))
        if motif is None:
            log.info("%s: no JASPAR matrix; its filter is not motif-initialised", tf)
            continue
        matrices.append(log_odds(jaspar_counts(motif)))
        kernels.append(best_kmer_window(matrices[-1], k))
        used.append(tf)
    branch = getattr(model, "motif", None)
    if branch is not None and matrices:  # one filter per TF: the branch scans both strands with the same weights
        width = branch.conv.kernel_size[0]
        with torch.no_grad():
            branch.conv.weight.zero_()  # filters beyond the TFs' stay empty (they would only fit noise)
            branch.conv.bias.zero_()
            for row, pwm in enumerate(matrices[: branch.conv.out_channels]):
                branch.conv.weight[row] = torch.from_numpy(np.ascontiguousarray(best_kmer_window(pwm, width),
                                                                                 dtype=np.float32))
    both = 2 * len(kernels) <= n_filters // 2
    if not both:
        kernels = kernels[: n_filters // 2]
        used = used[: len(kernels)]
    with torch.no_grad():
        row = 0
        for w in kernels:
            for kern in (w, w[::-1, ::-1]) if both else (w,):
                conv.weight[row].zero_()
                conv.weight[row, :4] = torch.from_numpy(np.ascontiguousarray(kern, dtype=np.float32))
                conv.bias[row] = 0.0
                row += 1
    return used


def freeze_motif_filters(model: ScFANet) -> None:
    """Keep the motif branch's filters as they are: no gradient, no weight decay (see :func:`_param_groups`).

    Used after :func:`motif_initialise`: the JASPAR matrices are the motifs, and training them (or free filters
    beside them) on the few dozen peaks per TF of a small line only overfits (docs/bulk.md, ablation); the branch's
    normalisation and output layer, and the rest of the network, still learn.
    """
    branch = getattr(model, "motif", None)
    if branch is not None:
        branch.conv.requires_grad_(False)


def _param_groups(model: ScFANet, weight_decay: float, lr: float, motif_lr_mult: float = 1.0) -> list[dict]:
    """Trainable parameters; the motif branch's filters without weight decay, everything else with it; the branch's
    output layer at ``motif_lr_mult`` × ``lr`` (it starts at zero and at the network's rate grows too slowly to
    matter before the rest of the network has fitted open chromatin: docs/bulk.md, ablation)."""
    branch = getattr(model, "motif", None)
    fixed = {id(p) for p in branch.conv.parameters()} if branch is not None else set()
    fast = {id(p) for p in branch.out.parameters()} if branch is not None else set()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if id(p) not in fixed | fast], "weight_decay": weight_decay, "lr": lr},
              {"params": [p for p in params if id(p) in fast], "weight_decay": weight_decay,
               "lr": lr * motif_lr_mult},
              {"params": [p for p in params if id(p) in fixed], "weight_decay": 0.0, "lr": lr}]
    return [g for g in groups if g["params"]]


def _valid_indices(is_pos: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """A fixed validation subset (the same every epoch): every validation window, or, above ``max_valid_windows``,
    all positives plus a uniform sample of the other windows.

    The negatives are not filtered or balanced, so open unbound windows weigh in the validation AUPRC as they do on
    the test chromosomes.
    """
    n = len(is_pos)
    if cfg.max_valid_windows is None or n <= cfg.max_valid_windows:
        return np.arange(n)
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 10**6]))
    pos = np.flatnonzero(is_pos)
    if len(pos) > cfg.max_valid_windows // 2:
        pos = rng.choice(pos, cfg.max_valid_windows // 2, replace=False)
    rest = np.flatnonzero(~is_pos)
    neg = rng.choice(rest, min(len(rest), cfg.max_valid_windows - len(pos)), replace=False)
    return np.sort(np.concatenate([pos, neg]))


def validation_scores(model: nn.Module, src: InputSource, chroms, starts, labels: np.ndarray, spec: ModelSpec,
                      device, batch_size: int = 256) -> tuple[float, float, np.ndarray]:
    """Mean AUPRC over the TFs with both classes, mean BCE, and per-TF AUPRC (NaN where a class is missing).

    Predictions are forward/RC-averaged as at evaluation; deterministic for given weights.
    """
    from sklearn.metrics import average_precision_score

    cs = context_starts(starts, spec.window, spec.context)
    probs = np.concatenate([predict_batches(model, src.batch(chroms[i : i + 4096], cs[i : i + 4096], spec.context),
                                            batch_size, device=device) for i in range(0, len(starts), 4096)])
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    loss = float(-(labels * np.log(p) + (1 - labels) * np.log1p(-p)).mean())
    per_tf = np.full(labels.shape[1], np.nan)
    for j in range(labels.shape[1]):
        n_pos = labels[:, j].sum()
        if 0 < n_pos < len(labels):
            per_tf[j] = average_precision_score(labels[:, j], probs[:, j])
    mean = float(np.nanmean(per_tf)) if np.isfinite(per_tf).any() else float("nan")
    return mean, loss, per_tf


class WeightAverage:
    """Exponential moving average of a model's weights and buffers, updated after every optimiser step.

    The decay of step *t* is ``min(decay, (1 + t) / (10 + t))``, so the first steps are not dominated by the random
    initialisation. ``module`` is a copy of the model holding the average; it is what validation scores and what
    is kept as the best state.
    """

    def __init__(self, model: nn.Module, decay: float, steps: int = 0) -> None:
        self.decay, self.steps = decay, steps
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for avg, cur in zip(self.module.state_dict().values(), model.state_dict().values(), strict=True):
            if avg.dtype.is_floating_point:
                avg.lerp_(cur.detach(), 1.0 - d)
            else:
                avg.copy_(cur)
        self.steps += 1


def thin_shares(rng: np.random.Generator, n: int, min_keep: float | None) -> np.ndarray | None:
    """Per training window, the share of the ATAC insertions kept: log-uniform in [``min_keep``, 1] (None: off;
    draws nothing from ``rng`` then, so training without thinning is unchanged)."""
    if min_keep is None or min_keep >= 1:
        return None
    return np.exp(rng.uniform(np.log(min_keep), 0.0, n))


def _run_epoch(model: nn.Module, src: InputSource, chroms, starts, labels, idx: np.ndarray, spec: ModelSpec,
               cfg: TrainConfig, rng: np.random.Generator, opt, scaler, device, train: bool,
               desc: str = "", average: WeightAverage | None = None) -> float:
    model.train(train)
    weight = torch.full((labels.shape[1],), float(cfg.pos_weight), device=device) if train else None
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum", pos_weight=weight)
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
            keep = thin_shares(rng, len(bi), cfg.thin_min_keep) if src.uses_tracks else None
        else:
            cs, rev, keep = context_starts(starts[bi], spec.window, spec.context), None, None
        x = src.batch(chroms[bi], cs, spec.context, rev, keep, rng).to(device, non_blocking=True)
        y = torch.from_numpy(np.asarray(labels[bi], dtype=np.float32)).to(device, non_blocking=True)
        with torch.set_grad_enabled(train), torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        if train:
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss / len(bi)).backward()
            scaler.step(opt)
            scaler.update()
            if average is not None:
                average.update(model)
        total += float(loss.detach()) / max(labels.shape[1], 1)
        n += len(bi)
    return total / max(n, 1)


def _checkpoint_payload(model, opt, scaler, best_state, state: TrainState, cfg: TrainConfig,
                        average: WeightAverage | None = None) -> dict:
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
            "best_state": best_state, "state": asdict(state), "config": asdict(cfg),
            "average": average.module.state_dict() if average is not None else None}


def _compatible(saved: dict, cfg: TrainConfig) -> list[str]:
    now = asdict(cfg)
    return [k for k in now if k not in _RESUMABLE_CHANGES and saved.get(k) != now[k]]


def train_model(windows: pl.DataFrame, meta: dict, src: InputSource, cfg: TrainConfig, outdir: str | Path,
                on_epoch_end: Callable[[int], None] | None = None) -> dict:
    """Train (or resume) on a windows table (``split`` column: train / valid / test); see :func:`train_arrays`."""
    train, valid = split_arrays(windows, list(meta["tf_names"]), ("train", "valid"))
    return train_arrays(train, valid, meta, src, cfg, outdir, on_epoch_end)


# chroms (str), starts (int64), labels (N, n_tfs): 0/1 as uint8 (:func:`split_arrays`) or float32
WindowArrays = tuple[np.ndarray, np.ndarray, np.ndarray]


def _build_spec(meta: dict, src: InputSource, cfg: TrainConfig) -> ModelSpec:
    """The model's specification: the architecture preset with the config's overrides, and the data's shape."""
    arch = ArchConfig.preset(cfg.arch)
    if cfg.dropout is not None:
        arch = replace(arch, dropout=tuple(float(d) for d in cfg.dropout))
    if cfg.motif_hidden is not None:
        arch = replace(arch, motif_hidden=int(cfg.motif_hidden))
    if cfg.motif_knots is not None:
        arch = replace(arch, motif_knots=tuple(float(k) for k in cfg.motif_knots))
    return ModelSpec(arch=arch, tf_names=tuple(meta["tf_names"]),
                     channels=channel_names(src.uses_tracks), window=int(meta["window"]),
                     context=int(meta["context"]), track_norm=src.track_norm, train_config=asdict(cfg),
                     motifs=meta.get("motifs", {}))


def _training_pools(train: WindowArrays, src: InputSource, spec: ModelSpec,
                    cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The positive mask, the negative candidates and the open negatives (for hard sampling) of the training split."""
    tr_chroms, tr_starts, tr_labels = train
    tr_pos = positive_mask(tr_labels)
    if not tr_pos.any():
        raise ScfanError("no positive training window for any TF")
    tr_pool = negative_pool(tr_chroms, tr_starts, spec.window, tr_pos, cfg.neg_margin)
    tr_open = tr_pool[:0]
    if cfg.sampler == "hard":
        if src.uses_tracks:
            tr_open = open_negative_pool(tr_pool, window_mean_accessibility(src, tr_chroms, tr_starts, spec.window),
                                         cfg.open_quantile)
        else:
            log.info("sequence-only training: no accessibility, so no open hard negatives; negatives are uniform")
    return tr_pos, tr_pool, tr_open


def _validation_subset(valid: WindowArrays, tf_names: list[str], cfg: TrainConfig) -> WindowArrays:
    """The validation windows scored each epoch, labels as float32; warns about TFs without a positive window."""
    va_chroms, va_starts, va_labels = valid
    va_idx = _valid_indices(positive_mask(va_labels), cfg)
    if not len(va_idx):
        raise ScfanError("the validation chromosomes have no windows; choose other --valid-chroms in prepare")
    va_chroms, va_starts = va_chroms[va_idx], va_starts[va_idx]
    va_labels = va_labels[va_idx].astype(np.float32)  # the subset only; training labels stay compact
    no_valid_pos = [tf for tf, n in zip(tf_names, va_labels.sum(axis=0), strict=True) if n == 0]
    for tf in no_valid_pos:
        log.warning("%s: no positive window in split 'valid'; left out of the validation mean AUPRC", tf)
    if len(no_valid_pos) == len(tf_names):
        log.warning("no TF has a positive window in split 'valid': the model is selected on validation loss")
    return va_chroms, va_starts, va_labels


def _build_training(spec: ModelSpec, cfg: TrainConfig, device: torch.device):
    """The seeded model (motif-initialised if asked) on ``device``, its optimiser, grad scaler and weight average."""
    model = _init_model(spec, cfg.seed)
    if cfg.motif_init:
        seeded = motif_initialise(model, spec)
        log.info("first-layer filters seeded from JASPAR for %d of %d TF(s)", len(seeded), len(spec.tf_names))
        if cfg.freeze_motif_filters and seeded:
            freeze_motif_filters(model)
    model = model.to(device)
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay, cfg.lr, cfg.motif_lr_mult), lr=cfg.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda")
    average = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    return model, opt, scaler, average


def _resume(ckpt_path: Path, cfg: TrainConfig, device: torch.device, model, opt, scaler,
            average: WeightAverage | None) -> tuple[TrainState, dict | None]:
    """Load ``ckpt_path`` into the model, optimiser, scaler and average if it exists; return the state and best weights.

    A checkpoint written with settings other than the resumable ones is refused.
    """
    state, best_state = TrainState(log_rows=[]), None
    if not ckpt_path.exists():
        return state, best_state
    ck = torch.load(ckpt_path, map_location=device, weights_only=True)
    diff = _compatible(ck["config"], cfg)
    if diff:
        raise ScfanError(f"{ckpt_path}: written with different settings ({', '.join(diff)}); "
                         "use a new --outdir or delete the checkpoints folder to start over")
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    scaler.load_state_dict(ck["scaler"])
    best_state, state = ck["best_state"], TrainState(**ck["state"])
    if average is not None:
        average.module.load_state_dict(ck["average"])
        average.steps = state.ema_steps
    state.finished = state.finished and state.epoch >= cfg.epochs or state.bad_epochs >= cfg.patience
    log.info("resuming from %s after epoch %d", ckpt_path, state.epoch)
    return state, best_state


def _train_one_epoch(model, opt, scaler, average: WeightAverage | None, state: TrainState, best_state: dict | None,
                     src: InputSource, train: WindowArrays, pools: tuple[np.ndarray, np.ndarray, np.ndarray],
                     valid: WindowArrays, spec: ModelSpec, cfg: TrainConfig,
                     device: torch.device) -> tuple[dict | None, int]:
    """Sample, train and validate epoch ``state.epoch + 1``; update ``state``; return the best weights and windows seen.

    The generators are reseeded from the epoch number, so a resumed run replays the same epochs exactly.
    """
    tr_chroms, tr_starts, tr_labels = train
    tr_pos, tr_pool, tr_open = pools
    va_chroms, va_starts, va_labels = valid
    epoch = state.epoch + 1
    rng, torch_seed = _epoch_generators(cfg.seed, epoch)
    torch.manual_seed(torch_seed)  # dropout; reseeded per epoch so resumption replays exactly
    if cfg.sampler == "hard":
        idx = sample_epoch_hard(np.flatnonzero(tr_pos), tr_pool, tr_open, cfg.neg_ratio, cfg.hard_frac,
                                cfg.max_train_windows, rng)
    else:
        idx = sample_epoch(np.flatnonzero(tr_pos), tr_pool, cfg.neg_ratio, cfg.max_train_windows, rng)
    t0 = time.perf_counter()
    tr_loss = _run_epoch(model, src, tr_chroms, tr_starts, tr_labels, idx, spec, cfg, rng, opt, scaler,
                         device, True, f"epoch {epoch}", average)
    dt = time.perf_counter() - t0
    scored = average.module if average is not None else model
    if average is not None:
        state.ema_steps = average.steps
    va_auprc, va_loss, _ = validation_scores(scored, src, va_chroms, va_starts, va_labels, spec, device)
    score = va_auprc if np.isfinite(va_auprc) else -va_loss
    improved = score > state.best_score
    if improved:
        state.best_score, state.best_loss, state.best_epoch, state.bad_epochs = score, va_loss, epoch, 0
        best_state = {k: v.detach().clone() for k, v in scored.state_dict().items()}
    else:
        state.bad_epochs += 1
    state.epoch = epoch
    state.log_rows.append([epoch, len(idx), round(tr_loss, 6), round(va_loss, 6), round(va_auprc, 6),
                           round(len(idx) / dt, 1), int(improved)])
    state.finished = state.bad_epochs >= cfg.patience or epoch >= cfg.epochs
    log.info("epoch %d: train loss %.4f, valid loss %.4f, valid mean AUPRC %.4f, %.0f windows/s%s", epoch,
             tr_loss, va_loss, va_auprc, len(idx) / dt, " (best)" if improved else "")
    return best_state, len(idx)


def _write_training_outputs(outdir: Path, model, spec: ModelSpec, state: TrainState, cfg: TrainConfig, meta: dict,
                            device: torch.device, n_seen: int, elapsed: float) -> dict:
    """Write ``train_log.tsv``, ``train.json`` and ``model.pt``; return the summary."""
    header = "epoch\tn_windows\ttrain_loss\tvalid_loss\tvalid_mean_auprc\twindows_per_s\timproved\n"
    write_text(outdir / "train_log.tsv", header + "".join("\t".join(map(str, r)) + "\n" for r in state.log_rows))
    summary = {"config": asdict(cfg), "tf_names": list(meta["tf_names"]), "epochs_run": state.epoch,
               "best_epoch": state.best_epoch, "best_valid_loss": state.best_loss,
               "best_valid_mean_auprc": state.best_score if state.best_score >= 0 else None,
               "device": str(device), "package_version": __version__,
               "train_windows_per_s_this_session": round(n_seen / elapsed, 1) if n_seen and elapsed else None,
               "line": meta.get("line")}
    write_json(outdir / "train.json", summary)
    save_model(outdir / "model.pt", model.cpu(), replace(spec))
    log.info("model written: %s (best epoch %d, valid loss %.4f, valid mean AUPRC %.4f)", outdir / "model.pt",
             state.best_epoch, state.best_loss, state.best_score)
    return summary


def train_arrays(train: WindowArrays, valid: WindowArrays, meta: dict, src: InputSource, cfg: TrainConfig,
                 outdir: str | Path, on_epoch_end: Callable[[int], None] | None = None) -> dict:
    """Train (or resume) and write ``model.pt``, ``checkpoints/last.pt``, ``train_log.tsv``, ``train.json``.

    ``train`` and ``valid`` are the windows of each split as :func:`split_arrays` returns them; ``meta`` is the
    windows table's metadata (``tf_names``, ``window``, ``context``, optional ``motifs`` and ``line``). Needs only
    torch, numpy and scikit-learn, so the GPU benchmark runs it without the genomics packages.
    ``on_epoch_end(epoch)`` is called after each epoch's checkpoint is written (tests use it to simulate a kill).
    Returns the summary written to ``train.json``.

    The steps, as selene's trainer keeps them: build the specification and the sampling pools, build the model and
    its optimiser, resume from the last checkpoint, run the epochs (checkpointing after each), write the outputs.
    """
    outdir = Path(outdir)
    tf_names = list(meta["tf_names"])
    device = resolve_device(cfg.device)
    spec = _build_spec(meta, src, cfg)
    if src.uses_tracks and thin_shares(np.random.default_rng(0), 1, cfg.thin_min_keep) is not None:
        check_insertion_counts(src)
    pools = _training_pools(train, src, spec, cfg)
    valid = _validation_subset(valid, tf_names, cfg)
    log.info("train: %d positive windows, %d negative candidates (%d open, for hard negatives); valid subset %d "
             "windows; device %s", int(pools[0].sum()), len(pools[1]), len(pools[2]), len(valid[0]), device)

    ckpt_path = outdir / "checkpoints" / "last.pt"
    with contextlib.ExitStack() as stack:
        if device.type == "cpu":
            stack.enter_context(deterministic_cpu(cfg.num_threads))
        model, opt, scaler, average = _build_training(spec, cfg, device)
        state, best_state = _resume(ckpt_path, cfg, device, model, opt, scaler, average)
        t_start = time.perf_counter()
        n_seen = 0
        while not state.finished and state.epoch < cfg.epochs:
            best_state, n_epoch = _train_one_epoch(model, opt, scaler, average, state, best_state, src, train, pools,
                                                   valid, spec, cfg, device)
            n_seen += n_epoch
            with atomic_path(ckpt_path) as tmp:
                torch.save(_checkpoint_payload(model, opt, scaler, best_state, state, cfg, average), tmp)
            if on_epoch_end is not None:
                on_epoch_end(state.epoch)
        if best_state is None:
            raise ScfanError(f"{ckpt_path}: no completed epoch to take a model from")
        model.load_state_dict(best_state)
        elapsed = time.perf_counter() - t_start
    return _write_training_outputs(outdir, model, spec, state, cfg, meta, device, n_seen, elapsed)
