"""The nf-test specs tagged "fast" (tests/main.nf.test and tests/default.nf.test, nf-core's spec of the default run),
run by nf-test 0.9.5 itself (built from source, in ../shared/tools/nf-test) against the pinned Nextflow, offline."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from nfrun import REPO

pytestmark = pytest.mark.pipeline

NF_TEST = REPO.parent / "shared" / "tools" / "nf-test" / "nf-test"


def test_nf_test_fast_specs_pass(tmp_path):
    assert NF_TEST.is_file(), f"nf-test not found at {NF_TEST} (../shared/tools/nf-test, see its README)"
    env = {**os.environ, "PATH": f"{REPO / '.tools' / 'bin'}:{REPO / '.venv' / 'bin'}:{os.environ['PATH']}",
           "NXF_OFFLINE": "true", "NXF_ANSI_LOG": "false"}
    res = subprocess.run(["bash", str(NF_TEST), "test", "tests/main.nf.test", "tests/default.nf.test", "--tag", "fast",
                          "--ci"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    out = re.sub(r"\x1b\[[0-9;]*m", "", res.stdout + res.stderr)
    assert res.returncode == 0, out[-4000:]
    passed = re.findall(r"Test \[[0-9a-f]+\] '([^']+)' PASSED", out)
    assert len(passed) == 6, out[-4000:]
    assert any("-stub" in name for name in passed)
    assert any("default run publishes every step folder" in name for name in passed), out[-4000:]
