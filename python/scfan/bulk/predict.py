"""Bulk prediction for any BED of regions: each region is tiled into model windows, scored, and written out."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl
import pyBigWig

from scfan._io import atomic_path
from scfan.bulk.data import InputSource, chrom_array, predict_windows
from scfan.bulk.model import ModelSpec
from scfan.errors import InputFileError
from scfan.genome import check_chrom_names
from scfan.intervals import read_bed

log = logging.getLogger(__name__)


def region_windows(chroms: np.ndarray, starts: np.ndarray, ends: np.ndarray, region_ids: np.ndarray,
                   sizes: dict[str, int], window: int, step: int, context: int) -> pl.DataFrame:
    """Windows of ``window`` bp every ``step`` bp covering each region (one centred window for short regions).

    Windows are shifted inwards so the model context stays on the chromosome.
    """
    flank = (context - window) // 2
    rows_c, rows_s, rows_r = [], [], []
    for c, s, e, rid in zip(chroms, starts, ends, region_ids, strict=True):
        if e - s <= window:
            ws = np.array([(s + e) // 2 - window // 2])
        else:
            ws = np.arange(s, e - window + 1, step)
            if ws[-1] + window < e:
                ws = np.append(ws, e - window)
        ws = np.clip(ws, flank, sizes[c] - window - flank)
        rows_c.extend([c] * len(ws))
        rows_s.append(ws)
        rows_r.extend([rid] * len(ws))
    st = np.concatenate(rows_s) if rows_s else np.zeros(0, np.int64)
    return pl.DataFrame({"chrom": rows_c, "start": st.astype(np.int64), "end": (st + window).astype(np.int64),
                         "region": rows_r})


def predict_regions(model, spec: ModelSpec, src: InputSource, regions_bed: str | Path, step: int = 50,
                    batch_size: int = 256, out_parquet: str | Path | None = None,
                    bigwig_dir: str | Path | None = None) -> pl.DataFrame:
    """Predict every TF on the windows of each BED region; write parquet and/or one bigWig per TF."""
    regions = read_bed(regions_bed)
    sizes = src.genome_sizes or src.layout.sizes  # the whole FASTA's, when only the regions' chromosomes are loaded
    check_chrom_names(("the genome FASTA", sizes), {str(regions_bed): regions["chrom"].unique().to_list()})
    too_short = [c for c, n in sizes.items() if n < spec.context]
    bad = regions.filter(pl.col("chrom").is_in(too_short) | (pl.col("end") > pl.col("chrom").replace_strict(
        sizes, return_dtype=pl.Int64)))
    if len(bad):
        r = bad.row(0, named=True)
        raise InputFileError(regions_bed, "region beyond the chromosome end (or on a chromosome shorter than the "
                             f"{spec.context} bp model input)", record=f"{r['chrom']}:{r['start']}-{r['end']}")
    rid = (regions["name"] if "name" in regions.columns else
           regions["chrom"] + ":" + regions["start"].cast(pl.Utf8) + "-" + regions["end"].cast(pl.Utf8))
    win = region_windows(regions["chrom"].to_numpy().astype(str), regions["start"].to_numpy(),
                         regions["end"].to_numpy(), rid.to_numpy().astype(str), sizes, spec.window,
                         step, spec.context)
    probs = predict_windows(model, spec, src, chrom_array(win["chrom"]), win["start"].to_numpy(), batch_size)
    out = win.with_columns(pl.Series(tf, probs[:, j], dtype=pl.Float32) for j, tf in enumerate(spec.tf_names))
    if out_parquet is not None:
        with atomic_path(out_parquet) as tmp:
            out.write_parquet(tmp)
    if bigwig_dir is not None:
        write_bigwigs(out, spec, sizes, Path(bigwig_dir), step)
    log.info("%d regions → %d windows scored for %d TF(s)", len(regions), len(out), len(spec.tf_names))
    return out


def write_bigwigs(preds: pl.DataFrame, spec: ModelSpec, sizes: dict[str, int], outdir: Path, step: int) -> None:
    """One bigWig per TF: each window's probability on the ``step`` bp at its centre (later windows win ties)."""
    half = step // 2
    df = preds.with_columns(((pl.col("start") + pl.col("end")) // 2 - half).alias("bs")).sort(["chrom", "bs"])
    df = df.unique(subset=["chrom", "bs"], keep="last", maintain_order=True)
    with atomic_path(outdir) as tmp:
        tmp.mkdir()
        for tf in spec.tf_names:
            bw = pyBigWig.open(str(tmp / f"{tf}.bw"), "w")
            bw.addHeader(list(sizes.items()))
            for chrom in sizes:
                sub = df.filter(pl.col("chrom") == chrom)
                if not len(sub):
                    continue
                s = sub["bs"].to_numpy().astype(np.int64)
                e = np.minimum(np.append(s[1:], s[-1] + step), s + step)
                bw.addEntries([chrom] * len(s), s.tolist(), ends=e.tolist(), values=sub[tf].cast(pl.Float64).to_list())
            bw.close()
