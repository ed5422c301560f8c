"""Per-cell inference (`scfan sc predict` / `merge-activity`) on tiny inputs written here, and the Tn5 convention."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pyBigWig
import pytest
import scipy.sparse as sp
import torch
from sc_builders import CHROM_SIZES, random_fragments, run_cli, write_bam, write_fragments, write_peaks

from scfan.bulk.model import ArchConfig, ModelSpec, ScFANet, channel_names, save_model
from scfan.sc import predict as P
from scfan.sc.cells_file import read_cells_for_inference
from scfan.sc.units import greedy_metacells, make_units
from scfan.tracks import TrackNorm

EMPTY_CELL = "AAAC9999-1"  # all its fragments lie between peaks: no insertion in any peak


def _write_fasta(path: Path, seed: int, sizes: dict[str, int]) -> Path:
    rng = np.random.default_rng(seed)
    with open(path, "w") as fh:
        for chrom, n in sizes.items():
            seq = "".join(np.array(list("ACGT"))[rng.integers(0, 4, n)])
            fh.write(f">{chrom}\n" + "\n".join(seq[i : i + 60] for i in range(0, n, 60)) + "\n")
    return path


def _write_mappability(path: Path) -> Path:
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(CHROM_SIZES.items()))
    for chrom, n in CHROM_SIZES.items():
        vals = np.ones(n)
        vals[:300] = 0.5
        bw.addEntries(chrom, 0, values=vals.tolist(), span=1, step=1)
    bw.close()
    return path


def _write_model(path: Path, tfs: tuple[str, ...], seed: int, *, tracks: bool = True, version: int | None = None):
    torch.manual_seed(seed)
    spec = ModelSpec(arch=ArchConfig.preset("small"), tf_names=tfs, channels=channel_names(tracks), window=200,
                     context=1000, track_norm=TrackNorm(0.05) if tracks else None)
    model = ScFANet(len(spec.channels), spec.context, len(tfs), spec.arch)
    # non-trivial BatchNorm statistics, so eval-mode numbers depend on them
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    save_model(path, model, spec)
    if version is not None:
        d = torch.load(path, weights_only=True)
        d["format_version"] = version
        torch.save(d, path)
    return path


@pytest.fixture(scope="module")
def tiny_sc(tmp_path_factory):
    """12 cells + one cell without any insertion in a peak, a 2-chromosome genome, two small models."""
    root = tmp_path_factory.mktemp("sc_predict")
    rows = random_fragments(seed=5, n_cells=12, per_cell=400)
    rows += [("chr1", s, s + 150, EMPTY_CELL, 1) for s in range(15_000, 19_000, 12)]
    rows = sorted(set(rows), key=lambda r: (r[0], r[1], r[2], r[3]))
    frags = write_fragments(root / "fragments.tsv.gz", rows)
    peaks = write_peaks(root / "peaks.bed", [("chr1", 1_000, 1_500), ("chr1", 3_000, 3_800), ("chr1", 9_000, 9_200),
                                             ("chr1", 12_000, 14_000), ("chr2", 5_000, 6_500), ("chr2", 8_000, 8_400)])
    sheet = root / "sc.csv"
    sheet.write_text(f"sample,fragments\ns1,{frags.name}\n")
    fasta = _write_fasta(root / "genome.fa", 3, CHROM_SIZES)
    mapp = _write_mappability(root / "map.bw")
    ex = run_cli
    mp = pytest.MonkeyPatch()
    try:
        assert ex(mp, "sc", "ingest", "--samplesheet", str(sheet), "--sample", "s1", "--peaks", str(peaks),
                  "--min-fragments", "50", "--out", str(root / "cells.h5ad")) == 0
        assert ex(mp, "sc", "neighbors", "--cells", str(root / "cells.h5ad"), "--k", "4", "--n-components", "4",
                  "--out", str(root / "cells_nn.h5ad")) == 0
    finally:
        mp.undo()
    # the empty cell pools only itself, so it has no pooled signal in any peak
    a = ad.read_h5ad(root / "cells_nn.h5ad")
    e = list(a.obs_names).index(f"s1#{EMPTY_CELL}")
    pool = sp.lil_matrix(a.obsp["pooling"])
    pool[e, :] = 0
    for j in range(a.n_obs):
        if j != e:
            pool[j, e] = 0
    pool[e, e] = 1
    pool = sp.csr_matrix(pool)
    pool = sp.csr_matrix(sp.diags(1 / np.asarray(pool.sum(axis=1)).ravel()) @ pool)
    a.obsp["pooling"] = pool
    a.write_h5ad(root / "cells_nn.h5ad")
    m1 = _write_model(root / "lineA.model.pt", ("TF1", "TF2", "TF3"), 1)
    m2 = _write_model(root / "lineB.model.pt", ("TF1", "TF4"), 2)
    return {"root": root, "cells": root / "cells_nn.h5ad", "cells_raw": root / "cells.h5ad", "fragments": frags,
            "fasta": fasta, "mapp": mapp, "models": [m1, m2], "empty": f"s1#{EMPTY_CELL}"}


def _predict(monkeypatch, t, out: Path, *extra: str, models=None, cells=None, fasta=None, fragments=None) -> int:
    models = models if models is not None else [f"lineA={t['models'][0]}", f"lineB={t['models'][1]}"]
    args = ["sc", "predict", "--cells", str(cells or t["cells"]), "--fragments", f"s1={fragments or t['fragments']}",
            "--genome", str(fasta or t["fasta"]), "--mappability", str(t["mapp"]), "--device", "cpu",
            "--threads", "1", "--out", str(out), *extra]
    for m in models:
        args += ["--model", m]
    return run_cli(monkeypatch, *args)


@pytest.mark.parametrize("mode", ["exact", "fast", "metacell"])
def test_one_shard_equals_three_shards(tiny_sc, tmp_path, monkeypatch, mode):
    assert _predict(monkeypatch, tiny_sc, tmp_path / "one.h5ad", "--mode", mode, "--metacell-size", "3") == 0
    shards = []
    for i in (1, 2, 3):
        shards.append(tmp_path / f"s{i}.h5ad")
        assert _predict(monkeypatch, tiny_sc, shards[-1], "--mode", mode, "--metacell-size", "3",
                        "--shard", f"{i}/3") == 0
    assert run_cli(monkeypatch, "sc", "merge-activity", *map(str, shards[::-1]), "--out",
                   str(tmp_path / "merged.h5ad")) == 0
    one, merged = ad.read_h5ad(tmp_path / "one.h5ad"), ad.read_h5ad(tmp_path / "merged.h5ad")
    assert list(one.obs_names) == list(merged.obs_names) == list(ad.read_h5ad(tiny_sc["cells"]).obs_names)
    assert list(one.var_names) == ["lineA:TF1", "lineA:TF2", "lineA:TF3", "lineB:TF1", "lineB:TF4"]
    assert list(one.var["model"]) == ["lineA"] * 3 + ["lineB"] * 2
    np.testing.assert_array_equal(one.X, merged.X)
    for layer in ("mean_prob", "frac_bound"):
        np.testing.assert_array_equal(one.layers[layer], merged.layers[layer])
    np.testing.assert_array_equal(one.obs["n_scored_windows"], merged.obs["n_scored_windows"])
    np.testing.assert_array_equal(one.obs["pooled_depth"], merged.obs["pooled_depth"])
    for name in ("lineA", "lineB"):  # over all cells, not the first shard's
        assert merged.uns["scfan_activity"]["median_depth_share"][name] == pytest.approx(
            one.uns["scfan_activity"]["median_depth_share"][name], rel=1e-12)
    scored = one.obs["n_scored_windows"].to_numpy() > 0
    assert scored.sum() >= 12
    # X: each scored window adds its top-2 features, so a cell's row sums to 1
    np.testing.assert_allclose(np.asarray(one.X)[scored].sum(axis=1), 1.0, atol=1e-5)
    assert np.all((one.layers["mean_prob"] > 0)[scored])


def test_batch_size_does_not_change_numbers(tiny_sc, tmp_path, monkeypatch):
    assert _predict(monkeypatch, tiny_sc, tmp_path / "b1.h5ad", "--batch-size", "1") == 0
    assert _predict(monkeypatch, tiny_sc, tmp_path / "b512.h5ad", "--batch-size", "512") == 0
    a, b = ad.read_h5ad(tmp_path / "b1.h5ad"), ad.read_h5ad(tmp_path / "b512.h5ad")
    np.testing.assert_allclose(a.layers["mean_prob"], b.layers["mean_prob"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(a.X, b.X, atol=1e-6)


def test_fast_mode_is_exact_mode_with_bfloat16_convolutions(tiny_sc, tmp_path, monkeypatch, capsys):
    """Fast mode scores the same (cell, window) pairs on the same pooled tracks as exact mode, with the convolutions
    in bfloat16 wherever this CPU's bfloat16 convolutions pass the runtime check: then close to exact's numbers but
    not equal to them, batch-size independent; where they fail it (Intel AMX), float32 runs, said and recorded. On a
    CPU without native bfloat16 it says so and runs float32, giving exact's numbers."""
    from scfan.inference import BFLOAT16_TOLERANCE

    assert _predict(monkeypatch, tiny_sc, tmp_path / "exact.h5ad") == 0
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: True)
    for b in ("1", "512"):
        assert _predict(monkeypatch, tiny_sc, tmp_path / f"fast{b}.h5ad", "--mode", "fast", "--batch-size", b) == 0
    exact, fast = ad.read_h5ad(tmp_path / "exact.h5ad"), ad.read_h5ad(tmp_path / "fast512.h5ad")
    assert exact.uns["scfan_activity"]["precision"] == "float32"
    checks = fast.uns["scfan_activity"]["fast_path_check"]
    assert set(checks) == {"lineA", "lineB"}
    assert all(c["asked"].startswith("bfloat16 convolutions") for c in checks.values())
    assert "metacell" not in fast.obs
    np.testing.assert_array_equal(fast.obs["n_scored_windows"], exact.obs["n_scored_windows"])
    diff = np.abs(fast.layers["mean_prob"] - exact.layers["mean_prob"])
    if fast.uns["scfan_activity"]["precision"] == "bfloat16 convolutions, float32 dense layers":
        assert all(c["max_abs_diff"] <= BFLOAT16_TOLERANCE and len(c["refused"]) == 0 for c in checks.values())
        assert 0 < diff.max() < 0.02, diff.max()
    else:  # this CPU's bfloat16 convolutions failed the probe: float32, recorded per model
        assert fast.uns["scfan_activity"]["precision"] == "float32"
        assert all(c["ran"].startswith("float32") and len(c["refused"]) == 1 for c in checks.values())
        assert diff.max() < 1e-5
    one = ad.read_h5ad(tmp_path / "fast1.h5ad")
    for layer in ("mean_prob", "frac_bound"):
        np.testing.assert_array_equal(one.layers[layer], fast.layers[layer])
    np.testing.assert_array_equal(one.X, fast.X)
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: False)
    capsys.readouterr()
    assert _predict(monkeypatch, tiny_sc, tmp_path / "fallback.h5ad", "--mode", "fast") == 0
    assert "--mode fast: this CPU has no native bfloat16" in capsys.readouterr().err
    back = ad.read_h5ad(tmp_path / "fallback.h5ad")
    assert back.uns["scfan_activity"]["precision"] == "float32"
    np.testing.assert_array_equal(back.layers["mean_prob"], exact.layers["mean_prob"])


