"""Ingest: counting semantics, equality of fragments/BAM/counts paths, QC, merge, and bad-input errors."""

from __future__ import annotations

import gzip

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from sc_builders import (
    random_fragments,
    reference_counts,
    run_cli,
    write_bam,
    write_fragments,
    write_mtx,
    write_peaks,
)

from scfan.errors import InputFileError
from scfan.sc.fragments import read_fragment_blocks
from scfan.sc.ingest import IngestConfig, count_fragments, ingest_sample
from scfan.sc.peaks import PeakIndex, read_peak_set


def sheet(tmp_path, row: dict[str, str], name: str = "sc.csv"):
    cols = list(row)
    p = tmp_path / name
    p.write_text(",".join(cols) + "\n" + ",".join(row[c] for c in cols) + "\n")
    return p


def dense(adata: ad.AnnData) -> np.ndarray:
    return adata.X.toarray()


def test_fragments_counts_match_reference_and_qc(tmp_path, tiny_peaks, chrom_sizes_file):
    rows = random_fragments(seed=1)
    frag = write_fragments(tmp_path / "fragments.tsv.gz", rows)
    peaks = write_peaks(tmp_path / "peaks.bed", tiny_peaks)
    cfg = IngestConfig(samplesheet=str(sheet(tmp_path, {"sample": "s1", "fragments": frag.name})), sample="s1",
                       peaks=str(peaks), chrom_sizes=str(chrom_sizes_file), min_fragments=1)
    a = ingest_sample(cfg)
    barcodes = sorted({r[3] for r in rows})
    assert list(a.obs["barcode"]) == barcodes
    assert list(a.obs_names) == [f"s1#{b}" for b in barcodes]
    assert list(a.var_names) == [f"{c}:{s}-{e}" for c, s, e in tiny_peaks]
    assert a.X.dtype == np.int32 and sp.isspmatrix_csr(a.X) or isinstance(a.X, sp.csr_matrix)
    ref = reference_counts(rows, tiny_peaks, barcodes)
    np.testing.assert_array_equal(dense(a), ref)
    # the peak at the end of chr1 sees the fragment ending exactly at the chromosome end
    assert ref[:, 3].sum() > 0 and ref[0, 3] >= 1
    n_frag = np.array([sum(1 for r in rows if r[3] == b) for b in barcodes])
    np.testing.assert_array_equal(a.obs["n_fragments"], n_frag)
    np.testing.assert_array_equal(a.obs["n_peaks"], (ref > 0).sum(axis=1))
    np.testing.assert_allclose(a.obs["frac_in_peaks"], ref.sum(axis=1) / (2 * n_frag))
    assert a.obs["sample"].astype(str).eq("s1").all()
    assert a.uns["scfan"]["sources"]["s1"]["kind"] == "fragments"


def test_duplicate_rows_count_once_and_chunking_does_not_matter(tmp_path, tiny_peaks):
    rows = random_fragments(seed=2, n_cells=5, per_cell=200)
    duplicated = sorted(rows + rows[::7], key=lambda r: (r[0], r[1]))
    path = write_fragments(tmp_path / "dup.tsv.gz", duplicated)
    df = read_peak_set(write_peaks(tmp_path / "p.bed", tiny_peaks))
    index = PeakIndex(df)
    whole = count_fragments(read_fragment_blocks(path), index)
    tiny = count_fragments(read_fragment_blocks(path, chunk_bytes=300), index, flush_entries=7)
    barcodes = list(whole.barcodes)
    ref = reference_counts(rows, tiny_peaks, barcodes)
    np.testing.assert_array_equal(whole.counts.toarray(), ref)
    order = [list(tiny.barcodes).index(b) for b in barcodes]
    np.testing.assert_array_equal(tiny.counts.toarray()[order], ref)
    np.testing.assert_array_equal(whole.n_fragments, [sum(1 for r in rows if r[3] == b) for b in barcodes])


def test_overlapping_peaks_count_for_each_peak(tmp_path):
    rows = random_fragments(seed=3, n_cells=4, per_cell=150)
    peaks = [("chr1", 1000, 3000), ("chr1", 2000, 2500), ("chr1", 2400, 6000), ("chr2", 0, 12_000)]
    path = write_fragments(tmp_path / "f.tsv.gz", rows)
    res = count_fragments(read_fragment_blocks(path), PeakIndex(read_peak_set(write_peaks(tmp_path / "p.bed", peaks))))
    np.testing.assert_array_equal(res.counts.toarray(), reference_counts(rows, peaks, list(res.barcodes)))


