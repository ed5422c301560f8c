"""Check pipeline parameters against ``nextflow_schema.json`` (Nextflow's plugin validator is unavailable offline)."""

from __future__ import annotations

import difflib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator

from scfan._io import read_utf8
from scfan.errors import InputFileError, ParamsError

log = logging.getLogger(__name__)

# Keys Nextflow or nf-core tooling may add to ``params`` that are not user parameters.
IGNORED_PARAMS = frozenset({"genomes", "igenomes_base", "schema_ignore_params"})

_PATH_FORMATS = {"file-path", "directory-path", "path"}


@dataclass(frozen=True)
class ParamViolation:
    """One parameter that breaks the schema."""

    name: str
    value: Any
    expected: str

    def __str__(self) -> str:
        shown = "(missing)" if self.value is _MISSING else json.dumps(self.value, default=str)
        return f"parameter '{self.name}': got {shown}; expected {self.expected}"


_MISSING = object()


def load_json(path: str | Path, what: str) -> Any:
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, f"{what} not found")
    try:
        return json.loads(read_utf8(p))
    except json.JSONDecodeError as exc:
        raise InputFileError(p, f"not valid JSON ({exc.msg})", line=exc.lineno) from exc


def _flat_properties(schema: dict) -> dict[str, dict]:
    props: dict[str, dict] = dict(schema.get("properties", {}))
    for group in schema.get("$defs", schema.get("definitions", {})).values():
        props.update(group.get("properties", {}))
    return props


def _required(schema: dict) -> set[str]:
    req = set(schema.get("required", []))
    for group in schema.get("$defs", schema.get("definitions", {})).values():
        req.update(group.get("required", []))
    return req


def _describe(spec: dict) -> str:
    """Human description of what a schema property accepts."""
    parts: list[str] = []
    if "enum" in spec:
        parts.append("one of " + ", ".join(json.dumps(v) for v in spec["enum"]))
    else:
        t = spec.get("type", "any value")
        parts.append(" or ".join(t) if isinstance(t, list) else t)
    if "minimum" in spec:
        parts.append(f">= {spec['minimum']}")
    if "exclusiveMinimum" in spec:
        parts.append(f"> {spec['exclusiveMinimum']}")
    if "maximum" in spec:
        parts.append(f"<= {spec['maximum']}")
    if "pattern" in spec:
        parts.append(f"matching /{spec['pattern']}/")
    if spec.get("format") in _PATH_FORMATS and spec.get("exists"):
        parts.append("an existing " + ("directory" if spec["format"] == "directory-path" else "file"))
    return " ".join(parts)


def _is_remote(value: str) -> bool:
    return "://" in value


def validate_params(params: dict[str, Any], schema: dict, *, base_dir: Path | None = None) -> list[ParamViolation]:
    """Return every violation of ``schema`` by ``params`` (empty list when valid).

    Checks unknown parameters, required parameters, JSON-schema types and ranges, and for
    ``format: file-path|directory-path`` with ``exists: true`` that local paths exist.
    """
    props = _flat_properties(schema)
    violations: list[ParamViolation] = []
    for name, value in params.items():
        if name in IGNORED_PARAMS or name in props:
            continue
        # Nextflow adds camelCase twins of kebab-case CLI options; accept those silently.
        if any(_camel(k) == name for k in props):
            continue
        near = difflib.get_close_matches(name, list(props), n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        violations.append(ParamViolation(name, value, f"a known parameter; this one is not in the schema{hint}"))
    for name in sorted(_required(schema)):
        if params.get(name) in (None, ""):
            violations.append(ParamViolation(name, _MISSING, f"a value (required): {_describe(props.get(name, {}))}"))
    violations += _conditional_violations(params, schema)
    for name, spec in props.items():
        if name not in params or params[name] is None:
            continue
        value = params[name]
        sub = {k: v for k, v in spec.items() if k not in {"format", "exists", "fa_icon", "help_text", "hidden"}}
        errors = list(Draft202012Validator(sub).iter_errors(value))
        if errors:
            violations.append(ParamViolation(name, value, _describe(spec)))
            continue
        if spec.get("format") in _PATH_FORMATS and spec.get("exists") and isinstance(value, str):
            if _is_remote(value):
                continue
            p = Path(value)
            if not p.is_absolute() and base_dir is not None:
                p = base_dir / p
            ok = p.is_dir() if spec["format"] == "directory-path" else p.exists()
            if not ok:
                violations.append(ParamViolation(name, value, _describe(spec) + f" (no such path: {p})"))
    return violations


def _conditional_rules(schema: dict) -> list[dict]:
    """``{if, then, description}`` rules of the top-level ``allOf`` and of each group's ``allOf``.

    nf-core's schema lint wants the top-level ``allOf`` to hold only ``$ref``s to the groups, so the
    conditional rules live in the ``allOf`` of the group they belong to; JSON Schema applies them to the
    whole parameter object either way.
    """
    rules = list(schema.get("allOf", []))
    for group in schema.get("$defs", schema.get("definitions", {})).values():
        rules += group.get("allOf", [])
    return rules


def _conditional_violations(params: dict[str, Any], schema: dict) -> list[ParamViolation]:
    """``allOf: [{if, then, description}]`` rules, e.g. inputs required unless simulating."""
    out = []
    for rule in _conditional_rules(schema):
        if "if" not in rule or "then" not in rule:
            continue
        if not Draft202012Validator(rule["if"]).is_valid(params):
            continue
        why = rule.get("description", "by a conditional rule of the schema")
        for name in rule["then"].get("required", []):
            if params.get(name) in (None, ""):
                out.append(ParamViolation(name, _MISSING, f"a value ({why})"))
    return out


def _camel(name: str) -> str:
    head, *rest = name.replace("-", "_").split("_")
    return head + "".join(w.capitalize() for w in rest)


def check_params_file(params_path: str | Path, schema_path: str | Path, base_dir: Path | None = None) -> dict:
    """Validate a params JSON file; raise ParamsError listing every violation."""
    schema = load_json(schema_path, "parameter schema")
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InputFileError(schema_path, f"not a valid JSON schema ({exc.message})") from exc
    params = load_json(params_path, "params file")
    if not isinstance(params, dict):
        raise InputFileError(params_path, "expected a JSON object of parameter names to values")
    violations = validate_params(params, schema, base_dir=base_dir)
    if violations:
        # One self-contained line per violation, so the first line alone already says what is wrong.
        raise ParamsError("\n".join(f"{params_path}: {v}" for v in violations))
    log.info("%s: %d parameters valid against %s", params_path, len(params), schema_path)
    return params
