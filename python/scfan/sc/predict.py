"""Per-cell TF binding: every cell's open windows through the bulk models, reduced on the fly to TF activity.

Window-major, never cell-major: the genome is walked in chunks; for each chunk the fragments of the shard's cells
and their neighbours are fetched once (:meth:`PooledTracks.insertions`), the DNA and mappability of each window are
read once and shared by every cell, pooled tracks are built a block of cells at a time, and the (cell, window) pairs
are predicted in large batches whose probabilities go straight into per-cell accumulators
(:class:`ActivityAccumulator`). Nothing of size cells × windows × TFs is ever held.

Which windows a cell is scored on: the windows of the peaks whose *pooled* count (``pooling @ X``, the mean
insertions in the peak over the cell's neighbourhood) is at least ``min_signal`` × that cell's mean pooled count
over all peaks (default 1: the peaks more open than the cell's average peak). A relative rule keeps the number of
scored windows independent of sequencing depth, which a fixed count threshold would not.

Three modes (``benchmarks/bench_sc_infer.py`` measures the speed and the agreement of each with ``exact``):

- ``exact``: each cell is predicted on its own pooled track (the scFAN computation), in float32 on a CPU.
- ``fast``: the same pairs on the same pooled tracks, with the models' convolutions in bfloat16 (dense layers and
  outputs in float32; :meth:`~scfan.inference.ChannelsLastNet.convolutions_to`) on a CPU that runs bfloat16
  natively (AVX512-BF16 or AMX; elsewhere it would be slower than float32, so fast mode runs float32 there and says
  so). Per-feature Spearman ρ with ``exact`` ≥ 0.98 on every layer-X feature of the benchmark. On CUDA, both
  modes run in bfloat16 with ``--amp`` (the default), so they differ only in name there.
- ``metacell``: cells are grouped into metacells of at most ``metacell_size`` cells that share most neighbours
  (greedy over the pooling graph, deterministic); each metacell is predicted (as in ``fast``) on its seed cell's
  pooled track (same depth as any cell's own track; the mean of the members' tracks was denser than what exact mode
  sees), once per window that any member scores, and every member takes those predictions on its *own* scored
  windows. The model runs up to ``metacell_size`` × fewer times, at a lower agreement with ``exact``.

Window sampling (``window_share`` < 1, any mode): the activity layers are means over a cell's scored windows, so they
can be estimated from a random share of them. A window is in the sample or not for every cell and shard alike
(:func:`sampled_windows`, a hash of its position and the seed), cells with fewer than ``min_sampled_windows``
sampled windows are scored on all of theirs, and each layer comes with its standard error (``*_se`` layers,
:meth:`ActivityAccumulator.standard_errors`); ``uns['scfan_activity']['window_sampling']`` summarises them.
Per-cluster tracks and region queries never sample (they need every window).

Where the model inputs are built (``--assembly``): the fragments are always parsed on the CPU; the pooling product,
the window slices and the scaling run either on the host with numpy/scipy (``host``) or with torch on the models'
device (``device``, :mod:`scfan.sc.assembly`; on a GPU the host could not feed the model). ``auto`` takes the device
on CUDA and the host on a CPU; both give the same numbers up to the last bit of a float32 ``log1p``.

Why this module is long: per-cell inference still holds about eight jobs (cells-file checks, model
loading and precision, units, the prediction loops, the activity accumulator, writing and merging); splitting it
along those jobs is part of issue 37's layout and waits for the benchmark that depends on its internals.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import anndata as ad
import numpy as np
import polars as pl
import scipy.sparse as sp
import torch

from scfan.args import split_named
from scfan.bulk.inputs import codes_to_onehot, encode_codes
from scfan.bulk.model import ModelSpec, channel_names, load_model
from scfan.errors import InputFileError, ScfanError
from scfan.inference import (
    ChannelsLastNet,
    PathCheck,
    WindowSharedNet,
    checked_for_inference,
    cpu_has_native_bf16,
    predict_batches,
    resolve_device,
)
from scfan.intervals import parse_region_id
from scfan.sc.assembly import DeviceAssembler
from scfan.sc.cells_file import CellsFile, read_cells_for_inference
from scfan.sc.pooling import PooledTracks, _extract_windows
from scfan.sc.shards import (
    RANK_COLUMN,
    cells_used,
    check_rank,
    check_split_header,
    merge_order,
    parse_shard,
    shard_cells,
)
from scfan.sc.units import Units, check_mode, make_units
from scfan.sc.window_estimate import RegressionAccumulator
from scfan.tracks import normalize_track

log = logging.getLogger(__name__)

#: how a window sample becomes the activity layers (:attr:`PredictConfig.window_estimator`)
WINDOW_ESTIMATORS = ("mean", "regression")
#: where the model inputs are built (:func:`assembly_of`)
ASSEMBLIES = ("auto", "host", "device")
#: the accessibility channel of a per-cell model's inputs, the only one that differs between cells
ACC_CHANNEL = channel_names(True).index("accessibility")


@dataclass(frozen=True)
class PredictConfig:
    """Settings of ``scfan sc predict`` (written into the activity file's ``uns``)."""

    mode: str = "exact"
    shard: str = "1/1"
    min_signal: float = 1.0
    bound_threshold: float = 0.5
    top_k: int = 2
    batch_size: int = 512
    metacell_size: int = 20
    chunk_bp: int = 500_000
    cell_block: int = 1024
    device: str = "auto"
    amp: bool = True
    #: torch.compile the models on CUDA (with ``amp``): 2.4x the prediction rate after 1-2 minutes of compilation
    compile: bool = False
    num_threads: int | None = None
    #: share of the windows scored for the activity layers (1: every window; below 1: the estimator of
    #: :func:`sampled_windows`, with standard errors); per-cluster tracks and region queries always take 1
    window_share: float = 1.0
    #: seed of the window sample (a window is in it or not for every cell and shard alike)
    window_seed: int = 0
    #: a cell with fewer sampled windows than this is scored on all of its windows (its values are then exact)
    min_sampled_windows: int = 100
    #: how a window sample becomes the activity layers: ``mean`` (each cell's mean over its sampled windows) or
    #: ``regression`` (that mean corrected by a per-window proxy known for every window,
    #: :mod:`scfan.sc.window_estimate`)
    window_estimator: str = "mean"
    #: where the model inputs are built from the parsed insertions: ``host`` (numpy/scipy), ``device`` (torch on
    #: the models' device, :mod:`scfan.sc.assembly`) or ``auto`` (device on CUDA, host on a CPU)
    assembly: str = "auto"

    @property
    def reduced_precision(self) -> bool:
        """Whether the mode runs the convolutions in bfloat16 on a CPU (``fast``, ``metacell``)."""
        return self.mode != "exact"

    def __post_init__(self) -> None:
        check_mode(self.mode)
        parse_shard(self.shard)
        if self.min_signal < 0 or not 0 < self.bound_threshold < 1 or self.top_k < 1 or self.batch_size < 1:
            raise ScfanError("--min-signal must be >= 0, --bound-threshold in (0, 1), --top-k and --batch-size >= 1")
        if self.metacell_size < 1 or self.chunk_bp < 1 or self.cell_block < 1:
            raise ScfanError("--metacell-size, chunk and block sizes must be >= 1")
        if not 0 < self.window_share <= 1:  # NaN fails too
            raise ScfanError(f"--window-share {self.window_share:g}: expected a share of the windows in (0, 1]")
        if self.min_sampled_windows < 1:
            raise ScfanError("--min-sampled-windows must be >= 1")
        if self.window_estimator not in WINDOW_ESTIMATORS:
            raise ScfanError(f"--window-estimator {self.window_estimator!r}: expected one of "
                             f"{', '.join(WINDOW_ESTIMATORS)}")
        if self.assembly not in ASSEMBLIES:
            raise ScfanError(f"--assembly {self.assembly!r}: expected one of {', '.join(ASSEMBLIES)}")

    @property
    def sampled(self) -> bool:
        """Whether the activity layers are estimated from a share of the windows."""
        return self.window_share < 1


@dataclass
class ModelSet:
    """Trained bulk models run side by side; features are named ``<model>:<TF>``."""

    names: list[str]
    models: list[torch.nn.Module]
    specs: list[ModelSpec]
    paths: list[str] = field(default_factory=list)
    #: per model, the runtime check of the path it runs (:func:`~scfan.inference.checked_for_inference`)
    checks: list[PathCheck] = field(default_factory=list)

    @property
    def window(self) -> int:
        return self.specs[0].window

    @property
    def context(self) -> int:
        return self.specs[0].context

    @property
    def features(self) -> list[str]:
        return [f"{n}:{tf}" for n, s in zip(self.names, self.specs, strict=True) for tf in s.tf_names]

    def var(self) -> pl.DataFrame:
        return pl.DataFrame({"feature": self.features,
                             "model": [n for n, s in zip(self.names, self.specs, strict=True) for _ in s.tf_names],
                             "tf": [tf for s in self.specs for tf in s.tf_names]})

    def predict(self, x: torch.Tensor, batch_size: int, amp: bool) -> np.ndarray:
        return np.concatenate([predict_batches(m, x, batch_size, amp=amp) for m in self.models], axis=1)

    def window_scores(self, xw: torch.Tensor) -> list:
        """Per model, what depends on the windows ``xw (W, C, L)`` alone (:class:`WindowSharedNet`; None for a
        model that runs whole, as on CUDA)."""
        return [_shared(m).scores_of(xw) if _shared(m) is not None else None for m in self.models]

    def predict_pairs(self, xw: torch.Tensor, scores: list, widx: np.ndarray, acc: np.ndarray, batch_size: int,
                      amp: bool) -> np.ndarray:
        """Probabilities ``(n, features)`` of the (cell, window) pairs: window ``widx[i]`` of ``xw`` with the
        accessibility channel ``acc[i]``; ``scores`` from :meth:`window_scores` on the same ``xw``. ``acc`` may be a
        tensor on ``xw``'s device (:class:`~scfan.sc.assembly.DeviceAssembler`): a whole model then gets its inputs
        there, without staging through the host."""
        outs, x = [], None
        for m, sc in zip(self.models, scores, strict=True):
            shared = _shared(m)
            if shared is not None:
                outs.append(shared.predict_pairs(xw, sc, widx, acc))
                continue
            if x is None:  # on xw's device (the models', with --assembly device)
                x = xw.index_select(0, torch.as_tensor(widx, dtype=torch.int64, device=xw.device))
                x[:, ACC_CHANNEL] = torch.as_tensor(acc, dtype=torch.float32, device=xw.device)
            outs.append(predict_batches(m, x, batch_size, amp=amp))
        return np.concatenate(outs, axis=1)


def _shared(m: torch.nn.Module) -> WindowSharedNet | None:
    """The window-sharing view of a CPU :class:`ChannelsLastNet` (made once per module), else None."""
    if not isinstance(m, ChannelsLastNet) or next(m.parameters()).device.type != "cpu":
        return None
    view = getattr(m, "_window_shared", None)
    if view is None:
        view = WindowSharedNet(m, ACC_CHANNEL)
        object.__setattr__(m, "_window_shared", view)  # not a submodule: keeps the module's state dict as it was
    return view


def model_name(arg: str) -> tuple[str, Path]:
    """``NAME=path`` or ``path`` (named after the file, or its folder for ``…/<name>/model.pt``)."""
    name, path = split_named(arg, "--model", "NAME=model.pt or model.pt", default_name=_model_file_name)
    return name, Path(path)


def _model_file_name(path: str) -> str:
    p = Path(path)
    return p.parent.name if p.stem in ("model", "") else p.stem.removesuffix(".model")


def load_models(args: Sequence[str], device: torch.device, *, half: bool = True, compile: bool = False,
                cpu_bf16: bool = False) -> ModelSet:
    """Load every model; refuse sequence-only models and models whose inputs differ from the first's. Each is made
    ready for ``device`` by :func:`~scfan.inference.checked_for_inference` (``half`` and ``compile`` apply on CUDA,
    ``cpu_bf16`` on a CPU): a fast path runs only where a probe on this machine gave the reference's numbers."""
    if not args:
        raise ScfanError("no --model given")
    names, models, specs, paths, checks = [], [], [], [], []
    want = channel_names(True)
    for arg in args:
        name, path = model_name(arg)
        if ":" in name:
            raise ScfanError(f"--model {arg!r}: the model name must contain no ':'")
        if name in names:
            raise ScfanError(f"--model {arg!r}: two models named {name!r}; name them with NAME=path")
        model, spec = load_model(path, device)
        if tuple(spec.channels) != want:
            raise InputFileError(path, f"model input channels {','.join(spec.channels)}; per-cell inference needs "
                                 f"{','.join(want)} (a model trained with --atac and --mappability)")
        if specs and (spec.window, spec.context) != (specs[0].window, specs[0].context):
            raise InputFileError(path, f"model window/context {spec.window}/{spec.context} bp differs from "
                                 f"{paths[0]}'s {specs[0].window}/{specs[0].context} bp")
        names.append(name)
        ready, check = checked_for_inference(model, device, spec.context, half=half, compile=compile,
                                             cpu_bf16=cpu_bf16, label=f"--model {name}")
        log.info("--model %s runs %s on %s (probe: max |Δp| %.2g against float32 reference kernels, %.2f s)",
                 name, check.ran, device, check.max_abs_diff, check.seconds)
        models.append(ready)
        checks.append(check)
        specs.append(spec)
        paths.append(str(path))
    return ModelSet(names, models, specs, paths, checks)


def peak_windows(var_names: Sequence[str], sizes: dict[str, int], window: int, context: int,
                 cells_path: str | Path = "cells") -> pl.DataFrame:
    """Model windows of every peak (``chrom:start-end``): tiled every ``window`` bp, the context kept on the
    chromosome. Columns ``chrom``, ``start``, ``peak`` (peak column index), sorted by position."""
    chroms, starts, peak_idx = [], [], []
    flank = (context - window) // 2
    for j, rid in enumerate(var_names):
        try:
            c, s, e = parse_region_id(str(rid))
        except ValueError:
            raise InputFileError(cells_path, "peak name is not chrom:start-end", record=str(rid)) from None
        if c not in sizes:
            raise InputFileError(cells_path, f"peak on chromosome {c!r}, which the genome FASTA does not have",
                                 record=str(rid))
        if sizes[c] < context:
            raise InputFileError(cells_path, f"chromosome {c!r} is shorter than the {context} bp model input",
                                 record=str(rid))
        ws = np.array([(s + e) // 2 - window // 2]) if e - s <= window else np.arange(s, e - window // 2, window)
        ws = np.clip(ws, flank, sizes[c] - window - flank)
        chroms.extend([c] * len(ws))
        starts.append(ws)
        peak_idx.extend([j] * len(ws))
    st = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    df = pl.DataFrame({"chrom": chroms, "start": st.astype(np.int64), "peak": np.asarray(peak_idx, np.int64)},
                      schema={"chrom": pl.Utf8, "start": pl.Int64, "peak": pl.Int64})
    order = {c: i for i, c in enumerate(sizes)}
    return (df.with_columns(pl.col("chrom").replace_strict(order, return_dtype=pl.Int64).alias("_o"))
            .sort(["_o", "start", "peak"]).drop("_o"))


def scored_peaks(counts: sp.spmatrix | Callable[[np.ndarray], sp.spmatrix], pooling: sp.spmatrix, cells: np.ndarray,
                 min_signal: float) -> sp.csr_matrix:
    """Boolean cells × peaks CSR: peaks whose pooled count is ≥ ``min_signal`` × the cell's mean pooled count (and
    > 0). Rows follow ``cells``. ``counts``: the cells × peaks matrix, or a function returning its rows for sorted
    indices (:meth:`CellsFile.rows`): only the rows of the cells' neighbours are read."""
    P = sp.csr_matrix(sp.csr_matrix(pooling)[cells])
    need = np.unique(P.indices)
    rows = counts(need) if callable(counts) else sp.csr_matrix(counts)[need]
    # the same product as P @ counts, without the all-zero columns of P: identical sums in the same order
    P = sp.csr_matrix((P.data, np.searchsorted(need, P.indices), P.indptr), shape=(P.shape[0], len(need)))
    pooled = sp.csr_matrix(P @ sp.csr_matrix(rows, dtype=np.float64))
    mean = np.asarray(pooled.sum(axis=1)).ravel() / max(pooled.shape[1], 1)
    row_of = np.repeat(np.arange(pooled.shape[0]), np.diff(pooled.indptr))
    keep = (pooled.data > 0) & (pooled.data >= min_signal * mean[row_of])
    out = sp.csr_matrix((np.ones(int(keep.sum()), dtype=bool), pooled.indices[keep],
                         np.concatenate([[0], np.cumsum(np.bincount(row_of[keep], minlength=pooled.shape[0]))])),
                        shape=pooled.shape)
    out.sort_indices()
    return out


def _mix64(x: np.ndarray) -> np.ndarray:
    """A 64-bit integer mixer (the finaliser of SplitMix64): nearby inputs give unrelated outputs."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def sampled_windows(windows: pl.DataFrame, share: float, seed: int) -> np.ndarray:
    """Boolean mask of the rows of ``windows`` in the window sample: each window independently with probability
    ``share``, decided by a hash of (chromosome, start, seed) alone, so a window is in or out for every cell, shard
    count and batch size alike.

    Why windows, not (cell, window) pairs: cells that share a window share its sampling error, so differences
    between cells (what clustering and differential tests use) are estimated better than their levels; and the
    model's per-window work (DNA, mappability, the sequence half of the first convolution) shrinks with the share.
    """
    if share >= 1:
        return np.ones(len(windows), dtype=bool)
    import zlib

    names = windows["chrom"].to_numpy().astype(str)
    uniq, inv = np.unique(names, return_inverse=True)
    chrom_key = np.array([zlib.crc32(c.encode()) for c in uniq], dtype=np.uint64)[inv]
    h = _mix64(_mix64(chrom_key ^ (np.uint64(seed % 2**32) << np.uint64(32)))
               ^ windows["start"].to_numpy().astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53) < share


def scored_pairs(scored: sp.csr_matrix, windows: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Every scored (cell, window) pair: ``(cell rows, window rows)``, cell-major then window order."""
    peak_of_window = windows["peak"].to_numpy()
    n_peaks = scored.shape[1]
    w_ptr = np.concatenate([[0], np.cumsum(np.bincount(peak_of_window, minlength=n_peaks))])
    w_of_peak = np.argsort(peak_of_window, kind="stable")  # windows of each peak, as CSR peak → window rows
    cell_of_pair = np.repeat(np.arange(scored.shape[0]), np.diff(scored.indptr))
    peaks_of_pair = scored.indices
    n_w = w_ptr[peaks_of_pair + 1] - w_ptr[peaks_of_pair]
    pair_cell = np.repeat(cell_of_pair, n_w)
    first = np.repeat(w_ptr[peaks_of_pair], n_w)
    k = np.arange(int(n_w.sum())) - np.repeat(np.cumsum(n_w) - n_w, n_w)
    return pair_cell, w_of_peak[first + k]


def sample_pairs(pair_cell: np.ndarray, pair_win: np.ndarray, in_sample: np.ndarray, n_cells: int,
                 min_windows: int) -> tuple[np.ndarray, np.ndarray]:
    """Which pairs are scored: those of sampled windows, and every pair of a cell with fewer than ``min_windows``
    sampled windows. Returns the pair mask and each cell's number of candidate windows (all its scored windows)."""
    n_total = np.bincount(pair_cell, minlength=n_cells)
    keep = in_sample[pair_win]
    few = np.bincount(pair_cell[keep], minlength=n_cells) < min_windows
    return keep | few[pair_cell], n_total


def pooled_depth(pooling: sp.csr_matrix, totals: np.ndarray, genome_size: float) -> np.ndarray:
    """Per row of ``pooling``: the effective insertions per base of its pooled track — the pooled mean per base over
    Σ w² (a weighted mean of Poisson counts is as noisy as one library of that depth). Over a bulk library's mean
    per base it is the share of the bulk's insertions the pooled track carries, the quantity training with
    ``--thin-min-keep`` covers (docs/single_cell.md, *Bulk → cell domain shift*)."""
    P = sp.csr_matrix(pooling, dtype=np.float64)
    w2 = np.asarray(P.multiply(P).sum(axis=1)).ravel()
    mean = (P @ np.asarray(totals, dtype=np.float64)) / float(genome_size)
    return np.divide(mean, w2, out=np.zeros_like(mean), where=w2 > 0)


#: a model trained without thinning loses per-cell AUROC below about this share of its bulk depth
#: (bench_domain_shift.md: none at 0.62, 0.027 at 0.15, 0.11 at 0.03)
PLAIN_MODEL_MIN_SHARE = 0.25


def check_depth_shift(models: ModelSet, depth: np.ndarray) -> dict[str, float]:
    """Median share of each model's bulk depth carried by the pooled tracks; warns where it is below the depth the
    model was trained down to (its ``thin_min_keep``; :data:`PLAIN_MODEL_MIN_SHARE` for a model trained without)."""
    out = {}
    med = float(np.median(depth)) if len(depth) else 0.0
    for name, spec in zip(models.names, models.specs, strict=True):
        if spec.track_norm is None:
            continue
        share = med / spec.track_norm.mean_per_base
        out[name] = share
        keep = (spec.train_config or {}).get("thin_min_keep")
        floor = PLAIN_MODEL_MIN_SHARE if keep is None or keep >= 1 else float(keep)
        if len(depth) and share < floor:
            how = (f"trained down to {floor:g} of it (--thin-min-keep)" if keep is not None and keep < 1 else
                   "trained on the bulk alone (no --thin-min-keep)")
            log.warning("model %s: the pooled tracks carry a median %.3g of its bulk library's insertions, and it "
                        "was %s: expect lower probabilities and weaker calls (docs/single_cell.md, Bulk → cell "
                        "domain shift); retrain with a lower --thin-min-keep or pool more neighbours (--knn)",
                        name, share, how)
    return out


class ActivityAccumulator:
    """Per-cell running sums: top-k counts, probability sums, bound counts and windows scored (float64)."""

    def __init__(self, n_cells: int, n_features: int, top_k: int, bound_threshold: float,
                 squares: bool = False):
        self.top_k = min(top_k, n_features)
        self.threshold = bound_threshold
        self.top = np.zeros((n_cells, n_features))
        self.prob_sum = np.zeros((n_cells, n_features))
        self.bound = np.zeros((n_cells, n_features))
        self.n_scored = np.zeros(n_cells, dtype=np.int64)
        #: sums of squared probabilities, for the standard errors of a window sample (:meth:`standard_errors`)
        self.prob_sq = np.zeros((n_cells, n_features)) if squares else None

    def add(self, cells: np.ndarray, probs: np.ndarray) -> None:
        """Add the predictions ``probs (n, F)`` of ``n`` (cell, window) pairs (cells may repeat)."""
        if not len(cells):
            return
        p = probs.astype(np.float64)
        np.add.at(self.prob_sum, cells, p)
        if self.prob_sq is not None:
            np.add.at(self.prob_sq, cells, p * p)
        np.add.at(self.bound, cells, (p > self.threshold).astype(np.float64))
        # top-k by probability; ties broken by the lower feature index so the result is deterministic
        order = np.argsort(-probs, axis=1, kind="stable")[:, : self.top_k]
        np.add.at(self.top, (np.repeat(cells, self.top_k), order.ravel()), 1.0)
        np.add.at(self.n_scored, cells, 1)

    def layers(self) -> dict[str, np.ndarray]:
        n = self.n_scored[:, None].astype(np.float64)
        div = np.where(n > 0, n, 1.0)
        return {"top_k_freq": (self.top / (div * self.top_k)).astype(np.float32),
                "mean_prob": (self.prob_sum / div).astype(np.float32),
                "frac_bound": (self.bound / div).astype(np.float32)}

    def standard_errors(self, n_candidates: np.ndarray) -> dict[str, np.ndarray]:
        """Standard error of each layer's value when a cell's ``n`` scored windows are a simple random sample of its
        ``N = n_candidates`` windows: ``sqrt((1 - n/N) s² / n)``, ``s²`` the sample variance over the ``n`` windows
        (for the 0/1 layers ``n m (1 - m) / (n - 1)``). 0 where every window was scored; NaN where ``n < 2 < N``."""
        if self.prob_sq is None:
            raise ValueError("standard errors need an accumulator made with squares=True")
        n = self.n_scored[:, None].astype(np.float64)
        big_n = np.asarray(n_candidates, dtype=np.float64)[:, None]
        fpc = np.where(n >= big_n, 0.0, np.clip(1.0 - n / np.where(big_n > 0, big_n, 1.0), 0.0, 1.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            def se(var_sum: np.ndarray) -> np.ndarray:  # var_sum: Σ (x - mean)², the sample variance × (n - 1)
                out = np.sqrt(fpc * np.maximum(var_sum, 0.0) / ((n - 1) * n))
                out = np.where(fpc == 0, 0.0, out)
                return np.where((n < 2) & (fpc > 0), np.nan, out).astype(np.float32)

            m_top = self.top / np.where(n > 0, n, 1.0)  # share of windows where the feature is in the top k
            m_bound = self.bound / np.where(n > 0, n, 1.0)
            return {"top_k_freq_se": se(n * m_top * (1 - m_top)) / self.top_k,
                    "mean_prob_se": se(self.prob_sq - self.prob_sum ** 2 / np.where(n > 0, n, 1.0)),
                    "frac_bound_se": se(n * m_bound * (1 - m_bound))}


class _ChunkInputs:
    """DNA one-hot and mappability of the windows of one genomic chunk, read once for every cell."""

    def __init__(self, genome, mappability_bw, chrom: str, ctx_starts: np.ndarray, context: int):
        self.a = int(ctx_starts.min())
        self.b = int(ctx_starts.max()) + context
        codes = encode_codes(genome.fetch(chrom, self.a, self.b))
        idx = (ctx_starts - self.a)[:, None] + np.arange(context)[None, :]
        self.onehot = codes_to_onehot(codes[idx])
        vals = np.asarray(mappability_bw.values(chrom, self.a, self.b, numpy=True), dtype=np.float32)
        self.mapp = np.nan_to_num(vals, nan=0.0)[idx]
        self.offsets = ctx_starts - self.a


def _only_columns(m: sp.csr_matrix, offsets: np.ndarray, width: int) -> sp.csr_matrix:
    """``m`` without the entries outside every ``[offset, offset + width)`` column range: the pooling product then
    skips the insertions between the windows, and gives the windows' columns bit for bit as before (each output
    value sums the same terms in the same order)."""
    cover = np.zeros(m.shape[1] + 1, dtype=np.int64)
    np.add.at(cover, np.clip(offsets, 0, m.shape[1]), 1)
    np.add.at(cover, np.clip(offsets + width, 0, m.shape[1]), -1)
    inside = np.cumsum(cover)[:-1] > 0
    if inside.all():
        return m
    keep = inside[m.indices]
    row_of = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))[keep]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(row_of, minlength=m.shape[0]))])
    return sp.csr_matrix((m.data[keep], m.indices[keep], indptr), shape=m.shape)


