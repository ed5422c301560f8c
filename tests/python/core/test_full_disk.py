"""A full disk in the output folder: a step whose output does not fit a small tmpfs fails with exit code 2 and one
line naming the file it was writing and "no space left on device"; no partial or temporary file is left, and the
file that was already there is unchanged.

Two writers that fail in different ways are covered: HDF5 (`sc ingest`'s `.h5ad`), which cannot close a file on a
full disk and used to crash the interpreter at exit, and polars (`bulk prepare`'s parquet). Mounting a tmpfs needs
root (CAP_SYS_ADMIN), which the test suite has here.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def _mount_tmpfs(folder: Path, size: str) -> None:
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.fail(f"cannot mount a {size} tmpfs on {folder} (needs root / CAP_SYS_ADMIN): {r.stderr.strip()}")


def _ingest(sim: Path, out: Path) -> tuple[list, Path]:
    target = out / "cells.h5ad"  # about 950 KB
    return ["sc", "ingest", "--sample", "s1", "--fragments", sim / "sc" / "sample1" / "fragments.tsv.gz",
            "--peaks", sim / "sc" / "peaks.bed", "--chrom-sizes", sim / "chrom.sizes", "--out", target], target


def _prepare(sim: Path, out: Path) -> tuple[list, Path]:
    rows = (sim / "bulk_samplesheet.csv").read_text().splitlines()
    sheet = out.parent / "bulk.csv"  # absolute paths, so the command runs from anywhere
    sheet.write_text("\n".join([rows[0], *[r.replace(",bulk/", f",{sim}/bulk/") for r in rows[1:]]]) + "\n")
    return ["bulk", "prepare", "--samplesheet", sheet, "--line", "lineA", "--genome", sim / "genome.fa",
            "--mappability", sim / "mappability.bw", "--blacklist", sim / "blacklist.bed", "--valid-chroms", "chr2",
            "--test-chroms", "chr1", "--outdir", out], out / "windows.parquet"  # about 180 KB


@pytest.mark.parametrize(("step", "size"), [(_ingest, "256k"), (_prepare, "64k")], ids=["sc-ingest-h5ad",
                                                                                        "bulk-prepare-parquet"])
def test_full_output_disk_fails_with_one_line_and_leaves_nothing(step, size, sim_test, tmp_path):
    disk = tmp_path / "small_disk"
    disk.mkdir()
    _mount_tmpfs(disk, size)
    try:
        (disk / "earlier_result.txt").write_text("written by an earlier run\n")
        before = _tree(disk)
        free_before = os.statvfs(disk).f_bfree
        argv, target = step(sim_test, disk)
        r = subprocess.run([sys.executable, "-m", "scfan", *map(str, argv)], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
        assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr[-3000:]
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith(f"scfan: error: {target}: no space left on device"), last
        assert _tree(disk) == before, "the output folder changed"
        assert os.statvfs(disk).f_bfree == free_before, "the space of a removed partial file is still in use"
    finally:
        subprocess.run(["umount", str(disk)], check=True)
