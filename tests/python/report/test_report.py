"""`scfan report` from cluster outputs made here: self-contained, the answer first, bad inputs refused."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import anndata as ad

from cli_runner import run_cli


def test_report_is_self_contained_and_answers_first(analyses, report_args, tmp_path, monkeypatch):
    out = tmp_path / "report.html"
    assert run_cli(monkeypatch, *report_args(analyses, out)) == 0
    page = out.read_text()
    # nothing fetched from anywhere: no external scripts, styles or images
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", page)
    assert "<script" not in page and "<link" not in page
    imgs = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(imgs) >= 5
    for b64 in imgs:
        assert base64.b64decode(b64).startswith(b"\x89PNG")
    # the answer is the first section; every planted driver is the top TF of its cluster
    sections = re.findall(r'<section id="([a-z]+)">', page)
    assert sections[0] == "answer" and {"methods", "qc", "bulk", "software"} <= set(sections)
    answer = page[page.index('id="answer"'):page.index('id="heatmap"')]
    for t, tf in (("type0", "GATA1"), ("type1", "SPI1"), ("type2", "CEBPB")):
        row = re.search(rf"<tr><td>\d+</td><td>\d+</td><td>{t} \(\d+%\)</td><td>([^<]+)</td><td>([^<]+)</td>", answer)
        assert row, t
        assert row.group(1).startswith(f"lineA:{tf} (padj"), row.group(1)
        assert row.group(2) == f"{tf} (1)"
    assert "torch" in page and "2.5" in page and "simulate_preset" in page


def test_report_refuses_a_folder_that_is_not_a_clustering(analyses, tmp_path, monkeypatch, capsys):
    out = tmp_path / "report.html"
    bogus = tmp_path / "empty"
    bogus.mkdir()
    assert run_cli(monkeypatch, "report", "--analysis", f"x={bogus}", "--out", str(out)) == 2
    assert f"{bogus}: not a `scfan sc cluster` output folder (no clusters.tsv)" in capsys.readouterr().err
    assert not out.exists()


def test_report_refuses_a_wrong_metrics_file(analyses, report_args, tmp_path, monkeypatch, capsys):
    out = tmp_path / "report.html"
    bad = tmp_path / "metrics.tsv"
    bad.write_text("tf\tauroc\nGATA1\t0.5\n")
    args = report_args(analyses, out)
    args[args.index(f"lineA={analyses['metrics']}")] = f"lineA={bad}"
    assert run_cli(monkeypatch, *args) == 2
    assert f"{bad}, line 1: not a metrics.tsv of `scfan bulk evaluate` (no auprc, method)" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".report.html*"))


def test_report_shows_how_the_resolution_was_chosen_and_the_numerics(analyses, report_args, tmp_path, monkeypatch):
    """The answer section names the resolution rule and lists every resolution tried (clusters, silhouette,
    agreement, the chosen one marked); the software section lists what each model ran in after the runtime check,
    with refused fast paths named."""
    import json

    act = ad.read_h5ad(analyses["activity_file"])
    act.uns["scfan_activity"] = {"config": {"mode": "fast"}, "fast_path_check": {"lineA": {
        "asked": "bfloat16 convolutions, float32 dense layers (oneDNN, channels-last)",
        "ran": "float32 (oneDNN, channels-last)", "max_abs_diff": 1e-7, "tolerance": 0.002, "device": "cpu",
        "cpu": "Intel(R) Xeon(R) Platinum 8480+ (avx512_bf16 amx_bf16)",
        "refused": ["bfloat16 convolutions, float32 dense layers (oneDNN, channels-last) (max |Δp| 0.41)"],
        "seconds": 0.1, "precision": "float32"}}}
    act_path = tmp_path / "tf_activity.h5ad"
    act.write_h5ad(act_path)
    a = dict(analyses, activity_file=act_path)
    out = tmp_path / "report.html"
    assert run_cli(monkeypatch, *report_args(a, out)) == 0
    page = out.read_text()
    answer = page[page.index('id="answer"'):page.index('id="heatmap"')]
    summary = json.loads((analyses["chromatin"] / "cluster.json").read_text())
    assert "How the resolution was chosen — consensus: of the partitions within 0.1 of the best mean silhouette" \
        in answer
    details = answer[answer.index("How the resolution was chosen"):]
    assert "agreement (mean ARI with the other resolutions)" in details and "No rule sees the labels" in details
    rows = re.findall(r"<tr><td>([0-9.]+)</td><td>(\d+)</td>", details)
    assert [float(r) for r, _ in rows] == [r["resolution"] for r in summary["resolution_scan"]]
    assert [int(n) for _, n in rows] == [r["n_clusters"] for r in summary["resolution_scan"]]
    assert details.count("✔") == 1
    software = page[page.index('id="software"'):]
    assert "Numerics of per-cell inference" in software and "amx_bf16" in software
    assert "max |Δp| 0.41" in software and "float32 (oneDNN, channels-last)" in software
    assert "Activity from a window sample" not in page  # every window scored: nothing to say


def test_report_states_the_error_of_a_window_sample(analyses, report_args, tmp_path, monkeypatch):
    """An activity estimated from a share of the windows says so in the report, with its standard errors."""
    act = ad.read_h5ad(analyses["activity_file"])
    act.uns["scfan_activity"] = {"config": {"mode": "exact", "window_share": 0.2}, "window_sampling": {
        "share": 0.2, "seed": 7, "min_sampled_windows": 100, "estimator": "…", "median_scored_share": 0.21,
        "median_se_X": 0.0123, "median_relative_se_X": 0.0456, "median_se_mean_prob": 0.0031,
        "median_relative_se_mean_prob": 0.0178, "median_se_frac_bound": 0.0099, "median_relative_se_frac_bound": 0.1}}
    act_path = tmp_path / "tf_activity.h5ad"
    act.write_h5ad(act_path)
    out = tmp_path / "report.html"
    assert run_cli(monkeypatch, *report_args(dict(analyses, activity_file=act_path), out)) == 0
    software = out.read_text()[out.read_text().index('id="software"'):]
    note = software[software.index("Activity from a window sample"):]
    assert "share 0.2 of its scored windows (seed 7" in note and "fewer than 100 sampled windows" in note
    assert "a median 21% of a cell's windows" in note
    assert "0.0123 for X (relative 0.0456)" in note and "0.0031 for mean_prob (relative 0.0178)" in note


def test_report_shows_what_the_models_learned(analyses, report_args, interpret_folder, tmp_path, monkeypatch):
    """One row per TF and part with the top motif's logo, its JASPAR match and the share on accessibility; rows
    whose TF's own motif was not recovered are flagged in red with the note (or "model to distrust")."""
    folder, pngs, note = interpret_folder
    out = tmp_path / "report.html"
    assert run_cli(monkeypatch, *report_args(analyses, out, "--interpret", f"lineA={folder}")) == 0
    page = out.read_text()
    sections = re.findall(r'<section id="([a-z]+)">', page)
    assert sections.index("learned") == sections.index("bulk") + 1
    learned = page[page.index('<section id="learned">'):page.index('<section id="software">')]
    assert "What the models learned" in learned and "<h3>lineA</h3>" in learned
    assert "network</b> = scFAN's convolutional network alone (motif branch off)" in learned
    assert "partly by construction" in learned
    rows = re.findall(r"<tr( class='distrust')?><td>([A-Z0-9]+)</td><td>(network|model)</td>(.*?)</tr>", learned)
    assert [(tf, part, bool(flag)) for flag, tf, part, _ in rows] == [
        ("CTCF", "network", False), ("CTCF", "model", False), ("GATA1", "network", True), ("GATA1", "model", True)]
    cells = {(tf, part): re.findall(r"<td[^>]*>(.*?)</td>", rest) for _, tf, part, rest in rows}
    # the logo of CTCF's model part is embedded; the network part has no logo file: its motif named instead
    assert pngs["logos/CTCF_model_pattern_0.png"] in cells["CTCF", "model"][0]
    assert cells["CTCF", "network"][0] == "pattern_0"
    assert cells["CTCF", "model"][1:5] == ["CTCF (MA1929.2)", "&lt; 1e-06", "yes", "25%"]
    assert cells["CTCF", "network"][1:5] == ["CTCF (MA1929.2)", "1e-06", "yes", "12%"]
    assert cells["GATA1", "network"][1:5] == ["SPI1 (MA0080.7)", "0.001", "no", "60%"]
    assert cells["GATA1", "network"][5] == f"<span class='flag'>{note.replace(chr(39), '&#x27;')}</span>"
    assert cells["GATA1", "model"][1:6] == ["–", "–", "no", "–", "<span class='flag'>model to distrust</span>"]
    # one attribution track per TF that has one, folded away
    assert pngs["tracks/CTCF_model.png"] in learned.split("<details>")[-1]
    assert "tr.distrust td{background:" in page   # the red flag is styled by the page itself