def assembly_of(name: str, device: torch.device) -> str:
    """``host`` or ``device``: where ``--assembly name`` builds the model inputs for models on ``device``."""
    if name == "auto":
        return "device" if device.type == "cuda" else "host"
    return name


def assembly_label(name: str, device: torch.device) -> str:
    """What ``uns['scfan_activity']['assembly']`` says ran: ``host`` or ``device (<device>)``."""
    if assembly_of(name, device) == "host":
        return "host"
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return f"device ({device})"


def _models_device(models: ModelSet) -> torch.device:
    return next(models.models[0].parameters()).device


class Proxies(NamedTuple):
    """Of every scored pair of a chunk, sampled or not: its cell row and its window's proxy ``(n, features)``, the
    models' prediction for the window with the mean accessibility of the pairs that score it
    (:mod:`scfan.sc.window_estimate`); ``sampled`` marks the pairs of the batch's ``probs``, in their order."""

    cells: np.ndarray
    proxy: np.ndarray
    sampled: np.ndarray


class PairBatch(NamedTuple):
    """Predictions of a chunk's (cell, window) pairs; ``proxies`` only when asked for."""

    cells: np.ndarray
    windows: np.ndarray
    probs: np.ndarray
    proxies: Proxies | None = None


def iter_cell_predictions(models: ModelSet, tracks: PooledTracks, units: Units, scored: sp.csr_matrix,
                          windows: pl.DataFrame, genome, mappability_bw, cfg: PredictConfig,
                          device: torch.device | None, pair_mask: np.ndarray | None = None,
                          record: dict | None = None, proxies: bool = False) -> Iterator[PairBatch]:
    """Yield :class:`PairBatch` es ``(cell_rows, window_rows, probs, proxies)`` over every scored (cell, window) pair
    of the shard (of :func:`scored_pairs`), or over those ``pair_mask`` keeps. With ``proxies`` (and a
    ``pair_mask``), every scored pair is assembled, the kept ones predicted, and each batch also carries the
    :class:`Proxies` of all the chunk's pairs.

    ``tracks`` must have been built on ``units.pooling``; ``cell_rows`` index the shard's cells and
    ``window_rows`` the rows of ``windows``. ``device``: the models' (None: read from the models); with
    ``cfg.assembly`` ``device`` there the inputs are built on it (:mod:`scfan.sc.assembly`), else on the host; the
    device path is first checked against the host's on the first chunk (:func:`check_device_assembly`), and
    ``record['assembly']`` (when given) says when it was refused.
    """
    device = device if device is not None else _models_device(models)
    context, window = models.context, models.window
    flank = (context - window) // 2
    assembler = (DeviceAssembler(tracks.pooling, tracks.pooled_mean, context, device)
                 if assembly_of(cfg.assembly, device) == "device" else None)
    checked = False
    pair_cell, pair_win = scored_pairs(scored, windows)
    keep = pair_mask if pair_mask is not None else np.ones(len(pair_cell), dtype=bool)
    if pair_mask is not None and not proxies:
        pair_cell, pair_win, keep = pair_cell[pair_mask], pair_win[pair_mask], keep[pair_mask]
    chroms = windows["chrom"].to_numpy().astype(str)
    starts = windows["start"].to_numpy()
    # genomic chunks of consecutive windows on one chromosome
    chunk_id = np.zeros(len(windows), dtype=np.int64)
    cur, c0, s0 = 0, None, 0
    for i in range(len(windows)):
        if chroms[i] != c0 or starts[i] - s0 >= cfg.chunk_bp:
            cur += 1 if c0 is not None else 0
            c0, s0 = chroms[i], starts[i]
        chunk_id[i] = cur
    pair_chunk = chunk_id[pair_win]
    by_chunk = np.argsort(pair_chunk, kind="stable")
    bounds = np.searchsorted(pair_chunk[by_chunk], np.arange(chunk_id.max() + 2 if len(windows) else 1))
    for ch in range(len(bounds) - 1):
        sel = by_chunk[bounds[ch] : bounds[ch + 1]]
        if not len(sel):
            continue
        p_cell, p_win, p_keep = pair_cell[sel], pair_win[sel], keep[sel]
        key = units.of_cell[p_cell] * len(windows) + p_win
        ukeys, inverse = np.unique(key, return_inverse=True)  # sorted: unit-major, then window
        u_keep = np.zeros(len(ukeys), dtype=bool)
        u_keep[inverse[p_keep]] = True  # a (unit, window) pair is predicted where any of its pairs is kept
        u_unit, u_win = ukeys // len(windows), ukeys % len(windows)
        chrom = chroms[p_win[0]]
        wins = np.unique(u_win)
        inputs = _ChunkInputs(genome, mappability_bw, chrom, starts[wins] - flank, context)
        win_local = np.searchsorted(wins, u_win)
        # the chunk's windows with an empty accessibility channel (each pair fills in its own)
        xw = torch.from_numpy(np.concatenate([inputs.onehot, np.zeros_like(inputs.mapp)[:, None, :],
                                              inputs.mapp[:, None, :]], axis=1).astype(np.float32))
        ins = tracks.insertions(chrom, inputs.a, inputs.b)  # parsed on the host, whatever the assembly
        if assembler is not None and not checked:
            checked = True
            refused = check_device_assembly(assembler, tracks, xw, ins, inputs.offsets, u_unit, win_local, cfg,
                                            context)
            if refused is not None:
                log.warning("--assembly device on %s refused: %s; building the inputs on the host for the rest of "
                            "the shard (the host path's numbers)", device, refused)
                assembler = None
                if record is not None:
                    record["assembly"] = f"host (device assembly on {device} refused: {refused})"
        predict = None if u_keep.all() else u_keep
        if assembler is None:
            probs, proxy = _host_chunk_probs(models, tracks, xw, ins, inputs.offsets, u_unit, win_local, cfg,
                                             predict, proxies)
        else:
            probs, proxy = _device_chunk_probs(models, assembler, xw, ins, inputs.offsets, u_unit, win_local, cfg,
                                               predict, proxies)
        probs = probs[inverse]
        if not proxies:
            yield PairBatch(p_cell, p_win, probs)
            continue
        yield PairBatch(p_cell[p_keep], p_win[p_keep], probs[p_keep],
                        Proxies(p_cell, proxy[win_local[inverse]], p_keep))


