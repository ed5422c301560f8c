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


def test_torch_free_commands_do_not_load_torch():
    """Importing torch costs ~2.5 s of CPU per process; the CLI and the modules behind the commands that do not
    run a model (params, inputs, simulation, ingest, neighbours, clustering, chromVAR, shards, tracks, report) must
    not load it, or every such pipeline task pays it."""
    modules = ["scfan.cli.main", "scfan.params", "scfan.inputs", "scfan.simulate", "scfan.sc.ingest",
               "scfan.sc.neighbors", "scfan.sc.cluster", "scfan.sc.chromvar", "scfan.sc.shards",
               "scfan.sc.cluster_tracks", "scfan.report", "scfan.bulk.windows", "scfan.bulk.train_config"]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}:\n"
            "    importlib.import_module(m)\n"
            "    assert 'torch' not in sys.modules, m\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    # and the lazy names of scfan.bulk still resolve to the model module's
    res = subprocess.run([sys.executable, "-c", "import scfan.bulk as b, scfan.bulk.model as m; "
                          "assert b.load_model is m.load_model and b.ScFANet is m.ScFANet"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr[-2000:]
