"""The bad-input matrix: one corrupted input per case, run through the real command line of the step that reads it.

Every case asserts the project's promise for bad input: exit code 2; the last line of stderr is one
``scfan: error: …`` line that names the file (and the record or what was expected, where the case has one); no
traceback; nothing new in the output folder, and the file that was already there is unchanged.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pysam
import pytest

N_FRAGMENTS = 3000  # a small, valid fragments file cut from the simulator's sample1


@dataclass
class Base:
    """Valid inputs (from the simulator's test preset) that each case copies and corrupts one of."""

    sim: Path
    fragments: Path  # small, sorted, tabix-indexed
    bulk_sheet: Path  # lineA, two TFs
    cells: Path  # ingested cells.h5ad of the small fragments file
    windows: Path  # bulk prepare of bulk_sheet


@pytest.fixture(scope="module")
def base(sim_test, tmp_path_factory) -> Base:
    root = tmp_path_factory.mktemp("bad_matrix_base")
    with gzip.open(sim_test / "sc" / "sample1" / "fragments.tsv.gz", "rt") as fh:
        lines = [ln for ln in fh if not ln.startswith("#")][:N_FRAGMENTS]
    plain = root / "fragments.tsv"
    plain.write_text("".join(lines))
    frag = Path(pysam.tabix_index(str(plain), preset="bed", force=True))
    rows = (sim_test / "bulk_samplesheet.csv").read_text().splitlines()
    sheet = root / "bulk.csv"
    sheet.write_text("\n".join([rows[0], *[r.replace(",bulk/", f",{sim_test}/bulk/") for r in rows[1:]
                                           if r.startswith("lineA,")][:2]]) + "\n")
    cells = root / "cells.h5ad"
    r = _scfan("sc", "ingest", "--sample", "s1", "--fragments", frag, "--peaks", sim_test / "sc" / "peaks.bed",
               "--chrom-sizes", sim_test / "chrom.sizes", "--min-fragments", "1", "--out", cells)
    assert r.returncode == 0, r.stderr
    b = Base(sim_test, frag, sheet, cells, root / "prep" / "windows.parquet")
    r = _scfan(*_prepare(b, root, out=root / "prep"))
    assert r.returncode == 0, r.stderr
    return b


def _scfan(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scfan", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


# ------------------------------------------------------------------------------------------------ corruptions


def _lines(path: Path) -> list[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as fh:
        return fh.read().splitlines(keepends=True)


def _write_gz(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt") as fh:
        fh.writelines(lines)
    return path


def _bgzip_indexed(path: Path, lines: list[str]) -> Path:
    """Fragments written bgzipped with a fresh tabix index (the corruption is in the records, not the container)."""
    plain = path.with_suffix("")
    plain.write_text("".join(lines))
    return Path(pysam.tabix_index(str(plain), preset="bed", force=True))


def _edit_field(line: str, col: int, value: str) -> str:
    f = line.rstrip("\n").split("\t")
    f[col] = value
    return "\t".join(f) + "\n"


def _bigwig(path: Path, sizes: dict[str, int], values: float, chrom_prefix: str = "") -> Path:
    import pyBigWig

    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([(chrom_prefix + c, s) for c, s in sizes.items()])
    for c, s in sizes.items():
        bw.addEntries([chrom_prefix + c] * 2, [0, 100], ends=[100, s], values=[1.0, float(values)])
    bw.close()
    return path


# ---------------------------------------------------------------------------------------------------- steps


def _prepare(b: Base, d: Path, *, sheet: Path | None = None, genome: Path | None = None,
             mappability: Path | None = None, blacklist: Path | None = None, out: Path | None = None) -> list:
    return ["bulk", "prepare", "--samplesheet", sheet or b.bulk_sheet, "--line", "lineA",
            "--genome", genome or b.sim / "genome.fa", "--mappability", mappability or b.sim / "mappability.bw",
            "--blacklist", blacklist or b.sim / "blacklist.bed", "--valid-chroms", "chr2", "--test-chroms", "chr1",
            "--outdir", out or d / "out"]


def _train(b: Base, d: Path, atac: Path) -> list:
    return ["bulk", "train", "--windows", b.windows, "--genome", b.sim / "genome.fa", "--atac", atac,
            "--mappability", b.sim / "mappability.bw", "--epochs", "1", "--outdir", d / "out"]


def _sheet_with(b: Base, d: Path, tf_index: int = 0, peaks: Path | None = None, atac: Path | None = None,
                header: str | None = None, extra_row: str | None = None) -> Path:
    rows = b.bulk_sheet.read_text().splitlines()
    f = rows[1 + tf_index].split(",")
    if peaks is not None:
        f[2] = str(peaks)
    if atac is not None:
        f[3] = str(atac)
    rows[1 + tf_index] = ",".join(f)
    if header is not None:
        rows[0] = header
    if extra_row is not None:
        rows.append(extra_row)
    out = d / "bulk.csv"
    out.write_text("\n".join(rows) + "\n")
    return out


def _sheet_atac(b: Base, d: Path, atac: Path) -> Path:
    """The bulk samplesheet with every row's ATAC track replaced."""
    out = d / "bulk.csv"
    out.write_text(b.bulk_sheet.read_text().replace(str(b.sim / "bulk/lineA/atac.bw"), str(atac)))
    return out


def _peaks_of(b: Base, tf_index: int = 0) -> Path:
    return Path(b.bulk_sheet.read_text().splitlines()[1 + tf_index].split(",")[2])


def _ingest(b: Base, d: Path, *, fragments: Path | None = None, peaks: Path | None = None, extra=()) -> list:
    return ["sc", "ingest", "--sample", "s1", "--fragments", fragments or b.fragments,
            "--peaks", peaks or b.sim / "sc" / "peaks.bed", "--chrom-sizes", b.sim / "chrom.sizes",
            "--min-fragments", "1", *extra, "--out", d / "out" / "cells.h5ad"]


def _cluster(d: Path, matrix: Path, *extra) -> list:
    return ["sc", "cluster", "--matrix", matrix, *extra, "--out-dir", d / "out"]


# ------------------------------------------------------------------------------------------------------ cases
# Each case: (id, build(base, case_dir) -> (argv, the bad file, fragments the message must also contain)).

Case = Callable[[Base, Path], tuple[list, Path, tuple[str, ...]]]
CASES: dict[str, Case] = {}


def case(name: str):
    def deco(fn: Case) -> Case:
        CASES[name] = fn
        return fn

    return deco


def _bad_peaks(rows_fn, name="bad.narrowPeak.gz", plain=False):
    def build(b: Base, d: Path):
        lines = rows_fn(_lines(_peaks_of(b)))
        p = d / name
        if plain:
            p.write_text("".join(lines))
        else:
            _write_gz(p, lines)
        return _prepare(b, d, sheet=_sheet_with(b, d, peaks=p)), p
    return build


def _swap_fields(line: str, i: int, j: int) -> str:
    f = line.rstrip("\n").split("\t")
    f[i], f[j] = f[j], f[i]
    return "\t".join(f) + "\n"


# Peak files that differ from a valid one by one edit: (case, edit of the file's lines, what the message names).
PEAK_EDITS = [
    ("peaks: chromosome named 1, genome chr1", lambda ls: [ln.removeprefix("chr") for ln in ls], ("chromosome",)),
    ("peaks: two columns", lambda ls: [*ls[:5], "chr1\t100\n", *ls[5:]], ("line 6",)),
    ("peaks: non-integer coordinate", lambda ls: [*ls[:2], _edit_field(ls[2], 1, "12.5e3"), *ls[3:]], ("line 3",)),
    ("peaks: end before start", lambda ls: [*ls[:3], _swap_fields(ls[3], 1, 2), *ls[4:]], ("line 4",)),
    ("peaks: negative start", lambda ls: [*ls[:1], _edit_field(ls[1], 1, "-5"), *ls[2:]], ("line 2",)),
    ("peaks: empty file", lambda ls: [], ("empty",)),
]
for _name, _edit, _expected in PEAK_EDITS:
    def _peak_case(b, d, edit=_edit, expected=_expected):
        argv, p = _bad_peaks(edit)(b, d)
        return argv, p, expected
    case(_name)(_peak_case)


@case("peaks: truncated gzip")
def _(b, d):
    p = d / "trunc.narrowPeak.gz"
    data = gzip.compress("".join(_lines(_peaks_of(b))).encode())
    p.write_bytes(data[: len(data) // 2])
    return _prepare(b, d, sheet=_sheet_with(b, d, peaks=p)), p, ()


@case("peaks: plain text named .gz")
def _(b, d):
    argv, p = _bad_peaks(lambda ls: ls, name="plain.narrowPeak.gz", plain=True)(b, d)
    # a plain file with a .gz name is read as text: it is a valid peak file, so this case must pass. Make it
    # also have a bad record so the run fails, and check that the message reads the text (names the line).
    p.write_text("".join(_lines(_peaks_of(b))[:3]) + "chr1\tx\t10\n")
    return argv, p, ("line 4",)


@case("peaks: missing file")
def _(b, d):
    p = d / "absent.narrowPeak.gz"
    return _prepare(b, d, sheet=_sheet_with(b, d, peaks=p)), p, ()


@case("ATAC bigWig: NaN value")
def _(b, d):
    p = _bigwig(d / "nan.bw", json.loads((b.sim / "manifest.json").read_text())["chrom_sizes"], float("nan"))
    return _train(b, d, p), p, ("finite", "chr1:100-")


@case("ATAC bigWig: negative value")
def _(b, d):
    p = _bigwig(d / "neg.bw", json.loads((b.sim / "manifest.json").read_text())["chrom_sizes"], -2.0)
    return _train(b, d, p), p, ("negative", "chr1:100-")


@case("ATAC bigWig: chromosomes named 1, genome chr1")
def _(b, d):
    p = _bigwig(d / "ens.bw", {c.removeprefix("chr"): s for c, s in
                               json.loads((b.sim / "manifest.json").read_text())["chrom_sizes"].items()}, 1.0)
    return _prepare(b, d, sheet=_sheet_atac(b, d, p)), p, ("chromosome",)


@case("mappability bigWig: not a bigWig")
def _(b, d):
    p = d / "map.bw"
    p.write_text("chr1\t0\t100\t1.0\n")
    return _prepare(b, d, mappability=p), p, ("bigWig",)


@case("bulk samplesheet: duplicate TF")
def _(b, d):
    rows = b.bulk_sheet.read_text().splitlines()
    sheet = _sheet_with(b, d, extra_row=rows[1])
    return _prepare(b, d, sheet=sheet), sheet, ("duplicate",)


@case("bulk samplesheet: header typo")
def _(b, d):
    sheet = _sheet_with(b, d, header="line,tf,peak,atac,motif")
    return _prepare(b, d, sheet=sheet), sheet, ("peaks",)


@case("genome: missing FASTA")
def _(b, d):
    p = d / "absent.fa"
    return _prepare(b, d, genome=p), p, ("not found",)


@case("genome: gzip (not bgzip) FASTA")
def _(b, d):
    p = d / "genome.fa.gz"
    p.write_bytes(gzip.compress((b.sim / "genome.fa").read_bytes()[:200000]))
    return _prepare(b, d, genome=p), p, ("bgzip",)


@case("blacklist: reversed interval")
def _(b, d):
    p = d / "blacklist.bed"
    p.write_text("chr1\t5000\t4000\n")
    return _prepare(b, d, blacklist=p), p, ("line 1",)


@case("fragments: chromosomes named 1, peaks chr1")
def _(b, d):
    lines = [ln.removeprefix("chr") for ln in _lines(b.fragments) if not ln.startswith("#")]
    return _ingest(b, d, fragments=_bgzip_indexed(d / "ens.tsv.gz", lines)), d / "ens.tsv.gz", ("chromosome",)


@case("fragments: unsorted")
def _(b, d):
    lines = _lines(b.fragments)
    lines[100], lines[2000] = lines[2000], lines[100]
    p = d / "unsorted.tsv.gz"
    with pysam.BGZFile(str(p), "w") as fh:
        fh.write("".join(lines).encode())
    return _ingest(b, d, fragments=p), p, ("sorted",)


@case("fragments: no tabix index")
def _(b, d):
    p = d / "noindex.tsv.gz"
    shutil.copy(b.fragments, p)
    return _ingest(b, d, fragments=p), p, ("index",)


def _other_fragments(b: Base, d: Path) -> Path:
    """Another valid, indexed fragments file: lines 3,001-6,000 of the simulator's sample2."""
    with gzip.open(b.sim / "sc" / "sample2" / "fragments.tsv.gz", "rt") as fh:
        lines = [ln for ln in fh if not ln.startswith("#")][N_FRAGMENTS : 2 * N_FRAGMENTS]
    return _bgzip_indexed(d / "other" / "fragments.tsv.gz", lines)


def _with_foreign_index(b, d):
    """The test fragments with the tabix index of another fragments file (newer than the data: htslib's mtime
    rule sees nothing)."""
    (d / "other").mkdir()
    other = _other_fragments(b, d)
    p = d / "frag.tsv.gz"
    shutil.copy(b.fragments, p)
    shutil.copy(str(other) + ".tbi", str(p) + ".tbi")
    return p


@case("fragments: tabix index of another fragments file")
def _(b, d):
    p = _with_foreign_index(b, d)
    return _ingest(b, d, fragments=p), p, ("does not belong", "tabix -f -p bed")


@case("fragments: rewritten after indexing")
def _(b, d):
    lines = _lines(b.fragments)
    p = _bgzip_indexed(d / "frag.tsv.gz", lines)
    with pysam.BGZFile(str(p), "w") as fh:  # a filtered copy written over it, the old index kept
        fh.write("".join(lines[:1000] + lines[1200:]).encode())
    return _ingest(b, d, fragments=p), p, ("does not belong", "tabix -f -p bed")


@case("fragments: truncated gzip")
def _(b, d):
    p = d / "trunc.tsv.gz"
    data = Path(b.fragments).read_bytes()
    p.write_bytes(data[: len(data) // 2])
    shutil.copy(str(b.fragments) + ".tbi", str(p) + ".tbi")
    return _ingest(b, d, fragments=p), p, ()


@case("fragments: plain text named .gz")
def _(b, d):
    p = d / "plain.tsv.gz"
    p.write_text("".join(_lines(b.fragments)))
    return _ingest(b, d, fragments=p), p, ("bgzip",)


@case("fragments: four columns")
def _(b, d):
    lines = _lines(b.fragments)
    lines[10] = "\t".join(lines[10].split("\t")[:4]) + "\n"
    return _ingest(b, d, fragments=_bgzip_indexed(d / "cols.tsv.gz", lines)), d / "cols.tsv.gz", ("line 11",)


@case("fragments: non-integer coordinate")
def _(b, d):
    lines = _lines(b.fragments)
    lines[20] = _edit_field(lines[20], 4, "5x")
    return _ingest(b, d, fragments=_bgzip_indexed(d / "nonint.tsv.gz", lines)), d / "nonint.tsv.gz", ("line 21",)


@case("whitelist: matches no barcode")
def _(b, d):
    p = d / "whitelist.txt"
    p.write_text("NOPE-1\nNOPE-2\n")
    return _ingest(b, d, extra=("--whitelist", p)), p, ("occurs in",)


@case("QC: every cell removed")
def _(b, d):
    argv = _ingest(b, d)
    argv[argv.index("--min-fragments") + 1] = "100000"
    return argv, b.fragments, ("--min-fragments",)


@case("BAM: no barcode tag")
def _(b, d):
    p = d / "reads.bam"
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": 734000}]}
    with pysam.AlignmentFile(str(p), "wb", header=header) as out:
        for i in range(20):
            a = pysam.AlignedSegment(out.header)
            a.query_name, a.reference_id, a.reference_start = f"r{i}", 0, 5000 + 10 * i
            a.query_sequence, a.cigarstring, a.mapping_quality = "A" * 30, "30M", 60
            a.query_qualities = pysam.qualitystring_to_array("I" * 30)
            out.write(a)
    pysam.index(str(p))
    argv = _ingest(b, d)
    i = argv.index("--fragments")
    argv[i : i + 2] = ["--bam", p]
    return argv, p, ("CB",)


@case("counts: .h5ad with non-integer counts")
def _(b, d):
    import anndata as ad

    a = ad.read_h5ad(b.cells)
    a.X = a.X.astype(np.float32) * 0.5
    p = d / "counts.h5ad"
    a.write_h5ad(p)
    argv = _ingest(b, d)
    i = argv.index("--fragments")
    argv[i : i + 2] = ["--counts", p]
    return argv, p, ("integer",)


@case("cluster matrix: duplicate cell ids")
def _(b, d):
    p = d / "m.tsv"
    p.write_text("cell\tTF1\tTF2\nc1\t1\t2\nc2\t3\t4\nc1\t5\t6\n" + "".join(f"x{i}\t{i}\t{i % 3}\n"
                                                                         for i in range(30)))
    return _cluster(d, p), p, ("c1",)


@case("cluster matrix: non-numeric value")
def _(b, d):
    p = d / "m.csv"
    p.write_text("cell,TF1,TF2\n" + "".join(f"c{i},{i},{i % 3}\n" for i in range(30)) + "c30,high,1\n")
    return _cluster(d, p), p, ("c30",)


@case("cluster labels: duplicate cell ids")
def _(b, d):
    m = d / "m.tsv"
    m.write_text("cell\tTF1\tTF2\n" + "".join(f"c{i}\t{i}\t{i % 3}\n" for i in range(30)))
    p = d / "labels.tsv"
    p.write_text("cell\tcell_type\n" + "".join(f"c{i}\tT{i % 2}\n" for i in range(30)) + "c3\tT1\n")
    return _cluster(d, m, "--labels", p), p, ("c3",)


@case("merge-activity: a cells file given as a shard")
def _(b, d):
    return ["sc", "merge-activity", b.cells, "--out", d / "out" / "activity.h5ad"], b.cells, ("shard",)


def _params(d: Path, body: str, name: str = "params.json") -> tuple[list, Path]:
    p = d / name
    p.write_text(body)
    return ["validate-params", p, "--schema", Path(__file__).resolve().parents[3] / "nextflow_schema.json"], p


@case("params: unknown parameter")
def _(b, d):
    argv, p = _params(d, json.dumps({"outdir": "results", "simulate_preset": "test", "epochz": 3}))
    return argv, p, ("epochz",)


@case("params: wrong type")
def _(b, d):
    argv, p = _params(d, json.dumps({"outdir": "results", "simulate_preset": "test", "epochs": "many"}))
    return argv, p, ("epochs",)


@case("params: not JSON")
def _(b, d):
    argv, p = _params(d, "outdir: results\nsimulate_preset: test\n", name="params.json")
    return argv, p, ("JSON",)


@case("sc samplesheet: duplicate sample")
def _(b, d):
    sheet = d / "sc.csv"
    sheet.write_text(f"sample,fragments\ns1,{b.fragments}\ns1,{b.fragments}\n")
    return ["check-inputs", "--genome", b.sim / "genome.fa", "--mappability", b.sim / "mappability.bw",
            "--bulk-samplesheet", b.bulk_sheet, "--sc-samplesheet", sheet, "--outdir", d / "out"], sheet, ("s1",)


@case("sc samplesheet: fragments with another file's tabix index")
def _(b, d):
    p = _with_foreign_index(b, d)
    sheet = d / "sc.csv"
    sheet.write_text(f"sample,fragments\ns1,{p}\n")
    return ["check-inputs", "--genome", b.sim / "genome.fa", "--mappability", b.sim / "mappability.bw",
            "--bulk-samplesheet", b.bulk_sheet, "--sc-samplesheet", sheet, "--outdir", d / "out"], p, \
        ("does not belong",)


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, base, tmp_path):
    argv, bad_file, expected = CASES[name](base, tmp_path)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (out / "earlier_result.txt").write_text("written by an earlier run\n")
    before = _tree(out)
    r = _scfan(*argv)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("scfan: error: "), r.stderr[-2000:]
    assert Path(bad_file).name in last, (str(bad_file), last)
    for frag in expected:
        assert frag.lower() in last.lower(), (frag, last)
    assert _tree(out) == before, "the output folder changed"


def test_the_matrix_is_wide():
    assert len(CASES) >= 30
