"""The package's import graph: no cycle between scfan modules, and no import from a lower layer up.

Every ``import`` of every module is read with :mod:`ast`, at module level and inside functions (a function-level
import still ties the two modules together; it only hides the tie from a reader of the top of the file), and inside
``if TYPE_CHECKING:`` blocks (an annotation that names an upper layer is a dependency on it).

Layers, bottom to top; a module may import its own layer and the layers below it, never one above:

=============  ===========================================================================================
foundation     errors, file and text I/O, logging, parameters, genome, intervals, tracks, Tn5, tabix,
               threads, memory, versions, samplesheets, ``NAME=path`` arguments: used by every step, and
               knowing none of them
nets           :mod:`scfan.inference`: the networks' runtime (devices, batched prediction, the fast layouts
               and their path checks), torch + numpy only, so bulk and per-cell inference share it
bulk           windows, inputs, the model and its file, training, evaluation, bulk prediction: builds on
               the runtime and on nothing per-cell
sc             single-cell preparation, per-cell inference and analysis: runs the bulk models on cells
inputs         :mod:`scfan.inputs`, the cross-input check: reads bulk and single-cell inputs alike
interpret      why a TF is called, in bulk and per cluster: reads the bulk models and the per-cell outputs
report         the HTML report: reads every step's files (through the foundation only)
simulate       synthetic data sets for tests and benchmarks, from the foundation alone; no library step may
               depend on the simulator, so it sits above all of them
cli            the ``scfan`` commands: thin wrappers over every layer
=============  ===========================================================================================
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "python" / "scfan"

#: (layer, modules: exact names, or packages written ``"scfan.bulk."`` for everything under them), bottom to top;
#: the reason for each is in the module docstring
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("scfan", "scfan.errors", "scfan._io", "scfan.args", "scfan.logging_utils", "scfan.params",
                    "scfan.genome", "scfan.intervals", "scfan.tracks", "scfan.tn5", "scfan.tabix", "scfan.threads",
                    "scfan.memory", "scfan.versions", "scfan.samplesheet")),
    ("nets", ("scfan.inference",)),
    ("bulk", ("scfan.bulk", "scfan.bulk.")),
    ("sc", ("scfan.sc", "scfan.sc.")),
    ("inputs", ("scfan.inputs",)),
    ("interpret", ("scfan.interpret", "scfan.interpret.")),
    ("report", ("scfan.report", "scfan.report.")),
    ("simulate", ("scfan.simulate", "scfan.simulate.")),
    ("cli", ("scfan.cli", "scfan.cli.", "scfan.__main__")),
)


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """``…/scfan/bulk/model.py`` → ``scfan.bulk.model``; a package's ``__init__.py`` → the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The scfan modules that module ``name`` imports anywhere in ``source`` (``from scfan.x import y`` counts as
    ``scfan.x.y`` when that is a module, else as ``scfan.x``)."""
    out: set[str] = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # ``import scfan.x.y`` of a name that is not a module
                target = target.rpartition(".")[0]
            if target.split(".")[0] == "scfan" and target != name:
                out.add(target)
    return out


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Every module of the package → the package modules it imports."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    known = set(files)
    return {m: imported_modules(p.read_text(encoding="utf-8"), m, p.name == "__init__.py", known)
            for m, p in files.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle ``[a, b, …, a]`` per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, set(comp)) for comp in components]


def _cycle_in(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component (breadth-first)."""
    start = min(comp)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start] if v != start else [start, start]
                if w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle in component {sorted(comp)}")


def layer_of(module: str, layers=LAYERS) -> int:
    """Rank of ``module``'s layer (0 = bottom); a module in no layer is an error, so the table stays complete."""
    for rank, (_, members) in enumerate(layers):
        if any(module == m or (m.endswith(".") and module.startswith(m)) for m in members):
            return rank
    raise KeyError(f"{module} is in no layer of LAYERS; add it where it belongs")


def upward_imports(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    """``a (layer) -> b (higher layer)`` for every import from a lower layer up."""
    bad = []
    for a in sorted(graph):
        for b in sorted(graph[a]):
            ra, rb = layer_of(a, layers), layer_of(b, layers)
            if rb > ra:
                bad.append(f"{a} ({layers[ra][0]}) -> {b} ({layers[rb][0]})")
    return bad


# --- the package ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_every_module_is_in_a_layer(graph):
    for module in graph:
        layer_of(module)


def test_no_import_cycle(graph):
    cycles = find_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_import_from_a_lower_layer_up(graph):
    bad = upward_imports(graph)
    assert not bad, "imports from a lower layer up:\n" + "\n".join(bad)


def test_graph_sees_function_level_and_type_checking_imports(graph):
    """The reader finds the imports that only run inside a function or for type checkers."""
    assert "scfan.sc.fragments" in graph["scfan.inputs"]  # imported inside _fragments_chroms
    assert "scfan.errors" in graph["scfan.inference"]  # imported inside resolve_device


# --- the checks themselves can fail ---------------------------------------------------------------------------------


def test_checks_report_a_cycle_and_an_upward_import(tmp_path):
    """A synthetic package: ``low.a`` imports ``high`` (upward), and ``high`` → ``low.b`` → ``high`` is a cycle
    hidden in a function-level import."""
    pkg = tmp_path / "scfan"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("from scfan.high import thing\n")
    (pkg / "low" / "b.py").write_text("def f():\n    from scfan import high\n    return high\n")
    (pkg / "high.py").write_text("from .low.b import f\nthing = 1\n")
    g = import_graph(pkg)
    assert g["scfan.low.a"] == {"scfan.high"}
    assert g["scfan.low.b"] == {"scfan.high"}
    assert g["scfan.high"] == {"scfan.low.b"}
    assert find_cycles(g) == [["scfan.high", "scfan.low.b", "scfan.high"]]
    layers = (("low", ("scfan", "scfan.low", "scfan.low.")), ("high", ("scfan.high",)))
    assert upward_imports(g, layers) == ["scfan.low.a (low) -> scfan.high (high)",
                                         "scfan.low.b (low) -> scfan.high (high)"]
    with pytest.raises(KeyError, match="scfan.high is in no layer"):
        upward_imports(g, layers[:1])


def test_acyclic_layered_graph_passes():
    g = {"scfan.a": {"scfan.b"}, "scfan.b": {"scfan.c"}, "scfan.c": set()}
    layers = (("bottom", ("scfan.c",)), ("middle", ("scfan.b",)), ("top", ("scfan.a",)))
    assert find_cycles(g) == []
    assert upward_imports(g, layers) == []
