"""The real pipeline under Nextflow: one -profile test run checked in detail, -resume, Seqera Platform settings.

The bad-parameter scenarios (fail in VALIDATE_PARAMS, publish nothing) are nf-test specs in tests/main.nf.test,
run by tests/pipeline/test_nf_test.py.
"""

from __future__ import annotations

import html
import json

import anndata as ad
import polars as pl
import pytest
import yaml
from nfrun import REPO, run_pipeline

pytestmark = pytest.mark.pipeline

FLOOR_PER_CELL_AUROC = 0.55


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


def test_metrics_show_sequence_specificity_columns(test_profile_run):
    """Issue 9's open-chromatin metrics are written for the model and the PWM scan of every TF."""
    out = test_profile_run.outdir
    for line in sorted(p.name for p in (out / "bulk").iterdir()):
        metrics = pl.read_csv(out / "bulk" / line / "evaluate" / "metrics.tsv", separator="\t")
        assert {"auroc_open", "auprc_open", "n_pos_open", "n_neg_open", "note", "method"} <= set(metrics.columns)
        for method in ("scfan", "pwm"):
            rows = metrics.filter(pl.col("method") == method)
            assert rows["auroc_open"].is_finite().all() and rows["auprc_open"].is_finite().all(), (line, method)
            # windows above the line's median accessibility: about half of the scored windows
            share = (rows["n_pos_open"] + rows["n_neg_open"]) / (rows["n_pos"] + rows["n_neg"])
            assert ((share > 0.3) & (share < 0.6)).all(), (line, method, share.to_list())


#: The whole model (`model` part: its motif branch starts from the planted TFs' JASPAR matrices) recovers the TF's own
#: motif in its attributions for at least this many of a line's TFs, CTCF always. Measured on the test preset's models
#: (seed 7; 100 windows per TF with interpretation seeds 0 and 7, and 60 windows with seed 7 on lineA as -profile test
#: now runs it): 5 of 6 in each line, all but GATA1 (the weakest planted matrix, 10 bp / 12 bits; its top motif is
#: unmatched at q < 0.05): lineA CEBPB, CTCF, NRF1, REST, SPI1; lineB CTCF, FOXA1, HNF4A, NRF1, SPI1. The `network`
#: part (motif branch off) rests on accessibility there (share 0.96-0.98: no motif searched): printed, not asserted.
MIN_MODEL_RECOVERED = 4


def test_interpretation_recovers_the_planted_motifs(test_profile_run):
    """interpret/<line>/ for every trained line: one summary row per TF and part, logos and tracks; the report shows
    the section."""
    out = test_profile_run.outdir
    lines = sorted(p.name for p in (out / "bulk").iterdir())
    assert sorted(p.name for p in (out / "interpret").iterdir()) == lines
    for line in lines:
        d = out / "interpret" / line
        for f in ("summary.tsv", "motifs.tsv", "filters.tsv", "attributions.npz", "interpret.json"):
            assert (d / f).is_file(), d / f
        summary = pl.read_csv(d / "summary.tsv", separator="\t")
        with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=80, tbl_width_chars=250):
            print(f"{line} ({json.loads((d / 'interpret.json').read_text())['seconds']:.0f} s):")
            print(summary.select("tf", "part", "top_jaspar_name", "top_q_value", "own_motif_recovered",
                                 "accessibility_share", "note"))
        tfs = set(pl.read_csv(out / "bulk" / line / "evaluate" / "metrics.tsv", separator="\t")["tf"])
        assert set(summary["tf"]) == tfs and len(summary) == 2 * len(tfs)
        assert set(summary["part"]) == {"network", "model"}
        model = summary.filter(pl.col("part") == "model")
        recovered = set(model.filter(pl.col("own_motif_recovered"))["tf"])
        assert "CTCF" in recovered, (line, recovered)
        assert len(recovered) >= min(MIN_MODEL_RECOVERED, len(tfs)), (line, sorted(recovered))
        for row in model.filter(pl.col("own_motif_recovered")).iter_rows(named=True):
            assert (d / "logos" / f"{row['tf']}_model_{row['top_motif']}.png").is_file(), row
            assert (d / "tracks" / f"{row['tf']}_model.png").is_file(), row
    report = (out / "report" / "report.html").read_text()
    learned = report[report.index('<section id="learned">'):]
    learned = learned[: learned.index("</section>")]
    assert all(f"<h3>{line}</h3>" in learned for line in lines)


