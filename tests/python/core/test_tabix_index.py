"""scfan.tabix: an index is judged by the file's content, not by mtimes (which object-store staging reorders)."""

from __future__ import annotations

import os
from pathlib import Path

import pysam
import pytest

from scfan.sc.fragments import check_fragments_index
from scfan.tabix import IndexMismatch, TruncatedData, check_index_belongs, read_tbi_spans

CONTIGS = ("chr1", "chr2", "chr10", "chrX")


def _fragments(path: Path, n_per_contig: int = 4000, drop: int = 0) -> Path:
    """Sorted fragments on four contigs, several bgzip blocks each, with a header line; bgzip + tabix."""
    rows = ["# a header line, as cellranger writes\n"]
    for c in CONTIGS:
        rows += [f"{c}\t{100 + 37 * i}\t{300 + 37 * i}\tBC-{i % 97}\t{1 + i % 3}\n"
                 for i in range(drop, n_per_contig)]
    plain = path.with_suffix("")
    plain.write_text("".join(rows))
    return Path(pysam.tabix_index(str(plain), preset="bed", force=True))


def test_a_good_index_passes_whatever_the_mtimes(tmp_path):
    p = _fragments(tmp_path / "f.tsv.gz")
    spans = read_tbi_spans(str(p) + ".tbi")
    assert [s.name for s in spans] == list(CONTIGS)
    assert all(a.end == b.begin for a, b in zip(spans, spans[1:], strict=False))  # contiguous, in file order
    assert spans[-1].end >> 16 > 0 and spans[0].begin > 0  # several blocks; the header comes first
    # staging can leave the index older than its data (htslib would warn): by content it still belongs
    os.utime(str(p) + ".tbi", (1_000_000, 1_000_000))
    check_index_belongs(p, str(p) + ".tbi")
    check_fragments_index(p)


def test_an_index_of_another_file_is_refused(tmp_path):
    a = _fragments(tmp_path / "a.tsv.gz")
    b = _fragments(tmp_path / "b.tsv.gz", n_per_contig=3000)
    with pytest.raises(IndexMismatch, match="end at byte"):
        check_index_belongs(a, str(b) + ".tbi")
    with pytest.raises(IndexMismatch):
        check_index_belongs(b, str(a) + ".tbi")


def test_a_file_rewritten_after_indexing_is_refused(tmp_path):
    p = _fragments(tmp_path / "f.tsv.gz")
    old_index = (tmp_path / "f.tsv.gz.tbi").read_bytes()
    _fragments(tmp_path / "f.tsv.gz", drop=5)  # five fewer rows per contig, re-compressed
    (tmp_path / "f.tsv.gz.tbi").write_bytes(old_index)
    with pytest.raises(IndexMismatch):
        check_index_belongs(p, str(p) + ".tbi")


def test_a_contig_start_that_is_not_a_line_of_that_contig_is_refused(tmp_path):
    """Same length, same last block: only the per-contig starts can tell (here chr2's start points mid-line)."""
    p = _fragments(tmp_path / "f.tsv.gz")
    tbi = Path(str(p) + ".tbi")
    spans = read_tbi_spans(tbi)
    import gzip

    data = bytearray(gzip.decompress(tbi.read_bytes()))
    old = spans[1].begin.to_bytes(8, "little")
    new = (spans[1].begin + 3).to_bytes(8, "little")  # three bytes into chr2's first line
    assert data.count(old) >= 1
    data = data.replace(old, new)
    with pysam.BGZFile(str(tbi), "wb") as fh:
        fh.write(bytes(data))
    with pytest.raises(IndexMismatch, match="chr2 begins.*middle of a line"):
        check_index_belongs(p, tbi)


def test_a_truncated_file_is_named_as_truncated(tmp_path):
    p = _fragments(tmp_path / "f.tsv.gz")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedData, match="without bgzip's end-of-file block"):
        check_index_belongs(p, str(p) + ".tbi")


def test_a_file_that_is_not_an_index_is_refused(tmp_path):
    p = _fragments(tmp_path / "f.tsv.gz")
    Path(str(p) + ".tbi").write_bytes(b"not an index")
    with pytest.raises(IndexMismatch, match="not bgzip-compressed"):
        read_tbi_spans(str(p) + ".tbi")


def test_the_index_of_an_empty_file_fits_only_an_empty_file(tmp_path):
    plain = tmp_path / "empty.tsv"
    plain.write_text("# only a header\n")
    empty = Path(pysam.tabix_index(str(plain), preset="bed", force=True))
    assert read_tbi_spans(str(empty) + ".tbi") == []
    check_index_belongs(empty, str(empty) + ".tbi")
    full = _fragments(tmp_path / "f.tsv.gz")
    with pytest.raises(IndexMismatch, match="lists no records"):
        check_index_belongs(full, str(empty) + ".tbi")
