"""`-profile test -stub`: the whole workflow wired end to end with every module's stub, in about a minute.

Every process runs (per bulk line, per sample and per shard, as in a real run) and publishes its outputs under the
real layout, but no task does any work: a dry check of the channel logic, the module contract and publishing.
"""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from nfrun import REPO, run_pipeline

pytestmark = pytest.mark.pipeline

# Generous: 28 tasks of about 4 s each (scfan's import for versions.yml), one at a time on 2 cores: 1.5-3 minutes on a
# busy machine; a run that did real work takes well over ten.
STUB_RUN_LIMIT_S = 300

# The stub SIMULATE writes two bulk lines and two single-cell samples; -profile test asks for two shards.
EXPECTED_TASKS = {
    "PIPELINE_INITIALISATION:VALIDATE_PARAMS": 1,
    "SCFAN:SIMULATE": 1,
    "SCFAN:CHECK_INPUTS": 1,
    "SCFAN:BULK_TRAIN:BULK_PREPARE": 2,
    "SCFAN:BULK_TRAIN:BULK_TRAIN_MODEL": 2,
    "SCFAN:BULK_TRAIN:BULK_EVALUATE": 2,
    "SCFAN:BULK_TRAIN:BULK_INTERPRET": 2,
    "SCFAN:SC_PREPARE:SC_INGEST": 2,
    "SCFAN:SC_PREPARE:SC_MERGE": 1,
    "SCFAN:SC_PREPARE:SC_NEIGHBORS": 1,
    "SCFAN:SC_INFER:SC_SPLIT_FRAGMENTS": 2,
    "SCFAN:SC_INFER:SC_PREDICT": 2,
    "SCFAN:SC_INFER:SC_MERGE_ACTIVITY": 1,
    "SCFAN:SC_ANALYSIS:SC_CLUSTER_CHROMATIN": 1,
    "SCFAN:SC_ANALYSIS:SC_CLUSTER_ACTIVITY": 1,
    "SCFAN:SC_ANALYSIS:CHROMVAR_BASELINE": 1,
    "SCFAN:SC_ANALYSIS:SC_CLUSTER_CHROMVAR": 1,
    "SCFAN:SC_ANALYSIS:SC_TRACKS": 1,
    "SCFAN:SC_ANALYSIS:SC_INTERPRET": 1,
    "SCFAN:REPORT": 1,
}

PUBLISHED = [
    "pipeline_info/params.json",
    "pipeline_info/versions.yml",
    "pipeline_info/inputs/bulk_samplesheet.csv",
    "pipeline_info/inputs/sc_samplesheet.csv",
    "simulate/genome.fa",
    "simulate/bulk_samplesheet.csv",
    *[f"bulk/{line}/{f}" for line in ("lineA", "lineB")
      for f in ("prepare/windows.parquet", "prepare/prepare.json", "train/model.pt", "train/train_log.tsv",
                "evaluate/metrics.tsv", "evaluate/roc.png")],
    # the contents of each line's interpretation folder, not the folder inside it
    *[f"interpret/{line}/{f}" for line in ("lineA", "lineB")
      for f in ("summary.tsv", "motifs.tsv", "filters.tsv", "interpret.json", "logos", "tracks")],
    "sc/sample1/cells.h5ad",
    "sc/sample2/cells.h5ad",
    "sc/cells.h5ad",
    "activity/tf_activity.h5ad",
    *[f"analysis/{name}/{f}" for name in ("chromatin", "activity", "chromvar")
      for f in ("clusters.tsv", "differential_tfs.tsv", "clustered.h5ad", "cluster.json")],
    # the baseline's matrix sits beside analysis/chromvar/ (a published folder replaces what was in it)
    "analysis/chromvar.h5ad",
    "analysis/tracks/tracks.txt",
    *[f"analysis/interpret/{f}" for f in ("clusters.tsv", "instances.tsv", "interpret.json", "tracks")],
    "report/report.html",
]


@pytest.fixture(scope="module")
def stub_run(tmp_path_factory):
    launch = tmp_path_factory.mktemp("nf_stub")
    start = time.monotonic()
    run = run_pipeline(launch, "-profile", "test", "-stub")
    wall_s = time.monotonic() - start
    print(f"-profile test -stub: {wall_s:.0f} s")
    assert run.returncode == 0, run.output[-5000:]
    return run, wall_s


def test_stub_run_is_quick(stub_run):
    _, wall_s = stub_run
    assert wall_s < STUB_RUN_LIMIT_S, f"-stub run took {wall_s:.0f} s"


def test_every_process_completes_as_often_as_the_fan_out_says(stub_run):
    run, _ = stub_run
    rows = run.trace_rows()
    assert all(r["status"] == "COMPLETED" for r in rows), [(r["name"], r["status"]) for r in rows]
    assert Counter(r["process"] for r in rows) == Counter(EXPECTED_TASKS)


def test_every_module_is_in_the_workflow(stub_run):
    """A new module must be wired in (and listed above): each process name, or an alias of it, ran."""
    run, _ = stub_run
    ran = {r["process"].split(":")[-1] for r in run.trace_rows()}
    for main in sorted((REPO / "modules" / "local").glob("*/main.nf")):
        name = re.search(r"^process\s+(\w+)", main.read_text(), re.MULTILINE).group(1)
        assert any(p == name or p.startswith(f"{name}_") for p in ran), f"{main}: process {name} never ran"


def test_stub_tasks_ran_their_stub(stub_run):
    run, _ = stub_run
    for script in (run.launch_dir / "work").glob("*/*/.command.sh"):
        assert "scfan sc predict" not in script.read_text() and "scfan bulk train" not in script.read_text(), script


def test_published_layout(stub_run):
    run, _ = stub_run
    missing = [p for p in PUBLISHED if not (run.outdir / p).exists()]
    assert not missing, missing
    # the stub samplesheets keep the fan-out real: checked paths are absolute and exist
    sheet = (run.outdir / "pipeline_info" / "inputs" / "bulk_samplesheet.csv").read_text().splitlines()
    assert sheet[0] == "line,tf,peaks,atac,motif" and len(sheet) == 5
    assert all(field.startswith("/") for row in sheet[1:] for field in row.split(",")[2:4])


def test_a_plain_run_prints_no_warning(stub_run):
    """A user's run shows no Nextflow warning: e.g. the container closure of conf/modules.config, evaluated once
    before the script's params exist, printed "Access to undefined parameter `container_image`" on every run."""
    run, _ = stub_run
    warnings = [ln for ln in run.output.splitlines() if "WARN" in ln]
    assert not warnings, warnings