@pytest.mark.parametrize("mode", ["fast", "metacell"])
def test_wrong_bfloat16_kernels_never_reach_the_activity(tiny_sc, tmp_path, monkeypatch, capsys, mode):
    """The Intel AMX case, forced: a CPU that claims native bfloat16 and whose bfloat16 convolutions return wrong
    numbers (a stand-in convolution). Fast and metacell mode take the float32 path after the probe, say so in one
    warning line (per process, not per model) with the CPU flags, record it per model in ``uns`` and give float32's
    numbers."""
    import torch

    from scfan.inference import cpu_description

    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: False)
    assert _predict(monkeypatch, tiny_sc, tmp_path / "f32.h5ad", "--mode", mode) == 0  # float32 on any CPU
    real = torch.nn.Conv2d.forward
    def wrong_in_bf16(self, x):
        return -2 * real(self, x).roll(1, dims=1) if x.dtype == torch.bfloat16 else real(self, x)

    monkeypatch.setattr(torch.nn.Conv2d, "forward", wrong_in_bf16)
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr("scfan.inference._WARNED", set())
    capsys.readouterr()
    assert _predict(monkeypatch, tiny_sc, tmp_path / "amx.h5ad", "--mode", mode) == 0
    err = capsys.readouterr().err
    refusals = [ln for ln in err.splitlines() if "gives probabilities off by" in ln]
    assert len(refusals) == 1 and cpu_description() in refusals[0], err
    got, want = ad.read_h5ad(tmp_path / "amx.h5ad"), ad.read_h5ad(tmp_path / "f32.h5ad")
    info = got.uns["scfan_activity"]
    assert info["precision"] == "float32"
    for c in info["fast_path_check"].values():
        assert c["asked"].startswith("bfloat16") and c["ran"] == "float32 (oneDNN, channels-last)"
        assert len(c["refused"]) == 1 and c["refused"][0].startswith("bfloat16")
    for layer in ("mean_prob", "frac_bound"):
        np.testing.assert_array_equal(got.layers[layer], want.layers[layer])
    np.testing.assert_array_equal(got.X, want.X)


def test_merge_says_when_shards_ran_in_different_precisions(tiny_sc, tmp_path, monkeypatch, capsys):
    """Shards on nodes whose CPUs took different paths: the merged file says ``mixed`` and which shard ran what."""
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: False)
    assert _predict(monkeypatch, tiny_sc, tmp_path / "s1.h5ad", "--mode", "fast", "--shard", "1/2") == 0
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: True)
    assert _predict(monkeypatch, tiny_sc, tmp_path / "s2.h5ad", "--mode", "fast", "--shard", "2/2") == 0
    s2 = ad.read_h5ad(tmp_path / "s2.h5ad").uns["scfan_activity"]["precision"]
    capsys.readouterr()
    assert run_cli(monkeypatch, "sc", "merge-activity", str(tmp_path / "s1.h5ad"), str(tmp_path / "s2.h5ad"),
                   "--out", str(tmp_path / "merged.h5ad")) == 0
    err = capsys.readouterr().err
    info = ad.read_h5ad(tmp_path / "merged.h5ad").uns["scfan_activity"]
    assert dict(info["precision_by_shard"]) == {"1": "float32", "2": s2}
    if s2 == "float32":  # bfloat16 refused on this CPU: both shards ran float32
        assert info["precision"] == "float32" and "different precisions" not in err
    else:
        assert info["precision"] == "mixed"
        assert "shard 1: float32, shard 2: bfloat16 convolutions" in err


def test_cell_without_signal_is_flagged_not_dropped(tiny_sc, tmp_path, monkeypatch):
    assert _predict(monkeypatch, tiny_sc, tmp_path / "a.h5ad") == 0
    a = ad.read_h5ad(tmp_path / "a.h5ad")
    assert tiny_sc["empty"] in a.obs_names
    row = a.obs.loc[tiny_sc["empty"]]
    assert row["n_scored_windows"] == 0 and bool(row["no_scored_windows"])
    assert a.obs["no_scored_windows"].sum() == 1
    i = list(a.obs_names).index(tiny_sc["empty"])
    assert np.all(np.asarray(a.X)[i] == 0)


