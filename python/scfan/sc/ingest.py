"""Ingest one scATAC sample (fragments, BAM or a count matrix) into a cells × peaks AnnData with per-cell QC.

Counting semantics (fragments and BAM): each unique fragment contributes its two Tn5 insertion sites,
``start`` and ``end - 1``; an insertion inside a peak adds 1 to that peak. The fragment's ``count`` column
(PCR duplicates) is not used, and repeated rows for the same (chrom, start, end, barcode) count once.
A count matrix is taken as given.

Why this module is long: ingestion is one step with several input formats (fragments, 10x h5, count
matrices, cell calls, whitelists) that all end in the same cells file; each reader is its own function.
"""

from __future__ import annotations

import csv
import gzip
import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import polars as pl
import scipy.io
import scipy.sparse as sp

from scfan._io import is_gzip, open_text, write_h5ad, write_json
from scfan.errors import ChromosomeNameError, InputFileError, ScfanError
from scfan.genome import ChromSelection, check_chrom_names, primary_chromosomes, read_chrom_sizes
from scfan.intervals import parse_region_id
from scfan.samplesheet import read_samplesheet, sc_row
from scfan.sc.fragments import FragmentBlock, read_bam_blocks, read_fragment_blocks
from scfan.sc.peaks import PeakIndex, read_peak_set
from scfan.tn5 import fragment_insertions

log = logging.getLogger(__name__)

OBS_COLUMNS = ["sample", "barcode", "n_fragments", "n_peaks", "frac_in_peaks"]


@dataclass(frozen=True)
class IngestConfig:
    """Settings of ``scfan sc ingest`` (one sample)."""

    samplesheet: str | None  # None when the sample's files are given as ``files``
    sample: str
    peaks: str
    chrom_sizes: str | None = None
    min_fragments: int = 200
    whitelist: str | None = None
    min_mapq: int = 30
    chunk_bytes: int = 16 << 20
    files: dict[str, str] | None = None  # samplesheet column -> path (barcode_tag: a value), instead of a samplesheet
    chroms: str = "primary"  # contigs kept: primary (chr1-22, X, Y, M), all, or a comma-separated list


@dataclass
class CountResult:
    """Raw counts of every barcode seen, before filtering."""

    barcodes: np.ndarray  # str, one per row
    counts: sp.csr_matrix  # barcodes × peaks, int32
    n_fragments: np.ndarray  # unique fragments per barcode (NaN-free int64; from a table for count matrices)
    n_insertions_in_peaks: np.ndarray  # insertion sites inside ≥ 1 peak
    chroms: list[str]  # chromosomes seen in the input


class _BarcodeRegistry:
    """Assigns each barcode string a stable integer id (order of first appearance)."""

    def __init__(self) -> None:
        self.table = pl.DataFrame(schema={"barcode": pl.Utf8, "bc": pl.Int64})

    def encode(self, barcodes: pl.Series) -> np.ndarray:
        new = barcodes.unique(maintain_order=True)
        new = new.filter(~new.is_in(self.table["barcode"].implode()))
        if len(new):
            ids = pl.int_range(len(self.table), len(self.table) + len(new), eager=True, dtype=pl.Int64)
            self.table = pl.concat([self.table, pl.DataFrame({"barcode": new, "bc": ids})])
        joined = pl.DataFrame({"barcode": barcodes}).join(self.table, on="barcode", how="left",
                                                          maintain_order="left")
        return joined["bc"].to_numpy()

    def __len__(self) -> int:
        return len(self.table)


def _first_distinct(df: pl.DataFrame) -> pl.DataFrame:
    """Rows of a start-sorted block minus repeats of an earlier (start, end, barcode).

    A repeat shares its start with the row before it, so only rows in runs of equal starts (a few percent of a
    real file) go through the hashing; the rest are kept as they are.
    """
    start = df["start"].to_numpy()
    if len(start) < 2:
        return df
    same = start[1:] == start[:-1]
    if not same.any():
        return df
    cand = np.zeros(len(start), dtype=bool)
    cand[1:] |= same
    cand[:-1] |= same
    idx = np.flatnonzero(cand)
    first = df[idx].select(pl.struct("start", "end", "barcode").is_first_distinct()).to_series().to_numpy()
    if first.all():
        return df
    keep = np.ones(len(start), dtype=bool)
    keep[idx[~first]] = False
    return df.filter(pl.Series(keep))