#: device-assembled accessibility may differ from the host's by float32 rounding of log1p (~1 ulp), nothing more
ASSEMBLY_TOLERANCE = 1e-5


def check_device_assembly(assembler: DeviceAssembler, tracks: PooledTracks, xw: torch.Tensor, ins: sp.csr_matrix,
                          offsets: np.ndarray, u_unit: np.ndarray, win_local: np.ndarray, cfg: PredictConfig,
                          context: int, n_probe: int = 256) -> str | None:
    """Build the first ``n_probe`` pairs of a chunk both ways, on the device and on the host; None when they agree
    within :data:`ASSEMBLY_TOLERANCE`, else why not (an error of the device's kernels included). Runs once per shard,
    on its first chunk: a device path is trusted only where it was seen to give the host's numbers."""
    b0, b1, units_here = next(_unit_blocks(u_unit, tracks.pooling.shape[0], cfg))
    e = min(b1, b0 + n_probe)
    try:
        assembler.load_chunk(ins, offsets, xw)
        assembler.pool(units_here)
        dev = assembler.accessibility(u_unit[b0:e], win_local[b0:e]).float().cpu().numpy()
    except (RuntimeError, ValueError) as exc:
        return f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    pooled = sp.csr_matrix(tracks.pooling[units_here] @ _only_columns(ins.astype(np.float64), offsets, context))
    pooled.sort_indices()
    host = _extract_windows(pooled, np.searchsorted(units_here, u_unit[b0:e]), offsets[win_local[b0:e]], context)
    host = normalize_track(host, tracks.pooled_mean[u_unit[b0:e]][:, None])
    diff = float(np.max(np.abs(dev - host))) if host.size else 0.0
    if not np.isfinite(diff) or diff > ASSEMBLY_TOLERANCE:
        return f"its inputs differ from the host's by {diff:.3g} (tolerance {ASSEMBLY_TOLERANCE:g}) on {e - b0} pairs"
    return None


