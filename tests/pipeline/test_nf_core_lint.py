"""nf-core's linters on this pipeline: `nf-core pipelines lint` and `nf-core pipelines schema lint`, run offline with
nf-core/tools 4.2.1 from its own venv (scripts/setup_nfcore.sh, `make setup-nfcore`); the checks switched off, and why,
are in .nf-core.yml."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from nfrun import REPO

pytestmark = pytest.mark.pipeline

NF_CORE = REPO / ".tools" / "nf-core-venv" / "bin" / "nf-core"
NF_CORE_VERSION = "4.2.1"

# What a copy of the pipeline needs for the lints: the working tree without environments, runs and caches.
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", ".tools", "work", ".nextflow", ".nextflow.log*", ".nf-test",
                                     ".nf-test.log", "results", "demo_results", "__pycache__", ".pytest_cache",
                                     ".ruff_cache", "*.egg-info", "out", ".venv-snap")


def nf_core(*args: str, cwd: Path = REPO, timeout: int = 600) -> tuple[int, str]:
    """Run nf-core offline: no version check, no progress bars, our Nextflow first on PATH."""
    assert NF_CORE.is_file(), f"{NF_CORE} missing: run `make setup-nfcore` (scripts/setup_nfcore.sh) first"
    env = {**os.environ, "PATH": f"{REPO / '.tools' / 'bin'}:{os.environ['PATH']}", "NXF_OFFLINE": "true",
           "NXF_ANSI_LOG": "false", "NFCORE_NO_VERSION_CHECK": "1", "HIDE_PROGRESS": "1", "COLUMNS": "200",
           "TERM": "dumb"}
    res = subprocess.run([str(NF_CORE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return res.returncode, res.stdout + res.stderr


def lint_summary(output: str) -> dict[str, int]:
    """The counts of the LINT RESULTS SUMMARY block that `nf-core pipelines lint` prints last."""
    block = output[output.rindex("LINT RESULTS SUMMARY"):]
    counts = {}
    for key, pattern in {"passed": r"(\d+) Tests? Passed", "ignored": r"(\d+) Tests? Ignored",
                         "warned": r"(\d+) Test Warnings?", "failed": r"(\d+) Tests? Failed"}.items():
        m = re.search(pattern, block)
        counts[key] = int(m.group(1)) if m else 0
    return counts


def disabled_checks() -> set[str]:
    """Lint checks that .nf-core.yml switches off as a whole (`check: false`)."""
    lint = yaml.safe_load((REPO / ".nf-core.yml").read_text())["lint"]
    return {name for name, value in lint.items() if value is False}


def copy_pipeline(dest: Path) -> Path:
    shutil.copytree(REPO, dest, ignore=COPY_IGNORE, symlinks=True)
    return dest


def test_setup_installed_the_pinned_nf_core_in_its_own_venv():
    rc, out = nf_core("--version")
    assert rc == 0, out
    assert f"version {NF_CORE_VERSION}" in out, out
    # its own venv, not the project's .venv (whose pins nf-core's dependencies would break)
    assert not (REPO / ".venv" / "bin" / "nf-core").exists()
    assert (REPO / ".tools" / "nf-core-venv" / ".nf-core-version").read_text().strip() == NF_CORE_VERSION


def test_nf_core_pipelines_lint_passes(tmp_path):
    report = tmp_path / "lint.json"
    rc, out = nf_core("pipelines", "lint", "--dir", ".", "--plain-text", "--json", str(report))
    assert "LINT RESULTS SUMMARY" in out, out[-6000:]
    summary = lint_summary(out)
    assert rc == 0 and summary["failed"] == 0, out[-6000:]
    # the JSON report says the same; every test actually ran (about 150 pass; a crash or a skipped block passes few)
    data = json.loads(report.read_text())
    assert (data["num_tests_pass"], data["num_tests_warned"], data["num_tests_failed"], data["num_tests_ignored"]) == \
        (summary["passed"], summary["warned"], summary["failed"], summary["ignored"])
    assert summary["passed"] >= 140, summary
    assert data["nf_core_tools_version"] == NF_CORE_VERSION
    passed_checks = {check for check, _ in data["tests_pass"]}
    for check in ("schema_lint", "schema_params", "nextflow_config", "nf_test_content", "files_exist",
                  "modules_config", "base_config", "nfcore_yml", "merge_markers", "local_component_structure"):
        assert check in passed_checks, f"{check} passed nothing:\n{out[-6000:]}"
    assert not data["tests_failed"], data["tests_failed"]
    # what was ignored is exactly what .nf-core.yml switches off, nothing for another reason
    config = yaml.safe_load((REPO / ".nf-core.yml").read_text())["lint"]
    whole = {check for check, message in data["tests_ignored"] if check == message}
    assert whole == disabled_checks() - {"nfcore_components"}, whole   # nfcore_components: a separate linter
    files = {message for check, message in data["tests_ignored"] if check == "files_exist"}
    assert files == {f"File is ignored: `{f}`" for f in config["files_exist"]}, files
    variables = {message for check, message in data["tests_ignored"] if check == "nextflow_config"}
    assert variables == {f"Config variable ignored: `{v}`" for v in config["nextflow_config"]
                         if v.startswith("params.")}, variables


def test_nf_core_schema_lint_passes():
    rc, out = nf_core("pipelines", "schema", "lint", "nextflow_schema.json")
    assert rc == 0, out[-6000:]
    assert "Default parameters match schema validation" in out, out[-6000:]
    groups = json.loads((REPO / "nextflow_schema.json").read_text())["$defs"].values()
    n_params = sum(len(group["properties"]) for group in groups)
    assert f"Pipeline schema looks valid (found {n_params} params)" in out, out[-6000:]
    # $id, title and description agree with the manifest (only warned about, so checked here)
    assert "Schema `$id` should be" not in out and "Schema `title` should be" not in out, out[-6000:]
    assert "Schema 'description' should be" not in out, out[-6000:]
    assert "Invalid default parameters" not in out, out[-6000:]


def test_schema_parameter_without_a_type_fails_both_lints(tmp_path):
    """nf-core 4.2.1 has no rule that each parameter has a type: a parameter with a default and no type breaks its
    default-vs-config comparison, so both lints exit non-zero; only the pipeline lint names the parameter."""
    pipeline = copy_pipeline(tmp_path / "pipeline")
    schema_path = pipeline / "nextflow_schema.json"
    schema = json.loads(schema_path.read_text())
    del schema["$defs"]["bulk_options"]["properties"]["epochs"]["type"]
    schema_path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")

    rc, out = nf_core("pipelines", "schema", "lint", "nextflow_schema.json", cwd=pipeline)
    assert rc != 0, out[-6000:]
    assert "Pipeline schema looks valid" not in out, out[-6000:]
    assert "'type'" in out, out[-6000:]

    rc, out = nf_core("pipelines", "lint", "--dir", ".", "--plain-text", cwd=pipeline)
    assert rc != 0, out[-6000:]
    assert "'epochs'" in out, out[-6000:]

    # the untouched copy passes both, so it is the removed type that fails them
    shutil.copy(REPO / "nextflow_schema.json", schema_path)
    rc, out = nf_core("pipelines", "schema", "lint", "nextflow_schema.json", cwd=pipeline)
    assert rc == 0, out[-6000:]


def test_every_schema_parameter_has_a_type_and_a_description():
    """What nf-core does not check for itself (see above): every parameter is typed and described."""
    schema = json.loads((REPO / "nextflow_schema.json").read_text())
    assert all("$ref" in rule and len(rule) == 1 for rule in schema["allOf"]), schema["allOf"]
    for group in schema["$defs"].values():
        for name, spec in group["properties"].items():
            assert spec.get("type"), f"parameter '{name}' has no type"
            assert spec.get("description"), f"parameter '{name}' has no description"
