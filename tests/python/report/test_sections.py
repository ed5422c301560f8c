"""Each section of the report on its own: given its inputs it shows what it should, and it says so (on the page or in
``Section.missing``) when an input is missing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import anndata as ad
import pytest

from scfan.errors import InputFileError
from scfan.report import (
    Analysis,
    ReportInputs,
    answer_section,
    build_report,
    bulk_section,
    cells_section,
    dropped_section,
    heatmap_section,
    learned_section,
    methods_section,
    run_summary,
    software_section,
    why_section,
)
from scfan.report.inputs import read_drivers


def _rows(html: str) -> list[list[str]]:
    """The cells of every body row of the first table in ``html``."""
    body = html.split("<tbody>")[1].split("</tbody>")[0]
    return [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr[^>]*>(.*?)</tr>", body)]


def _head(html: str) -> list[str]:
    return re.findall(r"<th>(.*?)</th>", html.split("<thead>")[1].split("</thead>")[0])


def _unlabelled(folder: Path, tmp_path: Path, keep_h5ad: bool = True) -> Path:
    """A copy of a clustering without its cells' labels (and without clustered.h5ad unless ``keep_h5ad``)."""
    out = tmp_path / f"{folder.name}_copy"
    out.mkdir()
    for name in ("clusters.tsv", "differential_tfs.tsv", "cluster.json", "clustered.h5ad"):
        if name != "clustered.h5ad" or keep_h5ad:
            shutil.copyfile(folder / name, out / name)
    clusters = (out / "clusters.tsv").read_text().splitlines()
    col = clusters[0].split("\t").index("label")
    (out / "clusters.tsv").write_text("\n".join(
        "\t".join(v for i, v in enumerate(line.split("\t")) if i != col) for line in clusters) + "\n")
    summary = json.loads((out / "cluster.json").read_text())
    summary.update(ari=None, nmi=None)
    (out / "cluster.json").write_text(json.dumps(summary))
    return out


# --- the answer -----------------------------------------------------------------------------------------------------


def test_answer_lists_each_cluster_with_its_label_its_top_tfs_and_the_true_drivers_rank(analyses):
    primary = Analysis.read("chromatin", analyses["chromatin"])
    s = answer_section(primary, read_drivers(analyses["drivers"]))
    assert (s.anchor, s.title, s.missing) == ("answer", "Cell populations and the TFs that drive them", None)
    assert _head(s.body) == ["cluster", "cells", "majority label", "top TFs (Wilcoxon, BH)", "true drivers (rank)"]
    rows = {r[2].split(" ")[0]: r for r in _rows(s.body)}
    assert set(rows) == {"type0", "type1", "type2"}
    for t, tf in (("type0", "GATA1"), ("type1", "SPI1"), ("type2", "CEBPB")):
        assert rows[t][3].startswith(f"lineA:{tf} (padj") and rows[t][4] == f"{tf} (1)"
    assert '<span class="kpi"><b>150</b>cells</span>' in s.body and "ARI vs labels" in s.body
    assert s.body.count("<img ") == 2  # UMAP by cluster and by label
    assert "How the resolution was chosen" in s.body


def test_answer_says_what_it_lacks_without_labels_or_drivers(analyses, tmp_path):
    primary = Analysis.read("chromatin", _unlabelled(analyses["chromatin"], tmp_path))
    s = answer_section(primary, None)
    assert s.shown and s.missing == "no cell labels and no known drivers (--drivers)"
    assert _head(s.body) == ["cluster", "cells", "top TFs (Wilcoxon, BH)"]
    assert s.body.count("<img ") == 1 and "ARI vs labels</span>" not in s.body
    labelled = answer_section(Analysis.read("chromatin", analyses["chromatin"]), None)
    assert labelled.missing == "no known drivers (--drivers)" and "true drivers" not in labelled.body


# --- heatmap, clusterings compared, dropped features ----------------------------------------------------------------


def test_heatmap_draws_the_top_tfs_and_is_left_off_without_the_clustered_cells(analyses, tmp_path):
    s = heatmap_section(Analysis.read("chromatin", analyses["chromatin"]))
    assert s.shown and s.missing is None
    assert s.body.startswith('<img src="data:image/png;base64,') and 'alt="heatmap of top differential TFs"' in s.body
    folder = _unlabelled(analyses["chromatin"], tmp_path, keep_h5ad=False)
    off = heatmap_section(Analysis.read("chromatin", folder))
    assert not off.shown and off.missing == f"no clustered.h5ad in {folder}"


