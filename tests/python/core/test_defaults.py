"""One source of truth for training defaults: TrainConfig = `scfan bulk train` options = nextflow.config = schema."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import typer

from scfan.bulk.train_config import TrainConfig
from scfan.cli.bulk import app

# pipeline parameter -> (TrainConfig field, CLI option)
TRAIN_PARAMS = {
    "arch": ("arch", "--arch"),
    "epochs": ("epochs", "--epochs"),
    "patience": ("patience", "--patience"),
    "batch_size": ("batch_size", "--batch-size"),
    "lr": ("lr", "--lr"),
    "motif_lr_mult": ("motif_lr_mult", "--motif-lr-mult"),
    "neg_ratio": ("neg_ratio", "--neg-ratio"),
    "sampler": ("sampler", "--sampler"),
    "hard_frac": ("hard_frac", "--hard-frac"),
    "jitter": ("jitter", "--jitter"),
    "max_train_windows": ("max_train_windows", "--max-train-windows"),
    "thin_min_keep": ("thin_min_keep", "--thin-min-keep"),
    "seed": ("seed", "--seed"),
}


def parse_params_block(text: str) -> dict:
    """The first top-level ``params { ... }`` block of a Nextflow config as Python values."""
    body = re.search(r"^params\s*\{(.*?)^\}", text, re.S | re.M)
    assert body, "no params block"
    out = {}
    for line in body.group(1).splitlines():
        line = line.split("//")[0].strip()
        if not line:
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        if value == "null":
            out[key] = None
        elif value in ("true", "false"):
            out[key] = value == "true"
        elif value[0] in "'\"":
            out[key] = value[1:-1]
        else:
            out[key] = float(value) if re.search(r"[.eE]", value) else int(value)
    return out


def schema_defaults(schema: dict) -> dict:
    props = {k: v for group in schema["$defs"].values() for k, v in group["properties"].items()}
    return {k: v.get("default") for k, v in props.items()}


def cli_defaults() -> dict:
    train = typer.main.get_command(app).commands["train"]
    return {opt: p.default for p in train.params for opt in p.opts}


@pytest.fixture(scope="module")
def sources(repo_root):
    return {
        "nextflow.config": parse_params_block((repo_root / "nextflow.config").read_text()),
        "nextflow_schema.json": schema_defaults(json.loads((repo_root / "nextflow_schema.json").read_text())),
    }


def test_parser_reads_values_of_every_kind():
    got = parse_params_block("params {\n  a = null // c\n  b = 'x'\n  c = 0.001\n  d = 3\n  e = false\n}\nx {\n}\n")
    assert got == {"a": None, "b": "x", "c": 0.001, "d": 3, "e": False}


@pytest.mark.parametrize("param", sorted(TRAIN_PARAMS))
def test_pipeline_schema_and_cli_defaults_equal_train_config(sources, param):
    field, option = TRAIN_PARAMS[param]
    expected = {f.name: f.default for f in dataclasses.fields(TrainConfig)}[field]
    assert cli_defaults()[option] == expected, (option, expected)
    for where, values in sources.items():
        assert param in values or expected is None, f"{where} lacks {param}"
        assert values.get(param) == expected, (where, param, values.get(param), expected)


def test_cpu_default_is_the_small_model_and_gpu_profile_the_full_one(repo_root):
    assert TrainConfig().arch == "small"
    gpu = parse_params_block((repo_root / "conf" / "gpu.config").read_text())
    assert gpu["arch"] == "full" and gpu["epochs"] >= TrainConfig().epochs


def test_every_training_parameter_reaches_the_command(repo_root):
    modules = (repo_root / "conf" / "modules.config").read_text()
    block = modules[modules.index("withName: 'BULK_TRAIN_MODEL'"):]
    block = block[: block.index("publishDir")]
    for param, (_, option) in TRAIN_PARAMS.items():
        assert f"{option} ${{params.{param}}}" in block, option


def test_interpret_parameters_match_the_command(repo_root, sources):
    """`--interpret` (on) and `--interpret_n_windows` = `scfan bulk interpret --n-windows`'s default, passed on by
    conf/modules.config; -profile test explains fewer windows."""
    interpret = typer.main.get_command(app).commands["interpret"]
    n_windows = {opt: p.default for p in interpret.params for opt in p.opts}["--n-windows"]
    for where, values in sources.items():
        assert values.get("interpret") is True, where
        assert values.get("interpret_n_windows") == n_windows, (where, values.get("interpret_n_windows"), n_windows)
    modules = (repo_root / "conf" / "modules.config").read_text()
    block = modules[modules.index("withName: 'BULK_INTERPRET'"):]
    block = block[: block.index("publishDir")]
    assert "--n-windows ${params.interpret_n_windows}" in block and "--seed ${params.seed}" in block
    test = parse_params_block((repo_root / "conf" / "test.config").read_text())
    assert test["interpret_n_windows"] < n_windows


def test_sc_interpret_parameters_match_the_command(repo_root, sources):
    """`--sc_interpret_top_tfs`, `--sc_interpret_n_windows`, `--sc_interpret_max_candidates` = `scfan sc interpret`'s
    defaults, passed on by conf/modules.config to SC_INTERPRET; -profile test asks for less of each."""
    from scfan.cli.main import app as main_app

    sc_interpret = typer.main.get_command(main_app).commands["sc"].commands["interpret"]
    defaults = {opt: p.default for p in sc_interpret.params for opt in p.opts}
    options = {"sc_interpret_top_tfs": "--top-tfs", "sc_interpret_n_windows": "--n-windows",
               "sc_interpret_max_candidates": "--max-candidates"}
    modules = (repo_root / "conf" / "modules.config").read_text()
    block = modules[modules.index("withName: 'SC_INTERPRET'"):]
    block = block[: block.index("publishDir")]
    test = parse_params_block((repo_root / "conf" / "test.config").read_text())
    for param, option in options.items():
        for where, values in sources.items():
            assert values.get(param) == defaults[option], (where, param, values.get(param), defaults[option])
        assert f"{option} ${{params.{param}}}" in block, option
        assert test[param] < defaults[option], param
    assert "--seed ${params.seed}" in block


def test_bulk_chroms_is_the_prepare_commands_chroms(repo_root, sources):
    """`--bulk_chroms` (default all: every contig, as before) = `scfan bulk prepare --chroms`'s default, passed on by
    conf/modules.config (issue 34: `primary` on a real human FASTA)."""
    prepare = typer.main.get_command(app).commands["prepare"]
    default = {opt: p.default for p in prepare.params for opt in p.opts}["--chroms"]
    assert default == "all"
    for where, values in sources.items():
        assert values.get("bulk_chroms") == default, (where, values.get("bulk_chroms"), default)
    modules = (repo_root / "conf" / "modules.config").read_text()
    block = modules[modules.index("withName: 'BULK_PREPARE'"):]
    block = block[: block.index("publishDir")]
    assert "--chroms ${params.bulk_chroms}" in block
