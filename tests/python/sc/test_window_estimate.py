"""The regression estimator of a window sample (`sc predict --window-estimator regression`): the accumulator's
algebra on synthetic data (real runs on the tiny fixture: tests/python/sc/test_predict.py)."""

from __future__ import annotations

import numpy as np
import pytest

from scfan.sc.window_estimate import RegressionAccumulator, layer_values


def _synthetic(seed: int = 0, n_cells: int = 6, n_feat: int = 3, n_win: int = 400):
    rng = np.random.default_rng(seed)
    cells = np.repeat(np.arange(n_cells), n_win)
    proxy = rng.uniform(0.05, 0.95, size=(len(cells), n_feat))
    probs = np.clip(0.7 * proxy + 0.1 + rng.normal(0, 0.05, size=proxy.shape), 0, 1)
    sampled = rng.uniform(size=len(cells)) < 0.3
    return cells, probs, proxy, sampled


def test_regression_estimate_is_the_sample_mean_corrected_by_the_fitted_slope():
    cells, probs, proxy, sampled = _synthetic()
    acc = RegressionAccumulator(6, 3, top_k=1, threshold=0.5)
    acc.add_all(cells, proxy)
    acc.add_sampled(cells[sampled], probs[sampled], proxy[sampled])
    est, se = acc.estimates()
    for c in range(6):
        s, a = sampled & (cells == c), cells == c
        for f in range(3):
            y, z = probs[s, f], proxy[s, f]
            b = np.polyfit(z, y, 1)[0]
            expect = y.mean() + b * (proxy[a, f].mean() - z.mean())
            assert est["mean_prob"][c, f] == pytest.approx(expect, abs=1e-6)
            resid = y - y.mean() - b * (z - z.mean())
            n, big_n = s.sum(), a.sum()
            expect_se = np.sqrt((1 - n / big_n) * (resid ** 2).sum() / (n - 2) / n)
            assert se["mean_prob_se"][c, f] == pytest.approx(expect_se, rel=1e-4)
    # a proxy that tracks the probabilities removes most of the sampling error of the plain mean
    plain = np.stack([probs[sampled & (cells == c)].mean(0) for c in range(6)])
    exact = np.stack([probs[cells == c].mean(0) for c in range(6)])
    assert np.abs(est["mean_prob"] - exact).mean() < 0.5 * np.abs(plain - exact).mean()


def test_a_perfect_proxy_gives_the_exact_means_and_a_full_sample_gives_se_zero():
    cells, probs, _proxy, sampled = _synthetic(1)
    acc = RegressionAccumulator(6, 3, top_k=2, threshold=0.5)
    acc.add_all(cells, probs)
    acc.add_sampled(cells[sampled], probs[sampled], probs[sampled])
    est, se = acc.estimates()
    exact = layer_values(probs, 2, 0.5)
    for layer, scale in (("mean_prob", 1.0), ("frac_bound", 1.0), ("top_k_freq", 0.5)):
        want = np.stack([exact[layer][cells == c].mean(0) for c in range(6)]) * scale
        np.testing.assert_allclose(est[layer], want, atol=1e-6)
        assert np.all(se[f"{layer}_se"][np.isfinite(se[f"{layer}_se"])] < 1e-4)
    full = RegressionAccumulator(6, 3, top_k=1, threshold=0.5)
    full.add_all(cells, _proxy)
    full.add_sampled(cells, probs, _proxy)
    est, se = full.estimates()
    np.testing.assert_allclose(est["mean_prob"], np.stack([probs[cells == c].mean(0) for c in range(6)]), atol=1e-6)
    assert np.all(se["mean_prob_se"] == 0)
