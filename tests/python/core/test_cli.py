"""The scfan entry point: version, help, error boundary."""

import subprocess
import sys

from typer.testing import CliRunner

import scfan
from scfan.cli import app


def test_version():
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.output.strip() == f"scfan {scfan.__version__}"


def test_help_lists_every_step_group():
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("validate-params", "check-inputs", "versions", "simulate", "bulk", "sc"):
        assert cmd in res.output


def test_versions_yaml_block_names_process_and_interpreter():
    res = CliRunner().invoke(app, ["versions", "--process", "SCFAN:STEP"])
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert lines[0] == '"SCFAN:STEP":'
    assert any(line.strip().startswith("torch:") for line in lines)
    assert any(sys.executable in line for line in lines)


def test_scfan_error_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "scfan", "validate-params", str(tmp_path / "missing.json"),
                           "--schema", str(tmp_path / "schema.json")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("scfan: error:")
