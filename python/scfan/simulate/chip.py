"""ChIP-seq peaks (narrowPeak) of one TF in one bulk line: detected bound sites, misses and false positives."""

from __future__ import annotations

import numpy as np
import polars as pl

from scfan.intervals import NARROWPEAK_COLUMNS
from scfan.simulate.regulatory import Regulome

P_DETECT_MAX = 0.95
FALSE_POSITIVE_RATE = 0.08
SUMMIT_SD_BP = 15


def chip_peaks(rng: np.random.Generator, reg: Regulome, sizes: np.ndarray, tf: int, ctx: int, line: str,
               tf_name: str, chrom_names: list[str], noise: float) -> pl.DataFrame:
    """narrowPeak rows for ``tf`` in context ``ctx``, sorted by chromosome and start.

    A bound site is detected with a probability rising with its element's accessibility (weak sites are
    missed); its summit lies near the site. False positives (a fraction of the true peaks) sit on open
    elements the TF does not bind ("hyper-ChIPable" open chromatin) or anywhere, with weaker signal.
    """
    bound = np.flatnonzero((reg.site_tf == tf) & reg.site_bound[:, ctx])
    access = reg.re_access[reg.site_re[bound], ctx]
    p_detect = P_DETECT_MAX * (1 - np.exp(-access / 0.25)) * (1 - 0.05 * noise) ** 2
    hit = bound[rng.random(bound.size) < np.clip(p_detect, 0, 1)]
    motif_q = np.where(reg.site_weak[hit], 0.6, 1.0)
    mid_true = (reg.site_start[hit] + reg.site_end[hit]) // 2
    sig_true = 4 + 30 * reg.re_access[reg.site_re[hit], ctx] * motif_q * rng.gamma(4, 0.25, hit.size)

    n_fp = rng.binomial(max(hit.size, 1), min(1.0, FALSE_POSITIVE_RATE * noise))
    open_other = np.flatnonzero(reg.re_open[:, ctx] & (reg.re_tfs[:, 0] != tf) & (reg.re_tfs[:, 1] != tf))
    n_open = min(int(rng.binomial(n_fp, 0.6)), open_other.size)
    fp_re = rng.choice(open_other, size=n_open, replace=False) if n_open else np.zeros(0, np.int64)
    n_rand = n_fp - n_open
    rand_chrom = rng.choice(sizes.size, size=n_rand, p=sizes / sizes.sum())
    rand_mid = (rng.random(n_rand) * (sizes[rand_chrom] - 20_000)).astype(np.int64) + 10_000
    chrom = np.concatenate([reg.site_chrom[hit], reg.re_chrom[fp_re], rand_chrom])
    mid = np.concatenate([mid_true, reg.re_center[fp_re], rand_mid])
    signal = np.concatenate([sig_true, 3 + rng.gamma(2, 1.5, n_fp)])
    summit = mid + np.rint(rng.normal(0, SUMMIT_SD_BP, mid.size)).astype(np.int64)
    width = np.clip(rng.lognormal(np.log(320), 0.3, mid.size), 150, 1200).astype(np.int64)
    start = np.maximum(summit - (width * rng.uniform(0.35, 0.65, mid.size)).astype(np.int64), 0)
    end = np.minimum(start + width, sizes[chrom])
    summit = np.clip(summit, start, end - 1)
    p_val = signal * 1.2 + rng.gamma(2, 0.5, mid.size)
    q_val = np.maximum(p_val - 1.5, 0)
    order = np.lexsort((start, chrom))
    n = order.size
    return pl.DataFrame({
        "chrom": [chrom_names[c] for c in chrom[order]],
        "start": start[order], "end": end[order],
        "name": [f"{line}_{tf_name}_peak{i + 1}" for i in range(n)],
        "score": np.minimum(1000, (signal[order] * 20).astype(np.int64)),
        "strand": ["."] * n,
        "signal_value": np.round(signal[order], 3),
        "p_value": np.round(p_val[order], 3),
        "q_value": np.round(q_val[order], 3),
        "peak": (summit - start)[order],
    }, schema=dict(zip(NARROWPEAK_COLUMNS, [pl.Utf8, pl.Int64, pl.Int64, pl.Utf8, pl.Int64, pl.Utf8,
                                             pl.Float64, pl.Float64, pl.Float64, pl.Int64], strict=True)))
