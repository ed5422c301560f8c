"""`scfan simulate` on the command line: options, summary, and clear failures that leave nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import scfan.simulate.run as sim_run
from scfan.cli import app
from scfan.errors import OutputError, ParamsError

SMALL = ["--genome-size", "600000", "--n-chroms", "3", "--n-cells", "40", "--median-fragments", "800"]


def _leftovers(parent):
    return [p.name for p in parent.iterdir() if ".tmp-" in p.name]


def test_help_lists_the_options():
    result = CliRunner().invoke(app, ["simulate", "--help"])
    assert result.exit_code == 0
    for opt in ("--preset", "--seed", "--outdir", "--force", "--n-cells", "--n-types", "--n-samples",
                "--median-fragments", "--genome-size", "--noise"):
        assert opt in result.output


def test_small_run_with_overrides(tmp_path):
    out = tmp_path / "sim"
    result = CliRunner().invoke(app, ["simulate", "--preset", "test", "--seed", "11", "--outdir", str(out),
                                      "--n-types", "3", "--n-samples", "1", "--noise", "0.5", *SMALL])
    assert result.exit_code == 0, result.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["seed"] == 11 and man["config"]["n_types"] == 3 and man["config"]["noise"] == 0.5
    assert man["config"]["genome_size"] == 600_000 and man["samples"] == ["sample1"]
    assert man["test_chroms"] == ["chr1"] and man["valid_chroms"] == ["chr2"]
    assert sorted(man["cell_types"]) == ["type1", "type2", "type3"]
    assert (out / "sc" / "sample1" / "fragments.tsv.gz.tbi").is_file()


@pytest.mark.parametrize(("args", "error", "message"), [
    (["--preset", "huge"], ParamsError, "unknown preset"),
    (["--n-cells", "-5"], ParamsError, "n_cells"),
    (["--median-fragments", "-1"], ParamsError, "median_fragments"),
    (["--n-types", "8"], ParamsError, "n_types"),
    (["--noise", "-1"], ParamsError, "noise"),
])
def test_bad_parameters_fail_before_writing(tmp_path, args, error, message):
    out = tmp_path / "sim"
    result = CliRunner().invoke(app, ["simulate", "--outdir", str(out), *args])
    assert result.exit_code != 0
    assert isinstance(result.exception, error) and message in str(result.exception)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_unwritable_outdir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(app, ["simulate", "--outdir", str(blocker / "sim"), *SMALL])
    assert result.exit_code != 0 and isinstance(result.exception, OutputError)
    assert "cannot create output directory" in str(result.exception)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_outdir_is_a_file(tmp_path):
    target = tmp_path / "sim"
    target.write_text("x")
    result = CliRunner().invoke(app, ["simulate", "--outdir", str(target), *SMALL])
    assert isinstance(result.exception, OutputError) and target.read_text() == "x"


def test_non_empty_outdir_needs_force(tmp_path):
    out = tmp_path / "sim"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    result = CliRunner().invoke(app, ["simulate", "--outdir", str(out), *SMALL])
    assert isinstance(result.exception, OutputError) and "--force" in str(result.exception)
    assert (out / "old.txt").read_text() == "keep me"
    result = CliRunner().invoke(app, ["simulate", "--outdir", str(out), "--force", *SMALL])
    assert result.exit_code == 0, result.output
    assert not (out / "old.txt").exists() and (out / "manifest.json").is_file()
    assert _leftovers(tmp_path) == []


def test_failure_midway_leaves_no_folder(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(sim_run, "_write_truth", boom)
    out = tmp_path / "sim"
    result = CliRunner().invoke(app, ["simulate", "--outdir", str(out), *SMALL])
    assert isinstance(result.exception, OSError)
    assert list(tmp_path.iterdir()) == []


def test_entry_point_reports_one_line_and_exit_code_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "scfan", "simulate", "--preset", "huge", "--outdir",
                           str(tmp_path / "sim")], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    expected = "scfan: error: unknown preset 'huge'; expected one of test, bench, hard"
    assert proc.stderr.strip().splitlines() == [expected]
    assert list(tmp_path.iterdir()) == []