def _unit_blocks(u_unit: np.ndarray, n_units: int, cfg: PredictConfig) -> Iterator[tuple[int, int, np.ndarray]]:
    """The chunk's pairs (unit-major) in blocks of ``cfg.cell_block`` unit ids: ``(first, end, units of the
    block)``."""
    blocks = np.searchsorted(u_unit, np.arange(0, n_units + cfg.cell_block, cfg.cell_block))
    for b0, b1 in zip(blocks[:-1], blocks[1:], strict=True):
        if b0 < b1:
            yield int(b0), int(b1), np.unique(u_unit[b0:b1])


class _WindowMeans:
    """Running sums of the accessibility channel per window of a chunk, for the proxies (float64, pair order)."""

    def __init__(self, n_windows: int, context: int):
        self.sum = np.zeros((n_windows, context))
        self.n = np.zeros(n_windows)

    def add(self, win: np.ndarray, acc) -> None:
        acc = acc.float().cpu().numpy() if isinstance(acc, torch.Tensor) else acc
        ind = sp.csr_matrix((np.ones(len(win)), (win, np.arange(len(win)))), shape=(len(self.n), len(win)))
        self.sum += ind @ acc.astype(np.float64)
        self.n += np.bincount(win, minlength=len(self.n))

    def proxies(self, models: ModelSet, xw: torch.Tensor, scores: list, cfg: PredictConfig) -> np.ndarray:
        """The models' predictions ``(windows, features)`` with each window's mean accessibility."""
        mean = (self.sum / np.maximum(self.n, 1)[:, None]).astype(np.float32)
        if xw.device.type != "cpu":
            mean = torch.as_tensor(mean, device=xw.device)
        return models.predict_pairs(xw, scores, np.arange(len(self.n)), mean, cfg.batch_size, cfg.amp)


