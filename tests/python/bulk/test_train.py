"""Training: determinism, checkpoint resumption, negative sampling; the four CLI commands end to end."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
import torch

from scfan.bulk.data import (
    InputSource,
    jittered_context_starts,
    negative_pool,
    open_negative_pool,
    sample_epoch,
    sample_epoch_hard,
)
from scfan.bulk.inputs import FlatGenome
from scfan.bulk.model import load_model
from scfan.bulk.train import TrainConfig, WeightAverage, train_model
from scfan.bulk.windows import read_windows
from scfan.errors import ScfanError

FAST = {"arch": "small", "epochs": 2, "patience": 5, "max_train_windows": 120, "max_valid_windows": 60,
        "batch_size": 32, "seed": 3}


class Killed(Exception):
    pass


def _train(tiny_prepared, outdir, on_epoch_end=None, **kw):
    tb, windows = tiny_prepared
    df, meta = read_windows(windows)
    src = InputSource.load(tb.genome, tb.atac, tb.mappability)
    return train_model(df, meta, src, TrainConfig(**{**FAST, **kw}), outdir, on_epoch_end=on_epoch_end)


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.mark.parametrize("ema_decay", [0.0, 0.9], ids=["plain", "weight-average"])
def test_checkpoint_resume_gives_the_same_final_weights(tiny_prepared, tmp_path, ema_decay):
    _train(tiny_prepared, tmp_path / "straight", epochs=3, ema_decay=ema_decay)

    def kill_after_first(epoch):
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        _train(tiny_prepared, tmp_path / "resumed", on_epoch_end=kill_after_first, epochs=3, ema_decay=ema_decay)
    assert (tmp_path / "resumed" / "checkpoints" / "last.pt").exists()
    assert not (tmp_path / "resumed" / "model.pt").exists()  # no partial model after a kill
    _train(tiny_prepared, tmp_path / "resumed", epochs=3, ema_decay=ema_decay)
    a, b = _weights(tmp_path / "straight" / "model.pt"), _weights(tmp_path / "resumed" / "model.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log_a = (tmp_path / "straight" / "train_log.tsv").read_text().splitlines()
    log_b = (tmp_path / "resumed" / "train_log.tsv").read_text().splitlines()
    assert [r.split("\t")[:4] for r in log_a] == [r.split("\t")[:4] for r in log_b] and len(log_a) == 4


def test_weight_average_follows_its_formula_and_is_what_training_keeps(tiny_prepared, tmp_path):
    """WeightAverage: step t folds the weights in with decay min(d, (1 + t) / (10 + t)); integer buffers are
    copied. With --ema-decay the written model is the average, not the last optimiser state."""
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    avg = WeightAverage(net, 0.5)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].num_batches_tracked.fill_(7)
    avg.update(net)  # t = 0: decay min(0.5, 1 / 10) = 0.1
    got = avg.module.state_dict()
    assert torch.allclose(got["0.weight"], 0.1 * start["0.weight"] + 0.9 * (start["0.weight"] + 1.0))
    assert int(got["1.num_batches_tracked"]) == 7 and avg.steps == 1
    assert not any(p.requires_grad for p in avg.module.parameters())
    with torch.no_grad():
        net[0].weight.add_(1.0)
    before = got["0.weight"].clone()
    avg.update(net)  # t = 1: min(0.5, 2 / 11)
    d = 2 / 11
    assert torch.allclose(avg.module.state_dict()["0.weight"], d * before + (1 - d) * net[0].weight)

    _train(tiny_prepared, tmp_path / "plain", epochs=2)
    _train(tiny_prepared, tmp_path / "avg", epochs=2, ema_decay=0.99)
    a, b = _weights(tmp_path / "plain" / "model.pt"), _weights(tmp_path / "avg" / "model.pt")
    assert not all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "avg" / "train.json").read_text())["config"]["ema_decay"] == 0.99
    with pytest.raises(ScfanError, match="ema-decay"):
        TrainConfig(ema_decay=1.0)


def test_same_seed_same_weights_other_seed_differs(tiny_prepared, tmp_path):
    _train(tiny_prepared, tmp_path / "a", epochs=1)
    _train(tiny_prepared, tmp_path / "b", epochs=1)
    _train(tiny_prepared, tmp_path / "c", epochs=1, seed=4)
    a, b, c = (_weights(tmp_path / d / "model.pt") for d in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_model_file_records_spec(tiny_prepared, tmp_path):
    _train(tiny_prepared, tmp_path / "m", epochs=1)
    raw = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert raw["tf_names"] == ["TFA", "TFB"]
    assert raw["channels"] == ["A", "C", "G", "T", "accessibility", "mappability"]
    assert raw["window"] == 200 and raw["context"] == 1000 and raw["train_config"]["seed"] == 3
    # the stored normalisation is the ATAC track's genome-wide mean insertions per base
    tb, _ = tiny_prepared
    import pyBigWig

    bw = pyBigWig.open(str(tb.atac))
    total = sum(float(np.nansum(bw.values(c, 0, n, numpy=True))) for c, n in bw.chroms().items())
    assert raw["track_norm"]["mean_per_base"] == pytest.approx(total / sum(bw.chroms().values()), rel=1e-6)
    bw.close()
    _, spec = load_model(tmp_path / "m" / "model.pt")
    assert spec.uses_tracks


def test_negatives_keep_away_from_positives():
    starts = np.arange(0, 5000, 50)
    chroms = np.array(["c1"] * len(starts))
    is_pos = np.zeros(len(starts), bool)
    is_pos[[40, 41]] = True  # windows [2000, 2250)
    pool = negative_pool(chroms, starts, 200, is_pos, margin=200)
    ps = starts[pool]
    # gap between [s, s+200) and the nearest positive window must exceed 200 bp
    assert np.all((ps + 200 + 200 < 2000) | (ps > 2050 + 200 + 200))
    assert 1550 in ps and 1600 not in ps and 2450 not in ps and 2500 in ps
    rng = np.random.default_rng(0)
    idx = sample_epoch(np.flatnonzero(is_pos), pool, 1.0, None, rng)
    assert len(idx) == 4 and set(np.flatnonzero(is_pos)) <= set(idx.tolist())
    idx2 = sample_epoch(np.flatnonzero(is_pos), pool, 1.0, None, rng)
    assert set(idx.tolist()) != set(idx2.tolist()) or len(pool) <= 2  # resampled each epoch


def test_hard_sampler_takes_its_share_from_open_unbound_windows():
    acc = np.r_[np.zeros(90), np.arange(1, 11)].astype(float)  # windows 90..99 are the open ones
    pool = np.arange(10, 100)  # 0..9 are positives
    open_pool = open_negative_pool(pool, acc, 0.9)
    assert open_pool.tolist() == list(range(90, 100))  # strictly above the 90th percentile (0.1 here)
    pos = np.arange(10)
    idx = sample_epoch_hard(pos, pool, open_pool, 2.0, 0.25, None, np.random.default_rng(0))
    neg = np.setdiff1d(idx, pos)
    assert len(idx) == 30 and len(np.unique(idx)) == 30 and set(pos) <= set(idx.tolist())
    assert len(np.intersect1d(neg, open_pool)) >= 5  # 5 hard ones, plus any the uniform draw happens to hit
    assert len(np.intersect1d(sample_epoch(pos, pool, 2.0, None, np.random.default_rng(0)), open_pool)) < 5
    again = sample_epoch_hard(pos, pool, open_pool, 2.0, 0.25, None, np.random.default_rng(0))
    assert idx.tolist() == again.tolist()
    all_open = sample_epoch_hard(pos, pool, open_pool, 2.0, 1.0, None, np.random.default_rng(1))
    assert set(open_pool) <= set(all_open.tolist())  # share larger than the open pool: every open window, rest random


def test_tf_without_validation_positives_warns_and_training_goes_on(tiny_prepared, tmp_path, caplog):
    tb, windows = tiny_prepared
    df, meta = read_windows(windows)
    src = InputSource.load(tb.genome, tb.atac, tb.mappability)
    no_b = df.with_columns(pl.when(pl.col("split") == "valid").then(0).otherwise(pl.col("TFB")).cast(pl.UInt8)
                           .alias("TFB"))
    with caplog.at_level(logging.WARNING, logger="scfan.bulk.train"):
        train_model(no_b, meta, src, TrainConfig(**{**FAST, "epochs": 1}), tmp_path / "b")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("TFB" in m and "'valid'" in m for m in warned), warned
    assert not any("TFA" in m for m in warned), warned
    summary = json.loads((tmp_path / "b" / "train.json").read_text())
    assert 0 < summary["best_valid_mean_auprc"] <= 1 and (tmp_path / "b" / "model.pt").is_file()
    # no TF with a validation positive: a warning, selection on the validation loss, still a model
    caplog.clear()
    none = no_b.with_columns(pl.when(pl.col("split") == "valid").then(0).otherwise(pl.col("TFA")).cast(pl.UInt8)
                             .alias("TFA"))
    with caplog.at_level(logging.WARNING, logger="scfan.bulk.train"):
        train_model(none, meta, src, TrainConfig(**{**FAST, "epochs": 1}), tmp_path / "none")
    assert "selected on validation loss" in caplog.text
    assert json.loads((tmp_path / "none" / "train.json").read_text())["best_valid_mean_auprc"] is None
    assert (tmp_path / "none" / "model.pt").is_file()


def test_jitter_stays_on_the_chromosome():
    layout = FlatGenome.from_sizes({"c1": 1100})
    rng = np.random.default_rng(0)
    starts = np.array([400, 450] * 200)
    cs = jittered_context_starts(np.array(["c1"] * 400), starts, 200, 1000, 20, layout, rng)
    assert cs.min() >= 0 and cs.max() <= 100
    assert len(np.unique(cs - (starts - 400))) > 10


def _scfan(*args):
    return subprocess.run([sys.executable, "-m", "scfan", "bulk", *map(str, args)], capture_output=True, text=True)


@pytest.mark.slow
def test_cli_end_to_end(tiny_bulk, tmp_path):
    tb = tiny_bulk
    r = _scfan("prepare", "--samplesheet", tb.samplesheet, "--line", "L1", "--genome", tb.genome,
               "--mappability", tb.mappability, "--blacklist", tb.blacklist, "--valid-chroms", "chr2",
               "--test-chroms", "chr1", "--outdir", tmp_path / "prep")
    assert r.returncode == 0, r.stderr
    common = ["--genome", tb.genome, "--atac", tb.atac, "--mappability", tb.mappability]
    r = _scfan("train", "--windows", tmp_path / "prep" / "windows.parquet", *common, "--arch", "small",
               "--epochs", "1", "--max-train-windows", "100", "--batch-size", "50", "--outdir", tmp_path / "train")
    assert r.returncode == 0, r.stderr
    for f in ("model.pt", "checkpoints/last.pt", "train_log.tsv", "train.json"):
        assert (tmp_path / "train" / f).is_file(), f
    r = _scfan("evaluate", "--model", tmp_path / "train" / "model.pt", "--windows",
               tmp_path / "prep" / "windows.parquet", *common, "--no-pwm", "--outdir", tmp_path / "eval")
    assert r.returncode == 0, r.stderr
    m = pl.read_csv(tmp_path / "eval" / "metrics.tsv", separator="\t")
    assert m.columns == ["model", "tf", "method", "auroc", "auprc", "recall_at_10fdr", "recall_at_5fdr", "f1_best",
                         "threshold_best", "n_pos", "n_neg", "auroc_open", "auprc_open", "n_pos_open", "n_neg_open",
                         "note"]
    assert m["n_pos_open"].min() >= 0 and (m["n_pos_open"] + m["n_neg_open"] < m["n_pos"] + m["n_neg"]).all()
    assert m["tf"].to_list() == ["TFA", "TFB"] and (m["model"] == "L1").all()
    assert (tmp_path / "eval" / "roc.png").stat().st_size > 1000 and (tmp_path / "eval" / "pr.png").is_file()
    (tmp_path / "r.bed").write_text("chr1\t5000\t5600\tr1\nchr3\t100\t150\tr2\n")
    r = _scfan("predict", "--model", tmp_path / "train" / "model.pt", "--regions", tmp_path / "r.bed", *common,
               "--out", tmp_path / "p.parquet", "--bigwig-dir", tmp_path / "bw")
    assert r.returncode == 0, r.stderr
    p = pl.read_parquet(tmp_path / "p.parquet")
    assert p.columns == ["chrom", "start", "end", "region", "TFA", "TFB"]
    assert p.filter(pl.col("region") == "r1").height == 9  # 5000..5400 step 50
    assert p.filter(pl.col("region") == "r2")["start"].to_list() == [400]  # shifted so the context fits
    assert p["TFA"].is_between(0, 1).all()
    assert {f.name for f in (tmp_path / "bw").iterdir()} == {"TFA.bw", "TFB.bw"}


def test_motif_init_puts_whole_matrices_in_the_branch_and_keeps_them(tiny_prepared, tmp_path):
    from scfan.bulk.pwm import jaspar_counts, log_odds
    from scfan.bulk.train import best_kmer_window

    tb, windows = tiny_prepared
    df, meta = read_windows(windows)
    meta = {**meta, "motifs": {"TFA": "MA0139.2", "TFB": None}}  # TFB: no JASPAR matrix by that name
    src = InputSource.load(tb.genome, tb.atac, tb.mappability)
    want = torch.from_numpy(best_kmer_window(log_odds(jaspar_counts("MA0139.2")), 24).astype(np.float32))
    train_model(df, meta, src, TrainConfig(**{**FAST, "epochs": 1}), tmp_path / "frozen")
    w = _weights(tmp_path / "frozen" / "model.pt")
    torch.testing.assert_close(w["motif.conv.weight"][0], want, atol=0, rtol=0)
    assert w["motif.conv.weight"][1:].abs().max() == 0 and w["motif.conv.bias"].abs().max() == 0
    assert w["motif.out.weight"].abs().max() > 0  # the branch's output layer did learn
    train_model(df, meta, src, TrainConfig(**{**FAST, "epochs": 1, "freeze_motif_filters": False}), tmp_path / "free")
    assert not torch.equal(_weights(tmp_path / "free" / "model.pt")["motif.conv.weight"][0], want)


def _motif_and_open_data(rng, n, consensus):
    """Random DNA; half the inputs get ``consensus`` near the centre, half are open there; label = motif and open."""
    from scfan.bulk.inputs import codes_to_onehot, encode_codes

    codes = rng.integers(0, 4, (n, 1000)).astype(np.uint8)
    has = rng.random(n) < 0.5
    opened = rng.random(n) < 0.5
    site = encode_codes(consensus)
    for i in np.flatnonzero(has):
        s = int(rng.integers(400, 600 - len(site)))
        codes[i, s : s + len(site)] = site
    acc = np.where(opened[:, None], 1.0, 0.0) * np.exp(-((np.arange(1000) - 500) / 150.0) ** 2)[None]
    x = np.concatenate([codes_to_onehot(codes), acc[:, None].astype(np.float32),
                        np.ones((n, 1, 1000), np.float32)], axis=1)
    return torch.from_numpy(x), (has & opened).astype(np.float32)


@pytest.mark.parametrize("motif_filters", [16, 0])
def test_motif_branch_learns_motif_and_open_where_the_plain_network_does_not(motif_filters):
    """The rule the simulator's ChIP labels follow (site of the TF in the window, and open chromatin), from a few
    hundred examples: the network with the JASPAR-seeded motif branch learns it; scFAN's network alone, trained
    the same way, only learns the open half of it."""
    from sklearn.metrics import average_precision_score

    from scfan.bulk.model import ArchConfig, ModelSpec, build_model, channel_names
    from scfan.bulk.pwm import jaspar_counts
    from scfan.bulk.train import deterministic_cpu, freeze_motif_filters, motif_initialise
    from scfan.inference import predict_batches

    consensus = "".join("ACGT"[i] for i in jaspar_counts("MA0139.2").argmax(axis=0))
    rng = np.random.default_rng(0)
    x_tr, y_tr = _motif_and_open_data(rng, 600, consensus)
    x_te, y_te = _motif_and_open_data(rng, 300, consensus)
    spec = ModelSpec(arch=replace(ArchConfig.preset("small"), motif_filters=motif_filters), tf_names=("CTCF",),
                     channels=channel_names(True), window=200, context=1000, track_norm=None,
                     motifs={"CTCF": "MA0139.2"})
    with deterministic_cpu(1):
        torch.manual_seed(0)
        model = build_model(spec)
        motif_initialise(model, spec)
        freeze_motif_filters(model)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        for _epoch in range(3):
            model.train()
            for i in rng.permutation(len(y_tr)).reshape(-1, 50):
                loss = loss_fn(model(x_tr[i])[:, 0], torch.from_numpy(y_tr[i]))
                opt.zero_grad()
                loss.backward()
                opt.step()
        auprc = average_precision_score(y_te, predict_batches(model, x_te)[:, 0])
    if motif_filters:
        assert auprc > 0.9
    else:
        assert auprc < 0.7


def test_motif_branch_output_learns_at_its_own_rate():
    """The optimiser's groups: the branch's output layer at ``motif_lr_mult`` x lr, frozen JASPAR filters left out of
    weight decay, every other trainable parameter at lr; each parameter in exactly one group."""
    from scfan.bulk.model import ArchConfig, ScFANet
    from scfan.bulk.train import _param_groups, freeze_motif_filters

    model = ScFANet(6, 1000, 3, ArchConfig.preset("small"))
    freeze_motif_filters(model)
    groups = _param_groups(model, 0.01, 1e-3, 10.0)
    by_id = {id(p): g for g in groups for p in g["params"]}
    assert sum(len(g["params"]) for g in groups) == len(by_id) == sum(p.requires_grad for p in model.parameters())
    for p in model.motif.out.parameters():
        assert by_id[id(p)]["lr"] == pytest.approx(1e-2) and by_id[id(p)]["weight_decay"] == 0.01
    for p in model.body.parameters():
        assert by_id[id(p)]["lr"] == pytest.approx(1e-3)
    assert not any(id(p) in by_id for p in model.motif.conv.parameters())  # frozen: no gradient, not optimised
    with pytest.raises(ScfanError, match="motif-lr-mult"):
        TrainConfig(motif_lr_mult=0)
