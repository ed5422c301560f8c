"""The nf-core/modules contract of every modules/local/*/main.nf, checked statically (no Nextflow run).

Each process has a `when:` guard on task.ext.when, a `stub:` that writes versions.yml, task.ext.prefix where it
has a meta map, reads no `params.*` (arguments come from conf/modules.config), names every output with `emit:`,
declares its image through task.ext.container (set from --container in conf/modules.config),
has a meta.yml beside it whose inputs and outputs are those of the process, in order, and passes
`--threads ${task.cpus}` to every command that computes with torch/BLAS/numba/polars (issue 34: a task uses exactly
the cores it was allocated).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
MODULES = sorted((REPO / "modules" / "local").glob("*/main.nf"))

SECTION = re.compile(r"^\s*(input|output|when|script|shell|exec|stub):\s*$", re.MULTILINE)
WHEN_GUARD = "task.ext.when == null || task.ext.when"
PREFIX = 'prefix = task.ext.prefix ?: "${meta.id}"'
CONTAINER = "container \"${ task.ext.container ?: '' }\""
THREADS = "--threads ${task.cpus}"
#: The commands that compute with torch, BLAS, numba or polars and take --threads (scfan.threads.use_threads).
THREADED_COMMAND = re.compile(r"^\s*scfan\s+(bulk\s+[\w-]+|simulate|sc\s+(?:predict|tracks|ingest|merge|neighbors|"
                              r"cluster|chromvar))(?![\w-])", re.MULTILINE)


def _sections(text: str) -> dict[str, str]:
    """The process body split at its section labels (`input:`, `output:`, ... `stub:`)."""
    parts = SECTION.split(text)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _interpolations(match: re.Match) -> str:
    return " ".join(re.findall(r"\$\{[^}]*\}|\$[A-Za-z_][\w.]*", match.group(1)))


def _code(text: str) -> str:
    """Groovy code only: comments dropped, strings reduced to their ${...} interpolations ('...' to nothing)."""
    text = re.sub(r'"""(.*?)"""', _interpolations, text, flags=re.DOTALL)
    text = re.sub(r'"([^"\n]*)"', _interpolations, text)
    text = re.sub(r"'[^'\n]*'", "''", text)
    return re.sub(r"//[^\n]*", "", text)


def input_names(section: str) -> list[str]:
    names = []
    for line in _code(section).splitlines():
        names += re.findall(r"\b(?:val|path|env|file)\s*\(?\s*(\w+)", line)
    return names


def output_names(section: str) -> list[str]:
    lines = [line for line in _code(section).splitlines() if line.strip()]
    return [m.group(1) if (m := re.search(r"\bemit:\s*(\w+)", line)) else f"<no emit: {line.strip()}>"
            for line in lines]


def threaded_commands(script: str) -> list[tuple[str, str]]:
    """``(command name, whole command)`` of each computing ``scfan`` command of a script, its continued lines joined."""
    lines = script.splitlines()
    found = []
    for m in THREADED_COMMAND.finditer(script):
        i = script.count("\n", 0, m.start())
        command = [lines[i]]
        while command[-1].rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            command.append(lines[i])
        found.append((" ".join(m.group(1).split()), " ".join(command)))
    return found


def _meta_names(entries: list | None) -> list[str]:
    """Names of a meta.yml input/output list, nf-core's nested tuple lists flattened."""
    names = []
    for entry in entries or []:
        if isinstance(entry, list):
            names += _meta_names(entry)
        else:
            names += list(entry)
    return names


def contract_problems(text: str, meta: dict | None) -> list[str]:
    """Every way a module's main.nf (and its parsed meta.yml, None when absent) breaks the contract."""
    problems = []
    sections = _sections(text)
    for name in ("input", "output", "script"):
        if name not in sections:
            problems.append(f"no {name}: section")
    if sections.get("when", "").strip() != WHEN_GUARD:
        problems.append(f"when: must be `{WHEN_GUARD}`")
    stub = sections.get("stub")
    if stub is None:
        problems.append("no stub: section")
    elif "versions.yml" not in stub:
        problems.append("stub: writes no versions.yml")
    if not re.search(r"^\s*" + re.escape(CONTAINER), text, re.MULTILINE):
        problems.append(f"declares no image: needs `{CONTAINER}` (a container profile would run it on the host)")
    reads = sorted(set(re.findall(r"\bparams\.\w+", _code(text))))
    if reads:
        problems.append(f"reads {', '.join(reads)} (put it in conf/modules.config ext.args)")
    inputs = input_names(sections.get("input", ""))
    outputs = output_names(sections.get("output", ""))
    problems += [f"output without emit: {o[len('<no emit: '):-1]}" for o in outputs if o.startswith("<no emit")]
    if "meta" in inputs:
        if PREFIX not in sections.get("script", ""):
            problems.append(f"script: lacks `{PREFIX}`")
        if "${prefix}" in sections.get("output", "") and PREFIX not in (stub or ""):
            problems.append(f"stub: lacks `{PREFIX}` that its outputs use")
    for name, command in threaded_commands(sections.get("script", "")):
        if THREADS not in command:
            problems.append(f"`scfan {name}` lacks `{THREADS}` (torch/BLAS/numba/polars would use every core)")
    if meta is None:
        problems.append("no meta.yml")
    else:
        if _meta_names(meta.get("input")) != inputs:
            problems.append(f"meta.yml input {_meta_names(meta.get('input'))} != main.nf {inputs}")
        if _meta_names(meta.get("output")) != outputs:
            problems.append(f"meta.yml output {_meta_names(meta.get('output'))} != main.nf {outputs}")
    return problems


