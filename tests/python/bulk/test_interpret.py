"""Interpretation (scfan bulk interpret): attributions that add up, the planted motif found again, the real CTCF motif
found by a sequence-only model of real GM12878 CTCF peaks, and clear errors for bad requests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from scfan.bulk.model import ArchConfig, ModelSpec, ScFANet, channel_names, save_model
from scfan.interpret.attribution import (
    AttributionNet,
    deep_lift_shap,
    reference_logits,
    sequence_accessibility_split,
)
from scfan.interpret.motifs import filter_ppms, jaspar_library, match_to_jaspar, relation
from scfan.tracks import TrackNorm

CTCF = "MA0139.2"


def _net(tracks: bool, hidden: int = 0, seed: int = 0) -> ScFANet:
    torch.manual_seed(seed)
    arch = ArchConfig(filters=(8, 8, 8), dense=16, motif_filters=4, motif_width=12, motif_pool=120, motif_core=60,
                      motif_hidden=hidden, motif_knots=(0.5, 2.0))
    net = ScFANet(6 if tracks else 4, 200, 3, arch).eval()
    with torch.no_grad():  # the branch's output layer starts at zero: give it weight, so it counts
        for p in net.motif.out.parameters():
            p.normal_(0, 0.5)
    return net


def _inputs(n: int, tracks: bool, seed: int = 1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    dna = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=(n, 200))].transpose(0, 2, 1)
    if not tracks:
        return torch.from_numpy(np.ascontiguousarray(dna))
    acc = rng.gamma(1.0, 1.0, size=(n, 1, 200)).astype(np.float32)
    mapp = np.ones((n, 1, 200), np.float32)
    return torch.from_numpy(np.concatenate([dna, acc, mapp], axis=1))


@pytest.mark.parametrize("tracks,hidden", [(True, 0), (True, 8), (False, 0)])
def test_attribution_net_gives_the_models_numbers_and_deeplift_adds_up(tracks, hidden):
    """The rewritten branch (MaxPool1d, ReLU modules) computes what the trained branch does, and DeepLIFT's
    attributions then sum to the logit differences (relative convergence delta ≈ 0) for the network and the model."""
    net = _net(tracks, hidden)
    x = _inputs(12, tracks)
    dna, tr = x[:, :4].contiguous(), (x[:, 4:].contiguous() if tracks else None)
    for part in ("network", "model"):
        anet = AttributionNet(net, part)
        with torch.no_grad():
            got = anet(dna, tr)
        np.testing.assert_allclose(got.numpy(), reference_logits(net, x, part).numpy(), atol=1e-5)
        hyp, rel = deep_lift_shap(anet, dna, tr, target=1)
        assert hyp.shape == tuple(dna.shape)
        assert rel < 1e-3, f"{part}: DeepLIFT convergence delta {rel:.1%} of the output differences"
    # the branch as written (functional max) is what DeepLIFT cannot explain: the wrapper is what makes it add up
    assert not torch.equal(AttributionNet(net, "model")(dna, tr), AttributionNet(net, "network")(dna, tr))


def test_sequence_and_accessibility_shares_add_up_to_the_difference_from_the_reference():
    net = _net(True)
    x = _inputs(10, True)
    dna, tr = x[:, :4].contiguous(), x[:, 4:].contiguous()
    anet = AttributionNet(net, "model")
    norm = TrackNorm(mean_per_base=0.5)
    ps, pa = sequence_accessibility_split(anet, dna, tr, 0, norm, n_shuffles=4, seed=3)
    from tangermeme.ersatz import dinucleotide_shuffle

    from scfan.interpret.attribution import closed_tracks

    a0 = closed_tracks(tr, norm)
    shuf = dinucleotide_shuffle(dna, n=4, random_state=3)
    with torch.no_grad():
        f = anet(dna, tr)[:, 0].numpy()
        ref = np.mean([anet(shuf[:, k].float(), a0)[:, 0].numpy() for k in range(4)], axis=0)
    np.testing.assert_allclose(ps + pa, f - ref, atol=1e-4)
    assert np.abs(pa).sum() > 0 and np.abs(ps).sum() > 0


def _plant(rng: np.random.Generator, n: int, length: int, ppm: np.ndarray, at: int) -> np.ndarray:
    codes = rng.integers(0, 4, size=(n, length))
    w = ppm.shape[1]
    for i in range(n):
        site = np.array([rng.choice(4, p=ppm[:, j] / ppm[:, j].sum()) for j in range(w)])
        if rng.random() < 0.5:
            site = 3 - site[::-1]
        pos = at + int(rng.integers(-20, 21))
        codes[i, pos : pos + w] = site
    return np.ascontiguousarray(np.eye(4, dtype=np.float32)[codes].transpose(0, 2, 1))


@pytest.mark.slow
def test_a_planted_ctcf_motif_is_found_again_and_matched_to_its_jaspar_matrix():
    """A model whose branch scans for CTCF (its filter set to the JASPAR log-odds) explains sequences with planted
    CTCF sites: TF-MoDISco finds the motif in the DeepLIFT attributions, and TOMTOM's best match is MA0139."""
    from scfan.bulk.pwm import jaspar_counts, log_odds
    from scfan.interpret.motifs import discover_motifs

    torch.manual_seed(0)
    arch = ArchConfig(filters=(8, 8, 8), dense=16, motif_filters=1, motif_width=15, motif_pool=200)
    net = ScFANet(4, 200, 1, arch).eval()
    counts = jaspar_counts(CTCF)
    with torch.no_grad():
        net.head[-1].weight.zero_()
        net.head[-1].bias.zero_()
        net.motif.conv.weight[0] = torch.from_numpy(log_odds(counts))
        net.motif.conv.bias.zero_()
        net.motif.out.weight.fill_(1.0)
    ppm = counts / counts.sum(axis=0)
    onehot = _plant(np.random.default_rng(4), 150, 200, ppm, 90)
    hyp, rel = deep_lift_shap(AttributionNet(net, "model"), torch.from_numpy(onehot), None, 0)
    assert rel < 1e-3
    motifs = discover_motifs(onehot, hyp)
    assert motifs, "TF-MoDISco found no motif"
    lib = jaspar_library()
    own = next(e for e in lib if e.matrix_id.split(".")[0] == "MA0139")
    best = match_to_jaspar([motifs[0].ppm], lib)[0][0]
    assert relation(best, own, "CTCF") in {"same_matrix", "same_tf"}, best
    assert best.q_value < 0.05