def test_methods_compares_every_clustering_and_says_when_there_are_no_labels(analyses, tmp_path):
    both = [Analysis.read("chromatin", analyses["chromatin"]), Analysis.read("TF activity", analyses["activity"])]
    s = methods_section(both)
    assert (s.anchor, s.missing) == ("methods", None)
    assert _head(s.body)[:4] == ["clustering on", "clusters", "ARI", "NMI"]
    rows = _rows(s.body)
    assert [r[0] for r in rows] == ["chromatin", "TF activity"]
    assert rows[0][2] == f"{both[0].summary['ari']:.3f}"
    assert 'alt="ARI and NMI per clustering"' in s.body and 'alt="UMAP TF activity"' in s.body
    alone = methods_section([Analysis.read("chromatin", _unlabelled(analyses["chromatin"], tmp_path))])
    assert alone.shown and alone.missing == "no cell labels: no ARI or NMI"
    assert _rows(alone.body)[0][2:4] == ["–", "–"] and "<img " not in alone.body


def test_dropped_features_are_listed_and_the_section_left_off_when_none_were(analyses, tmp_path):
    primary = Analysis.read("chromatin", analyses["chromatin"])
    off = dropped_section([primary])
    assert not off.shown and off.missing == "no feature dropped"
    primary.summary = {**primary.summary, "dropped_features": ["c3", "c7"]}
    s = dropped_section([primary])
    assert s.missing is None and _rows(s.body) == [["chromatin", "c3"], ["chromatin", "c7"]]


# --- cells ----------------------------------------------------------------------------------------------------------


def test_cells_show_qc_per_sample_and_the_inference_summary(analyses):
    s = cells_section(analyses["activity_file"], analyses["activity_file"])
    assert (s.anchor, s.title, s.missing) == ("qc", "Cells", None)
    assert _head(s.body) == ["sample", "cells", "median_fragments", "median_frac_in_peaks"]
    assert [r[:2] for r in _rows(s.body)] == [["s1", "75"], ["s2", "75"]]
    assert 'alt="cell QC histograms"' in s.body
    assert "TF activity: 150 cells × 4 TFs from lineA; inference mode exact" in s.body
    assert "0 cell(s) without a scored window" in s.body


def test_cells_say_which_input_is_missing(analyses):
    only_activity = cells_section(None, analyses["activity_file"])
    assert only_activity.missing == "no --cells given" and "<table>" not in only_activity.body
    only_cells = cells_section(analyses["activity_file"], None)
    assert only_cells.missing == "no --activity given" and "TF activity:" not in only_cells.body
    off = cells_section(None, None)
    assert not off.shown and off.missing == "no --cells or --activity given"


# --- bulk models ----------------------------------------------------------------------------------------------------


def test_bulk_shows_the_mean_per_model_and_method_every_tf_and_the_figures(analyses, interpret_folder):
    _, pngs, _ = interpret_folder
    track = interpret_folder[0] / "tracks" / "CTCF_model.png"
    s = bulk_section([("lineA", analyses["metrics"])], [("ROC <lineA>", track)])
    assert (s.anchor, s.title, s.missing) == ("bulk", "Bulk models", None)
    assert _rows(s.body) == [["lineA", "pwm", "0.700", "0.200"], ["lineA", "scfan", "0.875", "0.312"]]
    assert pngs["tracks/CTCF_model.png"] in s.body and "<figcaption class='note'>ROC &lt;lineA&gt;" in s.body
    every = s.body.split("<summary>Every TF</summary>")[1]
    assert len(_rows(every)) == 8
    assert bulk_section([("lineA", analyses["metrics"])]).missing == "no --figure given"
    off = bulk_section([], [("ROC", track)])
    assert not off.shown and off.missing == "no --metrics given"


def test_bulk_refuses_a_figure_that_is_not_a_png(analyses, tmp_path):
    bad = tmp_path / "roc.png"
    bad.write_text("not an image")
    with pytest.raises(InputFileError, match="expected a PNG image"):
        bulk_section([("lineA", analyses["metrics"])], [("ROC", bad)])


# --- what the models learned; why each cluster's TFs are called -----------------------------------------------------


def test_learned_shows_one_row_per_tf_and_part(interpret_folder):
    folder, pngs, _ = interpret_folder
    s = learned_section([("lineA", folder)])
    assert (s.anchor, s.missing) == ("learned", None)
    assert "<h3>lineA</h3>" in s.body and pngs["logos/CTCF_model_pattern_0.png"] in s.body
    assert [r[:2] for r in _rows(s.body)] == [["CTCF", "network"], ["CTCF", "model"], ["GATA1", "network"],
                                              ["GATA1", "model"]]
    assert s.body.count("<tr class='distrust'>") == 2


def test_learned_says_why_interpretation_was_not_run(tmp_path):
    s = learned_section([])
    assert s.body == "<p>Interpretation was not run (--interpret false).</p>" and s.missing == "no --interpret given"
    params = tmp_path / "params.json"
    params.write_text('{"models": "models.tsv"}')
    pretrained = learned_section([], params)
    assert "the models were given pre-trained (--models)" in pretrained.body
    assert pretrained.missing == "no --interpret given (pre-trained models)"


