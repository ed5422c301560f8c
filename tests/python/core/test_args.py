"""The one ``NAME=value`` argument parser (:mod:`scfan.args`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scfan.args import named_map, split_named
from scfan.errors import ScfanError


def test_split_named_takes_the_first_equals_and_strips_spaces():
    assert split_named(" a = x=y.txt ", "--opt") == ("a", "x=y.txt")


@pytest.mark.parametrize("item", ["no-equals", "=path", "name=", " = "])
def test_split_named_names_the_option_the_argument_and_the_form(item):
    with pytest.raises(ScfanError, match=rf"^--opt '{item}': expected SAMPLE=path$"):
        split_named(item, "--opt", "SAMPLE=path")


def test_split_named_default_name_for_a_bare_value():
    assert split_named("dir/line1.tsv", "--metrics", default_name=lambda p: Path(p).stem) == ("line1",
                                                                                                "dir/line1.tsv")
    with pytest.raises(ScfanError, match="expected NAME=path"):
        split_named("=dir/line1.tsv", "--metrics", default_name=lambda p: Path(p).stem)


def test_named_map_keeps_order_and_refuses_a_name_given_twice():
    assert list(named_map(["b=1", "a=2"], "--peaks", "TF=PATH", what="TF")) == ["b", "a"]
    with pytest.raises(ScfanError, match=r"^--peaks: TF 'a' given twice$"):
        named_map(["a=1", "a=2"], "--peaks", "TF=PATH", what="TF")


def test_model_names_from_the_argument_or_the_file():
    pytest.importorskip("torch")
    from scfan.sc.predict import model_name

    assert model_name("GM=x/model.pt") == ("GM", Path("x/model.pt"))
    assert model_name("runs/K562/model.pt") == ("K562", Path("runs/K562/model.pt"))
    assert model_name("runs/HepG2.model.pt") == ("HepG2", Path("runs/HepG2.model.pt"))
    with pytest.raises(ScfanError, match="--model '=x.pt': expected NAME=model.pt or model.pt"):
        model_name("=x.pt")
