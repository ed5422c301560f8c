"""Bulk stage: labelled windows, scFANet training, evaluation against a PWM baseline, and bulk prediction.

The per-cell stage uses :func:`load_model`, :func:`encode_inputs` and :func:`predict_batches`.
"""

from scfan.bulk.model import (
    ArchConfig,
    ModelSpec,
    ScFANet,
    encode_inputs,
    load_model,
    predict_batches,
    reverse_complement_inputs,
    save_model,
)

__all__ = ["ArchConfig", "ModelSpec", "ScFANet", "encode_inputs", "load_model", "predict_batches",
           "reverse_complement_inputs", "save_model"]