def test_report_says_when_interpretation_was_not_run(analyses, report_args, tmp_path, monkeypatch, capsys):
    out = tmp_path / "report.html"
    assert run_cli(monkeypatch, *report_args(analyses, out)) == 0
    learned = out.read_text().split('<section id="learned">')[1].split("</section>")[0]
    assert "Interpretation was not run (--interpret false)." in learned
    bogus = tmp_path / "empty"
    bogus.mkdir()
    assert run_cli(monkeypatch, *report_args(analyses, out, "--interpret", f"lineA={bogus}")) == 2
    assert f"{bogus}: not a `scfan bulk interpret` output folder (no summary.tsv)" in capsys.readouterr().err


def test_report_shows_why_each_clusters_tfs_are_called(analyses, report_args, cell_interpret_folder, tmp_path,
                                                       monkeypatch):
    """After "What the models learned": per cluster, its explained TFs with the shares of the call resting on
    accessibility and on sequence (adding up to 100%), motif instances (own), the top motifs; tracks folded away."""
    folder, png = cell_interpret_folder
    out = tmp_path / "report.html"
    assert run_cli(monkeypatch, *report_args(analyses, out, "--sc-interpret", str(folder))) == 0
    page = out.read_text()
    sections = re.findall(r'<section id="([a-z]+)">', page)
    assert sections.index("why") == sections.index("learned") + 1
    why = page.split('<section id="why">')[1].split("</section>")[0]
    assert "<h2>Why each cluster&#x27;s TFs are called</h2>" in why
    body = why.split("<tbody>")[1].split("</tbody>")[0]
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", body)]
    assert rows == [
        ["0", "lineA:GATA1", "30", "0.91", "75%", "25%", "21 (18)", "GATA1 ×18; TAL1::GATA1 ×3"],
        ["lineA:CTCF", "30", "0.99", "20%", "80%", "25 (24)", "CTCF ×24; ZNF ×1"],
        ["1", "lineA:SPI1", "30", "0.50", "–", "–", "0 (0)", "–"]]
    assert "<td rowspan='2'>0</td>" in body  # one cluster cell over its TFs
    assert png in why.split("<details>")[-1]


def test_report_says_when_the_per_cluster_interpretation_was_not_run(analyses, report_args, tmp_path, monkeypatch,
                                                                     capsys):
    """--interpret false in the run's params: the section says so; a folder that is not `sc interpret`'s is refused
    with its name."""
    import json

    params = tmp_path / "params.json"
    params.write_text(json.dumps({**json.loads(Path(analyses["params"]).read_text()), "interpret": False}))
    out = tmp_path / "report.html"
    assert run_cli(monkeypatch, *report_args(dict(analyses, params=params), out)) == 0
    why = out.read_text().split('<section id="why">')[1].split("</section>")[0]
    assert "The per-cluster interpretation was not run (--interpret false)." in why
    bogus = tmp_path / "empty"
    bogus.mkdir()
    assert run_cli(monkeypatch, *report_args(analyses, out, "--sc-interpret", str(bogus))) == 2
    assert f"{bogus}: not a `scfan sc interpret` output folder (no clusters.tsv)" in capsys.readouterr().err
