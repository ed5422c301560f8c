#!/usr/bin/env python3
"""Write docs/parameters.md from nextflow_schema.json, so the parameter reference has one source.

Usage: ``python scripts/schema_to_docs.py`` (rewrites docs/parameters.md) or ``--check`` (exit 1 when the file is
stale; tests/python/core/test_docs.py does the same). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "nextflow_schema.json"
OUTPUT = REPO / "docs" / "parameters.md"

HEADER = """\
# scfan-nf: Parameters

<!-- Generated from nextflow_schema.json by scripts/schema_to_docs.py: edit the schema, then run
     `.venv/bin/python scripts/schema_to_docs.py`. tests/python/core/test_docs.py fails when this file is stale. -->

Every parameter of the pipeline, grouped as in `nextflow_schema.json`. Give them on the command line
(`--name value`) or in a `-params-file`; the first step, `VALIDATE_PARAMS`, checks them against the schema before
anything is computed. How to run the pipeline: [usage.md](usage.md).
"""


def _cell(text: str) -> str:
    """Make ``text`` safe inside one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _type(prop: dict) -> str:
    types = prop.get("type", "")
    types = [types] if isinstance(types, str) else list(types)
    shown = [t for t in types if t != "null"]
    text = " or ".join(shown) if shown else "any"
    return text + (" (optional)" if "null" in types else "")


def _default(prop: dict) -> str:
    if "default" not in prop:
        return ""
    return f"`{json.dumps(prop['default'])}`"


def _allowed(prop: dict) -> str:
    parts = []
    if "enum" in prop:
        parts.append(", ".join(f"`{v}`" for v in prop["enum"] if v is not None))
    bounds = [("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")]
    parts.extend(f"{sign} {prop[key]}" for key, sign in bounds if key in prop)
    if "pattern" in prop:
        parts.append(f"matches `{prop['pattern']}`")
    if prop.get("exists"):
        parts.append("must exist")
    return "; ".join(parts)


def render(schema: dict) -> str:
    """Return the Markdown reference of ``schema``: one section per group of ``$defs``, in ``allOf`` order."""
    defs = schema.get("$defs", {})
    order = [ref["$ref"].rsplit("/", 1)[-1] for ref in schema.get("allOf", []) if "$ref" in ref]
    order += [name for name in defs if name not in order]
    lines = [HEADER]
    for group_name in order:
        group = defs[group_name]
        required = set(group.get("required", []))
        lines.append(f"## {group.get('title', group_name)}\n")
        if group.get("description"):
            lines.append(_cell(group["description"]) + "\n")
        lines.append("| parameter | type | default | allowed | description |")
        lines.append("|---|---|---|---|---|")
        for name, prop in group.get("properties", {}).items():
            description = _cell(prop.get("description", ""))
            if prop.get("help_text"):
                description += " " + _cell(prop["help_text"])
            if name in required:
                description = "**Required.** " + description
            flag = f"`--{name}`" + (" (hidden)" if prop.get("hidden") else "")
            lines.append(f"| {flag} | {_type(prop)} | {_cell(_default(prop))} | {_cell(_allowed(prop))} | "
                         f"{description} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/parameters.md is not up to date")
    args = parser.parse_args(argv)
    text = render(json.loads(SCHEMA.read_text()))
    if args.check:
        if not OUTPUT.is_file() or OUTPUT.read_text() != text:
            sys.stderr.write(f"{OUTPUT} is stale: run python scripts/schema_to_docs.py\n")
            return 1
        return 0
    tmp = OUTPUT.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(OUTPUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
