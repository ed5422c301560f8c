"""The regression estimator of a window-sampled activity matrix (``sc predict --window-estimator regression``).

With ``--window-share s`` a cell's activity values (means over its scored windows of a per-window quantity ``y``:
the probability, whether it is above the bound threshold, whether it is among the top k) are estimated from the
windows in the sample. The plain estimator takes the sample mean. The regression estimator also uses a *proxy*
``z`` known for every scored window, sampled or not: the models' prediction for the window with the mean
accessibility of the shard's cells that score it (one model evaluation per window, shared by all of them), put
through the same quantity (the probability, above the threshold, among the top k). Per cell and feature it fits
``y ≈ a + b z`` on the sampled windows and returns

    ŷ = ȳ_sample + b (z̄_all − z̄_sample),

the sample mean corrected by how far the sample's proxies are from the proxies of all the cell's windows (the
survey-sampling regression estimator). Where the proxy tracks the cell's own predictions, most of the sampling
error goes (on the ``bench`` preset, ``mean_prob`` at share 0.1: median Spearman ρ with exact 0.963 → 0.983, the
worst feature 0.77 → 0.94; ``benchmarks/results/bench_sc_predict.md``). Its standard error is that of the
residuals, ``sqrt((1 − n/N) Σ e² / ((n − 2) n))``.

What it costs and what it gives up: every scored pair's accessibility is assembled (not only the sample's), and the
model runs once more per window of the shard; that is a share of ``1 / (cells scoring a window)`` of exact mode's
work, small in shards of thousands of cells and about 20 % of it in a shard of 100 cells. The proxy is made from the
shard's cells, so the values depend (within their standard errors) on how the cells are split into shards, which the
plain estimator's do not.
"""

from __future__ import annotations

import numpy as np

#: what each layer averages, in the order of :data:`LAYERS`
LAYERS = ("top_k_freq", "mean_prob", "frac_bound")


def layer_values(probs: np.ndarray, top_k: int, threshold: float) -> dict[str, np.ndarray]:
    """Per pair and feature, what each layer averages: 1 where the feature is among the pair's top ``top_k`` (ties
    to the lower index, as :class:`~scfan.sc.predict.ActivityAccumulator`), the probability, 1 above ``threshold``."""
    p = np.asarray(probs, dtype=np.float64)
    top = np.zeros_like(p)
    if len(p):
        order = np.argsort(-np.asarray(probs), axis=1, kind="stable")[:, :top_k]
        np.put_along_axis(top, order, 1.0, axis=1)
    return {"top_k_freq": top, "mean_prob": p, "frac_bound": (p > threshold).astype(np.float64)}


def _sum_rows(out: np.ndarray, cells: np.ndarray, values: np.ndarray) -> None:
    """``out[cells[i]] += values[i]``, added in the order of ``i`` (deterministic)."""
    np.add.at(out, cells, values)


class RegressionAccumulator:
    """Per-cell sums for :func:`regression` estimates of every layer: over all of a cell's scored windows the
    proxies' sum, over its sampled windows the sums of y, z, y², z², y z (float64)."""

    def __init__(self, n_cells: int, n_features: int, top_k: int, threshold: float):
        self.top_k = min(top_k, n_features)
        self.threshold = threshold
        shape = (n_cells, n_features)
        self.n_all = np.zeros(n_cells, dtype=np.int64)
        self.n = np.zeros(n_cells, dtype=np.int64)
        self.sums = {layer: {k: np.zeros(shape) for k in ("z_all", "y", "z", "yy", "zz", "yz")} for layer in LAYERS}

    def add_all(self, cells: np.ndarray, proxy: np.ndarray) -> None:
        """The proxies ``(n, F)`` of ``n`` scored pairs, sampled or not."""
        if not len(cells):
            return
        np.add.at(self.n_all, cells, 1)
        for layer, z in layer_values(proxy, self.top_k, self.threshold).items():
            _sum_rows(self.sums[layer]["z_all"], cells, z)

    def add_sampled(self, cells: np.ndarray, probs: np.ndarray, proxy: np.ndarray) -> None:
        """The predictions and proxies ``(n, F)`` of ``n`` sampled pairs."""
        if not len(cells):
            return
        np.add.at(self.n, cells, 1)
        ys = layer_values(probs, self.top_k, self.threshold)
        zs = layer_values(proxy, self.top_k, self.threshold)
        for layer in LAYERS:
            y, z, s = ys[layer], zs[layer], self.sums[layer]
            for key, v in (("y", y), ("z", z), ("yy", y * y), ("zz", z * z), ("yz", y * z)):
                _sum_rows(s[key], cells, v)

    def estimates(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """``(layers, standard errors)``: each layer's regression estimate (``top_k_freq`` divided by k, as the plain
        layers) and its ``*_se``; the plain sample mean where the proxy is constant over a cell's sample, the exact
        mean (SE 0) where every window was sampled, NaN SE where fewer than 3 of more windows were."""
        n = self.n[:, None].astype(np.float64)
        big_n = self.n_all[:, None].astype(np.float64)
        safe_n = np.where(n > 0, n, 1.0)
        fpc = np.where(n >= big_n, 0.0, np.clip(1.0 - n / np.where(big_n > 0, big_n, 1.0), 0.0, 1.0))
        layers, ses = {}, {}
        for layer in LAYERS:
            s = self.sums[layer]
            y_bar, z_bar = s["y"] / safe_n, s["z"] / safe_n
            z_all = s["z_all"] / np.where(big_n > 0, big_n, 1.0)
            szz = s["zz"] - n * z_bar * z_bar
            syz = s["yz"] - n * y_bar * z_bar
            syy = s["yy"] - n * y_bar * y_bar
            ok = (szz > 1e-12 * np.maximum(s["zz"], 1e-300)) & (n >= 3)
            with np.errstate(divide="ignore", invalid="ignore"):
                b = np.where(ok, syz / np.where(ok, szz, 1.0), 0.0)
                est = np.where(fpc == 0, y_bar, y_bar + b * (z_all - z_bar))
                rss = np.maximum(syy - b * syz, 0.0)
                dof = n - np.where(ok, 2.0, 1.0)
                se = np.sqrt(fpc * rss / (np.where(dof > 0, dof, 1.0) * safe_n))
                se = np.where(fpc == 0, 0.0, np.where(dof > 0, se, np.nan))
            scale = 1.0 / self.top_k if layer == "top_k_freq" else 1.0
            # a 0/1 layer's estimate may leave [0, 1] by a little where the correction overshoots
            layers[layer] = np.clip(est * scale, 0.0, scale).astype(np.float32)
            ses[f"{layer}_se"] = (se * scale).astype(np.float32)
        return layers, ses