def test_why_each_clusters_tfs_are_called(test_profile_run):
    """analysis/interpret/ (SC_INTERPRET): each chromatin cluster's top differential TF (-profile test: 1, on 10
    windows) explained, with the share of the call resting on accessibility in [0, 1]; the report shows the table
    and the shares on accessibility and on sequence."""
    out = test_profile_run.outdir
    d = out / "analysis" / "interpret"
    for f in ("clusters.tsv", "instances.tsv", "attributions.npz", "interpret.json"):
        assert (d / f).is_file(), d / f
    params = json.loads((out / "pipeline_info" / "params.json").read_text())
    explained = pl.read_csv(d / "clusters.tsv", separator="\t", schema_overrides={"cluster": pl.Utf8})
    with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=250):
        print(f"sc interpret ({json.loads((d / 'interpret.json').read_text())['seconds']:.0f} s):")
        print(explained.drop("model", "tf"))
    clusters = set(pl.read_csv(out / "analysis" / "chromatin" / "clusters.tsv", separator="\t",
                               schema_overrides={"cluster": pl.Utf8})["cluster"])
    assert explained.height and set(explained["cluster"]) <= clusters
    assert explained.group_by("cluster").len()["len"].max() <= params["sc_interpret_top_tfs"]
    assert (explained["n_windows"] == params["sc_interpret_n_windows"]).all()
    assert explained["accessibility_share"].is_between(0, 1).all()
    for row in explained.iter_rows(named=True):
        assert (d / "tracks" / f"{row['cluster']}_{row['feature'].replace(':', '_')}.png").is_file(), row
    report = (out / "report" / "report.html").read_text()
    why = report[report.index('<section id="why">'):]
    why = why[: why.index("</section>")]
    assert all(f"<td>{html.escape(f)}</td>" in why for f in explained["feature"])
    assert why.count("%</td>") == 2 * explained.height  # on accessibility, on sequence


def test_activity_matrix_covers_every_cell_and_model(test_profile_run):
    """SC_INFER: 2 shards of per-cell inference (exact mode in the test profile; SC_TRACKS runs the metacell mode)
    gathered into one matrix."""
    import numpy as np

    out = test_profile_run.outdir
    act = ad.read_h5ad(out / "activity" / "tf_activity.h5ad")
    cells = ad.read_h5ad(out / "sc" / "cells.h5ad")
    assert list(act.obs_names) == list(cells.obs_names)  # every cell, in the cells file's order
    expected = []
    for line in sorted(p.name for p in (out / "bulk").iterdir()):
        metrics = pl.read_csv(out / "bulk" / line / "evaluate" / "metrics.tsv", separator="\t")
        expected += [f"{line}:{tf}" for tf in metrics.filter(pl.col("method") == "scfan")["tf"].to_list()]
    assert sorted(act.var_names) == sorted(expected)
    assert set(act.var.columns) >= {"model", "tf"} and set(act.layers) >= {"mean_prob", "frac_bound"}
    info = act.uns["scfan_activity"]
    assert info["shard_count"] == 2 and info["config"]["mode"] == "exact"
    scored = act.obs["n_scored_windows"].to_numpy() > 0
    assert scored.mean() > 0.95 and not act.obs["no_scored_windows"].to_numpy()[scored].any()
    np.testing.assert_allclose(np.asarray(act.X)[scored].sum(axis=1), 1.0, atol=1e-4)
    predict_tasks = [r for r in test_profile_run.trace_rows() if r["process"].endswith("SC_PREDICT")]
    assert len(predict_tasks) == 2


