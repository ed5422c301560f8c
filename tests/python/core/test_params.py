"""Parameter validation against the real nextflow_schema.json."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from scfan.cli import app
from scfan.errors import ParamsError
from scfan.params import check_params_file, validate_params


@pytest.fixture(scope="module")
def schema(repo_root):
    return json.loads((repo_root / "nextflow_schema.json").read_text())


def _write(tmp_path, params):
    p = tmp_path / "params.json"
    p.write_text(json.dumps(params))
    return p


def test_default_test_profile_params_are_valid(schema):
    params = {"outdir": "results", "simulate_preset": "test", "seed": 7, "epochs": 4, "max_memory": "6.GB",
              "max_time": "1.h", "genome": None}
    assert validate_params(params, schema) == []


def test_unknown_parameter_is_named_with_a_suggestion(schema):
    (v,) = validate_params({"outdir": "o", "simulate_preset": "test", "epoch": 3}, schema)
    assert v.name == "epoch"
    assert "did you mean 'epochs'" in v.expected


def test_wrong_type_names_parameter_value_and_expectation(schema):
    (v,) = validate_params({"outdir": "o", "simulate_preset": "test", "epochs": "abc"}, schema)
    assert (v.name, v.value) == ("epochs", "abc")
    assert "integer" in v.expected and ">= 1" in v.expected


def test_interpret_is_a_boolean_and_its_window_count_positive(schema):
    base = {"outdir": "o", "simulate_preset": "test"}
    assert validate_params({**base, "interpret": False, "interpret_n_windows": 50}, schema) == []
    (v,) = validate_params({**base, "interpret": "maybe"}, schema)
    assert (v.name, v.value, v.expected) == ("interpret", "maybe", "boolean")
    (v,) = validate_params({**base, "interpret_n_windows": 0}, schema)
    assert v.name == "interpret_n_windows" and ">= 1" in v.expected


def test_infer_window_share_is_a_share_in_zero_one(schema):
    base = {"outdir": "o", "simulate_preset": "test"}
    for ok in (1, 1.0, 0.2, 1e-3):
        assert validate_params({**base, "infer_window_share": ok}, schema) == []
    for bad in (0, -0.5, 1.5, "half"):
        (v,) = validate_params({**base, "infer_window_share": bad}, schema)
        assert (v.name, v.value) == ("infer_window_share", bad)
    for ok in ("mean", "regression"):
        assert validate_params({**base, "infer_window_estimator": ok}, schema) == []
    (v,) = validate_params({**base, "infer_window_estimator": "ratio"}, schema)
    assert v.name == "infer_window_estimator"


@pytest.mark.parametrize("value", ["all", "primary", "chr1", "chr1,chr2,chrX", "1,2,MT", "NC_000001.11",
                                   "chr1_KI270706v1_random,chrUn_GL000195v1", "GL000192.1,hs37d5"])
def test_bulk_chroms_accepts_all_primary_or_a_list_of_contigs(schema, value):
    assert validate_params({"outdir": "o", "simulate_preset": "test", "bulk_chroms": value}, schema) == []


@pytest.mark.parametrize("value", ["chr1;rm", "chr1 chr2", "chr1,,chr2", "chr1,", "", "$(id)", "chr1|x", "-x", "'a'"])
def test_bulk_chroms_refuses_other_text_naming_what_it_accepts(schema, value):
    """What reaches `scfan bulk prepare --chroms` unquoted on the task's command line: no shell syntax, no blanks."""
    (v,) = validate_params({"outdir": "o", "simulate_preset": "test", "bulk_chroms": value}, schema)
    assert (v.name, v.value) == ("bulk_chroms", value)
    assert str(v).startswith(f"parameter 'bulk_chroms': got {json.dumps(value)}; "
                             "expected string matching /^(all|primary|")


def test_enum_and_pattern_violations(schema):
    vs = validate_params({"outdir": "o", "simulate_preset": "huge", "max_memory": "lots"}, schema)
    assert {v.name for v in vs} == {"simulate_preset", "max_memory"}


def test_missing_required_outdir(schema):
    vs = validate_params({"simulate_preset": "test"}, schema)
    assert [v.name for v in vs] == ["outdir"]


def test_inputs_required_unless_simulating(schema):
    vs = validate_params({"outdir": "o"}, schema)
    assert {v.name for v in vs} == {"genome", "mappability", "bulk_samplesheet", "sc_samplesheet", "sc_peaks"}
    assert all("unless simulate_preset" in v.expected for v in vs)


def test_pretrained_models_make_the_bulk_samplesheet_optional(schema):
    vs = validate_params({"outdir": "o", "models": "lineA=a.pt"}, schema)
    assert {v.name for v in vs} == {"genome", "mappability", "sc_samplesheet", "sc_peaks"}
    vs = validate_params({"outdir": "o", "simulate_preset": "test", "infer_mode": "quick", "infer_shards": 0}, schema)
    assert {v.name for v in vs} == {"infer_mode", "infer_shards"}


def test_nonexistent_input_path(schema, tmp_path):
    missing = tmp_path / "nope.fa"
    vs = validate_params({"outdir": "o", "simulate_preset": "test", "genome": str(missing)}, schema)
    assert [v.name for v in vs] == ["genome"]
    assert "no such path" in vs[0].expected


def test_relative_paths_resolve_against_base_dir(schema, tmp_path):
    (tmp_path / "g.fa").write_text(">chr1\nACGT\n")
    params = {"outdir": "o", "simulate_preset": "test", "genome": "g.fa"}
    assert validate_params(params, schema, base_dir=tmp_path) == []
    assert len(validate_params(params, schema, base_dir=tmp_path / "elsewhere")) == 1


def test_check_params_file_raises_one_line_per_violation(repo_root, tmp_path):
    p = _write(tmp_path, {"outdir": "o", "simulate_preset": "test", "bogus": 1, "knn": 0})
    with pytest.raises(ParamsError) as err:
        check_params_file(p, repo_root / "nextflow_schema.json")
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert all(line.startswith(str(p)) for line in lines)


def test_cli_validate_params_exit_codes(repo_root, tmp_path):
    runner = CliRunner()
    good = _write(tmp_path, {"outdir": "o", "simulate_preset": "test"})
    res = runner.invoke(app, ["validate-params", str(good), "--schema", str(repo_root / "nextflow_schema.json")])
    assert res.exit_code == 0, res.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "scfan", "validate-params", str(bad), "--schema",
                           str(repo_root / "nextflow_schema.json")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not valid JSON" in proc.stderr and str(bad) in proc.stderr