def test_fragments_bam_and_counts_paths_give_the_same_matrix(tmp_path, tiny_peaks, monkeypatch):
    rows = random_fragments(seed=4, n_cells=8, per_cell=120)
    frag = write_fragments(tmp_path / "fragments.tsv.gz", rows)
    bam = write_bam(tmp_path / "cells.bam", rows)
    barcodes = sorted({r[3] for r in rows})[::-1]  # matrix in another cell order
    ref = reference_counts(rows, tiny_peaks, barcodes)
    shuffled = np.random.default_rng(0).permutation(len(tiny_peaks))  # and another peak order
    mtx, mpeaks, mcells = write_mtx(tmp_path, ref[:, shuffled], [tiny_peaks[i] for i in shuffled], barcodes)
    peaks = write_peaks(tmp_path / "peaks.bed", tiny_peaks)
    sc = tmp_path / "sc.csv"
    sc.write_text("sample,fragments,bam,counts,peaks,barcodes\n"
                  f"F,{frag.name},,,,\nB,,{bam.name},,,\nM,,,{mtx.name},{mpeaks.name},{mcells.name}\n")
    outs = {}
    for s in "FBM":
        out = tmp_path / f"{s}.h5ad"
        assert run_cli(monkeypatch, "sc", "ingest", "--samplesheet", str(sc), "--sample", s, "--peaks", str(peaks),
                       "--min-fragments", "0", "--out", str(out)) == 0
        assert (tmp_path / f"{s}.config.json").is_file()
        outs[s] = ad.read_h5ad(out)
    for s in "FBM":
        a = outs[s][[f"{s}#{b}" for b in barcodes]]
        np.testing.assert_array_equal(dense(a), ref, err_msg=f"path {s}")
        assert list(a.var_names) == [f"{c}:{s_}-{e}" for c, s_, e in tiny_peaks]
    np.testing.assert_array_equal(outs["F"].obs["n_fragments"], outs["B"].obs["n_fragments"])
    # merge: ids unique, peaks identical
    merged = tmp_path / "all.h5ad"
    assert run_cli(monkeypatch, "sc", "merge", "--out", str(merged), *(str(tmp_path / f"{s}.h5ad") for s in "FBM")) == 0
    m = ad.read_h5ad(merged)
    assert m.n_obs == 3 * len(barcodes) and m.obs_names.is_unique
    assert set(m.uns["scfan"]["sources"]) == {"F", "B", "M"}
    assert m.X.dtype == np.int32


def test_min_fragments_and_whitelist_filtering(tmp_path, tiny_peaks):
    rows = random_fragments(seed=5, n_cells=6, per_cell=50)
    rows += [("chr2", 8000 + 300 * i, 8100 + 300 * i, "LOWQ-1", 1) for i in range(3)]
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    frag = write_fragments(tmp_path / "fragments.tsv.gz", rows)
    peaks = write_peaks(tmp_path / "peaks.bed", tiny_peaks)
    wl = tmp_path / "wl.txt"
    wl.write_text("AAAC0002-1\nAAAC0004-1\nNEVERSEEN-1\nLOWQ-1\n")  # a barcode with zero fragments, one too low
    s = sheet(tmp_path, {"sample": "s", "fragments": frag.name})
    a = ingest_sample(IngestConfig(samplesheet=str(s), sample="s", peaks=str(peaks), min_fragments=10,
                                   whitelist=str(wl)))
    assert list(a.obs["barcode"]) == ["AAAC0002-1", "AAAC0004-1"]
    b = ingest_sample(IngestConfig(samplesheet=str(s), sample="s", peaks=str(peaks), min_fragments=3))
    assert "LOWQ-1" in set(b.obs["barcode"])
    lowq = b[b.obs["barcode"] == "LOWQ-1"]
    assert lowq.X.sum() == 0 and lowq.obs["frac_in_peaks"].iloc[0] == 0.0  # kept, with an empty row
    with pytest.raises(InputFileError, match="empty after filtering"):
        ingest_sample(IngestConfig(samplesheet=str(s), sample="s", peaks=str(peaks), min_fragments=10_000))


def _bad(tmp_path, name: str, text: str, *, compress: bool = True, index: bool = True):
    p = tmp_path / name
    plain = tmp_path / (name + ".txt")
    plain.write_text(text)
    if compress:
        import pysam

        pysam.tabix_compress(str(plain), str(p), force=True)
        if index:
            pysam.tabix_index(str(p), preset="bed", force=True)
    else:
        p.write_bytes(gzip.compress(plain.read_bytes()))
    return p


def _with_stale_index(tmp_path, path):
    """Give a file tabix cannot index an index from a valid file, so that our own checks are reached."""
    good = _bad(tmp_path, "good.tsv.gz", GOOD)
    path.with_name(path.name + ".tbi").write_bytes(good.with_name("good.tsv.gz.tbi").read_bytes())
    return path


GOOD = "chr1\t100\t300\tA-1\t1\nchr1\t200\t400\tB-1\t1\nchr2\t50\t90\tA-1\t1\n"