def _host_chunk_probs(models: ModelSet, tracks: PooledTracks, xw: torch.Tensor, ins: sp.csr_matrix,
                      offsets: np.ndarray, u_unit: np.ndarray, win_local: np.ndarray, cfg: PredictConfig,
                      predict: np.ndarray | None = None, proxies: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities of a chunk's pairs (those ``predict`` marks; None: all), inputs built on the host
    (numpy/scipy; ``--assembly host``), and with ``proxies`` each window's proxy (:class:`_WindowMeans`)."""
    context = models.context
    # what the models compute from the windows alone, once for every cell
    scores = models.window_scores(xw)
    ins = _only_columns(ins.astype(np.float64), offsets, context)
    probs = np.full((len(u_unit), len(models.features)), np.nan, dtype=np.float32)
    means = _WindowMeans(xw.shape[0], context) if proxies else None
    for b0, b1, units_here in _unit_blocks(u_unit, tracks.pooling.shape[0], cfg):
        pooled = sp.csr_matrix(tracks.pooling[units_here] @ ins)
        pooled.sort_indices()
        for s in range(b0, b1, cfg.batch_size * 4):
            e = min(s + cfg.batch_size * 4, b1)
            rows = _batch_rows(s, e, predict, means)
            if not len(rows):
                continue
            acc = _extract_windows(pooled, np.searchsorted(units_here, u_unit[rows]), offsets[win_local[rows]],
                                   context)
            acc = normalize_track(acc, tracks.pooled_mean[u_unit[rows]][:, None])
            rows, acc = _with_means(means, predict, rows, win_local, acc)
            if len(rows):
                probs[rows] = models.predict_pairs(xw, scores, win_local[rows], acc, cfg.batch_size, cfg.amp)
    return probs, (means.proxies(models, xw, scores, cfg) if means is not None else None)


def _batch_rows(s: int, e: int, predict: np.ndarray | None, means: _WindowMeans | None) -> np.ndarray:
    """The rows of a batch to assemble: all of them where proxies are made (their means need every pair), else the
    rows to predict."""
    if predict is None or means is not None:
        return np.arange(s, e)
    return s + np.flatnonzero(predict[s:e])


def _with_means(means: _WindowMeans | None, predict: np.ndarray | None, rows: np.ndarray, win_local: np.ndarray,
                acc):
    """Add a batch's accessibility to the window means (if made), then keep the rows to predict and their inputs."""
    if means is None:
        return rows, acc
    means.add(win_local[rows], acc)
    if predict is None:
        return rows, acc
    keep = predict[rows]
    return rows[keep], acc[torch.as_tensor(keep, device=acc.device) if isinstance(acc, torch.Tensor) else keep]


def _device_chunk_probs(models: ModelSet, assembler: DeviceAssembler, xw: torch.Tensor, ins: sp.csr_matrix,
                        offsets: np.ndarray, u_unit: np.ndarray, win_local: np.ndarray, cfg: PredictConfig,
                        predict: np.ndarray | None = None, proxies: bool = False,
                        ) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities of a chunk's pairs, inputs built on the models' device (``--assembly device``): the chunk
    moves there once; a CPU's window-sharing models take the accessibility as a (cpu) tensor, a CUDA model gets
    its whole inputs on the device."""
    xw_dev = assembler.load_chunk(ins, offsets, xw)
    scores = models.window_scores(xw_dev)
    probs = np.full((len(u_unit), len(models.features)), np.nan, dtype=np.float32)
    means = _WindowMeans(xw.shape[0], models.context) if proxies else None
    for b0, b1, units_here in _unit_blocks(u_unit, assembler.n_units, cfg):
        assembler.pool(units_here)
        for s in range(b0, b1, cfg.batch_size * 4):
            e = min(s + cfg.batch_size * 4, b1)
            rows = _batch_rows(s, e, predict, means)
            if not len(rows):
                continue
            acc = assembler.accessibility(u_unit[rows], win_local[rows])
            rows, acc = _with_means(means, predict, rows, win_local, acc)
            if len(rows):
                probs[rows] = models.predict_pairs(xw_dev, scores, win_local[rows], acc, cfg.batch_size, cfg.amp)
    return probs, (means.proxies(models, xw_dev, scores, cfg) if means is not None else None)


def check_barcodes(fragments: dict[str, str | Path], cell_ids: Sequence[str], max_lines: int = 200_000) -> None:
    """Refuse a fragments file none of whose first ``max_lines`` barcodes is a cell of its sample."""
    by_sample: dict[str, set[str]] = {}
    for cid in cell_ids:
        s, _, b = str(cid).partition("#")
        by_sample.setdefault(s, set()).add(b)
    for sample, path in fragments.items():
        if sample not in by_sample:
            continue
        seen = 0
        try:
            with gzip.open(path, "rt") as fh:
                for line in fh:
                    if line.startswith("#"):
                        continue
                    parts = line.split("\t")
                    if len(parts) >= 4 and parts[3] in by_sample[sample]:
                        break
                    seen += 1
                    if seen >= max_lines:
                        break
                else:  # the whole file read without a match
                    raise InputFileError(path, f"no barcode matches a cell of sample {sample!r} in the cells "
                                         "file; expected the fragments the cells were counted from")
        except (OSError, EOFError) as exc:
            raise InputFileError(path, f"cannot read as gzip fragments ({exc})") from exc
        if seen >= max_lines:
            raise InputFileError(path, f"none of the first {max_lines} barcodes matches a cell of sample "
                                 f"{sample!r} in the cells file; expected the fragments the cells were counted from")


def predict_activity(cells_path: str | Path, model_args: Sequence[str], fragments: dict[str, str | Path],
                     genome_fa: str | Path, mappability: str | Path, cfg: PredictConfig,
                     on_batch: Callable[..., None] | None = None) -> ad.AnnData:
    """TF activity of the shard's cells (see the module docstring); returns the shard's AnnData.

    ``on_batch(cell_rows, window_rows, probs, windows=..., sizes=..., features=...)``, when given, also receives
    every batch of per-cell predictions (``cell_rows`` index the shard's cells), e.g. to build per-cluster tracks.
    """
    device = resolve_device(cfg.device)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    models = load_models(model_args, device, half=cfg.amp, compile=cfg.compile,
                         cpu_bf16=device.type == "cpu" and cpu_bf16_for(cfg))
    adata = read_cells_for_inference(cells_path)
    try:
        return _predict_cells(adata, cells_path, models, fragments, genome_fa, mappability, cfg, device, on_batch)
    finally:
        adata.close()


def cpu_bf16_for(cfg: PredictConfig) -> bool:
    """Whether ``cfg``'s mode runs bfloat16 convolutions on this CPU (a warning when it would but cannot)."""
    if not cfg.reduced_precision:
        return False
    if cpu_has_native_bf16():
        return True
    log.warning("--mode %s: this CPU has no native bfloat16 (AVX512-BF16 or AMX), where bfloat16 would be slower "
                "than float32; running float32 (the numbers of --mode exact%s)", cfg.mode,
                ", on metacells" if cfg.mode == "metacell" else "")
    return False


def precision_of(models: ModelSet) -> str:
    """What the models compute in after their runtime check: ``float32``, ``bfloat16`` or ``bfloat16 convolutions,
    float32 dense layers``; ``name: precision; …`` where models differ."""
    if not models.checks:  # built by hand (tests, benchmarks): read the module
        m = models.models[0]
        conv = next(m.parameters()).dtype
        if conv == torch.float32:
            return "float32"
        dense = m.head[1].weight.dtype if isinstance(m, ChannelsLastNet) else conv
        if dense != conv:
            return f"{str(conv).removeprefix('torch.')} convolutions, {str(dense).removeprefix('torch.')} dense layers"
        return str(conv).removeprefix("torch.")
    kinds = {c.precision for c in models.checks}
    if len(kinds) == 1:
        return kinds.pop()
    return "; ".join(f"{n}: {c.precision}" for n, c in zip(models.names, models.checks, strict=True))


def _shard_fragments(adata: CellsFile, cells_path, used: np.ndarray, fragments: dict, cfg: PredictConfig) -> dict:
    """The fragments files of the samples whose cells the shard's pooled tracks use, their headers and barcodes
    checked against the run."""
    samples = list(dict.fromkeys(str(adata.obs_names[c]).partition("#")[0] for c in used))
    missing = [s for s in samples if s not in fragments]
    if missing:
        raise ScfanError(f"{cells_path}: no fragments file given for sample(s) {', '.join(missing)} "
                         f"(have {', '.join(fragments) or 'none'}); pass --fragments SAMPLE=path for each")
    fragments = {s: fragments[s] for s in samples}
    for path in fragments.values():
        check_split_header(path, cfg.shard, cfg.mode, cfg.metacell_size)
    check_barcodes(fragments, adata.obs_names)
    return fragments


def _activity_adata(adata: CellsFile, cells: np.ndarray, units, acc: ActivityAccumulator, reg, n_candidates,
                    depth: np.ndarray, depth_share: dict, windows, models: ModelSet, cfg: PredictConfig,
                    ran: dict) -> ad.AnnData:
    """The shard's activity AnnData: the accumulated layers (and standard errors), per-cell flags and provenance."""
    from scfan import __version__

    layers = acc.layers()
    if reg is not None:
        est, ses = reg.estimates()
        layers.update(est)
        layers.update(ses)
    elif cfg.sampled:
        layers.update(acc.standard_errors(n_candidates))
    obs = adata.obs.iloc[cells].copy()
    obs["n_scored_windows"] = acc.n_scored
    if cfg.sampled:
        obs["n_candidate_windows"] = n_candidates
    obs["no_scored_windows"] = acc.n_scored == 0
    obs["pooled_depth"] = depth
    if units.members is not None:
        obs["metacell"] = units.members[cells]
    n_empty = int((acc.n_scored == 0).sum())
    if n_empty:
        log.warning("%d cell(s) have no scored window (no pooled signal in any peak): flagged in "
                    "obs['no_scored_windows'], activity 0", n_empty)
    var = models.var().to_pandas().set_index("feature")
    var.index.name = None
    var = var.astype({"model": "category", "tf": "category"})  # as AnnData would store them, without its notice
    out = ad.AnnData(X=layers.pop("top_k_freq"), obs=obs, var=var, layers=layers)
    i, n = parse_shard(cfg.shard)
    out.uns["scfan_activity"] = {
        "config": {k: v for k, v in cfg.__dict__.items() if v is not None},
        "shard_index": i, "shard_count": n, "n_cells_total": int(adata.n_obs),
        "cell_rows": cells.astype(np.int64),  # rows of the cells file: merge-activity restores its order
        "models": list(models.names), "model_files": [Path(p).name for p in models.paths],
        "precision": precision_of(models),
        "assembly": ran["assembly"],
        "fast_path_check": {n: c.as_dict() for n, c in zip(models.names, models.checks, strict=True)},
        "pooled_depth": "effective Tn5 insertions per base of each cell's pooled track (mean / sum of squared weights)",
        "bulk_depth": {n: float(sp_.track_norm.mean_per_base) for n, sp_ in zip(models.names, models.specs, strict=True)
                       if sp_.track_norm is not None},
        "median_depth_share": {k: float(v) for k, v in depth_share.items()},
        "n_windows": int(len(windows)), "n_peaks": int(adata.n_vars), "package_version": __version__,
        "X": f"frequency of each feature among a window's top {acc.top_k} (per cell, rows sum to 1)",
    }
    if cfg.sampled:
        out.uns["scfan_activity"]["window_sampling"] = sampling_summary(out, cfg)
    return out


def _predict_cells(adata: CellsFile, cells_path, models: ModelSet, fragments, genome_fa, mappability,
                   cfg: PredictConfig, device, on_batch) -> ad.AnnData:
    from tqdm import tqdm

    from scfan.genome import Genome, check_chrom_names
    from scfan.logging_utils import progress_enabled
    from scfan.tracks import open_bigwig

    rank = check_rank(adata.obs[RANK_COLUMN].to_numpy(), adata.n_obs, cells_path) if RANK_COLUMN in adata.obs else None
    cells = shard_cells(adata.n_obs, cfg.shard, rank)
    # the samples whose fragments this shard reads: those of the cells its pooled tracks use
    units = make_units(cfg.mode, adata.obsp["pooling"], cells, cfg.metacell_size)
    used = cells_used(units.pooling, np.arange(units.pooling.shape[0]))
    fragments = _shard_fragments(adata, cells_path, used, fragments, cfg)
    with Genome(genome_fa) as genome:
        sizes = dict(genome.sizes)
        windows = peak_windows(adata.var_names, sizes, models.window, models.context, cells_path)
        bw = open_bigwig(mappability)
        try:
            check_chrom_names((str(genome_fa), sizes), {str(mappability): list(bw.chroms())})
            scored = scored_peaks(adata.rows, adata.obsp["pooling"], cells, cfg.min_signal)
            totals = 2.0 * adata.obs["n_fragments"].to_numpy(dtype=np.float64)
            pair_mask, n_candidates = None, None
            if cfg.sampled:
                pc, pw = scored_pairs(scored, windows)
                in_sample = sampled_windows(windows, cfg.window_share, cfg.window_seed)
                pair_mask, n_candidates = sample_pairs(pc, pw, in_sample, len(cells), cfg.min_sampled_windows)
                log.info("--window-share %g: %d of %d windows in the sample; %d of %d (cell, window) pairs scored "
                         "(cells with fewer than %d sampled windows keep all of theirs)", cfg.window_share,
                         int(in_sample.sum()), len(windows), int(pair_mask.sum()), len(pc), cfg.min_sampled_windows)
                del pc, pw
            acc = ActivityAccumulator(len(cells), len(models.features), cfg.top_k, cfg.bound_threshold,
                                      squares=cfg.sampled)
            regression = cfg.sampled and cfg.window_estimator == "regression"
            reg = (RegressionAccumulator(len(cells), len(models.features), cfg.top_k, cfg.bound_threshold)
                   if regression else None)
            log.info("shard %s: %d of %d cells, %d units (%s mode), %d windows on %d peaks, %d (cell, peak) pairs "
                     "scored; %d model(s), %d features, device %s", cfg.shard, len(cells), adata.n_obs,
                     units.pooling.shape[0], cfg.mode, len(windows), adata.n_vars, scored.nnz, len(models.names),
                     len(models.features), device)
            depth = pooled_depth(units.pooling, totals, sum(sizes.values()))[units.of_cell]
            depth_share = check_depth_shift(models, depth)
            with PooledTracks(fragments, list(adata.obs_names), units.pooling, totals, sum(sizes.values())) as tr:
                ran = {"assembly": assembly_label(cfg.assembly, device)}
                batches = iter_cell_predictions(models, tr, units, scored, windows, genome, bw, cfg, device,
                                                pair_mask=pair_mask, record=ran, proxies=regression)
                for p_cell, _p_win, probs, prox in tqdm(batches, desc=f"predict shard {cfg.shard}", unit="chunk",
                                                         disable=not progress_enabled(), leave=False):
                    acc.add(p_cell, probs)
                    if reg is not None:
                        reg.add_all(prox.cells, prox.proxy)
                        reg.add_sampled(p_cell, probs, prox.proxy[prox.sampled])
                    if on_batch is not None:
                        on_batch(p_cell, _p_win, probs, windows=windows, sizes=sizes, features=models.features,
                                 window=models.window)
        finally:
            bw.close()
    return _activity_adata(adata, cells, units, acc, reg, n_candidates, depth, depth_share, windows, models, cfg,
                           ran)


SE_LAYERS = {"X": "top_k_freq_se", "mean_prob": "mean_prob_se", "frac_bound": "frac_bound_se"}


def sampling_summary(adata: ad.AnnData, cfg: PredictConfig | dict) -> dict:
    """What ``uns['scfan_activity']['window_sampling']`` says of a window-sampled activity matrix: the settings, the
    estimator, and per layer the median standard error and its median over the layer's own value (cells × features
    with a value > 0)."""
    c = cfg if isinstance(cfg, dict) else cfg.__dict__
    regression = c.get("window_estimator", "mean") == "regression"
    out = {"share": float(c["window_share"]), "seed": int(c["window_seed"]),
           "min_sampled_windows": int(c["min_sampled_windows"]),
           "window_estimator": "regression" if regression else "mean",
           "estimator": ("each layer is a cell's mean over a random share of its scored windows (the same windows for "
                         "every cell), corrected by the regression on a per-window proxy known for all of them "
                         "(scfan.sc.window_estimate); *_se layers: standard errors of the regression residuals "
                         "(finite-population corrected; 0 where a cell was scored on all its windows)"
                         if regression else
                         "each layer is a cell's mean over a random share of its scored windows (the same windows for "
                         "every cell); *_se layers: standard errors for a simple random sample without replacement "
                         "(finite-population corrected; 0 where a cell was scored on all its windows)"),
           "median_scored_share": float(np.median(adata.obs["n_scored_windows"].to_numpy()
                                                  / np.maximum(adata.obs["n_candidate_windows"].to_numpy(), 1)))}
    for layer, se_name in SE_LAYERS.items():
        val = np.asarray(adata.X if layer == "X" else adata.layers[layer], dtype=np.float64)
        se = np.asarray(adata.layers[se_name], dtype=np.float64)
        ok = np.isfinite(se) & (val > 0)
        out[f"median_se_{layer}"] = float(np.median(se[ok])) if ok.any() else float("nan")
        out[f"median_relative_se_{layer}"] = float(np.median(se[ok] / val[ok])) if ok.any() else float("nan")
    return out


def write_activity(adata: ad.AnnData, out: str | Path) -> None:
    from scfan._io import write_h5ad

    write_h5ad(adata, out)


def merge_activity(paths: Sequence[str | Path]) -> ad.AnnData:
    """Gather shard files into one activity matrix (cells in the cells file's order); every shard exactly once."""
    if not paths:
        raise ScfanError("no shard files given")
    parts: dict[int, ad.AnnData] = {}
    ref = None
    for p in paths:
        try:
            a = ad.read_h5ad(p)
        except (OSError, KeyError, ValueError) as exc:
            raise InputFileError(p, f"cannot read as AnnData ({exc.__class__.__name__})") from exc
        info = a.uns.get("scfan_activity")
        if not isinstance(info, dict) or "shard_index" not in info:
            raise InputFileError(p, "not an activity shard written by `scfan sc predict`")
        i, n = int(info["shard_index"]), int(info["shard_count"])
        sampling = tuple(info["config"].get(k, d) for k, d in (("window_share", 1.0), ("window_seed", 0),
                                                               ("min_sampled_windows", 100),
                                                               ("window_estimator", "mean")))
        if ref is None:
            ref = (n, list(a.var_names), info["config"].get("mode"), int(info["n_cells_total"]), p, sampling)
        if n != ref[0] or list(a.var_names) != ref[1] or info["config"].get("mode") != ref[2]:
            raise InputFileError(p, f"shard {i}/{n} does not match {ref[4]} (shard count, features or mode differ)")
        if sampling != ref[5]:
            raise InputFileError(p, f"shard {i}/{n} was scored on another window sample than {ref[4]} "
                                 f"(--window-share, seed, minimum, estimator: {sampling} vs {ref[5]})")
        if i in parts:
            raise InputFileError(p, f"shard {i}/{n} given twice")
        parts[i] = a
    missing = [i for i in range(1, ref[0] + 1) if i not in parts]
    if missing:
        raise ScfanError(f"shard(s) {', '.join(map(str, missing))} of {ref[0]} missing")
    merged = ad.concat([parts[i] for i in sorted(parts)], axis=0, merge="same")
    if all("cell_rows" in parts[i].uns["scfan_activity"] for i in parts):
        order = merge_order([np.asarray(parts[i].uns["scfan_activity"]["cell_rows"]) for i in sorted(parts)])
        merged = merged[order].copy()
    if merged.n_obs != ref[3] or not merged.obs_names.is_unique:
        raise ScfanError(f"the shards hold {merged.n_obs} cells ({merged.obs_names.nunique()} distinct); "
                         f"expected each of the {ref[3]} cells once")
    info = dict(parts[1].uns["scfan_activity"])
    # shards may run on machines whose CPUs took different paths (a Slurm partition of mixed nodes)
    by_shard = {str(i): str(parts[i].uns["scfan_activity"].get("precision", "unknown")) for i in sorted(parts)}
    if len(set(by_shard.values())) > 1:
        log.warning("the shards ran in different precisions (%s): their cells differ by up to the bfloat16 "
                    "tolerance; rerun with --mode exact for float32 everywhere",
                    ", ".join(f"shard {i}: {v}" for i, v in by_shard.items()))
        info["precision"] = "mixed"
    info["precision_by_shard"] = by_shard
    info.pop("shard_index")
    info.pop("cell_rows", None)
    if "pooled_depth" in merged.obs and isinstance(info.get("bulk_depth"), dict):  # over every shard's cells
        med = float(np.median(merged.obs["pooled_depth"].to_numpy()))
        info["median_depth_share"] = {k: med / float(v) for k, v in info["bulk_depth"].items()}
    if "window_sampling" in info:  # over every shard's cells
        info["window_sampling"] = sampling_summary(merged, info["config"])
    merged.uns["scfan_activity"] = info
    merged.obs["no_scored_windows"] = merged.obs["no_scored_windows"].astype(bool)
    return merged
