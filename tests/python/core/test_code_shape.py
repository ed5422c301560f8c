"""The package's shape: no function over 80 lines, and no module over 400 lines without its reason at the top.

Every module under ``python/scfan`` is parsed with :mod:`ast`. A function's (or method's) length is
``end_lineno - lineno + 1``: from its ``def`` line to its last line, docstring included. A module over the limit must
say why in its docstring, on a line starting with ``Why this module is long:``.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "python" / "scfan"

MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 400
LONG_MODULE_MARKER = "Why this module is long:"


def shape_problems(source: str, name: str) -> list[str]:
    """Return one line per function over the limit and per long module without a stated reason.

    Parameters
    ----------
    source
        The module's text.
    name
        The module's file name, used in the messages.
    """
    tree = ast.parse(source, filename=name)
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                problems.append(f"{name}:{node.name}:{length} lines (limit {MAX_FUNCTION_LINES})")
    n_lines = len(source.splitlines())
    if n_lines > MAX_MODULE_LINES:
        docstring = ast.get_docstring(tree) or ""
        if not any(line.strip().startswith(LONG_MODULE_MARKER) for line in docstring.splitlines()):
            problems.append(f"{name}:<module>:{n_lines} lines (limit {MAX_MODULE_LINES}) and no "
                            f"{LONG_MODULE_MARKER!r} line in its docstring")
    return problems


def test_checker_catches_a_long_function_and_a_long_module() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    long_function = f'"""Short."""\n\n\ndef too_long():\n{body}\n    return 0\n'
    assert shape_problems(long_function, "synthetic.py") == [
        f"synthetic.py:too_long:{MAX_FUNCTION_LINES + 2} lines (limit {MAX_FUNCTION_LINES})"]

    padding = "\n" * MAX_MODULE_LINES
    long_module = f'"""Short."""\n{padding}x = 1\n'
    assert len(shape_problems(long_module, "long.py")) == 1
    stated = f'"""Short.\n\n{LONG_MODULE_MARKER} one job, many small steps.\n"""\n{padding}x = 1\n'
    assert shape_problems(stated, "long.py") == []


def test_checker_passes_a_short_method() -> None:
    source = textwrap.dedent('''
        class A:
            def short(self):
                """Doc."""
                return 1
    ''')
    assert shape_problems(source, "short.py") == []


def test_package_functions_and_modules_are_short_or_explained() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        problems += shape_problems(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert not problems, "\n".join(problems)
