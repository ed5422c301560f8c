"""Bulk stage: labelled windows, scFANet training, evaluation against a PWM baseline, and bulk prediction.

The model and its file (:func:`load_model`, :func:`save_model`) are in :mod:`scfan.bulk.model`; input encoding and
batched prediction (``encode_inputs``, ``predict_batches``), shared with per-cell inference, in
:mod:`scfan.inference`. The names here are imported from :mod:`scfan.bulk.model` on first use, so that importing a
torch-free module of this package (the CLI reads :mod:`scfan.bulk.train_config` at start-up) does not load torch.
"""

from __future__ import annotations

import importlib

__all__ = ["ArchConfig", "ModelSpec", "ScFANet", "load_model", "save_model"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("scfan.bulk.model"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