def per_cell_truth_auroc(out, per_type: int = 8) -> dict[str, float]:
    """Exact per-cell predictions of a few cells of each simulated type, scored against the truth of the cell's
    type: AUROC per feature over (cell, window) pairs."""
    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score

    from scfan.genome import Genome
    from scfan.sc import predict as P
    from scfan.sc.cells_file import read_cells_for_inference
    from scfan.sc.pooling import PooledTracks
    from scfan.sc.units import make_units
    from scfan.simulate.truth import bound_window_labels
    from scfan.tracks import open_bigwig

    sim = out / "simulate"
    lines = sorted(p.name for p in (out / "bulk").iterdir())
    models = P.load_models([f"{ln}={out / 'bulk' / ln / 'train' / 'model.pt'}" for ln in lines], torch.device("cpu"))
    a = read_cells_for_inference(out / "sc" / "cells.h5ad")
    truth = pl.read_csv(sim / "truth" / "cells.tsv", separator="\t")
    type_of = dict(zip(truth["cell_id"], truth["cell_type"], strict=True))
    types = np.array([type_of[c] for c in a.obs_names])
    rng = np.random.default_rng(0)
    cells = np.sort(np.concatenate([rng.choice(np.flatnonzero(types == t), per_type, replace=False)
                                    for t in np.unique(types)]))
    cfg = P.PredictConfig()
    fragments = {s: sim / "sc" / s / "fragments.tsv.gz" for s in {c.partition("#")[0] for c in a.obs_names}}
    with Genome(sim / "genome.fa") as g:
        sizes = dict(g.sizes)
        win = P.peak_windows(a.var_names, sizes, models.window, models.context)
        scored = P.scored_peaks(a.X, a.obsp["pooling"], cells, cfg.min_signal)
        units = make_units("exact", a.obsp["pooling"], cells, 1)
        bw = open_bigwig(sim / "mappability.bw")
        totals = 2.0 * a.obs["n_fragments"].to_numpy(np.float64)
        with PooledTracks(fragments, list(a.obs_names), units.pooling, totals, sum(sizes.values())) as tr:
            got = list(P.iter_cell_predictions(models, tr, units, scored, win, g, bw, cfg, None))
        bw.close()
    pc, pw, pp = (np.concatenate([o[i] for o in got]) for i in range(3))
    sites = pl.read_parquet(sim / "truth" / "bound_sites.parquet")
    chroms, starts = win["chrom"].to_numpy(), win["start"].to_numpy()
    result = {}
    for j, feature in enumerate(models.features):
        y = np.zeros(len(pc), dtype=bool)
        for t in np.unique(types):
            sel = types[cells[pc]] == t
            y[sel] = bound_window_labels(sites, chroms, starts, models.window, feature.split(":", 1)[1], t)[pw[sel]]
        if 0 < y.sum() < len(y):
            result[feature] = float(roc_auc_score(y, pp[:, j]))
    return result


def test_per_cell_binding_calls_against_the_truth_of_the_cell_type(test_profile_run):
    aucs = per_cell_truth_auroc(test_profile_run.outdir)
    mean = sum(aucs.values()) / len(aucs)
    print("per-cell AUROC vs truth:", {k: round(v, 3) for k, v in aucs.items()}, f"mean {mean:.3f}")
    assert len(aucs) >= 10
    assert mean >= FLOOR_PER_CELL_AUROC, (mean, aucs)


def test_versions_yml_comes_from_the_project_environment(test_profile_run):
    versions = yaml.safe_load((test_profile_run.outdir / "pipeline_info" / "versions.yml").read_text())
    processes = {k.split(":")[-1] for k in versions}
    assert {"VALIDATE_PARAMS", "SIMULATE", "CHECK_INPUTS", "BULK_PREPARE", "BULK_TRAIN_MODEL", "BULK_EVALUATE",
            "SC_INGEST", "SC_MERGE", "SC_NEIGHBORS", "SC_PREDICT", "SC_MERGE_ACTIVITY"} <= processes
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


def test_tower_yml_reports_exist_in_a_run(test_profile_run, repo_root):
    """Every report Seqera Platform is told to show (tower.yml) is a file the test run published."""
    import fnmatch

    import yaml

    reports = yaml.safe_load((repo_root / "tower.yml").read_text())["reports"]
    published = [str(p.relative_to(test_profile_run.outdir)) for p in test_profile_run.outdir.rglob("*")
                 if p.is_file()]
    missing = [pat for pat in reports if not fnmatch.filter(published, pat)]
    assert not missing, missing


def test_seqera_platform_is_on_only_with_an_access_token(fresh_launch_dir):
    from nfrun import NEXTFLOW, REPO

    def tower(env_extra):
        import os
        import subprocess

        env = {**os.environ, "NXF_OFFLINE": "true", **env_extra}
        env.pop("TOWER_ACCESS_TOKEN", None) if not env_extra else None
        out = subprocess.run([str(NEXTFLOW), "config", "-flat", "-profile", "test", str(REPO)], cwd=fresh_launch_dir,
                             env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return dict(line.split(" = ", 1) for line in out.stdout.splitlines() if line.startswith("tower."))

    assert tower({})["tower.enabled"] == "false"
    on = tower({"TOWER_ACCESS_TOKEN": "token", "TOWER_WORKSPACE_ID": "42"})
    assert on["tower.enabled"] == "true" and on["tower.workspaceId"] == "'42'"
