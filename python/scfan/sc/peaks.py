"""The peak set of a cells × peaks matrix, and a per-chromosome index that maps insertion sites to peak columns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from scfan.errors import InputFileError
from scfan.genome import ChromSelection, SkippedContigs
from scfan.intervals import IntervalSchema, read_peaks, region_id, validate


def read_peak_set(path: str | Path, chrom_sizes: Mapping[str, int] | None = None,
                  chroms: ChromSelection | None = None) -> pl.DataFrame:
    """Read the peak set: a BED file, or the bulk ``windows.parquet`` (its ``chrom, start, end`` columns).

    Parameters
    ----------
    path : str or pathlib.Path
        BED (plain or gzip; ENCODE narrowPeak and UCSC ``track`` lines accepted) or ``windows.parquet``.
    chrom_sizes : mapping of str to int, optional
        Chromosome lengths every peak must fit in.
    chroms : ChromSelection, optional
        Contigs kept; peaks on others are skipped with one counted warning.

    Returns
    -------
    polars.DataFrame
        ``chrom, start, end, name`` in file order; ``name`` is the region id ``chrom:start-end``.

    Raises
    ------
    InputFileError
        For a malformed file, and for duplicate intervals, since they would give duplicate ``var_names``.
    """
    p = Path(path)
    if p.suffix == ".parquet":
        try:
            df = pl.read_parquet(p, columns=["chrom", "start", "end"])
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise InputFileError(p, f"cannot read chrom/start/end from parquet ({exc})") from exc
        df = validate(IntervalSchema, df.with_columns(pl.col("start", "end").cast(pl.Int64)), p)
        if chroms is not None and not chroms.keeps_all:
            skipped = SkippedContigs(p, "interval(s)", chroms)
            drop = [c for c in df["chrom"].unique(maintain_order=True).to_list() if not chroms(c)]
            for c, n in df.filter(pl.col("chrom").is_in(drop))["chrom"].value_counts(sort=True).iter_rows():
                skipped.add(c, n)
            skipped.warn()
            df = df.filter(~pl.col("chrom").is_in(drop))
        if chrom_sizes is not None:
            bad = df.filter(~pl.col("chrom").is_in(list(chrom_sizes)))
            if len(bad):
                raise InputFileError(p, f"chromosome {bad['chrom'][0]!r} is not in the genome")
    else:
        df = read_peaks(p, chrom_sizes=chrom_sizes, chroms=chroms).select("chrom", "start", "end")
    df = df.with_columns(name=pl.format("{}:{}-{}", "chrom", "start", "end"))
    dup = df.filter(pl.col("name").is_duplicated())
    if len(dup):
        raise InputFileError(p, f"peak {dup['name'][0]} appears more than once; peaks must be unique")
    return df


@dataclass(frozen=True)
class ChromPeaks:
    """Peaks of one chromosome sorted by start, with their column in the matrix."""

    starts: np.ndarray
    ends: np.ndarray
    columns: np.ndarray
    max_len: int
    disjoint: bool


class PeakIndex:
    """Maps insertion sites (0-based positions) to peak columns, chromosome by chromosome.

    Peaks are 0-based half-open; a site ``x`` is in a peak when ``start <= x < end``. Overlapping peaks are
    allowed (a site then counts for each peak that contains it).
    """

    def __init__(self, peaks: pl.DataFrame):
        self.n_peaks = len(peaks)
        self.names = peaks["name"].to_list() if "name" in peaks.columns else [
            region_id(c, s, e) for c, s, e in peaks.select("chrom", "start", "end").iter_rows()]
        cols = np.arange(len(peaks), dtype=np.int64)
        self._by_chrom: dict[str, ChromPeaks] = {}
        chrom = peaks["chrom"].to_numpy()
        start = peaks["start"].to_numpy().astype(np.int64)
        end = peaks["end"].to_numpy().astype(np.int64)
        for c in dict.fromkeys(chrom.tolist()):
            sel = chrom == c
            order = np.argsort(start[sel], kind="stable")
            s, e, k = start[sel][order], end[sel][order], cols[sel][order]
            disjoint = bool(np.all(e[:-1] <= s[1:])) if len(s) > 1 else True
            self._by_chrom[c] = ChromPeaks(s, e, k, int((e - s).max()), disjoint)

    @property
    def chroms(self) -> list[str]:
        return list(self._by_chrom)

    def lookup(self, chrom: str, sites: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Peaks containing each site.

        Returns ``(site_idx, column)``: for every (site, peak) pair with the site inside the peak, the index
        of the site in ``sites`` and the peak's column.
        """
        cp = self._by_chrom.get(chrom)
        if cp is None or len(sites) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        if cp.disjoint:
            i = np.searchsorted(cp.starts, sites, side="right") - 1
            ok = i >= 0
            ok[ok] = sites[ok] < cp.ends[i[ok]]
            idx = np.flatnonzero(ok)
            return idx, cp.columns[i[idx]]
        # Overlapping peaks: candidates are peaks whose start lies in (site - max_len, site].
        hi = np.searchsorted(cp.starts, sites, side="right")
        lo = np.searchsorted(cp.starts, sites - cp.max_len, side="right")
        n = hi - lo
        site_idx = np.repeat(np.arange(len(sites)), n)
        cand = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
        ok = sites[site_idx] < cp.ends[cand]
        return site_idx[ok], cp.columns[cand[ok]]