def test_pooled_depth_is_each_cells_effective_insertions_per_base(tiny_sc, tmp_path, monkeypatch):
    assert _predict(monkeypatch, tiny_sc, tmp_path / "a.h5ad") == 0
    a = ad.read_h5ad(tmp_path / "a.h5ad")
    cells = ad.read_h5ad(tiny_sc["cells"])
    genome = float(sum(CHROM_SIZES.values()))
    totals = 2.0 * cells.obs["n_fragments"].to_numpy(dtype=np.float64)
    pool = sp.csr_matrix(cells.obsp["pooling"])
    for i in range(cells.n_obs):  # cell by cell: the weighted insertions per base over the sum of squared weights
        row = pool.getrow(i)
        w, j = row.data.astype(np.float64), row.indices
        expect = float(np.sum(w * totals[j]) / genome / np.sum(w**2))
        assert a.obs["pooled_depth"].iloc[i] == pytest.approx(expect, rel=1e-9)
    e = list(a.obs_names).index(tiny_sc["empty"])  # pools only itself: its own insertions per base
    assert a.obs["pooled_depth"].iloc[e] == pytest.approx(totals[e] / genome, rel=1e-9)
    info = a.uns["scfan_activity"]
    assert info["bulk_depth"] == {"lineA": pytest.approx(0.05), "lineB": pytest.approx(0.05)}
    assert info["median_depth_share"]["lineA"] == pytest.approx(np.median(a.obs["pooled_depth"]) / 0.05)


class _Models:
    def __init__(self, keeps):
        self.names = [f"m{i}" for i in range(len(keeps))]
        self.specs = [ModelSpec(arch=ArchConfig.preset("small"), tf_names=("TF1",), channels=channel_names(True),
                                window=200, context=1000, track_norm=TrackNorm(0.1),
                                train_config={} if k is None else {"thin_min_keep": k}) for k in keeps]


def test_depth_below_what_a_model_was_trained_on_warns(caplog):
    depth = np.array([0.002, 0.003, 0.004])  # median 0.003 insertions per base: 3 % of a bulk of 0.1
    with caplog.at_level("WARNING", logger="scfan.sc.predict"):
        share = P.check_depth_shift(_Models([None, 1.0, 0.01, 0.05]), depth)
    assert share == {f"m{i}": pytest.approx(0.03) for i in range(4)}
    warned = sorted(r.getMessage().split()[1].rstrip(":") for r in caplog.records)
    assert warned == ["m0", "m1", "m3"]  # bulk alone (no field, or 1 = off), or thinned only down to 5 %
    assert all("0.03" in r.getMessage() and "--thin-min-keep" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="scfan.sc.predict"):
        P.check_depth_shift(_Models([None]), depth * 100)  # 3x the bulk: nothing to say
    assert not caplog.records


def test_predictions_follow_the_pooled_track(tiny_sc):
    """The accessibility channel reaching the model is the cell's pooled track on the bulk scale."""
    from scfan.genome import Genome
    from scfan.sc.pooling import PooledTracks
    from scfan.tracks import open_bigwig

    models = P.load_models([str(p) for p in tiny_sc["models"]], torch.device("cpu"))
    assert models.names == ["lineA", "lineB"]
    a = read_cells_for_inference(tiny_sc["cells"])
    cells = np.arange(a.n_obs)
    cfg = P.PredictConfig(batch_size=64)
    seen: list[torch.Tensor] = []
    got: list[np.ndarray] = []
    orig = models.predict_pairs

    def spy(xw, scores, widx, acc, batch_size, amp):
        x = xw[torch.as_tensor(widx)].clone()
        x[:, 4] = torch.as_tensor(acc)
        seen.append(x)
        got.append(orig(xw, scores, widx, acc, batch_size, amp))
        return got[-1]

    models.predict_pairs = spy
    with Genome(tiny_sc["fasta"]) as g:
        sizes = dict(g.sizes)
        win = P.peak_windows(a.var_names, sizes, models.window, models.context)
        scored = P.scored_peaks(a.X, a.obsp["pooling"], cells, cfg.min_signal)
        units = make_units("exact", a.obsp["pooling"], cells, 1)
        bw = open_bigwig(tiny_sc["mapp"])
        totals = 2.0 * a.obs["n_fragments"].to_numpy(np.float64)
        with PooledTracks({"s1": tiny_sc["fragments"]}, list(a.obs_names), units.pooling, totals,
                          sum(sizes.values())) as tr:
            out = list(P.iter_cell_predictions(models, tr, units, scored, win, g, bw, cfg, None))
            pc = np.concatenate([o[0] for o in out])
            pw = np.concatenate([o[1] for o in out])
            x = torch.cat(seen).numpy()
            # reference for one pair: the pooled window built by PooledTracks itself
            c, w = int(pc[0]), int(pw[0])
            start = int(win["start"][w]) - 400
            ref = tr.normalized_windows(np.array([c]), str(win["chrom"][w]), np.array([start + 500]), 1000)[0]
        bw.close()
    # rows of one chunk are predicted unit-major, window-minor; find the pair's row
    row = next(i for i in range(len(pc)) if pc[i] == c and pw[i] == w)
    np.testing.assert_allclose(x[row, 4], ref, rtol=1e-6)
    assert set(np.unique(x[:, :4].sum(axis=1))) <= {0.0, 1.0}  # one-hot DNA
    assert np.all((x[:, 5] >= 0) & (x[:, 5] <= 1))  # mappability
    # the window-shared path (motif scores once per window) gives what the whole network gives on the same inputs
    assert all(P._shared(m) is not None for m in models.models)
    whole = models.predict(torch.from_numpy(x), 64, False)
    np.testing.assert_allclose(np.concatenate(got), whole, rtol=0, atol=1e-6)
    assert np.ptp(whole, axis=0).max() > 1e-3  # the comparison is not between constants


def test_greedy_metacells_are_deterministic_and_bounded():
    rng = np.random.default_rng(0)
    n, k = 60, 5
    rows = np.repeat(np.arange(n), k)
    cols = np.concatenate([np.r_[i, rng.choice(np.delete(np.arange(n), i), k - 1, replace=False)] for i in range(n)])
    pool = sp.csr_matrix((np.full(n * k, 1 / k), (rows, cols)), shape=(n, n))
    a = greedy_metacells(pool, 4)
    assert np.array_equal(a, greedy_metacells(pool, 4))
    assert a.min() == 0 and np.bincount(a).max() <= 4 and (a >= 0).all()


def test_shard_spec():
    from scfan.sc import shards as S

    assert P.parse_shard("2/3") == (2, 3)
    assert S.activity_file_name("2/3") == "activity_shard_2_of_3.h5ad" == f"activity_{S.shard_name(2, 3)}.h5ad"
    got = np.concatenate([P.shard_cells(10, f"{i}/3") for i in (1, 2, 3)])
    assert np.array_equal(got, np.arange(10))


# --- bad input: one line naming the file and what was expected, exit 2, nothing written -----------------------

def _bad(monkeypatch, capsys, t, tmp_path, expect: str, *extra, **kw):
    out = tmp_path / "out" / "activity.h5ad"
    code = _predict(monkeypatch, t, out, *extra, **kw)
    err = capsys.readouterr().err
    assert code == 2, err
    assert expect in err, err
    msg = [ln for ln in err.strip().splitlines() if "error" in ln.lower()]
    assert len(msg) == 1, err
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.mark.parametrize("shard", ["3/2", "0/0", "1", "a/b", "0/3"])
def test_shard_out_of_range(tiny_sc, tmp_path, monkeypatch, capsys, shard):
    _bad(monkeypatch, capsys, tiny_sc, tmp_path, "--shard", "--shard", shard)


def test_model_of_another_format_version(tiny_sc, tmp_path, monkeypatch, capsys):
    m = _write_model(tmp_path / "old.pt", ("TF1",), 3, version=99)
    _bad(monkeypatch, capsys, tiny_sc, tmp_path, "format version 99", models=[str(m)])