def _dedup_blocks(blocks: Iterable[FragmentBlock]) -> Iterator[tuple[str, pl.DataFrame]]:
    """Drop repeated (start, end, barcode) rows; rows at a block's last start move to the next block so that
    duplicates split across blocks are still found."""
    carry: FragmentBlock | None = None
    n_dup = 0
    for block in blocks:
        df = block.frame
        if carry is not None and carry.chrom == block.chrom:
            df = pl.concat([carry.frame, df])
        elif carry is not None:
            yield carry.chrom, carry.frame.unique(maintain_order=True)
        last = df["start"][-1] if len(df) else None
        tail = df.select((pl.col("start") == last).arg_true().first()).item() if last is not None else 0
        body, rest = df.slice(0, tail), df.slice(tail)
        before = len(body)
        body = _first_distinct(body)
        n_dup += before - len(body)
        carry = FragmentBlock(block.chrom, rest, 0)
        if len(body):
            yield block.chrom, body
    if carry is not None and len(carry.frame):
        before = len(carry.frame)
        rest = carry.frame.unique(maintain_order=True)
        n_dup += before - len(rest)
        yield carry.chrom, rest
    if n_dup:
        log.warning("%d repeated fragment rows (same chrom, start, end, barcode) counted once", n_dup)


def count_fragments(blocks: Iterable[FragmentBlock], peaks: PeakIndex, *, label: str = "fragments",
                    flush_entries: int = 1 << 24, peaks_label: str = "the peak set") -> CountResult:
    """Count Tn5 insertions per (barcode, peak) in one pass over per-chromosome fragment blocks.

    Memory grows with the number of non-zeros (entries are summed into a CSR every ``flush_entries``), never
    with barcodes × peaks.
    """
    registry = _BarcodeRegistry()
    n_frag = np.zeros(0, dtype=np.int64)
    n_in = np.zeros(0, dtype=np.int64)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    pending = 0
    acc: sp.csr_matrix | None = None
    chroms: list[str] = []

    def flush() -> None:
        nonlocal acc, rows, cols, pending
        if not rows:
            return
        r, c = np.concatenate(rows), np.concatenate(cols)
        m = sp.coo_matrix((np.ones(len(r), dtype=np.int32), (r, c)), shape=(len(registry), peaks.n_peaks)).tocsr()
        if acc is not None:
            acc.resize(m.shape)
            m = m + acc
        acc, rows, cols, pending = m, [], [], 0

    for chrom, df in _dedup_blocks(blocks):
        if not chroms or chroms[-1] != chrom:
            chroms.append(chrom)
        bc = registry.encode(df["barcode"])
        if len(registry) > len(n_frag):
            n_frag = np.pad(n_frag, (0, len(registry) - len(n_frag)))
            n_in = np.pad(n_in, (0, len(registry) - len(n_in)))
        n_frag += np.bincount(bc, minlength=len(n_frag))
        sites = np.concatenate(fragment_insertions(df["start"].to_numpy(), df["end"].to_numpy()))
        site_bc = np.concatenate([bc, bc])
        site_idx, col = peaks.lookup(chrom, sites)
        if len(site_idx):
            rows.append(site_bc[site_idx].astype(np.int32))
            cols.append(col.astype(np.int32))
            pending += len(site_idx)
            in_peak = np.zeros(len(sites), dtype=bool)  # an insertion in two overlapping peaks counts once here
            in_peak[site_idx] = True
            n_in += np.bincount(site_bc[in_peak], minlength=len(n_in))
        if pending >= flush_entries:
            flush()
    flush()
    n = len(registry)
    counts = acc if acc is not None else sp.csr_matrix((n, peaks.n_peaks), dtype=np.int32)
    counts.resize((n, peaks.n_peaks))
    if not chroms:
        raise InputFileError(label, "no fragments")
    if not set(chroms) & set(peaks.chroms):
        check_chrom_names((peaks_label, peaks.chroms), {label: chroms})
        raise ChromosomeNameError(f"{label}: no chromosome in common with {peaks_label}")
    return CountResult(registry.table["barcode"].to_numpy(), counts.astype(np.int32), n_frag, n_in, chroms)