@pytest.mark.parametrize("main_nf", MODULES, ids=[p.parent.name for p in MODULES])
def test_module_follows_the_contract(main_nf):
    meta_yml = main_nf.with_name("meta.yml")
    meta = yaml.safe_load(meta_yml.read_text()) if meta_yml.exists() else None
    assert contract_problems(main_nf.read_text(), meta) == []
    assert meta["name"] == main_nf.parent.name
    assert re.search(r"^process\s+\w+\s*\{", main_nf.read_text(), re.MULTILINE)


def test_every_module_is_checked():
    assert len(MODULES) >= 15


def test_every_computing_module_is_checked_for_threads():
    threaded = {p.parent.name for p in MODULES if threaded_commands(_sections(p.read_text()).get("script", ""))}
    assert {"bulk_prepare", "bulk_train", "bulk_evaluate", "simulate", "sc_predict", "sc_tracks", "sc_ingest",
            "sc_merge", "sc_neighbors", "sc_cluster", "chromvar_baseline"} <= threaded


GOOD = '''
process GOOD {
    tag "${meta.id}"
    container "${ task.ext.container ?: '' }"

    input:
    tuple val(meta), path(reads, stageAs: 'in/*')   // a comment naming params.nothing is not a read
    path fasta

    output:
    tuple val(meta), path("${prefix}.out"), emit: out
    path "versions.yml"                   , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    tool ${args} ${reads} ${fasta} > ${prefix}.out
    cp params_input.json params.json
    tool --version > versions.yml
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.out versions.yml
    """
}
'''
GOOD_META = {"name": "good", "input": [[{"meta": {}}, {"reads": {}}], {"fasta": {}}],
             "output": [{"out": {}}, {"versions": {}}]}


def test_a_module_that_keeps_the_contract_passes():
    assert contract_problems(GOOD, GOOD_META) == []
    threaded = GOOD.replace("tool ${args}", "scfan bulk evaluate \\\\\n        --threads ${task.cpus} \\\\\n"
                            "        ${args}\n    tool")
    assert threaded_commands(threaded)[0][0] == "bulk evaluate"
    assert contract_problems(threaded, GOOD_META) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda t: t.replace("task.ext.when == null || task.ext.when", "true"), "when: must be"),
        (lambda t: t[: t.index("    stub:")] + "}\n", "no stub: section"),
        (lambda t: t.replace("touch ${prefix}.out versions.yml", "touch ${prefix}.out"), "writes no versions.yml"),
        (lambda t: t.replace("tool ${args}", "tool --k ${params.knn}"), "reads params.knn"),
        (lambda t: t.replace("    def args", "    def device = params.gpu ? 'cuda' : 'auto'\n    def args"),
         "reads params.gpu"),
        (lambda t: t.replace(', emit: out', ''), "output without emit"),
        (lambda t: t.replace("    container \"${ task.ext.container ?: '' }\"\n", ""), "declares no image"),
        (lambda t: t.replace("task.ext.container ?: ''", "'ubuntu:22.04'"), "declares no image"),
        (lambda t: t.replace('    prefix = task.ext.prefix ?: "${meta.id}"\n    """\n    tool', '    """\n    tool'),
         "script: lacks"),
        (lambda t: t.replace("    path fasta\n", "    path fasta\n    path extra\n"), "meta.yml input"),
        (lambda t: t.replace("emit: versions", "emit: version_info"), "meta.yml output"),
        (lambda t: t.replace("tool ${args}", "scfan bulk evaluate \\\\\n        ${args} \\\\\n"
                             "        --outdir o\n    tool"),
         "`scfan bulk evaluate` lacks `--threads ${task.cpus}`"),
        (lambda t: t.replace("tool ${args}", "scfan simulate --threads 4 ${args}\n    tool"),
         "`scfan simulate` lacks"),
    ],
    ids=["when", "stub", "stub-versions", "params-in-script", "params-in-groovy", "emit", "container",
         "container-literal", "prefix", "meta-input",
         "meta-output", "threads-missing", "threads-not-task-cpus"],
)
def test_a_module_that_breaks_the_contract_is_named(change, expected):
    broken = change(GOOD)
    assert broken != GOOD
    problems = contract_problems(broken, GOOD_META)
    assert any(expected in p for p in problems), problems


def test_a_module_without_meta_yml_is_named():
    assert contract_problems(GOOD, None) == ["no meta.yml"]