def test_sequence_only_model_is_refused(tiny_sc, tmp_path, monkeypatch, capsys):
    m = _write_model(tmp_path / "seq.pt", ("TF1",), 3, tracks=False)
    _bad(monkeypatch, capsys, tiny_sc, tmp_path, "input channels A,C,G,T;", models=[str(m)])


def test_two_models_with_one_name(tiny_sc, tmp_path, monkeypatch, capsys):
    m = tiny_sc["models"][0]
    _bad(monkeypatch, capsys, tiny_sc, tmp_path, "two models named 'x'", models=[f"x={m}", f"x={m}"])


def test_cells_without_neighbours(tiny_sc, tmp_path, monkeypatch, capsys):
    _bad(monkeypatch, capsys, tiny_sc, tmp_path, "no obsp['pooling']", cells=tiny_sc["cells_raw"])


def test_genome_missing_a_peak_chromosome(tiny_sc, tmp_path, monkeypatch, capsys):
    fa = _write_fasta(tmp_path / "chr1_only.fa", 3, {"chr1": CHROM_SIZES["chr1"]})
    _bad(monkeypatch, capsys, tiny_sc, tmp_path, "peak on chromosome 'chr2', which the genome FASTA does not have",
         fasta=fa)


def test_fragments_whose_barcodes_match_no_cell(tiny_sc, tmp_path, monkeypatch, capsys):
    rows = [(c, s, e, "GGGG" + b[4:], n) for c, s, e, b, n in random_fragments(seed=9, n_cells=3, per_cell=50)]
    other = write_fragments(tmp_path / "other.tsv.gz", rows)
    _bad(monkeypatch, capsys, tiny_sc, tmp_path, "barcode matches a cell of sample 's1'", fragments=other)


# --- Tn5: one insertion convention for bulk reads and single-cell fragments -----------------------------------

def test_pseudobulk_of_single_cell_path_equals_bulk_path(tmp_path):
    from scfan.bulk.inputs import FlatGenome, bam_insertions
    from scfan.sc.fragments import read_bam_blocks
    from scfan.sc.pooling import PooledTracks

    rows = random_fragments(seed=11, n_cells=6, per_cell=200)
    bam = write_bam(tmp_path / "reads.bam", rows)
    layout = FlatGenome.from_sizes(CHROM_SIZES)
    bulk = bam_insertions(bam, layout)
    # single-cell path: BAM → fragments (read_bam_blocks) → fragments file → PooledTracks insertions of every cell
    frag_rows = []
    for block in read_bam_blocks(bam):
        for s, e, b in block.frame.iter_rows():
            frag_rows.append((block.chrom, s, e, b, 1))
    frag_rows = sorted(set(frag_rows), key=lambda r: (r[0], r[1], r[2], r[3]))
    frags = write_fragments(tmp_path / "from_bam.tsv.gz", frag_rows)
    cells = sorted({f"s#{r[3]}" for r in frag_rows})
    with PooledTracks({"s": frags}, cells, sp.identity(len(cells), format="csr"), np.ones(len(cells)), 1.0) as tr:
        for chrom, size in CHROM_SIZES.items():
            pseudo = np.asarray(tr.insertions(chrom, 0, size).sum(axis=0)).ravel()
            o = layout.offsets[chrom]
            np.testing.assert_array_equal(pseudo, bulk[o : o + size])
    assert bulk.sum() == 2 * len(rows)


def test_fused_model_computes_the_same_function(tiny_sc):
    from scfan.bulk.model import load_model
    from scfan.inference import fuse_for_inference, predict_batches

    model, _ = load_model(tiny_sc["models"][0])
    fused = fuse_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())  # the original is left intact
    x = torch.rand(70, 6, 1000)
    x[:, :4] = torch.nn.functional.one_hot(torch.randint(0, 4, (70, 1000)), 4).permute(0, 2, 1).float()
    np.testing.assert_allclose(predict_batches(fused, x), predict_batches(model, x), atol=2e-6)


def _write_clusters(t, path: Path, drop: int = 0) -> tuple[list[str], np.ndarray]:
    cells = list(ad.read_h5ad(t["cells"]).obs_names)
    groups = np.array([i % 2 for i in range(len(cells))])
    rows = [f"{c}\tc{g}" for c, g in zip(cells, groups, strict=True)][drop:]
    path.write_text("cell_id\tcluster\n" + "\n".join(rows) + "\n")
    return cells, groups


def test_cluster_tracks_are_the_mean_of_the_cluster_cells(tiny_sc, tmp_path, monkeypatch):
    t = tiny_sc
    clusters = tmp_path / "clusters.tsv"
    cells, groups = _write_clusters(t, clusters)
    out = tmp_path / "tracks"
    args = ["sc", "tracks", "--cells", str(t["cells"]), "--clusters", str(clusters), "--fragments",
            f"s1={t['fragments']}", "--genome", str(t["fasta"]), "--mappability", str(t["mapp"]), "--mode", "exact",
            "--device", "cpu", "--threads", "1", "--out-dir", str(out), "--model", f"lineA={t['models'][0]}",
            "--model", f"lineB={t['models'][1]}"]
    assert run_cli(monkeypatch, *args) == 0
    # the same predictions collected independently, one (cell, window) pair at a time
    seen: dict[tuple[int, int], np.ndarray] = {}
    meta = {}

    def collect(p_cell, p_win, probs, **kw):
        meta.update(kw)
        for c, w, p in zip(p_cell, p_win, probs, strict=True):
            seen[(int(c), int(w))] = p

    P.predict_activity(t["cells"], [f"lineA={t['models'][0]}", f"lineB={t['models'][1]}"], {"s1": t["fragments"]},
                       t["fasta"], t["mapp"], P.PredictConfig(mode="exact", device="cpu", num_threads=1),
                       on_batch=collect)
    windows, features = meta["windows"], meta["features"]
    lines = (out / "tracks.txt").read_text().splitlines()
    assert len(lines) == 2 * len(features) and all("bigDataUrl=c" in ln for ln in lines)
    checked = 0
    for g in (0, 1):
        for fi, feat in enumerate(features):
            model, tf = feat.split(":")
            bw = pyBigWig.open(str(out / f"c{g}" / f"{model}_{tf}.bw"))
            for w in range(len(windows)):
                vals = [p[fi] for (c, ww), p in seen.items() if ww == w and groups[c] == g]
                chrom, start = windows["chrom"][w], int(windows["start"][w])
                got = bw.values(chrom, start, start + 1)[0]
                if vals:
                    assert got == pytest.approx(float(np.mean(vals)), rel=1e-5, abs=1e-6)
                    checked += 1
                else:
                    assert np.isnan(got)  # a window no cell of the cluster scored is a gap, not a zero
            bw.close()
    assert checked > 10


def test_cluster_tracks_refuse_a_cell_without_cluster(tiny_sc, tmp_path, monkeypatch, capsys):
    t = tiny_sc
    clusters = tmp_path / "clusters.tsv"
    cells, _ = _write_clusters(t, clusters, drop=1)
    out = tmp_path / "tracks"
    assert run_cli(monkeypatch, "sc", "tracks", "--cells", str(t["cells"]), "--clusters", str(clusters),
                   "--fragments", f"s1={t['fragments']}", "--genome", str(t["fasta"]), "--mappability",
                   str(t["mapp"]), "--device", "cpu", "--out-dir", str(out), "--model", str(t["models"][0])) == 2
    err = capsys.readouterr().err
    assert f"{clusters}: 1 cell(s) of the cells file have no cluster, e.g. '{cells[0]}'" in err
    assert not out.exists()


