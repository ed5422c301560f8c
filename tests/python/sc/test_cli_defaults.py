"""One source for the per-cell defaults: every option of `scfan sc predict`, `sc tracks` and `sc split-fragments`
that sets a :class:`~scfan.sc.predict.PredictConfig` field defaults to that field's default.

The CLI module cannot read the config at start-up (it would load torch for every command), so this test is what
keeps the two equal."""

from __future__ import annotations

import dataclasses

import pytest
import typer

from scfan.cli.sc import sc_app
from scfan.sc.predict import PredictConfig

FIELDS = {f.name: f.default for f in dataclasses.fields(PredictConfig)}
#: CLI parameters named otherwise than their field
RENAMED = {"compile_models": "compile", "threads": "num_threads"}
#: fields with no option: how the work is blocked (genomic chunk, cells per block), never what it computes
INTERNAL = {"chunk_bp", "cell_block"}


@pytest.mark.parametrize("command", ["predict", "tracks", "split-fragments"])
def test_per_cell_cli_defaults_are_the_config_defaults(command):
    params = typer.main.get_command(sc_app).commands[command].params
    checked = {}
    for p in params:
        field = RENAMED.get(p.name, p.name)
        if field in FIELDS:
            checked[field] = p.default
    want = {field: FIELDS[field] for field in checked}
    assert checked == want, f"sc {command}: CLI defaults differ from PredictConfig's"
    assert "mode" in checked


def test_predict_sets_every_config_field():
    """`sc predict` exposes every PredictConfig field but the internal ones (a new field needs its option, with the
    field's default)."""
    names = {RENAMED.get(p.name, p.name) for p in typer.main.get_command(sc_app).commands["predict"].params}
    assert set(FIELDS) - INTERNAL <= names, sorted(set(FIELDS) - INTERNAL - names)
