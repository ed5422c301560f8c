"""A task killed as if out of memory (exit 137) on its first attempt is retried by conf/base.config's error
strategy with twice the memory, and the run succeeds (stubbed `-profile test`, so it takes about a minute)."""

from __future__ import annotations

import pytest
from nfrun import run_pipeline

pytestmark = pytest.mark.pipeline


def test_exit_137_is_retried_with_more_memory(tmp_path):
    marker = tmp_path / "killed_once"
    inject = tmp_path / "oom_once.config"
    # Before SC_MERGE_ACTIVITY's first attempt: leave a marker and exit 137, the status of a SIGKILL (the OOM
    # killer's). The limits are raised above the test profile's 6 GB so that the retry's request can grow.
    inject.write_text(
        "process {\n"
        "    resourceLimits = [cpus: 2, memory: 20.GB, time: 1.h]\n"
        "    withName: 'SC_MERGE_ACTIVITY' {\n"
        f"        beforeScript = 'if [ ! -e {marker} ]; then touch {marker}; exit 137; fi'\n"
        "    }\n"
        "}\n")
    run = run_pipeline(tmp_path / "launch", "-profile", "test", "-stub", "-c", str(inject))
    assert run.returncode == 0, run.output[-3000:]
    assert marker.exists()
    rows = [r for r in run.trace_rows() if r["process"].endswith("SC_MERGE_ACTIVITY")]
    by_attempt = {r["attempt"]: r for r in rows}
    assert set(by_attempt) == {"1", "2"}, [(r["attempt"], r["status"], r["exit"]) for r in rows]
    assert (by_attempt["1"]["status"], by_attempt["1"]["exit"]) == ("FAILED", "137")
    assert by_attempt["2"]["status"] == "COMPLETED"
    # process_low asks 12 GB × attempt: 12 GB, then 24 GB capped at the 20 GB limit
    assert by_attempt["1"]["memory"] == "12 GB" and by_attempt["2"]["memory"] == "20 GB", \
        (by_attempt["1"]["memory"], by_attempt["2"]["memory"])
    others = [r for r in run.trace_rows() if not r["process"].endswith("SC_MERGE_ACTIVITY")]
    assert all(r["attempt"] == "1" and r["status"] == "COMPLETED" for r in others)
    # the bulk steps ask what a human-sized genome needs (conf/base.config, bench_genome_scale.md), under the limits
    asked = {r["process"].rsplit(":", 1)[-1]: r["memory"] for r in others}
    assert (asked["BULK_PREPARE"], asked["BULK_TRAIN_MODEL"], asked["BULK_EVALUATE"]) == ("12 GB", "16 GB", "6 GB"), \
        asked
