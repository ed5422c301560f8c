"""scFANet: the 3-layer CNN of scFAN and its model file (input encoding, the motif scores' features and batched
prediction: :mod:`scfan.inference`).

Input channels (in this order, recorded as ``channels`` in the model file): ``A, C, G, T`` one-hot, then
``accessibility`` (``TrackNorm.apply`` of Tn5 insertions per base) and ``mappability`` (in [0, 1]); a sequence-only
model has just the four DNA channels. The first convolution is linear, so its weight ``[:, :4]`` (sequence half) and
``[:, 4:]`` (track half) can be applied separately and summed.

Strand handling: instead of scFAN's extra reversed track channels we train with random reverse-complement
augmentation and average the forward and reverse-complement predictions at inference (bpnet-lite style); the
reverse complement of an input flips the DNA channels (A↔T, C↔G) and reverses every channel along the sequence.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from scfan import __version__
from scfan._io import atomic_path
from scfan.errors import InputFileError
from scfan.inference import motif_features, motif_standardisation
from scfan.tracks import TrackNorm

log = logging.getLogger(__name__)

SEQ_CHANNELS = ("A", "C", "G", "T")
TRACK_CHANNELS = ("accessibility", "mappability")
FORMAT_VERSION = 1
#: the presets' ``motif_knots`` (bench-preset ablation in docs/bulk.md)
DEFAULT_MOTIF_KNOTS = (0.5, 1.5, 2.5, 3.5, 5.0)


@dataclass(frozen=True)
class ArchConfig:
    """Layer widths of scFANet (Keras-style 'valid' convolutions)."""

    filters: tuple[int, int, int] = (160, 240, 240)
    kernel: int = 8
    pool: int = 4
    dense: int = 919
    dropout: tuple[float, float, float] = (0.2, 0.2, 0.5)
    #: filters of the motif branch (:class:`MotifBranch`); 0 = none (scFAN's network alone, and model files written
    #: before the branch existed)
    motif_filters: int = 0
    #: width (bp) of the motif branch's filters: room for a whole JASPAR matrix, not only ``kernel`` bp of it
    motif_width: int = 24
    #: central stretch of the input (bp) the motif branch scans: the labelled window and some flank
    motif_pool: int = 400
    #: a second best score per filter over the placements whose centre lies in the central ``motif_core`` bp (the
    #: labelled window), beside the best over ``motif_pool``: a site in the window and one in its flank no longer
    #: score alike (docs/bulk.md, ablation). 0 = none (model files written before this feature)
    motif_core: int = 0
    #: units of a hidden ReLU layer between the motif branch's scores and the TFs' logits (the scores, their products
    #: with the accessibility and the accessibility itself go in); 0 = one linear layer (model files written before
    #: this feature)
    motif_hidden: int = 0
    #: hinge points of a piecewise-linear read of each motif score: beside the score ``z`` (≈ 0 without a site, several
    #: units for one) the branch also sees ``relu(z - k)`` for every ``k``, so a strong site can count more than
    #: linearly (docs/bulk.md, ablation). () = the score alone (model files written before this feature)
    motif_knots: tuple[float, ...] = ()

    @classmethod
    def preset(cls, name: str) -> ArchConfig:
        """``full`` = scFAN (160/240/240 filters, dense 919); ``small`` = a CPU-test variant (32/48/48, dense 64);
        both with the motif branch (32 / 16 filters of 24 bp over the central 400 bp, and over the central 200 bp)."""
        if name == "full":
            return cls(motif_filters=32, motif_core=200, motif_knots=DEFAULT_MOTIF_KNOTS)
        if name == "small":
            return cls(filters=(32, 48, 48), dense=64, motif_filters=16, motif_core=200,
                       motif_knots=DEFAULT_MOTIF_KNOTS)
        raise ValueError(f"unknown architecture {name!r}; expected 'small' or 'full'")

    @classmethod
    def from_dict(cls, d: dict) -> ArchConfig:
        return cls(filters=tuple(d["filters"]), kernel=int(d["kernel"]), pool=int(d["pool"]),
                   dense=int(d["dense"]), dropout=tuple(d["dropout"]), motif_filters=int(d.get("motif_filters", 0)),
                   motif_width=int(d.get("motif_width", 24)), motif_pool=int(d.get("motif_pool", 400)),
                   motif_core=int(d.get("motif_core", 0)), motif_hidden=int(d.get("motif_hidden", 0)),
                   motif_knots=tuple(float(k) for k in d.get("motif_knots", ())))


def flat_length(length: int, arch: ArchConfig) -> int:
    """Sequence length left after the three convolutions and two poolings."""
    n = length
    for i in range(3):
        n = n - arch.kernel + 1
        if i < 2:
            n //= arch.pool
    if n <= 0:
        raise ValueError(f"input length {length} is too short for kernel {arch.kernel} / pool {arch.pool}")
    return n


def core_placements(pool: int, width: int, core: int) -> int | None:
    """First filter placement (of ``pool - width + 1``) whose centre lies in the central ``core`` bp of a ``pool``-bp
    stretch; the core placements are those from it to the same distance before the last. None when ``core`` is 0."""
    if core <= 0:
        return None
    n = pool - width + 1
    lo = max(0, (pool - min(core, pool)) // 2 - width // 2)
    return min(lo, (n - 1) // 2)


class MotifBranch(nn.Module):
    """Strand-symmetric motif scanners over the centre of the input, added to scFANet's logits.

    ``n_filters`` filters of ``width`` bp scan the DNA channels of the central ``pool`` bp on both strands (the same
    weights on the sequence and on its reverse complement); each filter's best score there (as a z-score, see
    :meth:`forward`), with ``core`` > 0 also its best score over the placements centred in the central ``core`` bp,
    and,
    for models with tracks, that score times the mean accessibility of the same stretch, go through one linear layer
    to the TFs' logits. This gives the network a direct "motif in the window, and open" path that scFAN's
    flatten-and-dense head has to learn position by position, which it fails to do from the few dozen peaks per TF
    of the simulator's test preset (docs/bulk.md, ablation). The output layer starts at zero, so an untrained branch
    leaves the network's predictions unchanged; it learns at ``motif_lr_mult`` times the network's learning rate
    (:class:`~scfan.bulk.train_config.TrainConfig`).
    """

    def __init__(self, n_channels: int, length: int, n_tasks: int, n_filters: int, width: int, pool: int,
                 core: int = 0, hidden: int = 0, knots: Sequence[float] = ()):
        super().__init__()
        pool = min(pool, length)
        pool -= (length - pool) % 2  # a centred stretch, so the branch is reverse-complement symmetric
        width = min(width, pool)
        self.lo, self.hi = (length - pool) // 2, (length - pool) // 2 + pool
        self.uses_tracks = n_channels > 4
        self.conv = nn.Conv1d(4, n_filters, width)
        #: placements ``core_lo .. n_placements - core_lo - 1`` (a set symmetric about the middle, so both strands
        #: see the same stretch) have their centre in the central ``core`` bp; None without a core score
        self.core_lo = core_placements(pool, width, core)
        n_scores = 1 if self.core_lo is None else 2
        self.knots = tuple(float(k) for k in knots)
        n_in = n_filters * n_scores * (1 + len(self.knots)) * (2 if self.uses_tracks else 1)
        self.hidden = hidden
        if hidden > 0:
            n_in += 1 if self.uses_tracks else 0
            self.out = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_tasks))
            last = self.out[2]
        else:
            self.out = last = nn.Linear(n_in, n_tasks)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        # a background stretch's best z-score over its 2 * (pool - width + 1) placements is about this
        self._expected_max = math.sqrt(2 * math.log(2 * (pool - width + 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dna = x[:, :4, self.lo : self.hi]
        fwd, rev = self.conv(dna), self.conv(dna.flip(1).flip(-1))
        best = torch.maximum(fwd.amax(-1), rev.amax(-1))
        if self.core_lo is not None:
            a, b = self.core_lo, fwd.shape[-1] - self.core_lo
            best = torch.cat([best, torch.maximum(fwd[..., a:b].amax(-1), rev[..., a:b].amax(-1))], dim=1)
        # standardised with each filter's own mean and spread on uniform random sequence (computed from the weights,
        # so nothing depends on the batch, and nothing is left to fold at inference), minus the expected background
        # maximum: about 0 for a stretch without the motif, several units for a site
        mean, sd = motif_standardisation(self.conv.weight, self.conv.bias)
        n_scores = best.shape[1] // mean.shape[0]
        z = (best - mean.repeat(n_scores)) / sd.repeat(n_scores) - self._expected_max
        acc = x[:, 4, self.lo : self.hi].mean(-1, keepdim=True) if self.uses_tracks else None
        return self.out(motif_features(z, acc, self.knots, self.hidden > 0))


class ScFANet(nn.Module):
    """Conv→BN→ReLU→MaxPool→Dropout ×2, Conv→BN→ReLU→Dropout, Dense→ReLU, Dense (logits; sigmoid at prediction),
    plus the :class:`MotifBranch`'s logits when ``arch.motif_filters`` > 0.

    The layers run max-pool *before* ReLU: both are monotone, so ``relu(maxpool(x)) == maxpool(relu(x))`` exactly
    (forward and gradient), and the ReLU then touches a quarter of the values; neither has parameters, so the order
    leaves the model file's keys as they were (with :class:`~scfan.inference.ChannelsLastNet`, 1.1-1.2x the CPU
    prediction rate: ``benchmarks/results/bench_sc_infer.md``)."""

    def __init__(self, n_channels: int, length: int, n_tasks: int, arch: ArchConfig = ArchConfig()):
        super().__init__()
        f1, f2, f3 = arch.filters
        d1, d2, d3 = arch.dropout
        k, p = arch.kernel, arch.pool
        self.body = nn.Sequential(
            nn.Conv1d(n_channels, f1, k), nn.BatchNorm1d(f1), nn.MaxPool1d(p), nn.ReLU(), nn.Dropout(d1),
            nn.Conv1d(f1, f2, k), nn.BatchNorm1d(f2), nn.MaxPool1d(p), nn.ReLU(), nn.Dropout(d2),
            nn.Conv1d(f2, f3, k), nn.BatchNorm1d(f3), nn.ReLU(), nn.Dropout(d3),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(f3 * flat_length(length, arch), arch.dense), nn.ReLU(),
                                  nn.Linear(arch.dense, n_tasks))
        self.motif = (MotifBranch(n_channels, length, n_tasks, arch.motif_filters, arch.motif_width, arch.motif_pool,
                                  arch.motif_core, arch.motif_hidden, arch.motif_knots)
                      if arch.motif_filters > 0 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(x))
        return out if self.motif is None else out + self.motif(x)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to feed a trained model (the non-weight part of ``model.pt``)."""

    arch: ArchConfig
    tf_names: tuple[str, ...]
    channels: tuple[str, ...]
    window: int
    context: int
    track_norm: TrackNorm | None
    package_version: str = __version__
    train_config: dict = field(default_factory=dict)
    motifs: dict = field(default_factory=dict)

    @property
    def uses_tracks(self) -> bool:
        return len(self.channels) > len(SEQ_CHANNELS)


