"""The user documentation stays true: parameters.md matches the schema, the README stays short, links resolve.

docs/parameters.md is generated from nextflow_schema.json by scripts/schema_to_docs.py; a schema change without
regenerating it fails here. Every relative Markdown link of README.md, CONTRIBUTING.md, docs/*.md and the
measurement history in benchmarks/results/history/ must name a file that exists, and the docs index lists every page.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCS = REPO / "docs"
LINKED_FILES = sorted([REPO / "README.md", REPO / "CONTRIBUTING.md", *DOCS.glob("*.md"),
                       *(REPO / "benchmarks" / "results" / "history").glob("*.md")])
#: [text](target) with an optional "title"; images too. Fenced code blocks are removed before matching.
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
MAX_README_LINES = 150


def _schema_to_docs():
    spec = importlib.util.spec_from_file_location("schema_to_docs", REPO / "scripts" / "schema_to_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _relative_links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text())
    targets = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue  # http(s), mailto and in-page anchors
        targets.append(target.split("#", 1)[0])
    return targets


def test_parameters_md_is_generated_from_the_schema():
    module = _schema_to_docs()
    expected = module.render(json.loads((REPO / "nextflow_schema.json").read_text()))
    assert (DOCS / "parameters.md").read_text() == expected, (
        "docs/parameters.md is stale: run .venv/bin/python scripts/schema_to_docs.py")


def test_parameters_md_names_every_schema_parameter():
    schema = json.loads((REPO / "nextflow_schema.json").read_text())
    text = (DOCS / "parameters.md").read_text()
    names = [name for group in schema["$defs"].values() for name in group["properties"]]
    assert names
    missing = [name for name in names if f"`--{name}`" not in text]
    assert not missing, f"docs/parameters.md lacks {missing}"


def test_render_shows_type_default_and_enum():
    schema = {"$defs": {"g": {"title": "Group", "required": ["mode"], "properties": {
        "mode": {"type": "string", "default": "exact", "enum": ["exact", "fast"], "description": "A | B"},
        "n": {"type": ["integer", "null"], "minimum": 1, "description": "Count."}}}},
        "allOf": [{"$ref": "#/$defs/g"}]}
    text = _schema_to_docs().render(schema)
    assert "## Group" in text
    assert '| `--mode` | string | `"exact"` | `exact`, `fast` | **Required.** A \\| B |' in text
    assert "| `--n` | integer (optional) |  | ≥ 1 | Count. |" in text


def test_readme_is_short():
    n_lines = len((REPO / "README.md").read_text().splitlines())
    assert n_lines <= MAX_README_LINES, f"README.md has {n_lines} lines; keep it under {MAX_README_LINES}"


@pytest.mark.parametrize("path", LINKED_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path):
    broken = [t for t in _relative_links(path) if t and not (path.parent / t).exists()]
    assert not broken, f"{path.relative_to(REPO)}: links to missing files {broken}"


def test_link_parser_skips_urls_anchors_and_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](usage.md#x) [b](https://x.org) [c](#here) ![d](img/e.png \"t\")\n```\n[f](gone.md)\n```\n")
    assert _relative_links(page) == ["usage.md", "img/e.png"]


def test_docs_index_lists_every_page():
    listed = {(DOCS / t).resolve() for t in _relative_links(DOCS / "README.md")}
    pages = sorted(p.resolve() for p in DOCS.glob("*.md") if p.name != "README.md")
    missing = [p.name for p in pages if p not in listed]
    assert not missing, f"docs/README.md does not link {missing}"
    assert (REPO / "CONTRIBUTING.md").resolve() in listed
