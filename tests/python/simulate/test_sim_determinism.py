"""Same seed -> byte-identical files in any folder; another seed -> other data; parameters change only their part."""

from __future__ import annotations

import json
from pathlib import Path

from scfan.simulate import run_simulation


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(sim_test, tmp_path):
    again = run_simulation("test", 7, tmp_path / "elsewhere" / "copy")
    a, b = _files(sim_test), _files(again)
    assert sorted(a) == sorted(b)
    differing = [name for name in a if a[name] != b[name]]
    assert differing == []


def test_other_seed_gives_other_data(sim_test, tmp_path):
    other = run_simulation("test", 8, tmp_path / "seed8")
    a, b = _files(sim_test), _files(other)
    for name in ("genome.fa", "sc/sample1/fragments.tsv.gz", "truth/bound_sites.parquet", "bulk/lineA/atac.bw",
                 "truth/cells.tsv"):
        assert a[name] != b[name], name
    assert json.loads(b["manifest.json"])["seed"] == 8


def test_cell_parameters_leave_the_genome_unchanged(sim_test, tmp_path):
    small = run_simulation("test", 7, tmp_path / "small", n_cells=40, median_fragments=500)
    a, b = _files(sim_test), _files(small)
    assert a["genome.fa"] == b["genome.fa"] and a["bulk/lineA/atac.bw"] == b["bulk/lineA/atac.bw"]
    assert a["sc/sample1/fragments.tsv.gz"] != b["sc/sample1/fragments.tsv.gz"]
    assert json.loads(b["manifest.json"])["config"]["n_cells"] == 40
