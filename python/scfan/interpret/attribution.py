"""Attributions of a trained scFANet with tangermeme: DeepLIFT/SHAP against dinucleotide-shuffled references.

tangermeme's ``deep_lift_shap`` needs every nonlinearity of the explained model to be an ``nn.Module`` it has a rule
for (ReLU, MaxPool1d, ...). scFANet's convolutional network is built that way; its motif branch is not (a functional
``amax`` over placements and over the two strands, and ``relu(z - k)`` hinges written inline), so DeepLIFT would treat
those as linear and the attributions would not add up (convergence deltas of 100 % and more). :class:`AttributionNet`
is the model rewritten for the library — same numbers, different modules: the branch's two-strand scan becomes one
convolution with forward and reverse-complement filters followed by ``nn.MaxPool1d`` (over the placements, then over
the two strands), its hinges ``nn.ReLU`` modules. Forward and reverse-complement predictions are averaged inside the
module, as at inference, so the attributions explain the number scFAN-nf reports (as a logit).

What is attributed:
- ``part="network"``: scFAN's convolutional network alone (the branch switched off). Its first-layer filters are
  seeded with the TFs' JASPAR matrices (8 bp of each) and then trained, so a motif found here is learned, not planted.
- ``part="model"``: the whole model, the branch included. The branch's filters are the TFs' JASPAR matrices (frozen by
  default), so finding them again there is circular: the report says which one it shows.

The accessibility tracks are held fixed between input and references (tangermeme's ``args``), so the DNA attributions
answer "which bases"; how much of a call rests on accessibility is :func:`sequence_accessibility_split`.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from scfan.inference import copy_module, motif_standardisation, reverse_complement_inputs

log = logging.getLogger(__name__)

PARTS = ("network", "model")


class _Hinges(nn.Module):
    """``cat([z, relu(z - k1), relu(z - k2), ...])`` with one ``nn.ReLU`` module per knot (DeepLIFT's rescale rule)."""

    def __init__(self, knots: tuple[float, ...]):
        super().__init__()
        self.knots = tuple(float(k) for k in knots)
        self.relus = nn.ModuleList(nn.ReLU() for _ in self.knots)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([z] + [r(z - k) for r, k in zip(self.relus, self.knots, strict=True)], dim=1)


class _BranchModules(nn.Module):
    """:class:`~scfan.bulk.model.MotifBranch` with its maxima as ``nn.MaxPool1d`` and its hinges as ``nn.ReLU``."""

    def __init__(self, branch: nn.Module):
        super().__init__()
        w, b = branch.conv.weight.detach(), branch.conv.bias.detach()
        n_f, _, width = w.shape
        self.n_filters, self.lo, self.hi, self.uses_tracks = n_f, branch.lo, branch.hi, branch.uses_tracks
        self.conv = nn.Conv1d(4, 2 * n_f, width)
        with torch.no_grad():
            self.conv.weight.copy_(torch.cat([w, w.flip(1).flip(-1)]))  # reverse-complement filters scan the + strand
            self.conv.bias.copy_(torch.cat([b, b]))
        n_place = (self.hi - self.lo) - width + 1
        self.best = nn.MaxPool1d(n_place)
        self.core_lo = branch.core_lo
        self.core = None if self.core_lo is None else nn.MaxPool1d(n_place - 2 * self.core_lo)
        self.strand = nn.MaxPool1d(2)
        mean, sd = motif_standardisation(w, b)
        n_scores = 1 if self.core_lo is None else 2
        self.register_buffer("mean", mean.repeat(n_scores))
        self.register_buffer("sd", sd.repeat(n_scores))
        self.expected_max = float(branch._expected_max)
        self.hinges = _Hinges(tuple(getattr(branch, "knots", ())))
        self.hidden = int(getattr(branch, "hidden", 0))
        self.out = copy_module(branch.out)

    def _both_strands(self, s: torch.Tensor) -> torch.Tensor:
        """``(N, 2F, 1)`` best scores per strand → ``(N, F)`` best of the two strands."""
        n = s.shape[0]
        pairs = s.reshape(n, 2, self.n_filters).transpose(1, 2)  # (N, F, 2)
        return self.strand(pairs).reshape(n, self.n_filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.conv(x[:, :4, self.lo : self.hi])
        best = [self._both_strands(self.best(scores))]
        if self.core is not None:
            best.append(self._both_strands(self.core(scores[..., self.core_lo : scores.shape[-1] - self.core_lo])))
        z = (torch.cat(best, dim=1) - self.mean) / self.sd - self.expected_max
        feats = self.hinges(z)
        if self.uses_tracks:
            acc = x[:, 4, self.lo : self.hi].mean(-1, keepdim=True)
            feats = torch.cat([feats, feats * acc] + ([acc] if self.hidden > 0 else []), dim=1)
        return self.out(feats)


class AttributionNet(nn.Module):
    """scFANet as tangermeme explains it: ``forward(dna (N, 4, L)[, tracks (N, 2, L)])`` → logits ``(N, n_tfs)``,
    the mean of the forward and reverse-complement strands (see the module docstring for ``part``)."""

    def __init__(self, net: nn.Module, part: str = "network"):
        super().__init__()
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        self.body, self.head = copy_module(net.body), copy_module(net.head)
        branch = getattr(net, "motif", None)
        self.branch = _BranchModules(branch) if part == "model" and branch is not None else None
        self.part = part
        self.eval()

    def forward(self, dna: torch.Tensor, tracks: torch.Tensor | None = None) -> torch.Tensor:
        x = dna if tracks is None else torch.cat([dna, tracks], dim=1)
        out = 0.5 * (self.head(self.body(x)) + self.head(self.body(reverse_complement_inputs(x))))
        return out if self.branch is None else out + self.branch(x)  # the branch is strand-symmetric by construction


def reference_logits(net: nn.Module, x: torch.Tensor, part: str) -> torch.Tensor:
    """The logits :class:`AttributionNet` explains, computed with the trained modules themselves (a check)."""
    with torch.no_grad():
        f = net.head(net.body(x)) + net.head(net.body(reverse_complement_inputs(x)))
        f = 0.5 * f
        if part == "model" and getattr(net, "motif", None) is not None:
            f = f + net.motif(x)
    return f


@dataclass(frozen=True)
class AttributionConfig:
    n_shuffles: int = 10
    batch_size: int = 128
    seed: int = 0
    #: ``cpu`` or ``cuda`` (resolved by the caller); attributions come back on the CPU either way
    device: str = "cpu"


def deep_lift_shap(anet: AttributionNet, dna: torch.Tensor, tracks: torch.Tensor | None, target: int,
                   cfg: AttributionConfig = AttributionConfig()) -> tuple[np.ndarray, float]:
    """Hypothetical DeepLIFT/SHAP contributions ``(N, 4, L)`` of ``target``'s logit (tangermeme), and the largest
    convergence delta relative to the mean |output − reference| (near 0 when every nonlinearity had its rule)."""
    from tangermeme.deep_lift_shap import deep_lift_shap as _dls

    args = None if tracks is None else (tracks,)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hyp = _dls(anet, dna, args=args, target=target, n_shuffles=cfg.n_shuffles, hypothetical=True,
                   random_state=cfg.seed, device=cfg.device, batch_size=cfg.batch_size, warning_threshold=math.inf)
    rel = 0.0
    for w in caught:
        msg = str(w.message)
        if "Convergence deltas are" in msg:
            rel = max(rel, float(msg.split("Convergence deltas are ")[1].split("%")[0]) / 100)
        elif not issubclass(w.category, (DeprecationWarning, FutureWarning)):
            log.debug("tangermeme: %s", msg)
    return hyp.numpy().astype(np.float32), rel


def closed_tracks(tracks: torch.Tensor, track_norm) -> torch.Tensor:
    """The same windows with no Tn5 insertion (closed chromatin, in the model's units); mappability kept."""
    out = tracks.clone()
    zero = float(track_norm.apply(np.zeros(1, dtype=np.float32))[0]) if track_norm is not None else 0.0
    out[:, 0] = zero
    return out


def sequence_accessibility_split(anet: AttributionNet, dna: torch.Tensor, tracks: torch.Tensor, target: int,
                                 track_norm, n_shuffles: int = 10, seed: int = 0,
                                 device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """How much of each window's logit rests on its sequence and how much on its accessibility: the Shapley values of
    the two inputs against the reference (dinucleotide-shuffled DNA, no insertions), averaged over the shuffles.

    With ``f(s, a)`` the logit, ``s'`` a shuffle and ``a0`` closed chromatin: ``φ_seq = ½[f(s,a) − f(s',a) + f(s,a0) −
    f(s',a0)]``, ``φ_acc = ½[f(s,a) − f(s,a0) + f(s',a) − f(s',a0)]``; ``φ_seq + φ_acc = f(s,a) − f(s',a0)``.
    Returns ``(φ_seq, φ_acc)``, one value per window."""
    from tangermeme.ersatz import dinucleotide_shuffle

    a0 = closed_tracks(tracks, track_norm)
    shuf = dinucleotide_shuffle(dna, n=n_shuffles, random_state=seed)  # (N, n, 4, L), drawn on the CPU
    anet = anet.to(device)
    dna, tracks, a0 = dna.to(device), tracks.to(device), a0.to(device)
    phi_s = np.zeros(len(dna))
    phi_a = np.zeros(len(dna))
    with torch.no_grad():
        f_sa = anet(dna, tracks)[:, target]
        f_sa0 = anet(dna, a0)[:, target]
        for k in range(n_shuffles):
            s2 = shuf[:, k].to(device=device, dtype=dna.dtype)
            f_s2a = anet(s2, tracks)[:, target]
            f_s2a0 = anet(s2, a0)[:, target]
            phi_s += (0.5 * (f_sa - f_s2a + f_sa0 - f_s2a0)).cpu().numpy() / n_shuffles
            phi_a += (0.5 * (f_sa - f_sa0 + f_s2a - f_s2a0)).cpu().numpy() / n_shuffles
    anet.to("cpu")
    return phi_s, phi_a


def accessibility_share(phi_seq: np.ndarray, phi_acc: np.ndarray) -> float:
    """The accessibility's share of the calls: Σ|φ_acc| / (Σ|φ_seq| + Σ|φ_acc|) (0 for a sequence-only model)."""
    tot = float(np.abs(phi_seq).sum() + np.abs(phi_acc).sum())
    return float(np.abs(phi_acc).sum() / tot) if tot > 0 else 0.0
