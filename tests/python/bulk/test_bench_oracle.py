"""The benchmark's oracle (benchmarks/bench_bulk.py): the ceiling that model / oracle ratios are read against."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from bench_bulk import ORACLE_DECAY_BP, localisation, oracle_scores, site_distances  # noqa: E402


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


def test_site_distances_count_from_the_window_edges_and_only_sites_bound_in_the_line(sim):
    chroms = np.array(["chr1", "chr1", "chr1", "chr1", "chr2"])
    starts = np.array([100, 400, 700, 0, 0])
    d = site_distances(sim, "L", chroms, starts, 200, ["A", "B", "C"])
    # window [100, 300): A's centre 150 inside, B's 50 is 50 bp before it
    assert d[0].tolist() == [0.0, 50.0, np.inf]
    # window [400, 600): A's nearest centre 350 is 50 bp before; B's 50 is 350 bp before
    assert d[1, :2].tolist() == [50.0, 350.0]
    # window [700, 900): A's centre 1010 is bound only in another line, so the nearest is 350 (350 bp before)
    assert d[2, 0] == 350.0
    # window [0, 200): A's centre 150 inside; chr2's window [0, 200) is 311 bp before the centre 510
    assert d[3, 0] == 0.0 and d[4, 0] == 311.0 and np.isinf(d[4, 1])


def test_oracle_is_one_on_a_site_decays_beside_it_and_breaks_ties_by_accessibility(sim):
    chroms = np.array(["chr1", "chr1", "chr1"])
    starts = np.array([100, 400, 2000])
    o = oracle_scores(sim, "L", chroms, starts, 200, ["A"])
    assert o[0, 0] == pytest.approx(1 + 0.01 * 0.5)  # site inside, window overlaps the open region
    assert o[1, 0] == pytest.approx(np.exp(-50 / ORACLE_DECAY_BP))  # 50 bp away, closed
    assert o[2, 0] == pytest.approx(np.exp(-(2000 - 350) / ORACLE_DECAY_BP))
    assert o[0, 0] > o[1, 0] > o[2, 0]


def test_localisation_bins_windows_by_site_distance_and_scores_the_near_ones():
    dist = np.array([[0.0], [0.0], [30.0], [80.0], [150.0], [5000.0], [np.inf]])
    labels = np.array([[1.0], [1.0], [1.0], [0.0], [0.0], [1.0], [0.0]])
    probs = np.array([[0.9], [0.7], [0.2], [0.4], [0.1], [0.3], [0.0]])
    loc = localisation(dist, labels, probs, oracle=np.exp(-dist / ORACLE_DECAY_BP))
    inside, near, mid, far_ = loc["bins"][0], loc["bins"][1], loc["bins"][2], loc["bins"][-1]
    assert (inside["n"], inside["label_rate"], inside["mean_prob"]) == (2, 1.0, pytest.approx(0.8))
    assert (near["n"], near["label_rate"]) == (1, 1.0) and (mid["n"], mid["label_rate"]) == (1, 0.0)
    assert far_["n"] == 2 and far_["label_rate"] == 0.5  # > 1 kb, the chromosome without a site included
    # within 1 kb: positives 0.9, 0.7, 0.2 vs negatives 0.4, 0.1 -> 5 of 6 pairs ordered; the oracle orders all
    assert loc["near_auroc_model"] == pytest.approx(5 / 6) and loc["near_auroc_oracle"] == 1.0