def _read_barcode_table(path: Path) -> pd.DataFrame:
    """Barcodes of a matrix's cells: a TSV with a ``barcode`` column, or one barcode per line (10x)."""
    with open_text(path) as fh:
        first = fh.readline().rstrip("\r\n").split("\t")
    if "barcode" in first:
        df = pd.read_csv(path, sep="\t", dtype={"barcode": str})
    else:
        df = pd.read_csv(path, sep="\t", header=None, dtype=str).iloc[:, :1].set_axis(["barcode"], axis=1)
    if df["barcode"].isna().any() or df["barcode"].duplicated().any():
        dup = df["barcode"][df["barcode"].duplicated()].iloc[0] if df["barcode"].duplicated().any() else "(empty)"
        raise InputFileError(path, f"barcodes must be unique and non-empty (problem: {dup!r})")
    return df


def _depth_column(table: pd.DataFrame) -> np.ndarray | None:
    for name in ("n_fragments", "depth"):
        if name in table.columns:
            return pd.to_numeric(table[name], errors="coerce").to_numpy()
    return None


def _h5_strings(ds) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in ds[:]]


def read_10x_h5(path: Path) -> tuple[sp.csr_matrix, list[str], pd.DataFrame]:
    """Read a 10x HDF5 feature-barcode matrix (Cell Ranger ATAC ``filtered_peak_bc_matrix.h5``, ARC
    ``filtered_feature_bc_matrix.h5``) as cells × peaks.

    The group ``matrix`` holds a peaks × barcodes CSC matrix (``data``, ``indices``, ``indptr``, ``shape``), its
    ``barcodes`` and ``features`` (``id``, ``name``, ``feature_type``, ``genome``, optionally ``interval``).
    Only features of type ``Peaks`` are kept (ARC files also hold genes); a peak is named by its ``interval``
    when there is one, else by its ``id``, both ``chrom:start-end`` with the BED coordinates of Cell Ranger's
    ``peaks.bed``.

    Parameters
    ----------
    path : pathlib.Path
        The ``.h5`` file.

    Returns
    -------
    tuple of (scipy.sparse.csr_matrix, list of str, pandas.DataFrame)
        Cells × peaks counts, the peak names, and a table with a ``barcode`` column.

    Raises
    ------
    InputFileError
        When the file is not HDF5, lacks a dataset of the layout, or its parts disagree in size.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "matrix" not in f:
                raise InputFileError(path, f"no group 'matrix' (has {', '.join(f.keys()) or 'nothing'}); expected a "
                                     "10x HDF5 feature-barcode matrix such as filtered_peak_bc_matrix.h5")
            g = f["matrix"]
            need = ["barcodes", "data", "indices", "indptr", "shape", "features/id"]
            missing = [k for k in need if k not in g]
            if missing:
                raise InputFileError(path, f"group 'matrix' lacks {', '.join(missing)}; expected a 10x HDF5 "
                                     f"matrix with {', '.join(need)}")
            shape = tuple(int(x) for x in g["shape"][:])
            data, indices, indptr = g["data"][:], g["indices"][:], g["indptr"][:]
            barcodes = _h5_strings(g["barcodes"])
            feats = g["features"]
            ids = _h5_strings(feats["id"])
            ftype = _h5_strings(feats["feature_type"]) if "feature_type" in feats else None
            interval = _h5_strings(feats["interval"]) if "interval" in feats else None
    except OSError as exc:
        raise InputFileError(path, f"cannot read as HDF5 ({exc}); expected a 10x filtered_peak_bc_matrix.h5") from exc
    if len(shape) != 2 or shape[0] != len(ids) or shape[1] != len(barcodes) or len(indptr) != shape[1] + 1:
        raise InputFileError(path, f"matrix/shape {list(shape)} disagrees with {len(ids)} features, "
                             f"{len(barcodes)} barcodes and {len(indptr)} indptr entries (expected peaks × "
                             "barcodes, indptr one longer than the barcodes)")
    try:
        mat = sp.csc_matrix((data, indices, indptr), shape=shape)
    except ValueError as exc:
        raise InputFileError(path, f"matrix data/indices/indptr do not form a CSC matrix ({exc})") from exc
    names = [iv if iv and ":" in iv else i for i, iv in zip(ids, interval or [""] * len(ids), strict=True)]
    if ftype is not None:
        is_peak = np.array([t == "Peaks" for t in ftype])
        if not is_peak.any():
            raise InputFileError(path, f"no feature of type 'Peaks' (types: {', '.join(sorted(set(ftype)))}); "
                                 "expected a peak-barcode matrix")
        if not is_peak.all():
            log.info("%s: %d of %d features are peaks (the others, e.g. genes, are left out)", path,
                     int(is_peak.sum()), len(ftype))
            mat = mat[np.flatnonzero(is_peak)]
            names = [n for n, k in zip(names, is_peak, strict=True) if k]
    if len(set(barcodes)) != len(barcodes):
        dup = pd.Series(barcodes)[pd.Series(barcodes).duplicated()].iloc[0]
        raise InputFileError(path, f"barcode {dup!r} occurs twice in matrix/barcodes; barcodes must be unique")
    return sp.csr_matrix(mat.T), names, pd.DataFrame({"barcode": barcodes})


def read_count_matrix(row: dict[str, str], peaks: PeakIndex) -> CountResult:
    """Read a cells × peaks ``.h5ad``, a 10x ``.h5`` (:func:`read_10x_h5`) or a peaks × cells MatrixMarket
    (+ peaks BED + barcodes) onto ``peaks``.

    Matrix peaks are matched to the peak set by ``chrom:start-end``; peaks absent from the matrix are zero
    columns. ``n_fragments`` comes from an ``n_fragments`` or ``depth`` column of the cell table when there is
    one, otherwise it is estimated as half the counts (insertions) of the cell.
    """
    path = Path(row["counts"])
    if path.suffix == ".h5ad":
        try:
            a = ad.read_h5ad(path)
        except (OSError, KeyError, ValueError) as exc:
            raise InputFileError(path, f"cannot read as AnnData ({exc})") from exc
        mat = sp.csr_matrix(a.X)
        names = list(a.var_names)
        table = a.obs.reset_index(names="barcode") if "barcode" not in a.obs.columns else a.obs.reset_index(drop=True)
    elif path.suffix == ".h5":
        mat, names, table = read_10x_h5(path)
    else:
        try:
            with (gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")) as fh:
                mat = sp.csr_matrix(scipy.io.mmread(fh).T)
        except (OSError, ValueError, EOFError) as exc:
            raise InputFileError(path, f"cannot read as MatrixMarket ({exc})") from exc
        peak_df = read_peak_set(row["peaks"])
        names = peak_df["name"].to_list()
        table = _read_barcode_table(Path(row["barcodes"]))
        if mat.shape != (len(table), len(names)):
            raise InputFileError(path, f"matrix is {mat.shape[1]} × {mat.shape[0]} (peaks × cells) but "
                                 f"{row['peaks']} has {len(names)} peaks and {row['barcodes']} {len(table)} cells")
    if mat.nnz and (mat.data.min() < 0 or not np.all(np.mod(mat.data, 1) == 0)):
        raise InputFileError(path, "counts must be non-negative integers")
    canonical = []
    for nm in names:
        try:
            canonical.append("{}:{}-{}".format(*parse_region_id(str(nm))))
        except ValueError as exc:
            raise InputFileError(path, f"peak name {nm!r} is not chrom:start-end") from exc
    where = {n: i for i, n in enumerate(peaks.names)}
    src = np.array([where.get(n, -1) for n in canonical])
    if not (src >= 0).any():
        raise InputFileError(path, f"no matrix peak is in the peak set (first matrix peak {canonical[0]}, first "
                             f"peak-set peak {peaks.names[0]}); check the genome build and chromosome names")
    if (src < 0).any():
        log.warning("%s: %d matrix peaks are not in the peak set and are dropped", path, int((src < 0).sum()))
    keep = np.flatnonzero(src >= 0)
    remap = sp.csr_matrix((np.ones(len(keep), dtype=np.int64), (keep, src[keep])),
                          shape=(mat.shape[1], peaks.n_peaks))
    counts = (mat.astype(np.int64) @ remap).tocsr()
    totals = np.asarray(counts.sum(axis=1)).ravel()
    depth = _depth_column(table)
    n_frag = np.ceil(totals / 2).astype(np.int64) if depth is None else np.nan_to_num(depth).astype(np.int64)
    chroms = sorted({parse_region_id(n)[0] for n in canonical})
    return CountResult(table["barcode"].astype(str).to_numpy(), counts.astype(np.int32), n_frag, totals, chroms)


# cell-call column -> the Cell Ranger file that has it (both files also have a ``barcode`` column)
CELL_CALL_FLAGS = {"is__cell_barcode": "Cell Ranger ATAC singlecell.csv",
                   "is_cell": "Cell Ranger ARC per_barcode_metrics.csv"}


def cell_call_flag(path: Path) -> str | None:
    """The cell-call column of a Cell Ranger barcode table (``is__cell_barcode``, ``is_cell``), or None when
    ``path`` is not one (a plain whitelist); detected by the header, not the name."""
    with open_text(path) as fh:
        first = fh.readline().lstrip("\ufeff").rstrip("\r\n")
    header = [h.strip() for h in next(csv.reader([first]), [])]
    if "barcode" not in header:
        return None
    return next((c for c in CELL_CALL_FLAGS if c in header), None)


def read_cell_calls(path: Path, flag: str) -> set[str]:
    """The called cells of a Cell Ranger ``singlecell.csv`` (ATAC) or ``per_barcode_metrics.csv`` (ARC).

    Parameters
    ----------
    path : pathlib.Path
        The CSV (plain or gzip); its rows include non-cells such as ATAC's ``NO_BARCODE`` row.
    flag : str
        The 0/1 cell-call column: ``is__cell_barcode`` (ATAC) or ``is_cell`` (ARC).

    Returns
    -------
    set of str
        The ``barcode`` of every row whose flag is 1.

    Raises
    ------
    InputFileError
        For a flag that is not 0 or 1, or an empty barcode (naming the line), or a file without called cells.
    """
    cells: set[str] = set()
    with open_text(path) as fh:
        reader = csv.DictReader(ln.lstrip("\ufeff") for ln in fh)
        for n, rec in enumerate(reader, 2):
            value = (rec.get(flag) or "").strip()
            if value not in ("0", "1"):
                raise InputFileError(path, f"column '{flag}' value {value!r} is not 0 or 1 (a Cell Ranger cell call)",
                                     line=n)
            barcode = (rec.get("barcode") or "").strip()
            if not barcode:
                raise InputFileError(path, "the barcode column is empty; expected a cell barcode", line=n)
            if value == "1":
                cells.add(barcode)
    if not cells:
        raise InputFileError(path, f"no called cell ({flag} = 1 in no row); expected {CELL_CALL_FLAGS[flag]} of "
                             "a sample with cells")
    log.info("%s: %d called cells (%s, column %s)", path, len(cells), CELL_CALL_FLAGS[flag], flag)
    return cells


def _read_whitelist(path: Path) -> set[str]:
    """Barcodes to keep: the called cells of a Cell Ranger cell-call CSV, or a whitelist, one barcode a line."""
    try:
        flag = cell_call_flag(path)
        if flag is not None:
            return read_cell_calls(path, flag)
        with open_text(path) as fh:
            return {ln.split("\t")[0].strip() for ln in fh if ln.strip() and not ln.startswith("#")}
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise InputFileError(path, f"cannot read the barcodes ({exc}); expected one barcode per line or a Cell "
                             "Ranger singlecell.csv / per_barcode_metrics.csv") from exc


def _examples(values: Iterable[str], k: int = 3) -> str:
    return ", ".join(repr(str(v)) for v in list(values)[:k])


def check_whitelist(path: Path, whitelist: set[str], barcodes: np.ndarray, source: str | Path) -> None:
    """Refuse a whitelist that is empty or shares no barcode with the data (naming both files and a few barcodes of
    each), instead of ending with an empty sample whose message blames the data file."""
    if not whitelist:
        raise InputFileError(path, "no barcode in the whitelist; expected one barcode per line")
    if len(barcodes) and not np.isin(barcodes, np.array(sorted(whitelist), dtype=object)).any():
        kind = "cell calls" if cell_call_flag(path) else "whitelist"
        raise InputFileError(path, f"none of its {len(whitelist)} barcodes occurs in {source} ({kind} e.g. "
                             f"{_examples(sorted(whitelist))}; data e.g. {_examples(barcodes)}); expected barcodes "
                             "spelt as in the data (check a '-1' suffix or a sample prefix) and the cell calls of "
                             "the same sample")


def build_cells(result: CountResult, peaks_df: pl.DataFrame, sample: str, *, min_fragments: int,
                whitelist: set[str] | None, source: str, sort_barcodes: bool) -> ad.AnnData:
    """Filter barcodes and assemble the ``cells.h5ad`` AnnData (layout in docs/data_contracts.md)."""
    keep = result.n_fragments >= min_fragments
    if whitelist is not None:
        keep &= np.isin(result.barcodes, np.array(sorted(whitelist), dtype=object))
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        most = int(result.n_fragments.max()) if len(result.n_fragments) else 0
        extra = " and in the whitelist" if whitelist is not None else ""
        raise InputFileError(source, f"sample {sample!r} is empty after filtering: no barcode has >= "
                             f"{min_fragments} fragments{extra} ({len(result.barcodes)} barcodes, most fragments "
                             f"{most}); lower --min-fragments or check the whitelist")
    if sort_barcodes:
        idx = idx[np.argsort(result.barcodes[idx], kind="stable")]
    X = result.counts[idx].astype(np.int32)
    X.sort_indices()
    n_frag = result.n_fragments[idx]
    barcodes = result.barcodes[idx].astype(str)
    frac = np.divide(result.n_insertions_in_peaks[idx], 2.0 * n_frag, out=np.zeros(len(idx)), where=n_frag > 0)
    obs = pd.DataFrame({
        "sample": pd.Categorical([sample] * len(idx)),
        "barcode": barcodes,
        "n_fragments": n_frag.astype(np.int64),
        "n_peaks": np.diff(X.indptr).astype(np.int64),
        "frac_in_peaks": np.clip(frac, 0.0, 1.0),
    }, index=pd.Index([f"{sample}#{b}" for b in barcodes], name=None))
    var = pd.DataFrame({"chrom": peaks_df["chrom"].to_list(), "start": peaks_df["start"].to_numpy(),
                        "end": peaks_df["end"].to_numpy()}, index=pd.Index(peaks_df["name"].to_list()))
    return ad.AnnData(X=sp.csr_matrix(X), obs=_repeated_strings_as_categories(obs),
                      var=_repeated_strings_as_categories(var))


def _repeated_strings_as_categories(df: pd.DataFrame) -> pd.DataFrame:
    """Make the string columns of ``df`` that repeat a value categorical (categories in order of appearance).

    AnnData does the same when it writes a file, but then prints ``... storing 'chrom' as categorical`` to
    stderr through a log handler of its own, on every run; converting first leaves it nothing to convert.

    Parameters
    ----------
    df : pandas.DataFrame
        An ``obs`` or ``var`` table, changed in place.

    Returns
    -------
    pandas.DataFrame
        ``df`` itself.
    """
    for col in df.columns:
        values = df[col]
        if isinstance(values.dtype, pd.CategoricalDtype) or not pd.api.types.is_string_dtype(values):
            continue
        if values.isna().any() or not values.duplicated().any():
            continue  # as AnnData: unique strings stay strings (and columns with missing values are left alone)
        df[col] = pd.Categorical(values, categories=pd.unique(values))
    return df


def ingest_sample(cfg: IngestConfig) -> ad.AnnData:
    """Run the whole ingest of one sample of the samplesheet and return the filtered AnnData."""
    if cfg.files is not None:
        row = sc_row(cfg.sample, cfg.files)
    else:
        rows = {r["sample"]: r for r in read_samplesheet(cfg.samplesheet, "sc")}
        if cfg.sample not in rows:
            raise InputFileError(cfg.samplesheet, f"no sample {cfg.sample!r} (samples: {', '.join(rows)})")
        row = rows[cfg.sample]
    chroms = ChromSelection(cfg.chroms)
    sizes = read_chrom_sizes(cfg.chrom_sizes) if cfg.chrom_sizes else None
    if sizes is not None:
        if chroms.spec == "primary" and not primary_chromosomes(sizes):
            chroms = ChromSelection("all")  # not a human-style genome: nothing to tell primary from the rest
        sizes = chroms.restrict(sizes, cfg.chrom_sizes)
    peaks_df = read_peak_set(cfg.peaks, chrom_sizes=sizes, chroms=chroms)
    peaks = PeakIndex(peaks_df)
    if "fragments" in row:
        kind, source = "fragments", row["fragments"]
        blocks = read_fragment_blocks(source, chrom_sizes=sizes, chunk_bytes=cfg.chunk_bytes, chroms=chroms)
        result = count_fragments(blocks, peaks, label=source, peaks_label=cfg.peaks)
    elif "bam" in row:
        kind, source = "bam", row["bam"]
        blocks = read_bam_blocks(source, barcode_tag=row.get("barcode_tag", "CB"), min_mapq=cfg.min_mapq,
                                 chrom_sizes=sizes, chroms=chroms)
        result = count_fragments(blocks, peaks, label=source, peaks_label=cfg.peaks)
    else:
        kind, source = "counts", row["counts"]
        result = read_count_matrix(row, peaks)
    # Cell Ranger cell calls may sit in the whitelist column, or in 'barcodes' when that names no matrix's columns
    wl_path = cfg.whitelist or row.get("whitelist")
    if wl_path is None and "barcodes" in row and not row.get("counts", "").endswith((".mtx", ".mtx.gz")):
        wl_path = row["barcodes"]
    whitelist = _read_whitelist(Path(wl_path)) if wl_path else None
    if whitelist is not None:
        check_whitelist(Path(wl_path), whitelist, result.barcodes, source)
    adata = build_cells(result, peaks_df, cfg.sample, min_fragments=cfg.min_fragments, whitelist=whitelist,
                        source=source, sort_barcodes=kind != "counts")
    adata.uns["scfan"] = {"sources": {cfg.sample: {"kind": kind, "file": Path(source).name}},
                          "config": {"ingest": asdict(cfg)}}
    log.info("%s: %d of %d barcodes kept, %d peaks, %d non-zeros (median %d fragments, FRiP %.2f)", cfg.sample,
             adata.n_obs, len(result.barcodes), adata.n_vars, adata.X.nnz,
             int(np.median(adata.obs["n_fragments"])), float(np.median(adata.obs["frac_in_peaks"])))
    return adata


def write_cells(adata: ad.AnnData, out: str | Path, config: object) -> None:
    """Write ``adata`` atomically, plus the step's frozen config as ``<out stem>.config.json`` beside it."""
    out = Path(out)
    write_h5ad(adata, out)
    write_json(out.with_name(out.name.removesuffix(".h5ad") + ".config.json"), asdict(config))


