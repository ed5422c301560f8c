"""``TrainConfig``: the parameters of ``scfan bulk train`` and their defaults, the one source of truth.

The CLI options, the pipeline's ``params`` (nextflow.config) and nextflow_schema.json take their defaults from here
(a unit test holds them equal); the ``gpu`` profile (conf/gpu.config) overrides them for the full-size model. Kept
free of torch so the CLI can read the defaults cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

from scfan.errors import ScfanError


@dataclass(frozen=True)
class TrainConfig:
    """Parameters of ``scfan bulk train`` (written to ``train.json`` and into the model file)."""

    arch: str = "small"
    epochs: int = 20
    patience: int = 3
    batch_size: int = 100
    lr: float = 1e-3
    #: the motif branch's output layer learns at this multiple of ``lr`` (docs/bulk.md, ablation: 1 → 10 lifted
    #: test AUPRC 0.30 → 0.40 on the test preset)
    motif_lr_mult: float = 10.0
    #: decoupled weight decay (AdamW; 0 = plain Adam)
    weight_decay: float = 0.0
    #: negatives per positive, resampled every epoch (docs/bulk.md, bench-preset ablation: 1 → 2 lifted test AUPRC
    #: 0.351 → 0.361 and AUROC 0.940 → 0.947)
    neg_ratio: float = 2.0
    #: ``random``: all negatives uniform over the pool; ``hard``: a ``hard_frac`` share of them are open-chromatin
    #: windows bound by no TF (see :func:`scfan.bulk.data.open_negative_pool`). Uniform negatives rank the test
    #: chromosomes better (docs/bulk.md, bench-preset ablation: AUPRC 0.364 → 0.372 over three seeds)
    sampler: str = "random"
    hard_frac: float = 0.5
    #: a window is "open" for the sampler when its mean accessibility is above this quantile of the training windows
    open_quantile: float = 0.9
    #: seed first-layer filters and the motif branch with the TFs' JASPAR matrices (see
    #: :func:`scfan.bulk.train.motif_initialise`); with the motif branch this is what lifts test AUPRC above the PWM
    #: scan's on the test preset (docs/bulk.md, ablation)
    motif_init: bool = True
    #: keep the motif branch's JASPAR-seeded filters fixed during training (only with ``motif_init``)
    freeze_motif_filters: bool = True
    #: weight of a positive label in the loss (1 = unweighted)
    pos_weight: float = 1.0
    #: dropout after the three convolutions; ``None`` keeps the architecture's (0.2, 0.2, 0.5)
    dropout: tuple[float, float, float] | None = None
    #: units of the motif branch's hidden layer; ``None`` keeps the architecture's (``ArchConfig.motif_hidden``)
    motif_hidden: int | None = None
    #: hinge points of the motif branch's piecewise-linear score read; ``None`` keeps the architecture's
    #: (``ArchConfig.motif_knots``), ``()`` reads the scores linearly
    motif_knots: tuple[float, ...] | None = None
    #: exponential moving average of the weights (decay per optimiser step; 0 = off): validation, model selection
    #: and the written model use the average (docs/bulk.md)
    ema_decay: float = 0.0
    #: bulk → cell domain shift: train on the ATAC track thinned, per training window, to a random share of its
    #: insertions drawn log-uniform in [``thin_min_keep``, 1] (the depth of a pooled neighbourhood down to this
    #: fraction of the bulk's; :func:`scfan.bulk.data.thin_accessibility`). 1 (or ``None``, model files written
    #: before it existed) = off; validation is never thinned. Needs an ATAC track of insertion counts. Test preset
    #: (bench_domain_shift.md): per-cell AUROC on a cell's own track 0.787 → 0.900; bench preset bulk AUPRC −0.01
    thin_min_keep: float | None = 0.01
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
        from scfan.bulk.model import ArchConfig  # torch is imported only when a config is built

        ArchConfig.preset(self.arch)
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.neg_ratio < 0 or self.jitter < 0:
            raise ScfanError("epochs and batch-size must be >= 1, lr > 0, neg-ratio and jitter >= 0")
        if self.motif_lr_mult <= 0:
            raise ScfanError("--motif-lr-mult must be > 0")
        if self.weight_decay < 0:
            raise ScfanError("--weight-decay must be >= 0")
        if not 0 <= self.ema_decay < 1:
            raise ScfanError("--ema-decay must be in [0, 1)")
        if self.motif_hidden is not None and self.motif_hidden < 0:
            raise ScfanError("--motif-hidden must be >= 0")
        if self.thin_min_keep is not None and not 0 < self.thin_min_keep <= 1:
            raise ScfanError(f"--thin-min-keep {self.thin_min_keep:g}: expected a fraction in (0, 1]")
        if self.pos_weight <= 0:
            raise ScfanError("--pos-weight must be > 0")
        if self.sampler not in ("hard", "random"):
            raise ScfanError(f"--sampler {self.sampler!r}: expected hard or random")
        if not (0 <= self.hard_frac <= 1 and 0 <= self.open_quantile < 1):
            raise ScfanError("--hard-frac must be in [0, 1] and --open-quantile in [0, 1)")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ScfanError(f"--device {self.device!r}: expected auto, cpu or cuda")