def test_a_shard_reads_only_its_cells_neighbours_counts(tiny_sc):
    """Per-cell inference never loads the whole count matrix: scored_peaks asks the cells file for the rows of the
    shard's cells' neighbours only, and gets the same scored peaks as from the whole matrix."""
    a = read_cells_for_inference(tiny_sc["cells"])
    with a:
        pooling = a.obsp["pooling"]
        full = a.X
        assert full.shape == (a.n_obs, a.n_vars) and full.nnz > 0
        cells = P.shard_cells(a.n_obs, "1/6")
        asked: list[np.ndarray] = []

        def rows(idx):
            asked.append(np.asarray(idx))
            return a.rows(idx)

        lazy = P.scored_peaks(rows, pooling, cells, 1.0)
        whole = P.scored_peaks(full, pooling, cells, 1.0)
        assert (lazy != whole).nnz == 0 and lazy.nnz > 0
        (idx,) = asked
        assert np.array_equal(idx, np.unique(pooling[cells].indices)) and len(idx) < a.n_obs
        np.testing.assert_array_equal(a.rows(idx[:3]).toarray(), full[idx[:3]].toarray())
        assert a.rows(np.array([], dtype=np.int64)).shape == (0, a.n_vars)


def _tiled_cells(t, root: Path, copies: int) -> tuple[Path, Path]:
    """The tiny data set plus ``copies`` renamed copies of its cells (fragments, counts, pooling block-diagonal):
    the first block of cells — shard ``1/(copies + 1)`` — and its neighbourhoods are the original ones."""
    import gzip

    a = ad.read_h5ad(t["cells"])
    lines = [ln for ln in gzip.open(t["fragments"], "rt") if not ln.startswith("#")]
    rows = []
    for c in range(copies + 1):
        for ln in lines:
            chrom, s, e, bc, n = ln.rstrip("\n").split("\t")
            rows.append((chrom, int(s), int(e), bc if c == 0 else f"{bc}x{c}", int(n)))
    rows.sort(key=lambda r: (r[0], r[1], r[2], r[3]))
    frags = write_fragments(root / "fragments.tsv.gz", rows)
    parts = []
    for c in range(copies + 1):
        b = a.copy()
        b.obs_names = [n if c == 0 else f"{n}x{c}" for n in a.obs_names]
        b.obs["barcode"] = [n.partition("#")[2] for n in b.obs_names]
        parts.append(b)
    big = ad.concat(parts, merge="same")
    big.obsp["pooling"] = sp.csr_matrix(sp.kron(sp.identity(copies + 1), a.obsp["pooling"]))
    # each copy's cells ranked after the previous copy's: the first shard is the original cells in any case
    big.obs["shard_rank"] = np.concatenate([a.obs["shard_rank"].to_numpy() + c * a.n_obs for c in range(copies + 1)])
    big.write_h5ad(root / "cells_nn.h5ad")
    return root / "cells_nn.h5ad", frags


def _shard_in_tiled_data(t, tmp_path, monkeypatch, mode: str) -> tuple[list[ad.AnnData], list[int]]:
    """Predict the same 13-cell shard in the tiny data set and in one with 60 renamed copies of its cells (their
    fragments in the same regions, none a neighbour of the shard's cells); returns both results and the peak of
    memory held by Python and numpy during each (tracemalloc: it sees the fetched fragment text, the insertion
    matrices and every array of the shard)."""
    import tracemalloc

    from scfan.sc.pooling import PooledTracks

    monkeypatch.setattr(PooledTracks, "fetch_lines", 500)
    models = [f"lineA={t['models'][0]}", f"lineB={t['models'][1]}"]
    P.load_models(models, torch.device("cpu"))  # first-import allocations outside the measurement
    peaks, results = [], []
    for copies in (0, 60):
        root = tmp_path / f"x{copies}"
        root.mkdir()
        cells, frags = _tiled_cells(t, root, copies)
        cfg = P.PredictConfig(mode=mode, shard=f"1/{copies + 1}", device="cpu", chunk_bp=50_000, batch_size=32)
        tracemalloc.start()
        try:
            out = P.predict_activity(cells, models, {"s1": frags}, t["fasta"], t["mapp"], cfg)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        results.append(out)
    return results, peaks