@dataclass(frozen=True)
class MergeConfig:
    """Settings of ``scfan sc merge``."""

    inputs: tuple[str, ...]


def merge_cells(paths: Iterable[str | Path]) -> ad.AnnData:
    """Concatenate per-sample ``cells.h5ad`` files; their peaks must be identical and cell ids unique."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ScfanError("sc merge: no input files")
    parts = []
    for p in paths:
        try:
            parts.append(ad.read_h5ad(p))
        except (OSError, KeyError, ValueError) as exc:
            raise InputFileError(p, f"cannot read as AnnData ({exc})") from exc
    # concatenate in sample order, whatever order the files came in (Nextflow hands them over in an order that
    # depends on work-folder hashes, which differ between runs)
    order = sorted(range(len(parts)), key=lambda i: (sorted(map(str, parts[i].obs["sample"].unique()))
                                                     if "sample" in parts[i].obs else [], paths[i].name))
    paths, parts = [paths[i] for i in order], [parts[i] for i in order]
    ref = parts[0].var_names
    sources: dict = {}
    configs: dict = {}
    for p, a in zip(paths, parts, strict=True):
        if not a.var_names.equals(ref):
            raise InputFileError(p, f"peaks differ from those of {paths[0]} (ingest every sample with the same "
                                 "--peaks)")
        for s, v in a.uns.get("scfan", {}).get("sources", {}).items():
            if s in sources:
                raise InputFileError(p, f"sample {s!r} is also in another input (duplicate sample names)")
            sources[s] = dict(v)
            configs[s] = a.uns.get("scfan", {}).get("config", {})
    merged = ad.concat(parts, axis=0, join="outer", merge="first")
    dup = merged.obs_names[merged.obs_names.duplicated()]
    if len(dup):
        raise ScfanError(f"sc merge: cell id {dup[0]!r} occurs in more than one input")
    merged.X = sp.csr_matrix(merged.X, dtype=np.int32)
    merged.obs["sample"] = pd.Categorical(merged.obs["sample"].astype(str))
    _repeated_strings_as_categories(merged.obs)  # e.g. the same barcode in two samples
    merged.var = parts[0].var.copy()
    merged.uns["scfan"] = {"sources": sources, "config": {"ingest": configs}}
    return merged
