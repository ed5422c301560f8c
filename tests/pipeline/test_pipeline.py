"""The real pipeline under Nextflow: -profile test end to end, -resume, and bad parameters failing fast.

These are the scenarios of tests/main.nf.test, run here through pytest because nf-test cannot be installed offline.
"""

from __future__ import annotations

import json

import anndata as ad
import polars as pl
import pytest
import yaml
from nfrun import REPO, run_pipeline

pytestmark = pytest.mark.pipeline


def test_test_profile_publishes_every_step(test_profile_run):
    out = test_profile_run.outdir
    info = out / "pipeline_info"
    for pattern in ("execution_trace_*.txt", "execution_timeline_*.html", "execution_report_*.html"):
        assert list(info.glob(pattern)), f"no {pattern} in {info}"
    params = json.loads((info / "params.json").read_text())
    assert params["simulate_preset"] == "test" and params["outdir"] == str(out)
    assert (out / "simulate" / "genome.fa").is_file()
    assert (out / "simulate" / "manifest.json").is_file()
    lines = sorted(p.name for p in (out / "bulk").iterdir())
    assert len(lines) >= 2
    for line in lines:
        metrics = pl.read_csv(out / "bulk" / line / "evaluate" / "metrics.tsv", separator="\t")
        assert set(metrics["method"]) == {"scfan", "pwm"}
        model_auroc = metrics.filter(pl.col("method") == "scfan")["auroc"].mean()
        pwm_auroc = metrics.filter(pl.col("method") == "pwm")["auroc"].mean()
        print(f"{line}: mean test AUROC scFANet {model_auroc:.3f} vs PWM scan {pwm_auroc:.3f}")
        # issue acceptance: the small model on the test preset reaches 0.90 and beats motif scanning
        assert model_auroc >= 0.90 and model_auroc > pwm_auroc, (line, model_auroc, pwm_auroc)
        assert (out / "bulk" / line / "train" / "model.pt").is_file()
    cells = ad.read_h5ad(out / "sc" / "cells.h5ad")
    assert cells.n_obs > 100 and "pooling" in cells.obsp and "X_lsi" in cells.obsm


@pytest.mark.xfail(strict=True, reason="issue 9, not met yet: with the test profile's settings the small model's "
                   "mean test AUPRC stays below the PWM scan's (CLI on the test preset, seed 7: lineA 0.112 vs 0.165, "
                   "lineB 0.127 vs 0.166; docs/bulk.md, ablation); strict, so it fails once the model gets there")
def test_each_line_beats_the_pwm_scan_on_auprc(test_profile_run):
    out = test_profile_run.outdir
    for line in sorted(p.name for p in (out / "bulk").iterdir()):
        metrics = pl.read_csv(out / "bulk" / line / "evaluate" / "metrics.tsv", separator="\t").fill_nan(None)
        model_auprc = metrics.filter(pl.col("method") == "scfan")["auprc"].mean()
        pwm_auprc = metrics.filter(pl.col("method") == "pwm")["auprc"].mean()
        print(f"{line}: mean test AUPRC scFANet {model_auprc:.3f} vs PWM scan {pwm_auprc:.3f}")
        # issue 9 acceptance: sequence specificity shows in AUPRC, where ranking open chromatin is not enough
        assert model_auprc > pwm_auprc, (line, model_auprc, pwm_auprc)


def test_versions_yml_comes_from_the_project_environment(test_profile_run):
    versions = yaml.safe_load((test_profile_run.outdir / "pipeline_info" / "versions.yml").read_text())
    processes = {k.split(":")[-1] for k in versions}
    assert {"VALIDATE_PARAMS", "SIMULATE", "CHECK_INPUTS", "BULK_PREPARE", "BULK_TRAIN_MODEL", "BULK_EVALUATE",
            "SC_INGEST", "SC_MERGE", "SC_NEIGHBORS"} <= processes
    import scfan

    for block in versions.values():
        assert block["scfan"] == scfan.__version__
        assert block["scfan_python"].startswith(str(REPO / ".venv")), block["scfan_python"]


def test_every_task_completed_once(test_profile_run):
    rows = test_profile_run.trace_rows()
    assert rows and all(r["status"] == "COMPLETED" for r in rows), [(r["name"], r["status"]) for r in rows]


def test_resume_reruns_no_task(test_profile_run):
    again = run_pipeline(test_profile_run.launch_dir, "-profile", "test", "-resume", outdir=test_profile_run.outdir)
    assert again.returncode == 0, again.output[-3000:]
    first, second = again.traces()[-2:]
    rows = again.trace_rows(second)
    assert len(rows) == len(again.trace_rows(first))
    assert {r["status"] for r in rows} == {"CACHED"}, [(r["name"], r["status"]) for r in rows]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-profile", "test", "--bogus_param", "1"], "parameter 'bogus_param': got 1; expected a known parameter"),
        (["-profile", "test", "--epochs", "abc"], "parameter 'epochs': got \"abc\"; expected integer >= 1"),
        ([], "parameter 'genome': got (missing); expected a value (required unless simulate_preset is set)"),
        (["-profile", "test", "--genome", "/nonexistent/genome.fa"],
         "parameter 'genome': got \"/nonexistent/genome.fa\""),
    ],
    ids=["unknown", "wrong-type", "missing-required", "missing-path"],
)
def test_bad_parameters_fail_fast_and_publish_nothing(fresh_launch_dir, args, expected):
    run = run_pipeline(fresh_launch_dir, *args)
    assert run.returncode != 0
    assert expected in run.output, run.output[-3000:]
    published = {p.relative_to(run.outdir).as_posix() for p in run.outdir.rglob("*") if p.is_file()}
    # Only Nextflow's own run records may exist; no params.json, no step output.
    assert all(name.startswith("pipeline_info/execution_") or name.startswith("pipeline_info/pipeline_dag")
               for name in published), published
    rows = run.trace_rows() if run.traces() else []
    assert [r["process"].split(":")[-1] for r in rows] == ["VALIDATE_PARAMS"]