def build_model(spec: ModelSpec) -> ScFANet:
    return ScFANet(len(spec.channels), spec.context, len(spec.tf_names), spec.arch)


def save_model(path: str | Path, model: nn.Module, spec: ModelSpec) -> None:
    """Write ``model.pt`` as a plain dict of tensors and JSON-like values (loadable with ``weights_only=True``)."""
    payload = {
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "arch": asdict(spec.arch),
        "tf_names": list(spec.tf_names),
        "channels": list(spec.channels),
        "window": spec.window,
        "context": spec.context,
        "track_norm": spec.track_norm.to_dict() if spec.track_norm else None,
        "package_version": spec.package_version,
        "train_config": spec.train_config,
        "motifs": dict(spec.motifs),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[ScFANet, ModelSpec]:
    """Load ``model.pt`` safely (``weights_only=True``); returns the module in eval mode and its spec."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "model file not found")
    try:
        d = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad or pickled-module file
        raise InputFileError(p, f"cannot load as an scFAN model file ({exc.__class__.__name__})") from exc
    if not isinstance(d, dict) or "state_dict" not in d:
        raise InputFileError(p, "not an scFAN model file (expected a dict with 'state_dict')")
    if d.get("format_version") != FORMAT_VERSION:
        raise InputFileError(p, f"model file format version {d.get('format_version')!r}; this scfan "
                             f"({__version__}) reads version {FORMAT_VERSION}: retrain with `scfan bulk train`")
    spec = ModelSpec(
        arch=ArchConfig.from_dict(d["arch"]), tf_names=tuple(d["tf_names"]), channels=tuple(d["channels"]),
        window=int(d["window"]), context=int(d["context"]),
        track_norm=TrackNorm.from_dict(d["track_norm"]) if d.get("track_norm") else None,
        package_version=d.get("package_version", "unknown"), train_config=d.get("train_config", {}),
        motifs=d.get("motifs", {}),
    )
    model = build_model(spec)
    model.load_state_dict(d["state_dict"])
    return model.to(device).eval(), spec


def channel_names(use_tracks: bool) -> tuple[str, ...]:
    return SEQ_CHANNELS + TRACK_CHANNELS if use_tracks else SEQ_CHANNELS
