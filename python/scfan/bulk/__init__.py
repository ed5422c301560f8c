"""Bulk stage: labelled windows, scFANet training, evaluation against a PWM baseline, and bulk prediction.

The per-cell stage uses :func:`load_model`, :func:`encode_inputs` and :func:`predict_batches`. They are imported
from :mod:`scfan.bulk.model` on first use, so that importing a torch-free module of this package (the CLI reads
:mod:`scfan.bulk.train_config` at start-up) does not load torch.
"""

from __future__ import annotations

import importlib

__all__ = ["ArchConfig", "ModelSpec", "ScFANet", "encode_inputs", "load_model", "predict_batches",
           "reverse_complement_inputs", "save_model"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("scfan.bulk.model"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
