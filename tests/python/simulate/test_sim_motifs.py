"""Position-weight sampling, reverse complement and log-odds scoring of motif sites."""

from __future__ import annotations

import numpy as np

from scfan.simulate.motifs import best_scores, counts_to_prob, flatten, reverse_complement_codes, sample_sites


def _brute_best(seq: np.ndarray, lo: np.ndarray) -> float:
    rc = 3 - seq[::-1]
    length = lo.shape[1]
    return max(sum(lo[s[o + j], j] for j in range(length)) for s in (seq, rc) for o in range(seq.size - length + 1))


def test_sampling_follows_column_frequencies():
    counts = np.array([[90, 0, 10], [10, 0, 30], [0, 100, 30], [0, 0, 30]], dtype=float)
    prob = counts_to_prob(counts, pseudocount=0.0)
    codes = sample_sites(np.random.default_rng(0), prob, 20_000)
    freq = np.stack([(codes == b).mean(axis=0) for b in range(4)])
    np.testing.assert_allclose(freq, prob, atol=0.015)
    assert (codes[:, 1] == 2).all()


def test_sampling_is_seeded():
    prob = counts_to_prob(np.random.default_rng(1).integers(0, 50, (4, 9)))
    a = sample_sites(np.random.default_rng(5), prob, 50)
    b = sample_sites(np.random.default_rng(5), prob, 50)
    c = sample_sites(np.random.default_rng(6), prob, 50)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_reverse_complement_codes_non_palindromic():
    x = np.array([0, 0, 1, 2, 3, 3, 3, 1, 4], dtype=np.uint8)  # AACGTTTCN
    rc = reverse_complement_codes(x)
    assert rc.tolist() == [4, 2, 0, 0, 0, 1, 2, 3, 3]  # NGAAACGTT
    assert np.array_equal(reverse_complement_codes(rc), x)


def test_best_scores_match_brute_force_on_both_strands():
    rng = np.random.default_rng(2)
    lo = np.log2(counts_to_prob(rng.integers(0, 40, (4, 6))) / 0.25)
    seqs = rng.integers(0, 4, (25, 20)).astype(np.uint8)
    got = best_scores(seqs, lo)
    want = [_brute_best(s, lo) for s in seqs]
    np.testing.assert_allclose(got, want)


def test_flattened_motif_scores_lower():
    rng = np.random.default_rng(3)
    prob = counts_to_prob(rng.integers(0, 5, (4, 12)) ** 3)
    lo = np.log2(prob / 0.25)
    strong = best_scores(sample_sites(rng, prob, 500), lo)
    weak = best_scores(sample_sites(rng, flatten(prob, 0.35), 500), lo)
    assert np.median(weak) < np.median(strong) - 2