@pytest.mark.parametrize("mode", ["exact", "metacell"])
def test_a_shard_does_not_depend_on_the_cells_of_other_shards(tiny_sc, tmp_path, monkeypatch, mode):
    """Cells that are no neighbour of the shard's cells change nothing of its predictions (fragments of other
    cells are dropped while the tabix query is parsed, batch by batch)."""
    (small, large), _ = _shard_in_tiled_data(tiny_sc, tmp_path, monkeypatch, mode)
    assert list(large.obs_names) == list(small.obs_names) and small.n_obs == 13
    for layer in ("mean_prob", "frac_bound"):
        np.testing.assert_allclose(large.layers[layer], small.layers[layer], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(large.X, small.X, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(large.obs["n_scored_windows"], small.obs["n_scored_windows"])


def test_memory_of_a_shard_does_not_grow_with_the_data_set(tiny_sc, tmp_path, monkeypatch):
    """The same shard in a data set of 13 and of 13 × 61 cells: the peak of traced memory stays within 25 %; it
    doubled when every cell's fragments in a chunk were held. Metacell mode, whose own arrays are smallest, so that
    the fragments would dominate (exact mode's input arrays peak above them at this tiny scale). The RSS of whole
    tasks at up to 50k cells: benchmarks/bench_memory.py."""
    _, peaks = _shard_in_tiled_data(tiny_sc, tmp_path, monkeypatch, "metacell")
    assert peaks[1] <= 1.25 * peaks[0], f"peak traced memory {peaks[0]:,} B → {peaks[1]:,} B with 61× the cells"


# --- shards in neighbourhood order, and the fragments split per shard -----------------------------------------

def test_neighbourhood_order_keeps_neighbours_together():
    """Two interleaved groups of cells (neighbours only within a group): in row order each shard of 2 needs cells of
    the other, in the neighbourhood order each shard is one group and needs only its own cells."""
    from scfan.sc import shards as S

    n = 40
    group = np.arange(n) % 2
    rows, cols = [], []
    for i in range(n):
        same = np.flatnonzero(group == group[i])
        for j in same[(np.searchsorted(same, i) + np.arange(-2, 3)) % len(same)]:
            rows.append(i)
            cols.append(j)
    pool = sp.csr_matrix((np.full(len(rows), 0.2), (rows, cols)), shape=(n, n))
    for rank in (S.neighbourhood_order(pool), S.neighbourhood_order(pool, sp.csr_matrix(pool + pool.T), seed=3)):
        assert np.array_equal(np.sort(rank), np.arange(n))
        for spec in ("1/2", "2/2"):
            by_rank = S.shard_cells(n, spec, rank)
            assert len(np.unique(group[by_rank])) == 1
            assert np.array_equal(S.cells_used(pool, by_rank), by_rank)
            assert len(S.cells_used(pool, S.shard_cells(n, spec))) > n // 2  # row order: both groups
    assert np.array_equal(S.neighbourhood_order(pool), S.neighbourhood_order(pool))
    conn = sp.csr_matrix(pool + pool.T)
    assert np.array_equal(S.neighbourhood_order(pool, conn, seed=3), S.neighbourhood_order(pool, conn, seed=3))
    got = np.sort(np.concatenate([S.shard_cells(n, f"{i}/3", rank) for i in (1, 2, 3)]))
    assert np.array_equal(got, np.arange(n))
    with pytest.raises(Exception, match="not a permutation"):
        S.check_rank(np.zeros(n, dtype=np.int64), n, "cells_nn.h5ad")


@pytest.mark.parametrize("mode", ["exact", "metacell"])
def test_a_shard_on_its_split_fragments_predicts_what_it_does_on_the_whole_file(tiny_sc, tmp_path, monkeypatch,
                                                                                 capsys, mode):
    import gzip

    from scfan.sc import shards as S

    n = 3
    assert run_cli(monkeypatch, "sc", "split-fragments", "--cells", str(tiny_sc["cells"]), "--fragments",
                   f"s1={tiny_sc['fragments']}", "--shards", str(n), "--mode", mode, "--metacell-size", "3",
                   "--out-dir", str(tmp_path / "split")) == 0
    a = ad.read_h5ad(tiny_sc["cells"])
    pooling = a.obsp["pooling"]
    rank = a.obs["shard_rank"].to_numpy()
    whole = [ln for ln in gzip.open(tiny_sc["fragments"], "rt") if not ln.startswith("#")]
    for i in range(1, n + 1):
        part = tmp_path / "split" / f"shard_{i}_of_{n}" / "s1.fragments.tsv.gz"
        assert Path(f"{part}.tbi").is_file()
        # the shard named beside its files, for the pipeline to read (not to parse from the folder name)
        assert (part.parent / S.SHARD_SPEC_FILE).read_text() == f"{i}/{n}\n"
        assert part.parent.name == S.shard_name(i, n)
        # a header naming shard and mode, then exactly the fragments of the cells whose insertions the shard's
        # pooled tracks use (metacell mode: its metacells' seeds' neighbourhoods), in the input's order
        units = make_units(mode, pooling, S.shard_cells(a.n_obs, f"{i}/{n}", rank), 3)
        used_rows = S.cells_used(units.pooling, np.arange(units.pooling.shape[0]))
        used = {a.obs_names[c].partition("#")[2] for c in used_rows}
        header, *body = list(gzip.open(part, "rt"))
        assert header == f"# scfan split-fragments shard={i}/{n} mode={mode} metacell_size=3\n"
        assert body == [ln for ln in whole if ln.split("\t")[3] in used] and 0 < len(body) < len(whole)
        assert _predict(monkeypatch, tiny_sc, tmp_path / f"whole{i}.h5ad", "--mode", mode, "--metacell-size", "3",
                        "--shard", f"{i}/{n}") == 0
        # --out FOLDER: the file named by scfan (what the pipeline's SC_PREDICT does)
        (tmp_path / f"split{i}").mkdir()
        assert _predict(monkeypatch, tiny_sc, tmp_path / f"split{i}", "--mode", mode, "--metacell-size", "3",
                        "--shard", f"{i}/{n}", fragments=part) == 0
        w = ad.read_h5ad(tmp_path / f"whole{i}.h5ad")
        s = ad.read_h5ad(tmp_path / f"split{i}" / f"activity_shard_{i}_of_{n}.h5ad")
        assert list(w.obs_names) == list(s.obs_names)
        np.testing.assert_array_equal(w.X, s.X)
        for layer in ("mean_prob", "frac_bound"):
            np.testing.assert_array_equal(w.layers[layer], s.layers[layer])
    # a shard's file given to another shard, or to another mode, would lack fragments: refused
    part = tmp_path / "split" / f"shard_1_of_{n}" / "s1.fragments.tsv.gz"
    other = "metacell" if mode == "exact" else "exact"
    if mode == "exact":  # fast mode pools the same neighbourhoods as exact: an exact split serves it
        assert _predict(monkeypatch, tiny_sc, tmp_path / "fast1.h5ad", "--mode", "fast", "--shard", f"1/{n}",
                        fragments=part) == 0
    for extra, expect in ((("--mode", mode, "--shard", f"2/{n}"), f"shard '1/{n}' (expected '2/{n}')"),
                          (("--mode", other, "--shard", f"1/{n}"), f"mode '{mode}' (expected '{other}')")):
        assert _predict(monkeypatch, tiny_sc, tmp_path / "bad.h5ad", *extra, "--metacell-size", "3",
                        fragments=part) == 2
        assert expect in capsys.readouterr().err
        assert not (tmp_path / "bad.h5ad").exists()


def test_split_refuses_fragments_of_no_cell(tiny_sc, tmp_path, monkeypatch, capsys):
    other = write_fragments(tmp_path / "other.tsv.gz", [("chr1", 100 + i, 300 + i, "GGGG0000-1", 1)
                                                         for i in range(50)])
    code = run_cli(monkeypatch, "sc", "split-fragments", "--cells", str(tiny_sc["cells"]), "--fragments",
                   f"s1={other}", "--shards", "2", "--out-dir", str(tmp_path / "split"))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "other.tsv.gz" in err and "no fragment of any cell of sample 's1'" in err, err
    assert not (tmp_path / "split").exists() and not any(p.name.startswith(".split") for p in tmp_path.iterdir())
    code = run_cli(monkeypatch, "sc", "split-fragments", "--cells", str(tiny_sc["cells"]), "--fragments",
                   f"s2={other}", "--shards", "2", "--out-dir", str(tmp_path / "split"))
    assert code == 2 and "no cell of sample(s) s2 in the cells file (it has s1)" in capsys.readouterr().err
    code = run_cli(monkeypatch, "sc", "split-fragments", "--cells", str(tiny_sc["cells"]), "--fragments",
                   f"s1={tiny_sc['fragments']}", "--shards", "0", "--out-dir", str(tmp_path / "split"))
    assert code == 2 and "--shards 0" in capsys.readouterr().err


# --- window sampling (--window-share): the activity layers estimated from a share of every cell's windows ---


def _pairs_of_exact_run(t, cfg: P.PredictConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Every (cell, window, probs) of an exact run over all cells, through `predict_activity`'s `on_batch`."""
    got = []

    def keep(cells, wins, probs, **kw):
        got.append((cells.copy(), wins.copy(), probs.copy(), kw["windows"]))

    models = [f"lineA={t['models'][0]}", f"lineB={t['models'][1]}"]
    P.predict_activity(t["cells"], models, {"s1": t["fragments"]}, t["fasta"], t["mapp"], cfg, on_batch=keep)
    return (np.concatenate([g[0] for g in got]), np.concatenate([g[1] for g in got]),
            np.concatenate([g[2] for g in got]), got[0][3])


def test_window_sample_is_the_mean_over_the_sampled_windows_of_exact_predictions(tiny_sc, tmp_path, monkeypatch):
    """With --window-share, each cell's layers are exact mode's predictions averaged over the cell's windows in the
    sample (the same windows for every cell; all of a cell's windows when it has fewer than the minimum in the
    sample), with standard errors 0 exactly where every window was scored, and the counts in obs."""
    cfg = P.PredictConfig(device="cpu")
    pc, pw, pp, windows = _pairs_of_exact_run(tiny_sc, cfg)
    assert _predict(monkeypatch, tiny_sc, tmp_path / "s.h5ad", "--window-share", "0.5", "--window-seed", "3",
                    "--min-sampled-windows", "3") == 0
    s = ad.read_h5ad(tmp_path / "s.h5ad")
    info = s.uns["scfan_activity"]["window_sampling"]
    assert info["share"] == 0.5 and info["seed"] == 3 and info["min_sampled_windows"] == 3
    in_sample = P.sampled_windows(windows, 0.5, 3)
    assert 0 < in_sample.sum() < len(windows)
    n_cells = s.n_obs
    n_all = np.bincount(pc, minlength=n_cells)
    np.testing.assert_array_equal(s.obs["n_candidate_windows"], n_all)
    sampled_n = np.bincount(pc[in_sample[pw]], minlength=n_cells)
    every = sampled_n < 3  # these cells keep all their windows
    assert every.any() and (~every & (n_all > 0)).any(), "the fixture must have cells of both kinds"
    expect_n = np.where(every, n_all, sampled_n)
    np.testing.assert_array_equal(s.obs["n_scored_windows"], expect_n)
    kept = in_sample[pw] | every[pc]
    mean = np.zeros((n_cells, pp.shape[1]))
    np.add.at(mean, pc[kept], pp[kept])
    mean /= np.maximum(expect_n, 1)[:, None]
    np.testing.assert_allclose(s.layers["mean_prob"], mean, rtol=0, atol=2e-6)
    se = s.layers["mean_prob_se"]
    assert set(s.layers) >= {"top_k_freq_se", "mean_prob_se", "frac_bound_se"}
    full = expect_n == n_all
    assert np.all(se[full] == 0)
    part = ~full & (expect_n >= 2)
    assert part.any() and np.all(se[part] > 0)
    # the same numbers for any shard count: the sample belongs to the windows, not the shard
    shards = []
    for i in (1, 2):
        shards.append(tmp_path / f"p{i}.h5ad")
        assert _predict(monkeypatch, tiny_sc, shards[-1], "--window-share", "0.5", "--window-seed", "3",
                        "--min-sampled-windows", "3", "--shard", f"{i}/2") == 0
    assert run_cli(monkeypatch, "sc", "merge-activity", *map(str, shards), "--out", str(tmp_path / "m.h5ad")) == 0
    m = ad.read_h5ad(tmp_path / "m.h5ad")
    for layer in ("mean_prob", "mean_prob_se", "top_k_freq_se", "frac_bound_se"):
        np.testing.assert_array_equal(m.layers[layer], s.layers[layer])
    assert m.uns["scfan_activity"]["window_sampling"]["median_se_mean_prob"] == pytest.approx(
        info["median_se_mean_prob"])
    # another seed draws other windows
    other = P.sampled_windows(windows, 0.5, 4)
    assert not np.array_equal(other, in_sample)


def test_merge_refuses_shards_of_different_window_samples(tiny_sc, tmp_path, monkeypatch, capsys):
    a, b = tmp_path / "a.h5ad", tmp_path / "b.h5ad"
    assert _predict(monkeypatch, tiny_sc, a, "--window-share", "0.5", "--shard", "1/2") == 0
    assert _predict(monkeypatch, tiny_sc, b, "--window-share", "0.6", "--shard", "2/2") == 0
    capsys.readouterr()
    out = tmp_path / "m.h5ad"
    assert run_cli(monkeypatch, "sc", "merge-activity", str(a), str(b), "--out", str(out)) == 2
    assert "another window sample" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("share", ["0", "1.5", "-0.1", "nan"])
def test_window_share_outside_zero_one(tiny_sc, tmp_path, monkeypatch, capsys, share):
    _bad(monkeypatch, capsys, tiny_sc, tmp_path, "--window-share", "--window-share", share)


def test_sampled_windows_are_a_share_of_the_windows_independent_of_their_order():
    import polars as pl

    rng = np.random.default_rng(0)
    w = pl.DataFrame({"chrom": rng.choice(["chr1", "chr2", "chrX"], 20_000),
                      "start": rng.integers(0, 10**8, 20_000), "peak": np.arange(20_000)})
    m = P.sampled_windows(w, 0.2, 11)
    assert abs(m.mean() - 0.2) < 0.01
    perm = rng.permutation(len(w))
    np.testing.assert_array_equal(P.sampled_windows(w[perm], 0.2, 11), m[perm])
    assert P.sampled_windows(w, 1.0, 11).all()
    # nested: a window in the 10 % sample is in the 20 % sample of the same seed
    assert not (P.sampled_windows(w, 0.1, 11) & ~m).any()


def test_standard_errors_cover_the_full_mean_at_their_stated_rate():
    """The estimator's 95 % intervals (± 1.96 SE) hold the mean over all of a cell's windows in about 95 % of
    (cell, feature) values, for cells of different sizes, when windows are sampled at random."""
    rng = np.random.default_rng(1)
    n_cells, n_feat = 400, 3
    n_win = rng.integers(300, 3000, n_cells)
    pc = np.repeat(np.arange(n_cells), n_win)
    pw = np.concatenate([rng.choice(50_000, n, replace=False) for n in n_win])
    # per cell a different level, windows differ a lot (skewed probabilities, as a sigmoid output)
    logits = rng.normal(0, 1.5, (len(pc), n_feat)) + rng.normal(0, 1, (n_cells, n_feat))[pc]
    probs = (1 / (1 + np.exp(-logits))).astype(np.float32)
    full = P.ActivityAccumulator(n_cells, n_feat, 1, 0.5)
    full.add(pc, probs)
    truth = full.layers()
    in_sample = rng.random(50_000) < 0.2
    keep, n_total = P.sample_pairs(pc, pw, in_sample, n_cells, 20)
    np.testing.assert_array_equal(n_total, n_win)
    est = P.ActivityAccumulator(n_cells, n_feat, 1, 0.5, squares=True)
    est.add(pc[keep], probs[keep])
    lay, se = est.layers(), est.standard_errors(n_total)
    for name in ("mean_prob", "frac_bound", "top_k_freq"):
        diff, s_ = np.abs(lay[name] - truth[name]), se[f"{name}_se"]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(diff == 0, 0.0, diff / s_)  # SE 0 with a wrong value (a feature never seen) is not covered
        cover = float(np.mean(z <= 1.96))
        assert 0.90 <= cover <= 0.99, (name, cover)
    # everything scored: SE 0 and the exact values
    all_in = P.ActivityAccumulator(n_cells, n_feat, 1, 0.5, squares=True)
    all_in.add(pc, probs)
    assert all(np.all(v == 0) for v in all_in.standard_errors(n_total).values())


def test_only_the_windows_columns_enter_the_pooling_product():
    """Dropping the insertions between windows changes no pooled value inside a window, bit for bit."""
    from scfan.sc.predict import _only_columns

    rng = np.random.default_rng(2)
    ins = sp.random(60, 5000, density=0.02, random_state=3, format="csr", dtype=np.float64)
    ins.data[:] = rng.integers(1, 3, ins.nnz)
    pool = sp.random(20, 60, density=0.3, random_state=4, format="csr")
    offsets, width = np.array([0, 900, 950, 3000, 4800]), 400
    cut = _only_columns(ins, offsets, width)
    assert cut.nnz < ins.nnz
    full, part = (pool @ ins).toarray(), (pool @ cut).toarray()
    inside = np.zeros(5000, bool)
    for o in offsets:
        inside[o : o + width] = True
    np.testing.assert_array_equal(full[:, inside], part[:, inside])
    assert np.all(part[:, ~inside] == 0)


# --- where the inputs are built (--assembly): the device path (torch, here on the CPU device) gives the host's ---


@pytest.mark.parametrize("mode", ["exact", "metacell"])
def test_device_assembly_gives_the_host_activity(tiny_sc, tmp_path, monkeypatch, mode):
    """`--assembly device` (the inputs built with torch on the models' device, here the CPU) predicts every pair as
    the host path does, within float rounding (log1p in float32 may differ in the last bit); the activity of one
    shard equals that of three merged shards, and any batch size gives the same numbers."""
    t = tiny_sc
    opts = ("--mode", mode, "--metacell-size", "3")
    host = P.PredictConfig(mode=mode, metacell_size=3, device="cpu", num_threads=1, assembly="host")
    dev = P.PredictConfig(mode=mode, metacell_size=3, device="cpu", num_threads=1, assembly="device")
    hc, hw, hp, _ = _pairs_of_exact_run(t, host)
    dc, dw, dp, _ = _pairs_of_exact_run(t, dev)
    np.testing.assert_array_equal(hc, dc)
    np.testing.assert_array_equal(hw, dw)
    np.testing.assert_allclose(dp, hp, rtol=0, atol=1e-5)
    # a (cell, feature) whose bound count may differ: a pair within 1e-5 of the threshold
    near = np.zeros((ad.read_h5ad(t["cells"]).n_obs, hp.shape[1]), dtype=bool)
    np.logical_or.at(near, hc, np.abs(hp - 0.5) < 1e-5)
    assert _predict(monkeypatch, t, tmp_path / "host.h5ad", *opts, "--assembly", "host") == 0
    assert _predict(monkeypatch, t, tmp_path / "dev.h5ad", *opts, "--assembly", "device") == 0
    shards = []
    for i in (1, 2, 3):
        shards.append(tmp_path / f"s{i}.h5ad")
        assert _predict(monkeypatch, t, shards[-1], *opts, "--assembly", "device", "--shard", f"{i}/3") == 0
    assert run_cli(monkeypatch, "sc", "merge-activity", *map(str, shards), "--out", str(tmp_path / "m.h5ad")) == 0
    h, d, m = (ad.read_h5ad(tmp_path / f) for f in ("host.h5ad", "dev.h5ad", "m.h5ad"))
    assert h.uns["scfan_activity"]["assembly"] == "host"
    assert d.uns["scfan_activity"]["assembly"] == m.uns["scfan_activity"]["assembly"] == "device (cpu)"
    assert d.uns["scfan_activity"]["config"]["assembly"] == "device"
    np.testing.assert_allclose(d.X, h.X, rtol=0, atol=1e-5)
    np.testing.assert_allclose(d.layers["mean_prob"], h.layers["mean_prob"], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(d.layers["frac_bound"][~near], h.layers["frac_bound"][~near])
    np.testing.assert_array_equal(d.obs["n_scored_windows"], h.obs["n_scored_windows"])
    for name in ("X", "mean_prob", "frac_bound"):
        np.testing.assert_array_equal(d.X if name == "X" else d.layers[name], m.X if name == "X" else m.layers[name])
    if mode == "exact":
        assert _predict(monkeypatch, t, tmp_path / "b1.h5ad", *opts, "--assembly", "device", "--batch-size", "1") == 0
        b1 = ad.read_h5ad(tmp_path / "b1.h5ad")
        for name in ("mean_prob", "frac_bound"):
            np.testing.assert_array_equal(b1.layers[name], d.layers[name])
        np.testing.assert_array_equal(b1.X, d.X)


def test_default_assembly_on_a_cpu_is_the_host():
    assert P.assembly_of("auto", torch.device("cpu")) == "host"
    assert P.assembly_of("auto", torch.device("cuda")) == "device"
    assert P.assembly_label("device", torch.device("cpu")) == "device (cpu)"
    assert P.assembly_label("host", torch.device("cuda", 0)) == "host"


def test_unknown_assembly(tiny_sc, tmp_path, monkeypatch, capsys):
    _bad(monkeypatch, capsys, tiny_sc, tmp_path, "--assembly 'gpu': expected one of auto, host, device",
         "--assembly", "gpu")


def test_cuda_device_without_a_gpu(tiny_sc, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without a GPU, wherever this runs
    _bad(monkeypatch, capsys, tiny_sc, tmp_path, "--device cuda requested but no CUDA device is available",
         "--device", "cuda", "--assembly", "device")


@pytest.mark.parametrize("broken", ["wrong numbers", "kernel error"])
def test_a_device_assembly_that_disagrees_with_the_host_is_refused(tiny_sc, tmp_path, monkeypatch, capsys, broken):
    """The device path is trusted only after it built the first chunk's first pairs as the host does: a stand-in
    that returns wrong numbers (or whose kernel fails) is refused with one warning line, the shard runs on the host
    with the host's numbers, and the activity file says so."""
    from scfan.sc.assembly import DeviceAssembler

    good = DeviceAssembler.accessibility

    def bad(self, units, windows):
        if broken == "kernel error":
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore")
        return good(self, units, windows) * 1.5 + 0.1

    assert _predict(monkeypatch, tiny_sc, tmp_path / "host.h5ad", "--assembly", "host") == 0
    monkeypatch.setattr(DeviceAssembler, "accessibility", bad)
    capsys.readouterr()
    assert _predict(monkeypatch, tiny_sc, tmp_path / "dev.h5ad", "--assembly", "device") == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "--assembly device on cpu refused" in ln]
    assert len(lines) == 1, err
    assert ("illegal memory access" in lines[0]) if broken == "kernel error" else "differ from the host's" in lines[0]
    h, d = ad.read_h5ad(tmp_path / "host.h5ad"), ad.read_h5ad(tmp_path / "dev.h5ad")
    assert d.uns["scfan_activity"]["assembly"].startswith("host (device assembly on cpu refused: ")
    for name in ("mean_prob", "frac_bound"):
        np.testing.assert_array_equal(d.layers[name], h.layers[name])
    np.testing.assert_array_equal(d.X, h.X)


# --- --window-estimator regression (scfan.sc.window_estimate) ---


def test_regression_run_predicts_the_sample_exactly_and_estimates_closer_than_the_mean(tiny_sc, tmp_path,
                                                                                       monkeypatch):
    """A real run: the sampled pairs get exact mode's predictions, cells scored on all their windows get exact's
    means, and the regression estimate is nearer exact's layers than the plain sample mean."""
    pc, pw, pp, windows = _pairs_of_exact_run(tiny_sc, P.PredictConfig(device="cpu"))
    args = ("--window-share", "0.5", "--window-seed", "3", "--min-sampled-windows", "3")
    assert _predict(monkeypatch, tiny_sc, tmp_path / "mean.h5ad", *args) == 0
    assert _predict(monkeypatch, tiny_sc, tmp_path / "reg.h5ad", *args, "--window-estimator", "regression") == 0
    mean, reg = ad.read_h5ad(tmp_path / "mean.h5ad"), ad.read_h5ad(tmp_path / "reg.h5ad")
    assert reg.uns["scfan_activity"]["window_sampling"]["window_estimator"] == "regression"
    np.testing.assert_array_equal(reg.obs["n_scored_windows"], mean.obs["n_scored_windows"])
    n_cells = reg.n_obs
    exact = np.zeros((n_cells, pp.shape[1]))
    np.add.at(exact, pc, pp)
    exact /= np.maximum(np.bincount(pc, minlength=n_cells), 1)[:, None]
    full = reg.obs["n_scored_windows"].to_numpy() == reg.obs["n_candidate_windows"].to_numpy()
    assert full.any() and (~full).any()
    np.testing.assert_allclose(reg.layers["mean_prob"][full], exact[full], atol=2e-6)
    assert np.all(reg.layers["mean_prob_se"][full] == 0)
    err_reg = np.abs(reg.layers["mean_prob"][~full] - exact[~full]).mean()
    err_mean = np.abs(mean.layers["mean_prob"][~full] - exact[~full]).mean()
    assert err_reg < err_mean, (err_reg, err_mean)
    # the sampled pairs' predictions are exact mode's, whatever else is assembled beside them
    got = []
    models = [f"lineA={tiny_sc['models'][0]}", f"lineB={tiny_sc['models'][1]}"]
    cfg = P.PredictConfig(device="cpu", window_share=0.5, window_seed=3, min_sampled_windows=3,
                          window_estimator="regression")
    P.predict_activity(tiny_sc["cells"], models, {"s1": tiny_sc["fragments"]}, tiny_sc["fasta"], tiny_sc["mapp"],
                       cfg, on_batch=lambda c, w, p, **kw: got.append((c.copy(), w.copy(), p.copy())))
    sc_, sw, sp_ = (np.concatenate([g[i] for g in got]) for i in range(3))
    lookup = {(int(c), int(w)): i for i, (c, w) in enumerate(zip(pc, pw, strict=True))}
    idx = np.array([lookup[(int(c), int(w))] for c, w in zip(sc_, sw, strict=True)])
    np.testing.assert_allclose(sp_, pp[idx], atol=1e-6)
    assert len(sc_) == int(reg.obs["n_scored_windows"].sum()) < len(pc)


def test_merge_refuses_shards_of_different_estimators(tiny_sc, tmp_path, monkeypatch, capsys):
    a, b = tmp_path / "a.h5ad", tmp_path / "b.h5ad"
    assert _predict(monkeypatch, tiny_sc, a, "--window-share", "0.5", "--shard", "1/2") == 0
    assert _predict(monkeypatch, tiny_sc, b, "--window-share", "0.5", "--shard", "2/2",
                    "--window-estimator", "regression") == 0
    capsys.readouterr()
    out = tmp_path / "m.h5ad"
    assert run_cli(monkeypatch, "sc", "merge-activity", str(a), str(b), "--out", str(out)) == 2
    assert "another window sample" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_estimator(tiny_sc, tmp_path, monkeypatch, capsys):
    _bad(monkeypatch, capsys, tiny_sc, tmp_path, "--window-estimator", "--window-share", "0.5",
         "--window-estimator", "ratio")
