"""`scfan sc ingest` on files exactly as Cell Ranger, ENCODE and UCSC make them (issue 34): cell calls as the
whitelist, a 10x ``filtered_peak_bc_matrix.h5`` as counts, GRCh38 contigs skipped by default, and one-line
errors for chromosome sets that do not meet."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pysam
import pytest
import sc_builders
import scipy.sparse as sp
from sc_builders import ingest_cli

from scfan.genome import ChromSelection
from scfan.sc.fragments import read_bam_blocks

# Cell Ranger ATAC 2.0 singlecell.csv header (exact column names and order)
SINGLECELL_HEADER = ("barcode,total,duplicate,chimeric,unmapped,lowmapq,mitochondrial,nonprimary,passed_filters,"
                     "is__cell_barcode,excluded_reason,TSS_fragments,DNase_sensitive_region_fragments,"
                     "enhancer_region_fragments,promoter_region_fragments,on_target_fragments,"
                     "blacklist_region_fragments,peak_region_fragments,peak_region_cutsites")
# Cell Ranger ARC 2.0 per_barcode_metrics.csv header
ARC_HEADER = ("barcode,gex_barcode,atac_barcode,is_cell,excluded_reason,gex_raw_reads,gex_mapped_reads,"
              "gex_conf_intergenic_reads,gex_conf_exonic_reads,gex_conf_intronic_reads,gex_conf_exonic_unique_reads,"
              "gex_conf_exonic_antisense_reads,gex_conf_exonic_dup_reads,gex_exonic_umis,"
              "gex_conf_intronic_unique_reads,gex_conf_intronic_antisense_reads,gex_conf_intronic_dup_reads,"
              "gex_intronic_umis,gex_conf_txomic_unique_reads,gex_umis_count,gex_genes_count,atac_raw_reads,"
              "atac_unmapped_reads,atac_lowmapq,atac_dup_reads,atac_chimeric_reads,atac_mitochondrial_reads,"
              "atac_fragments,atac_TSS_fragments,atac_peak_region_fragments,atac_peak_region_cutsites")
CALLED = ["AAACGAAAGGCTTCGC-1", "AAACTCGGTTTGATCG-1", "AAAGATGAGGCTAAAT-1"]  # barcodes of the real file
NOT_CALLED = ["AAAGATGCACGTTACA-1", "AAAGGATTCTATGAGC-1"]
# GRCh38 (UCSC analysis set) lengths: primary chromosomes and a few of its other contigs
GRCH38 = {"chr1": 248956422, "chr2": 242193529, "chrX": 156040895, "chrY": 57227415, "chrM": 16569,
          "chr1_KI270706v1_random": 175055, "chrUn_KI270742v1": 186739, "chr1_KI270762v1_alt": 354444,
          "chrEBV": 171823, "HLA-A*01:01:01:01": 3503}


def _singlecell_csv(path: Path, called: list[str], not_called: list[str]) -> Path:
    rows = [SINGLECELL_HEADER, "NO_BARCODE,8577766,2513649,68452,144230,412030,23710,0,5415695,0,,0,0,0,0,0,0,0,0"]
    for i, bc in enumerate(called + not_called):
        flag = 1 if bc in called else 0
        rows.append(f"{bc},{5000 + i},{1200 + i},21,14,180,3,0,{3500 + i},{flag},{'' if flag else 1},"
                    f"{900 + i},2800,700,400,2900,0,{1700 + i},{3300 + i}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _arc_csv(path: Path, called: list[str], not_called: list[str]) -> Path:
    rows = [ARC_HEADER]
    for i, bc in enumerate(called + not_called):
        flag = 1 if bc in called else 0
        atac = "ACAGCGGGTGTGTTAC-1" if i == 0 else f"GTCA{bc[4:]}"  # ARC's ATAC barcodes differ from 'barcode'
        rows.append(f"{bc},{bc},{atac},{flag},{'' if flag else 1}," + ",".join(str(10 * i + k) for k in range(26)))
    path.write_text("\r\n".join(rows) + "\r\n")  # written on Windows or not: CRLF is read too
    return path


_ingest = ingest_cli


def _nothing_written(tmp_path: Path) -> bool:
    return not list(tmp_path.glob("*cells*.h5ad*")) and not list(tmp_path.glob("*.config.json"))


# --- 1. Cell Ranger cell calls as the whitelist -------------------------------------------------------------------

@pytest.mark.parametrize("maker", [_singlecell_csv, _arc_csv], ids=["atac_singlecell", "arc_per_barcode_metrics"])
@pytest.mark.parametrize("where", ["option", "whitelist_column", "barcodes_column"])
def test_cell_calls_keep_only_called_cells(cellranger, tmp_path, monkeypatch, capsys, maker, where):
    calls = maker(tmp_path / ("singlecell.csv" if maker is _singlecell_csv else "per_barcode_metrics.csv"),
                  CALLED, NOT_CALLED)
    out = tmp_path / "cells.h5ad"
    common = ("--peaks", str(cellranger["peaks"]), "--out", str(out))
    if where == "option":
        rc = _ingest(monkeypatch, "--fragments", str(cellranger["fragments"]), "--whitelist", str(calls), *common)
    else:
        column = "whitelist" if where == "whitelist_column" else "barcodes"
        sheet = tmp_path / "samplesheet.csv"
        sheet.write_text(f"sample,fragments,{column}\nS1,{cellranger['fragments'].name},{calls.name}\n")
        rc = _ingest(monkeypatch, "--samplesheet", str(sheet), *common)
    assert rc == 0, capsys.readouterr().err
    assert sorted(ad.read_h5ad(out).obs["barcode"]) == sorted(CALLED)  # NO_BARCODE and the 0 rows left out


def test_cell_calls_of_another_sample_one_line_error(cellranger, tmp_path, monkeypatch, capsys):
    other = ["TTTGTTGGTTTGGCTA-1", "TTTGTGTTCCGCAAGC-1", "TTTGGCCTCGCAAACT-1", "TTTCCGGCACTTTACG-1"]
    calls = _singlecell_csv(tmp_path / "singlecell.csv", other, [])
    out = tmp_path / "cells.h5ad"
    assert _ingest(monkeypatch, "--fragments", str(cellranger["fragments"]), "--whitelist", str(calls),
                   "--peaks", str(cellranger["peaks"]), "--out", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"scfan: error: {calls}: none of its 4 barcodes occurs in {cellranger['fragments']}")
    assert "'TTTCCGGCACTTTACG-1', 'TTTGGCCTCGCAAACT-1', 'TTTGTGTTCCGCAAGC-1'" in err  # a few of the cell calls
    assert "data e.g. 'AAAGATGAGGCTAAAT-1', 'AAACTCGTCTGGCACG-1', 'AAACTGCAGTCTGTGT-1'" in err  # a few of the data
    assert _nothing_written(tmp_path)


def test_bad_cell_call_flag_names_line(cellranger, tmp_path, monkeypatch, capsys):
    calls = _singlecell_csv(tmp_path / "singlecell.csv", CALLED, [])
    calls.write_text(calls.read_text().replace(f"{CALLED[1]},5001,1201,21,14,180,3,0,3501,1,",
                                               f"{CALLED[1]},5001,1201,21,14,180,3,0,3501,yes,"))
    out = tmp_path / "cells.h5ad"
    assert _ingest(monkeypatch, "--fragments", str(cellranger["fragments"]), "--whitelist", str(calls),
                   "--peaks", str(cellranger["peaks"]), "--out", str(out)) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"scfan: error: {calls}, line 4: column 'is__cell_barcode' value 'yes' is not 0 or 1 (a Cell Ranger cell "
        "call)")
    assert _nothing_written(tmp_path)


# --- 2. 10x filtered_peak_bc_matrix.h5 as counts ------------------------------------------------------------------

def _write_10x_h5(path: Path, counts: np.ndarray, barcodes: list[str], ids: list[str], *,
                  feature_type: list[str] | None = None, interval: list[str] | None = None,
                  names: list[str] | None = None) -> None:
    """A 10x HDF5 feature-barcode matrix as Cell Ranger writes it: peaks × barcodes CSC under ``matrix``."""
    m = sp.csc_matrix(counts.astype(np.int32))
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g.create_dataset("barcodes", data=np.array(barcodes, dtype="S"))
        g.create_dataset("data", data=m.data.astype(np.int32))
        g.create_dataset("indices", data=m.indices.astype(np.int64))
        g.create_dataset("indptr", data=m.indptr.astype(np.int64))
        g.create_dataset("shape", data=np.array(m.shape, dtype=np.int32))
        feats = g.create_group("features")
        feats.create_dataset("_all_tag_keys", data=np.array([b"genome"] + ([b"interval"] if interval else [])))
        feats.create_dataset("id", data=np.array(ids, dtype="S"))
        feats.create_dataset("name", data=np.array(names or ids, dtype="S"))
        feats.create_dataset("feature_type", data=np.array(feature_type or ["Peaks"] * len(ids), dtype="S"))
        feats.create_dataset("genome", data=np.array(["GRCh38"] * len(ids), dtype="S"))
        if interval is not None:
            feats.create_dataset("interval", data=np.array(interval, dtype="S"))


def test_cellranger_atac_h5_counts(tmp_path, monkeypatch, capsys):
    ids = ["chr1:10109-10357", "chr1:180730-181630", "chr2:10049-10487", "KI270728.1:1000-1500"]
    counts = np.array([[2, 0, 1], [0, 4, 0], [1, 1, 0], [0, 0, 3]])  # peaks × barcodes
    bcs = ["AAACGAAAGACACTTC-1", "AAACGAAAGCAGGTCA-1", "AAACGAAAGTGCCGAT-1"]
    h5 = tmp_path / "filtered_peak_bc_matrix.h5"
    _write_10x_h5(h5, counts, bcs, ids)
    peaks = tmp_path / "peaks.bed"  # UCSC track line, CRLF, a peak on a non-primary contig (skipped)
    peaks.write_bytes(b'track type=bed name="peaks"\r\nchr1\t10109\t10357\r\nchr1\t180730\t181630\r\n'
                      b"chr2\t10049\t10487\r\nchrUn_KI270742v1\t100\t500\r\n")
    out = tmp_path / "cells.h5ad"
    assert _ingest(monkeypatch, "--counts", str(h5), "--peaks", str(peaks), "--out", str(out)) == 0, \
        capsys.readouterr().err
    err = capsys.readouterr().err
    assert "1 interval(s) on 1 contig(s) outside the primary chromosomes (chr1-22, X, Y, M) skipped " \
           "(chrUn_KI270742v1); --chroms all keeps them" in err
    a = ad.read_h5ad(out)
    assert list(a.obs["barcode"]) == bcs and list(a.var_names) == ids[:3]
    np.testing.assert_array_equal(a.X.toarray(), counts[:3].T)


def test_cellranger_arc_h5_counts_peaks_only_by_interval(tmp_path, monkeypatch, capsys):
    ids = ["ENSG00000243485", "ENSG00000237613", "chr1:9768-10669", "chr1:180631-181281"]
    interval = ["chr1:29553-30267", "chr1:34553-36081", "chr1:9768-10669", "chr1:180631-181281"]
    names = ["MIR1302-2HG", "FAM138A", "chr1:9768-10669", "chr1:180631-181281"]
    ftype = ["Gene Expression", "Gene Expression", "Peaks", "Peaks"]
    counts = np.array([[3, 0], [0, 1], [2, 0], [1, 5]])
    h5 = tmp_path / "filtered_feature_bc_matrix.h5"
    _write_10x_h5(h5, counts, ["AAACAGCCAAGGAATC-1", "AAACAGCCAATCCCTT-1"], ids, feature_type=ftype,
                  interval=interval, names=names)
    peaks = tmp_path / "atac_peaks.bed"
    peaks.write_text("# peaks of Cell Ranger ARC\nchr1\t9768\t10669\nchr1\t180631\t181281\n")
    sheet = tmp_path / "samplesheet.csv"
    sheet.write_text(f"sample,counts\nS1,{h5.name}\n")
    out = tmp_path / "cells.h5ad"
    assert _ingest(monkeypatch, "--samplesheet", str(sheet), "--peaks", str(peaks), "--out", str(out)) == 0, \
        capsys.readouterr().err
    a = ad.read_h5ad(out)
    np.testing.assert_array_equal(a.X.toarray(), counts[2:].T)


def test_h5_without_matrix_group_names_file(tmp_path, monkeypatch, capsys):
    h5 = tmp_path / "filtered_peak_bc_matrix.h5"
    with h5py.File(h5, "w") as f:
        f.create_group("X")
    peaks = tmp_path / "peaks.bed"
    peaks.write_text("chr1\t10109\t10357\n")
    out = tmp_path / "cells.h5ad"
    assert _ingest(monkeypatch, "--counts", str(h5), "--peaks", str(peaks), "--out", str(out)) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"scfan: error: {h5}: no group 'matrix' (has X); expected a 10x HDF5 feature-barcode matrix such as "
        "filtered_peak_bc_matrix.h5")
    assert _nothing_written(tmp_path)


# --- 4. GRCh38 contigs: primary chromosomes by default -----------------------------------------------------------

def _fragments_with_contigs(shared_data: Path, tmp_path: Path) -> Path:
    """The real Cell Ranger file with fragments on its other contigs appended, sorted as Cell Ranger sorts."""
    with gzip.open(shared_data / "cellranger_fragments" / "fragments_header.tsv.gz", "rt") as fh:
        text = fh.read()
    text += ("KI270728.1\t10213\t10402\tAAACGAAAGGCTTCGC-1\t1\nKI270728.1\t20870\t21012\tAAAGATGAGGCTAAAT-1\t2\n"
             "KI270728.1\t33001\t33234\tAAACTCGGTTTGATCG-1\t1\nGL000194.1\t115023\t115190\tAAACGAAAGGCTTCGC-1\t1\n"
             "GL000194.1\t115100\t115337\tAAAGATGCACGTTACA-1\t1\n")
    plain = tmp_path / "fragments.tsv"
    plain.write_text(text)
    frag = tmp_path / "fragments.tsv.gz"
    pysam.tabix_compress(str(plain), str(frag), force=True)
    pysam.tabix_index(str(frag), preset="bed", force=True, meta_char="#")
    plain.unlink()
    return frag


def test_grch38_contigs_skipped_with_one_counted_warning(shared_data, cellranger, tmp_path, monkeypatch, capsys):
    frag = _fragments_with_contigs(shared_data, tmp_path)
    sizes = tmp_path / "GRCh38.fa.fai"
    sizes.write_text("".join(f"{c}\t{n}\t0\t60\t61\n" for c, n in GRCH38.items()))
    out = tmp_path / "cells.h5ad"
    assert _ingest(monkeypatch, "--fragments", str(frag), "--peaks", str(cellranger["peaks"]), "--chrom-sizes",
                   str(sizes), "--out", str(out)) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    warning = (f"{frag}: 5 fragment(s) on 2 contig(s) outside the primary chromosomes (chr1-22, X, Y, M) skipped "
               "(KI270728.1, GL000194.1); --chroms all keeps them")
    assert err.count("outside the primary chromosomes") == 1 and warning in " ".join(err.split())
    assert ad.read_h5ad(out).n_obs == 54  # the chr1 barcodes of the real file, as without the contigs

    # --chroms all keeps them, and the genome's .fai (UCSC names) lacks KI270728.1: an error, not a skip
    out.unlink()
    (tmp_path / "cells.config.json").unlink()
    assert _ingest(monkeypatch, "--fragments", str(frag), "--peaks", str(cellranger["peaks"]), "--chrom-sizes",
                   str(sizes), "--chroms", "all", "--out", str(out)) == 2
    assert "chromosome 'KI270728.1' is not in the genome" in capsys.readouterr().err
    assert _nothing_written(tmp_path)


def test_bam_reads_on_contigs_skipped_with_one_counted_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(sc_builders, "CHROM_SIZES", {"chr1": 20_000, "chrEBV": 171_823})
    rows = [("chr1", 100, 300, "A-1", 1), ("chr1", 500, 800, "B-1", 1), ("chrEBV", 1000, 1200, "A-1", 1),
            ("chrEBV", 3000, 3300, "B-1", 1), ("chrEBV", 5000, 5200, "B-1", 1)]
    bam = sc_builders.write_bam(tmp_path / "possorted_bam.bam", rows)
    with caplog.at_level(logging.WARNING, logger="scfan"):
        blocks = list(read_bam_blocks(bam, chroms=ChromSelection(), chrom_sizes={"chr1": 20_000}))
    assert [b.chrom for b in blocks] == ["chr1"] and len(blocks[0].frame) == 2
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"{bam}: 6 mapped read(s) on 1 contig(s) outside the primary chromosomes (chr1-22, X, Y, M) skipped "
        "(chrEBV); --chroms all keeps them"]


# --- 5. chromosome sets that do not meet -------------------------------------------------------------------------

def test_chr_prefix_difference_between_fragments_and_peaks(cellranger, tmp_path, monkeypatch, capsys):
    peaks = tmp_path / "peaks_ensembl.bed"
    peaks.write_text("1\t10000\t200000\n1\t200000\t1000000\n")
    out = tmp_path / "cells.h5ad"
    assert _ingest(monkeypatch, "--fragments", str(cellranger["fragments"]), "--peaks", str(peaks),
                   "--out", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"scfan: error: {cellranger['fragments']} has chromosome(s) chr1 not in {peaks} (no name in "
                       f"common), which has 1 — {peaks} has no 'chr' prefix: strip it (e.g. sed 's/^chr//')")
    assert _nothing_written(tmp_path)


def test_hg19_peaks_on_grch38_genome(shared_data, cellranger, tmp_path, monkeypatch, capsys):
    """Real hg19 peaks (chromVAR example) against GRCh38 chromosome sizes: the first peak beyond a GRCh38 end."""
    grch38 = {**GRCH38, **{f"chr{i}": n for i, n in zip(
        range(3, 23), [198295559, 190214555, 181538259, 170805979, 159345973, 145138636, 138394717, 133797422,
                       135086622, 133275309, 114364328, 107043718, 101991189, 90338345, 83257441, 80373285,
                       58617616, 64444167, 46709983, 50818468], strict=True)}}
    sizes = tmp_path / "GRCh38.chrom.sizes"
    sizes.write_text("".join(f"{c}\t{n}\n" for c, n in grch38.items()))
    src = shared_data / "chromvar_example" / "peaks.bed"
    lines = src.read_text().splitlines()
    first_bad = next(i for i, ln in enumerate(lines, 1) if int(ln.split("\t")[2]) > grch38[ln.split("\t")[0]])
    chrom, s, e = lines[first_bad - 1].split("\t")[:3]
    out = tmp_path / "cells.h5ad"
    assert _ingest(monkeypatch, "--fragments", str(cellranger["fragments"]), "--peaks", str(src),
                   "--chrom-sizes", str(sizes), "--out", str(out)) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"scfan: error: {src}, line {first_bad}: interval {chrom}:{s}-{e} ends beyond the chromosome end "
        f"({grch38[chrom]}); the genome is GRCh38: is this file of another build?")
    assert _nothing_written(tmp_path)


def test_ucsc_peaks_on_ensembl_genome_sizes(cellranger, tmp_path, monkeypatch, capsys):
    """Peaks named chr1 against an Ensembl GRCh38 .fai (1, 2, …, MT, KI270728.1): the hint says strip 'chr'."""
    fai = tmp_path / "Homo_sapiens.GRCh38.dna.primary_assembly.fa.fai"
    fai.write_text("1\t248956422\t56\t60\t61\n2\t242193529\t253105810\t60\t61\nMT\t16569\t3099750718\t60\t61\n"
                   "KI270728.1\t1872759\t3099767967\t60\t61\n")
    out = tmp_path / "cells.h5ad"
    assert _ingest(monkeypatch, "--fragments", str(cellranger["fragments"]), "--peaks", str(cellranger["peaks"]),
                   "--chrom-sizes", str(fai), "--out", str(out)) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"scfan: error: {cellranger['peaks']}, line 1: chromosome 'chr1' is not in the genome (which has 1, 2, MT) "
        "— the genome has no 'chr' prefix: strip it (e.g. sed 's/^chr//')")
    assert _nothing_written(tmp_path)
