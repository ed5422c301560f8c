"""The nf-test specs, run by nf-test 0.9.5 itself (built from source, in ../shared/tools/nf-test) against the pinned
Nextflow, offline: one beside every module and subworkflow (nf-core's layout, with their snapshots), the default
run (tests/default.nf.test, -stub) and the parameter failures of tests/main.nf.test (tag "fast"; its full
-profile test run is the one tests/pipeline/ makes once and checks in detail)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from nfrun import REPO

MODULES = sorted((REPO / "modules" / "local").glob("*/main.nf"))
SUBWORKFLOWS = sorted(p for p in (REPO / "subworkflows" / "local").glob("*/main.nf") if p.parent.name != "utils_scfan")

pytestmark = pytest.mark.pipeline

NF_TEST = REPO.parent / "shared" / "tools" / "nf-test" / "nf-test"


def test_every_module_and_subworkflow_has_a_spec_with_a_snapshot_or_real_run():
    missing = [str(p.parent.relative_to(REPO)) for p in MODULES + SUBWORKFLOWS
               if not (p.parent / "tests" / "main.nf.test").is_file()]
    assert not missing, missing
    assert len(MODULES) >= 15 and len(SUBWORKFLOWS) >= 4
    # a snapshot, or (VALIDATE_PARAMS, SC_ANALYSIS) assertions on the real outputs
    unchecked = [str(p.parent.relative_to(REPO)) for p in MODULES + SUBWORKFLOWS
                 if not (p.parent / "tests" / "main.nf.test.snap").is_file()
                 and p.parent.name not in ("validate_params", "sc_analysis")]
    assert not unchecked, unchecked


def test_nf_test_specs_pass(tmp_path):
    """Every spec, run as two nf-test shards side by side (each test is mostly a Nextflow JVM starting, so two at a
    time use both cores); each shard has its own work directory."""
    assert NF_TEST.is_file(), f"nf-test not found at {NF_TEST} (../shared/tools/nf-test, see its README)"
    specs = [str((p.parent / "tests" / "main.nf.test").relative_to(REPO)) for p in MODULES + SUBWORKFLOWS]
    specs += ["tests/default.nf.test", "tests/main.nf.test"]
    procs = []
    for i in (1, 2):
        env = {**os.environ, "PATH": f"{REPO / '.tools' / 'bin'}:{REPO / '.venv' / 'bin'}:{os.environ['PATH']}",
               "NXF_OFFLINE": "true", "NXF_ANSI_LOG": "false", "NFT_WORKDIR": str(tmp_path / f"nf-test-{i}")}
        log = open(tmp_path / f"shard{i}.log", "w")  # noqa: SIM115 (closed below, after the shard ends)
        # --ci: a missing snapshot fails instead of being written
        procs.append((subprocess.Popen(["bash", str(NF_TEST), "test", *specs, "--tag", "fast,modules,subworkflows",
                                        "--ci", "--shard", f"{i}/2"], cwd=REPO, env=env, stdout=log,
                                       stderr=subprocess.STDOUT), log))
    outs = []
    for proc, log in procs:
        rc = proc.wait(timeout=1800)
        log.close()
        out = re.sub(r"\x1b\[[0-9;]*m", "", Path(log.name).read_text())
        assert rc == 0, out[-6000:]
        assert "FAILED" not in out, out[-6000:]
        outs.append(out)
    passed = [name for out in outs for name in re.findall(r"Test \[[0-9a-f]+\] '(.+?)' PASSED", out)]
    both = "\n".join(outs)
    # modules: one each, VALIDATE_PARAMS two; subworkflows: one each, + SC_INFER's split-off, SC_ANALYSIS's
    # --chromvar/--tracks false and BULK_TRAIN's --interpret false; default.nf.test: the default run and
    # --interpret false; main.nf.test tag "fast": 6 parameter failures
    assert len(passed) == len(MODULES) + 1 + len(SUBWORKFLOWS) + 3 + 2 + 6, (len(passed), both[-6000:])
    assert all(re.findall(r"Test \[[0-9a-f]+\] '(.+?)' PASSED", out) for out in outs)  # both shards ran tests
    assert any("default run publishes every step folder" in name for name in passed), both[-4000:]
    assert sum("-stub: every output, correctly named" in name for name in passed) == len(MODULES) - 1