@pytest.mark.parametrize(("text", "message"), [
    ("chr1\t100\t300\tA-1\t1\nchr1\t200\t400\tB-1\nchr2\t50\t90\tA-1\t1\n", "line 2.*5 tab-separated columns"),
    ("chr1\t100\t300\tA-1\t1\nchr1\t2x0\t400\tB-1\t1\n", "line 2.*'start'.*not an integer"),
    ("chr1\t100\t300\tA-1\t1\nchr1\t400\t300\tB-1\t1\n", "line 2.*start < end"),
    ("chr9\t100\t300\tA-1\t1\n", "line 1.*chromosome 'chr9' is not in the genome"),
    ("chr1\t100\t300\tA-1\t1\nchr1\t19990\t20100\tB-1\t1\n", "line 2.*beyond the end of chr1"),
])
def test_malformed_fragments_name_file_and_line(tmp_path, tiny_peaks, chrom_sizes_file, monkeypatch, capsys,
                                               text, message):
    frag = _with_stale_index(tmp_path, _bad(tmp_path, "fragments.tsv.gz", text, index=False))
    out = tmp_path / "cells.h5ad"
    code = run_cli(monkeypatch, "sc", "ingest", "--samplesheet", str(sheet(tmp_path, {"sample": "s", "fragments":
                   frag.name})), "--sample", "s", "--peaks", str(write_peaks(tmp_path / "p.bed", tiny_peaks)),
                   "--chrom-sizes", str(chrom_sizes_file), "--min-fragments", "0", "--out", str(out))
    err = capsys.readouterr().err
    assert code == 2
    assert "fragments.tsv.gz" in err
    import re

    assert re.search(message, err), err
    assert not out.exists() and not list(tmp_path.glob(".cells.h5ad*"))


def test_unsorted_unindexed_truncated(tmp_path, tiny_peaks):
    peaks = PeakIndex(read_peak_set(write_peaks(tmp_path / "p.bed", tiny_peaks)))
    unsorted = _with_stale_index(
        tmp_path, _bad(tmp_path, "u.tsv.gz", "chr1\t500\t700\tA-1\t1\nchr1\t100\t300\tB-1\t1\n", index=False))
    with pytest.raises(InputFileError, match=r"line 2.*not sorted.*sort -k1,1 -k2,2n.*tabix -p bed"):
        count_fragments(read_fragment_blocks(unsorted), peaks)
    back = _with_stale_index(tmp_path, _bad(
        tmp_path, "b.tsv.gz", "chr1\t100\t300\tA-1\t1\nchr2\t5\t90\tA-1\t1\nchr1\t500\t600\tA-1\t1\n", index=False))
    with pytest.raises(InputFileError, match=r"line 3.*chromosome 'chr1' appears again"):
        count_fragments(read_fragment_blocks(back), peaks)
    noindex = _bad(tmp_path, "n.tsv.gz", GOOD, index=False)
    with pytest.raises(InputFileError, match=r"n.tsv.gz.*no tabix index.*tabix -p bed"):
        count_fragments(read_fragment_blocks(noindex), peaks)
    big = "".join(f"chr1\t{i}\t{i + 100}\tA-1\t1\n" for i in range(0, 19_000, 3))
    trunc = _bad(tmp_path, "t.tsv.gz", big)
    data = trunc.read_bytes()
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match=r"t.tsv.gz.*truncated or corrupt gzip"):
        count_fragments(read_fragment_blocks(trunc), peaks)


def test_chromosome_naming_mismatch_and_bam_without_tag(tmp_path, tiny_peaks):
    rows = [("1", 100, 300, "A-1", 1), ("1", 400, 600, "A-1", 1)]
    frag = write_fragments(tmp_path / "f.tsv.gz", rows)
    peaks = PeakIndex(read_peak_set(write_peaks(tmp_path / "p.bed", tiny_peaks)))
    with pytest.raises(Exception, match=r"'chr' prefixes"):
        count_fragments(read_fragment_blocks(frag), peaks)
    bam = write_bam(tmp_path / "x.bam", random_fragments(seed=6, n_cells=2, per_cell=20), tag=None)
    s = sheet(tmp_path, {"sample": "s", "bam": bam.name})
    with pytest.raises(InputFileError, match=r"x.bam.*barcode tag 'CB'"):
        ingest_sample(IngestConfig(samplesheet=str(s), sample="s", peaks=str(tmp_path / "p.bed"), min_fragments=0))


def test_samplesheet_errors(tmp_path, tiny_peaks, monkeypatch, capsys):
    frag = write_fragments(tmp_path / "f.tsv.gz", random_fragments(seed=7, n_cells=2, per_cell=20))
    sc = tmp_path / "sc.csv"
    sc.write_text(f"sample,fragments\ns,{frag.name}\ns,{frag.name}\n")
    code = run_cli(monkeypatch, "sc", "ingest", "--samplesheet", str(sc), "--sample", "s", "--peaks",
                   str(write_peaks(tmp_path / "p.bed", tiny_peaks)), "--out", str(tmp_path / "o.h5ad"))
    assert code == 2 and "duplicate sample name" in capsys.readouterr().err
    a = tmp_path / "a.h5ad"
    b = tmp_path / "b.h5ad"
    sc.write_text(f"sample,fragments\ns,{frag.name}\n")
    for p in (a, b):
        assert run_cli(monkeypatch, "sc", "ingest", "--samplesheet", str(sc), "--sample", "s", "--peaks",
                       str(tmp_path / "p.bed"), "--min-fragments", "0", "--out", str(p)) == 0
    assert run_cli(monkeypatch, "sc", "merge", "--out", str(tmp_path / "m.h5ad"), str(a), str(b)) == 2
    assert "sample 's'" in capsys.readouterr().err and not (tmp_path / "m.h5ad").exists()
