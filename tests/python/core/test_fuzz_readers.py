"""Property-based fuzzing of the input readers (hypothesis): a randomly corrupted fragments, peak, samplesheet or
params file is either read (the corruption happened to leave it valid) or refused with the project's own error
class — never an unhandled exception. Seeded (``derandomize``), so a run is reproducible."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pysam
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scfan.errors import ScfanError
from scfan.params import check_params_file
from scfan.samplesheet import read_samplesheet
from scfan.sc.fragments import read_fragment_blocks
from scfan.sc.peaks import read_peak_set

REPO = Path(__file__).resolve().parents[3]
SETTINGS = settings(max_examples=200, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

FRAGMENTS = "".join(f"chr1\t{100 + 7 * i}\t{300 + 7 * i}\tBC{i % 5}-1\t{1 + i % 3}\n" for i in range(40)) + \
    "".join(f"chr2\t{50 + 11 * i}\t{400 + 11 * i}\tBC{i % 4}-1\t1\n" for i in range(20))
PEAKS = "".join(f"chr1\t{1000 * i}\t{1000 * i + 500}\tp{i}\n" for i in range(1, 30))
SIZES = {"chr1": 100_000, "chr2": 80_000}

# A corruption: an edit of the text's lines or bytes.
edits = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 255)),  # replace one byte
    st.tuples(st.just("drop_line"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("dup_line"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("swap_lines"), st.integers(0, 10**6), st.integers(0, 10**6)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("drop_field"), st.integers(0, 10**6), st.integers(0, 9)),
    st.tuples(st.just("field_text"), st.integers(0, 10**6), st.integers(0, 9)),
)


def corrupt(text: str, ops) -> bytes:
    data = text.encode()
    for op, a, b in ops:
        lines = data.split(b"\n")
        i = a % max(len(lines), 1)
        if op == "flip" and data:
            k = a % len(data)
            data = data[:k] + bytes([b]) + data[k + 1 :]
            continue
        if op == "drop_line":
            del lines[i]
        elif op == "dup_line":
            lines.insert(i, lines[i])
        elif op == "swap_lines":
            j = b % max(len(lines), 1)
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "truncate":
            data = data[: a % (len(data) + 1)]
            continue
        elif op in ("drop_field", "field_text"):
            f = lines[i].split(b"\t") if b"\t" in lines[i] else lines[i].split(b",")
            sep = b"\t" if b"\t" in lines[i] else b","
            k = b % max(len(f), 1)
            if op == "drop_field":
                del f[k]
            else:
                f[k] = b"x1.5"
            lines[i] = sep.join(f)
        data = b"\n".join(lines)
    return data


@given(ops=st.lists(edits, min_size=1, max_size=3))
@SETTINGS
def test_corrupted_fragments_end_in_a_project_error(ops, tmp_path_factory):
    d = tmp_path_factory.mktemp("frag")
    plain, path = d / "fragments.tsv", d / "fragments.tsv.gz"
    data = corrupt(FRAGMENTS, ops)
    plain.write_bytes(data)
    try:  # an index can only be built for some corruptions; without one the reader must say so
        pysam.tabix_index(str(plain), preset="bed", force=True)
    except (OSError, ValueError):
        with pysam.BGZFile(str(path), "w") as fh:  # bgzipped, with no (or a partial) index
            fh.write(data)
    try:
        for _ in read_fragment_blocks(path, chrom_sizes=SIZES, chunk_bytes=256):
            pass
    except ScfanError:
        pass


@given(ops=st.lists(edits, min_size=1, max_size=3), gz=st.booleans())
@SETTINGS
def test_corrupted_peaks_end_in_a_project_error(ops, gz, tmp_path_factory):
    d = tmp_path_factory.mktemp("peaks")
    data = corrupt(PEAKS, ops)
    path = d / ("peaks.bed.gz" if gz else "peaks.bed")
    path.write_bytes(gzip.compress(data) if gz else data)
    try:
        read_peak_set(path, chrom_sizes=SIZES)
    except ScfanError:
        pass


@given(ops=st.lists(edits, min_size=1, max_size=3), kind=st.sampled_from(["bulk", "sc"]))
@SETTINGS
def test_corrupted_samplesheets_end_in_a_project_error(ops, kind, tmp_path_factory):
    d = tmp_path_factory.mktemp("sheet")
    for name in ("a.narrowPeak.gz", "b.narrowPeak.gz", "atac.bw", "s1.tsv.gz", "s2.tsv.gz"):
        (d / name).write_bytes(b"x")
    text = ("line,tf,peaks,atac,motif\nL1,TFA,a.narrowPeak.gz,atac.bw,\nL1,TFB,b.narrowPeak.gz,atac.bw,MA0139.2\n"
            if kind == "bulk" else "sample,fragments\ns1,s1.tsv.gz\ns2,s2.tsv.gz\n")
    path = d / "sheet.csv"
    path.write_bytes(corrupt(text, ops))
    try:
        read_samplesheet(path, kind)
    except ScfanError:
        pass


@given(ops=st.lists(edits, min_size=1, max_size=3))
@SETTINGS
def test_corrupted_params_files_end_in_a_project_error(ops, tmp_path_factory):
    d = tmp_path_factory.mktemp("params")
    text = json.dumps({"outdir": "results", "simulate_preset": "test", "epochs": 3, "infer_shards": 2,
                       "arch": "small"}, indent=1)
    path = d / "params.json"
    path.write_bytes(corrupt(text, ops))
    try:
        check_params_file(path, REPO / "nextflow_schema.json", base_dir=d)
    except ScfanError:
        pass


def test_the_corruptions_do_break_files(tmp_path):
    """The fuzzing is not vacuous: a sample of the corruptions makes each reader refuse its file."""
    path = tmp_path / "peaks.bed"
    path.write_bytes(corrupt(PEAKS, [("field_text", 3, 1)]))
    with pytest.raises(ScfanError, match="line 4"):
        read_peak_set(path, chrom_sizes=SIZES)
    sheet = tmp_path / "sheet.csv"
    sheet.write_bytes(corrupt("sample,fragments\ns1,s1.tsv.gz\n", [("flip", 20, 0)]))
    with pytest.raises(ScfanError, match="line 2"):
        read_samplesheet(sheet, "sc")
    frag = tmp_path / "fragments.tsv"
    frag.write_bytes(corrupt(FRAGMENTS, [("field_text", 5, 4)]))
    gz = Path(pysam.tabix_index(str(frag), preset="bed", force=True))
    with pytest.raises(ScfanError, match="line 6"):
        for _ in read_fragment_blocks(gz, chrom_sizes=SIZES, chunk_bytes=256):
            pass
