"""Presets, overrides and the validation of simulation parameters."""

from __future__ import annotations

import pytest

from scfan.errors import ParamsError
from scfan.simulate import PRESETS, make_config
from scfan.simulate.config import chrom_names, chrom_sizes
from scfan.simulate.motifs import TF_CATALOG, load_motifs


def test_presets_meet_the_issue_sizes():
    test, bench = make_config("test", 1), make_config("bench", 1)
    assert test.n_tfs >= 8 and test.n_lines >= 2 and test.n_types >= 4
    assert bench.genome_size >= 20_000_000 and bench.n_tfs >= 16 and bench.n_cells >= 5000 and bench.n_lines >= 3
    assert set(PRESETS) == {"test", "bench", "hard"}


@pytest.mark.parametrize("preset", ["test", "bench", "hard"])
def test_chromosomes_named_and_sized(preset):
    cfg = make_config(preset, 0)
    sizes = chrom_sizes(cfg)
    assert list(sizes) == chrom_names(cfg.n_chroms)
    assert list(sizes)[-1] == "chrX" and list(sizes)[0] == "chr1"
    assert abs(sum(sizes.values()) - cfg.genome_size) / cfg.genome_size < 0.01


def test_overrides_apply_and_none_means_preset():
    cfg = make_config("test", 3, n_cells=123, noise=None, median_fragments=900)
    assert (cfg.n_cells, cfg.median_fragments, cfg.noise, cfg.seed) == (123, 900, 1.0, 3)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"n_cells": -1}, "n_cells"),
    ({"median_fragments": 0}, "median_fragments"),
    ({"noise": -0.5}, "noise"),
    ({"low_quality_frac": 1.5}, "low_quality_frac"),
    ({"n_types": 8}, "cell-type-specific TFs"),
    ({"n_tfs": len(TF_CATALOG) + 1}, "n_tfs"),
    ({"n_chroms": 2}, "n_chroms"),
    ({"genome_size": 150_000}, "genome_size"),
    ({"sites_per_mb": 500.0}, "do not fit"),
    ({"test_chroms": ["chr9"]}, "test_chroms"),
    ({"bogus": 1}, "unknown simulation parameter"),
])
def test_bad_parameters_are_named(overrides, message):
    with pytest.raises(ParamsError, match=message):
        make_config("test", 0, **overrides)


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ParamsError, match="unknown preset 'huge'.*test, bench"):
        make_config("huge", 0)


def test_negative_seed_rejected():
    with pytest.raises(ParamsError, match="seed"):
        make_config("test", -3)


def test_every_catalogue_motif_is_in_the_pinned_jaspar_release():
    cfg = make_config("test", 0)
    motifs = load_motifs(len(TF_CATALOG), cfg.jaspar_release)
    assert [m.jaspar_id for m in motifs] == [mid for _, mid in TF_CATALOG]
    assert all(m.information_content > 8 for m in motifs)
    assert motifs[0].tf == "CTCF" and motifs[0].jaspar_id.startswith("MA0139.")