def test_first_layer_filter_analysis_reads_a_planted_filter_back():
    """scFAN's filter analysis: a first-layer filter set to a GATA-like 'AGATAA' gives that consensus back."""
    rng = np.random.default_rng(0)
    pattern = np.array([0, 2, 0, 3, 0, 0])  # A G A T A A
    onehot = _plant(rng, 60, 100, np.eye(4)[:, pattern] + 1e-3, 40)
    w = np.zeros((1, 4, 6), np.float32)
    w[0, pattern, np.arange(6)] = 1.0
    act = torch.nn.functional.conv1d(torch.from_numpy(onehot), torch.from_numpy(w)).numpy()
    ppm = filter_ppms(w, onehot, act, frac=0.99)[0]
    assert ppm is not None
    assert "".join("ACGT"[i] for i in ppm.argmax(0)) == "AGATAA"


def _scfan(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scfan", *map(str, args)], capture_output=True, text=True)


@pytest.mark.slow
def test_real_ctcf_peaks_sequence_only_model_learns_the_ctcf_motif(shared_data, tmp_path):
    """Real data: a sequence-only model of 500 GM12878 CTCF ChIP peaks (summit ± 100 bp) is explained with
    `bulk interpret --fasta`; its top discovered motif is CTCF's (JASPAR MA0139 or another CTCF matrix)."""
    fa = shared_data / "chip_sequences" / "ctcf_gm12878.fa"
    r = _scfan("bulk", "sequence-only", "--fasta", fa, "--tf", "CTCF", "--motif", CTCF, "--save-model", "--epochs",
               "8", "--threads", "2", "--outdir", tmp_path / "seq")
    assert r.returncode == 0, r.stderr
    r = _scfan("bulk", "interpret", "--model", tmp_path / "seq" / "model.pt", "--fasta", fa, "--central", "200",
               "--threads", "2", "--outdir", tmp_path / "interp")
    assert r.returncode == 0, r.stderr
    summary = pl.read_csv(tmp_path / "interp" / "summary.tsv", separator="\t")
    motifs = pl.read_csv(tmp_path / "interp" / "motifs.tsv", separator="\t")
    print(f"real GM12878 CTCF peaks, discovered motifs:\n{motifs}")
    for part in ("network", "model"):
        row = summary.filter(pl.col("part") == part).row(0, named=True)
        assert row["top_jaspar_name"].upper() == "CTCF" and row["top_q_value"] < 0.05, row
        assert row["own_motif_recovered"] and row["accessibility_share"] == 0.0
    assert (tmp_path / "interp" / "logos" / "CTCF_network_pattern_0.png").stat().st_size > 1000
    npz = np.load(tmp_path / "interp" / "attributions.npz")
    assert npz["CTCF/network/hypothetical"].shape[1:] == (4, 200)


@pytest.fixture()
def tiny_model(tmp_path) -> Path:
    net = _net(False)
    spec = ModelSpec(arch=ArchConfig(filters=(8, 8, 8), dense=16, motif_filters=4, motif_width=12, motif_pool=120,
                                     motif_core=60, motif_knots=(0.5, 2.0)),
                     tf_names=("CTCF", "GATA1", "SPI1"), channels=channel_names(False), window=200, context=200,
                     track_norm=None)
    p = tmp_path / "model.pt"
    save_model(p, net, spec)
    return p


def _fasta(path: Path, n: int, length: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.write_text("".join(f">s{i}\n{''.join(rng.choice(list('ACGT'), size=length))}\n" for i in range(n)))
    return path


@pytest.mark.parametrize("extra,expect", [
    (["--tfs", "NOPE"], "TF 'NOPE' is not in the model (its TFs: CTCF, GATA1, SPI1)"),
    (["--parts", "network,head"], "--parts: 'head' is not one of network, model"),
    (["--n-windows", "0"], "--n-windows must be at least 1"),
])
def test_bad_requests_exit_2_with_one_line_and_write_nothing(tiny_model, tmp_path, extra, expect):
    fa = _fasta(tmp_path / "seqs.fa", 40, 200)
    out = tmp_path / "out"
    r = _scfan("bulk", "interpret", "--model", tiny_model, "--fasta", fa, *extra, "--outdir", out)
    assert r.returncode == 2, r.stderr
    assert expect in r.stderr and len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1, r.stderr
    assert not out.exists()


def test_a_record_of_the_wrong_length_is_named(tiny_model, tmp_path):
    fa = _fasta(tmp_path / "seqs.fa", 5, 200)
    fa.write_text(fa.read_text() + ">short_one\nACGT\n")
    r = _scfan("bulk", "interpret", "--model", tiny_model, "--fasta", fa, "--outdir", tmp_path / "out")
    assert r.returncode == 2
    assert "record 'short_one' is 4 bp; the model reads 200 bp" in r.stderr and str(fa) in r.stderr
    assert not (tmp_path / "out").exists()


def test_windows_without_the_models_labels_are_refused(tiny_model, tiny_prepared, tmp_path):
    tb, windows = tiny_prepared
    r = _scfan("bulk", "interpret", "--model", tiny_model, "--windows", windows, "--genome", tb.genome,
               "--outdir", tmp_path / "out")
    assert r.returncode == 2, r.stderr
    assert "has no label column for the model's TF(s)" in r.stderr and "windows.parquet" in r.stderr
    assert not (tmp_path / "out").exists()


def test_too_few_positives_give_a_warning_and_a_row_not_a_crash(tiny_model, tmp_path):
    fa = _fasta(tmp_path / "seqs.fa", 12, 200)
    out = tmp_path / "out"
    r = _scfan("bulk", "interpret", "--model", tiny_model, "--fasta", fa, "--tfs", "GATA1", "--parts", "network",
               "--outdir", out)
    assert r.returncode == 0, r.stderr
    assert "GATA1: too few positive windows" in r.stderr
    rows = pl.read_csv(out / "motifs.tsv", separator="\t")
    assert rows.height == 1 and "too few positive windows" in rows["note"][0] and rows["tf"][0] == "GATA1"
    s = pl.read_csv(out / "summary.tsv", separator="\t")
    assert s["own_motif_recovered"].to_list() == [False]


class _Source:
    """Windows given as arrays (the interface of GenomeWindows / FastaSequences)."""

    def __init__(self, x: torch.Tensor, tfs: list[str]):
        self.x, self.tfs, self.where = x, tfs, "test arrays"

    def positives(self, ti: int):
        return self.x, np.array([f"w{i}" for i in range(len(self.x))])

    def sample(self, n: int) -> torch.Tensor:
        return self.x[:n]


def test_a_network_blind_to_sequence_is_reported_as_resting_on_accessibility(tmp_path):
    """A network whose first layer ignores the DNA: its calls rest wholly on accessibility, so no motif search is run
    and the row says why (instead of TF-MoDISco matching noise to some long JASPAR matrix)."""
    from scfan.interpret.bulk import InterpretConfig, interpret_model

    net = _net(True)
    with torch.no_grad():
        net.body[0].weight[:, :4] = 0.0
    spec = ModelSpec(arch=ArchConfig(), tf_names=("CTCF", "GATA1", "SPI1"), channels=channel_names(True), window=200,
                     context=200, track_norm=TrackNorm(mean_per_base=0.5))
    cfg = InterpretConfig(parts=("network",), tfs=("CTCF",), min_windows=5, n_windows=20)
    interpret_model(net, spec, _Source(_inputs(24, True), list(cfg.tfs)), cfg, tmp_path / "out", logos=False)
    s = pl.read_csv(tmp_path / "out" / "summary.tsv", separator="\t").row(0, named=True)
    assert s["accessibility_share"] > 0.999
    assert not s["own_motif_recovered"] and "the calls rest on accessibility (100%)" in s["note"], s
