"""The benchmark's oracle (benchmarks/bench_bulk.py): the ceiling that model / oracle ratios are read against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest


@pytest.fixture
def sim(tmp_path: Path) -> Path:
    truth = tmp_path / "truth"
    truth.mkdir()
    pl.DataFrame({
        "chrom": ["chr1", "chr1", "chr1", "chr1", "chr2"],
        "start": [140, 340, 40, 1000, 500],
        "end": [160, 360, 60, 1020, 520],  # centres 150, 350, 50, 1010 on chr1; 510 on chr2
        "tf": ["A", "A", "B", "A", "A"],
        "bound_lines": [["L"], ["L"], ["L"], ["other"], ["L"]],
    }).write_parquet(truth / "bound_sites.parquet")
    pl.DataFrame({"chrom": ["chr1"], "start": [0], "end": [250], "access_L": [0.5]}).write_parquet(
        truth / "open_regions.parquet")
    return tmp_path


def test_site_distances_count_from_the_window_edges_and_only_sites_bound_in_the_line(sim, bench_bulk):
    chroms = np.array(["chr1", "chr1", "chr1", "chr1", "chr2"])
    starts = np.array([100, 400, 700, 0, 0])
    d = bench_bulk.site_distances(sim, "L", chroms, starts, 200, ["A", "B", "C"])
    # window [100, 300): A's centre 150 inside, B's 50 is 50 bp before it
    assert d[0].tolist() == [0.0, 50.0, np.inf]
    # window [400, 600): A's nearest centre 350 is 50 bp before; B's 50 is 350 bp before
    assert d[1, :2].tolist() == [50.0, 350.0]
    # window [700, 900): A's centre 1010 is bound only in another line, so the nearest is 350 (350 bp before)
    assert d[2, 0] == 350.0
    # window [0, 200): A's centre 150 inside; chr2's window [0, 200) is 311 bp before the centre 510
    assert d[3, 0] == 0.0 and d[4, 0] == 311.0 and np.isinf(d[4, 1])


def test_oracle_is_one_on_a_site_decays_beside_it_and_breaks_ties_by_accessibility(sim, bench_bulk):
    chroms = np.array(["chr1", "chr1", "chr1"])
    starts = np.array([100, 400, 2000])
    o = bench_bulk.oracle_scores(sim, "L", chroms, starts, 200, ["A"])
    assert o[0, 0] == pytest.approx(1 + 0.01 * 0.5)  # site inside, window overlaps the open region
    assert o[1, 0] == pytest.approx(np.exp(-50 / bench_bulk.ORACLE_DECAY_BP))  # 50 bp away, closed
    assert o[2, 0] == pytest.approx(np.exp(-(2000 - 350) / bench_bulk.ORACLE_DECAY_BP))
    assert o[0, 0] > o[1, 0] > o[2, 0]


def test_localisation_bins_windows_by_site_distance_and_scores_the_near_ones(bench_bulk):
    dist = np.array([[0.0], [0.0], [30.0], [80.0], [150.0], [5000.0], [np.inf]])
    labels = np.array([[1.0], [1.0], [1.0], [0.0], [0.0], [1.0], [0.0]])
    probs = np.array([[0.9], [0.7], [0.2], [0.4], [0.1], [0.3], [0.0]])
    loc = bench_bulk.localisation(dist, labels, probs, oracle=np.exp(-dist / bench_bulk.ORACLE_DECAY_BP))
    inside, near, mid, far_ = loc["bins"][0], loc["bins"][1], loc["bins"][2], loc["bins"][-1]
    assert (inside["n"], inside["label_rate"], inside["mean_prob"]) == (2, 1.0, pytest.approx(0.8))
    assert (near["n"], near["label_rate"]) == (1, 1.0) and (mid["n"], mid["label_rate"]) == (1, 0.0)
    assert far_["n"] == 2 and far_["label_rate"] == 0.5  # > 1 kb, the chromosome without a site included
    # within 1 kb: positives 0.9, 0.7, 0.2 vs negatives 0.4, 0.1 -> 5 of 6 pairs ordered; the oracle orders all
    assert loc["near_auroc_model"] == pytest.approx(5 / 6) and loc["near_auroc_oracle"] == 1.0


class _Source:
    """The part of :class:`scfan.bulk.data.InputSource` the motif learner reads: ``batch`` of one-hot + tracks."""

    def __init__(self, seq: str, accessibility: np.ndarray):
        from scfan.bulk.inputs import encode_codes

        self.codes = encode_codes(seq)
        self.acc = accessibility.astype(np.float32)

    def batch(self, chroms, context_starts, length):
        import torch

        from scfan.bulk.inputs import codes_to_onehot

        rows = []
        for s in np.asarray(context_starts, dtype=np.int64):
            oh = codes_to_onehot(self.codes[None, s : s + length])[0]
            rows.append(np.concatenate([oh, self.acc[None, s : s + length], np.ones((1, length))]))
        return torch.from_numpy(np.stack(rows).astype(np.float32))


def test_motif_learner_features_place_a_site_in_its_distance_bin_on_either_strand(bench_bulk):
    from scfan.bulk.pwm import log_odds

    site = "CCGCGTGGCGCCAGTTACGGATCA"
    counts = np.stack([[10.0 if b == base else 0.0 for b in site] for base in "ACGT"])
    pwm = log_odds(counts)
    n = 4000
    rng = np.random.default_rng(0)
    background = "".join(rng.choice(list("ACGT"), n))
    # windows of 200 bp centred at 1000 (site 120 bp right of the centre), 2000 (site, reverse strand, at the
    # centre) and 3000 (no site)
    seq = list(background)
    seq[1120 - 12 : 1120 + 12] = site
    seq[2000 - 12 : 2000 + 12] = site.translate(str.maketrans("ACGT", "TGCA"))[::-1]  # reverse strand
    acc = np.zeros(n)
    acc[1900:2100] = 2.0
    src = _Source("".join(seq), acc)
    starts = np.array([900, 1900, 2900])
    x = bench_bulk.motif_learner_features(src, np.array(["c"] * 3), starts, 200, [pwm], chunk=2)
    n_bins = len(bench_bulk.LEARNER_BINS) - 1
    assert x.shape == (3, n_bins + 3)
    best = float(pwm.max(axis=0).sum())
    bin_120 = next(i for i in range(n_bins) if bench_bulk.LEARNER_BINS[i] <= 120 < bench_bulk.LEARNER_BINS[i + 1])
    assert x[0, bin_120] == pytest.approx(best, abs=1e-4) and x[0, :bin_120].max() < best - 5
    assert x[1, 0] == pytest.approx(best, abs=1e-4)  # reverse strand, at the centre
    assert x[2, :n_bins].max() < best - 5
    # accessibility over the central 200, 400, 800 bp
    assert x[1, n_bins:].tolist() == pytest.approx([2.0, 1.0, 0.5]) and x[0, n_bins:].tolist() == [0.0, 0.0, 0.0]
    assert bench_bulk.LEARNER_SPAN == 800


def test_truth_openness_takes_the_most_open_element_within_each_radius(tmp_path, bench_bulk):
    truth = tmp_path / "truth"
    truth.mkdir()
    pl.DataFrame({"chrom": ["chr1", "chr1", "chr1", "chr2"], "start": [1000, 1250, 2000, 0],
                  "end": [1100, 1300, 2100, 50], "access_L": [0.5, 2.0, 0.0, 1.0],
                  "access_M": [9.0, 9.0, 9.0, 9.0]}).write_parquet(truth / "open_regions.parquet")
    chroms = np.array(["chr1", "chr1", "chr1", "chr1", "chr2"])
    starts = np.array([950, 1050, 1950, 5000, 5000])  # centres 1050, 1150, 2050, 5100 (chr1), 5100 (chr2)
    t = bench_bulk.truth_openness(tmp_path, "L", chroms, starts, 200)
    # centre 1050 lies in the first element; the second (1250-1300) is 200 bp away: within 400 only
    assert t[0].tolist() == [0.5, 0.5, 2.0]
    # centre 1150: 50 bp from the first, 100 bp from the second (not within 100: the edge is open), within 200
    assert t[1].tolist() == [0.5, 2.0, 2.0]
    # a closed element counts 0; nothing near; the other chromosome's element is not this one's
    assert t[2].tolist() == [0.0, 0.0, 0.0] and t[3].tolist() == [0.0, 0.0, 0.0] and t[4].tolist() == [0.0] * 3
