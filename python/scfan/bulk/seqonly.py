"""Sequence-only mode: scFANet on DNA alone, trained on ChIP peak sequences against dinucleotide-shuffled negatives."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn

from scfan.bulk.inputs import codes_to_onehot, encode_codes
from scfan.bulk.model import ArchConfig, ScFANet
from scfan.bulk.train import deterministic_cpu
from scfan.errors import InputFileError
from scfan.inference import predict_batches, reverse_complement_inputs

log = logging.getLogger(__name__)


def read_fasta_records(path: str | Path) -> list[tuple[str, str]]:
    """``(name, sequence)`` of every record of a small FASTA (uppercased)."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "FASTA not found")
    recs: list[tuple[str, list[str]]] = []
    with open(p) as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                recs.append((line[1:].split()[0], []))
            elif not recs:
                raise InputFileError(p, "sequence before the first '>' header", line=n)
            else:
                recs[-1][1].append(line.upper())
    if not recs:
        raise InputFileError(p, "no FASTA records")
    return [(name, "".join(parts)) for name, parts in recs]


def dinucleotide_shuffle(seq: str, rng: np.random.Generator) -> str:
    """A random sequence with exactly the dinucleotide counts of ``seq`` (Altschul–Erickson Euler-path method)."""
    if len(seq) <= 2:
        return seq
    letters = sorted(set(seq))
    edges: dict[str, list[str]] = {a: [] for a in letters}
    for a, b in zip(seq[:-1], seq[1:], strict=True):
        edges[a].append(b)
    last = seq[-1]
    # Wilson's algorithm: a random arborescence of "last exits" pointing towards the final letter.
    in_tree, last_exit = {last}, {}
    for v in letters:
        u = v
        while u not in in_tree:
            last_exit[u] = edges[u][rng.integers(len(edges[u]))]
            u = last_exit[u]
        u = v
        while u not in in_tree:
            in_tree.add(u)
            u = last_exit[u]
    order: dict[str, list[str]] = {}
    for v in letters:
        out = list(edges[v])
        if v in last_exit:
            out.remove(last_exit[v])
        rng.shuffle(out)
        order[v] = out + ([last_exit[v]] if v in last_exit else [])
    res, u, pos = [seq[0]], seq[0], dict.fromkeys(letters, 0)
    for _ in range(len(seq) - 1):
        nxt = order[u][pos[u]]
        pos[u] += 1
        res.append(nxt)
        u = nxt
    return "".join(res)


@dataclass(frozen=True)
class SeqOnlyConfig:
    """Sequence-only experiment: held-out fraction, negatives per positive, training length."""

    arch: str = "small"
    epochs: int = 12
    batch_size: int = 64
    lr: float = 1e-3
    test_fraction: float = 0.2
    shuffles_per_positive: int = 1
    seed: int = 0
    num_threads: int | None = None


def sequence_only_experiment(fasta: str | Path, cfg: SeqOnlyConfig = SeqOnlyConfig(),
                             model_out: str | Path | None = None, tf: str = "TF", motif: str | None = None) -> dict:
    """Train on peaks vs their dinucleotide shuffles; report held-out AUROC / AUPRC.

    With ``model_out``, the trained network is written as a sequence-only model file (one output named ``tf``,
    ``motif`` its JASPAR ID), readable by ``load_model`` and explainable by ``scfan bulk interpret --fasta``.

    Positives are split into train/test before shuffling, so no test negative is derived from a training peak.
    """
    rng = np.random.default_rng(cfg.seed)
    recs = read_fasta_records(fasta)
    lengths = {len(s) for _, s in recs}
    if len(lengths) != 1:
        raise InputFileError(fasta, f"records have different lengths ({sorted(lengths)[:5]}); expected one length")
    L = lengths.pop()
    seqs = [s for _, s in recs]
    perm = rng.permutation(len(seqs))
    n_test = max(1, int(round(cfg.test_fraction * len(seqs))))
    split = {"test": perm[:n_test], "train": perm[n_test:]}

    def build(ix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = [seqs[i] for i in ix]
        neg = [dinucleotide_shuffle(s, rng) for s in pos for _ in range(cfg.shuffles_per_positive)]
        codes = np.stack([encode_codes(s) for s in pos + neg])
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))].astype(np.float32)
        return codes_to_onehot(codes), y

    x_tr, y_tr = build(split["train"])
    x_te, y_te = build(split["test"])
    arch = ArchConfig.preset(cfg.arch)
    with deterministic_cpu(cfg.num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = ScFANet(4, L, 1, arch)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        loss_fn = nn.BCEWithLogitsLoss()
        xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)[:, None]
        for epoch in range(cfg.epochs):
            model.train()
            order = rng.permutation(len(xt))
            total = 0.0
            for i in range(0, len(order), cfg.batch_size):
                b = torch.from_numpy(order[i : i + cfg.batch_size])
                xb = xt[b]
                flip = torch.from_numpy(rng.random(len(b)) < 0.5)
                xb[flip] = reverse_complement_inputs(xb[flip])
                loss = loss_fn(model(xb), yt[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(b)
            log.info("sequence-only epoch %d: train loss %.4f", epoch + 1, total / len(xt))
        p = predict_batches(model, x_te, 256)[:, 0]
    if model_out is not None:
        from scfan.bulk.model import SEQ_CHANNELS, ModelSpec, save_model

        spec = ModelSpec(arch=arch, tf_names=(tf,), channels=SEQ_CHANNELS, window=L, context=L, track_norm=None,
                         train_config={"sequence_only_experiment": str(fasta), "epochs": cfg.epochs, "seed": cfg.seed},
                         motifs={tf: motif} if motif else {})
        save_model(model_out, model, spec)
    return {"auroc": float(roc_auc_score(y_te, p)), "auprc": float(average_precision_score(y_te, p)),
            "n_train": int(len(y_tr)), "n_test": int(len(y_te)), "length": L}