def test_why_shows_each_clusters_tfs_with_the_shares(cell_interpret_folder):
    folder, png = cell_interpret_folder
    s = why_section(folder)
    assert (s.anchor, s.missing) == ("why", None)
    assert _rows(s.body)[0] == ["0", "lineA:GATA1", "30", "0.91", "75%", "25%", "21 (18)", "GATA1 ×18; TAL1::GATA1 ×3"]
    assert png in s.body.split("<details>")[-1]


def test_why_says_when_there_is_nothing_to_explain_or_it_was_not_run(cell_interpret_folder, tmp_path):
    folder, _ = cell_interpret_folder
    header = (folder / "clusters.tsv").read_text().splitlines()[0]
    (folder / "clusters.tsv").write_text(header + "\n")
    empty = why_section(folder)
    assert "nothing to explain" in empty.body and empty.missing == "no TF to explain"
    s = why_section(None)
    assert "<code>scfan sc interpret</code> explains" in s.body and s.missing == "no --sc-interpret given"
    params = tmp_path / "params.json"
    params.write_text('{"interpret": false}')
    off = why_section(None, params)
    assert off.body == "<p>The per-cluster interpretation was not run (--interpret false).</p>"
    assert off.missing == "no --sc-interpret given (--interpret false)"


# --- software and parameters; the header ----------------------------------------------------------------------------


def test_software_lists_versions_and_parameters(analyses):
    s = software_section(analyses["activity_file"], [analyses["versions"]], analyses["params"])
    assert (s.anchor, s.missing) == ("software", None)
    software = s.body.split("<h3>Software</h3>")[1].split("<h3>")[0]
    assert _rows(software) == [["scfan", "0.1.0", "REPORT, SC_PREDICT"], ["torch", "2.5", "SC_PREDICT"]]
    params = s.body.split("<h3>Parameters</h3>")[1]
    assert _rows(params) == [["seed", "7"], ["simulate_preset", "test"]]
    assert "Numerics of per-cell inference" not in s.body  # no runtime check recorded


def test_software_shows_the_numerics_and_the_window_sample(analyses, tmp_path):
    act = ad.read_h5ad(analyses["activity_file"])
    act.uns["scfan_activity"] = {"fast_path_check": {"lineA": {"asked": "bf16", "ran": "float32", "max_abs_diff": 0.5,
                                                               "tolerance": 0.002, "refused": ["bf16 (0.5)"]}},
                                 "precision_by_shard": {"0": "float32", "1": "bfloat16"},
                                 "window_sampling": {"share": 0.25, "seed": 3, "min_sampled_windows": 10,
                                                     "median_scored_share": 0.3}}
    path = tmp_path / "tf_activity.h5ad"
    act.write_h5ad(path)
    s = software_section(path, [], None)
    rows = _rows(s.body)
    assert rows[0][:3] == ["lineA", "bf16", "float32"] and rows[0][-1] == "bf16 (0.5)"
    assert rows[1][:3] == ["all", "", "mixed: shard 0: float32, shard 1: bfloat16"]
    assert "share 0.25 of its scored windows (seed 3" in s.body and "median standard error nan for X" in s.body
    assert s.missing == "no --versions, --params given"
    assert "corrected by a regression" not in s.body
    act.uns["scfan_activity"]["window_sampling"]["window_estimator"] = "regression"
    act.write_h5ad(path)
    assert "sample mean was corrected by a regression on a proxy" in software_section(path, [], None).body


def test_software_is_left_off_without_inputs_and_refuses_unreadable_params(tmp_path):
    off = software_section(None, [], None)
    assert not off.shown and off.missing == "no --activity, --versions, --params given"
    bad = tmp_path / "params.json"
    bad.write_text("{not json")
    with pytest.raises(InputFileError, match="cannot read params JSON"):
        software_section(None, [], bad)


def test_run_summary_names_the_data_and_the_models(analyses, tmp_path):
    assert run_summary(analyses["params"], analyses["activity_file"]) == (
        "data: simulated (preset test, seed 7) · 4 TFs from 1 model(s): lineA")
    params = tmp_path / "params.json"
    params.write_text('{"sc_samplesheet": "/x/cells.csv", "genome": "/g/hg38.fa", "models": "m.tsv"}')
    assert run_summary(params, None) == "data: cells.csv on hg38.fa · pre-trained models: m.tsv"
    assert run_summary(None, None) == ""


# --- the page -------------------------------------------------------------------------------------------------------


def test_page_keeps_the_order_and_leaves_off_the_sections_without_input(analyses):
    page = build_report(ReportInputs(analyses=[("chromatin", analyses["chromatin"])]))
    assert re.findall(r'<section id="([a-z]+)">', page) == ["answer", "heatmap", "methods", "learned", "why"]
    assert re.findall(r'<a href="#([a-z]+)">', page) == ["answer", "heatmap", "methods", "learned", "why"]
    assert " cells · " in page and "<p></p></header>" in page  # no params, no activity: an empty run line
