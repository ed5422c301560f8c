"""``run_cli``: the scfan CLI run in the test's process, shared by every test folder (on sys.path through
tests/conftest.py)."""

from __future__ import annotations

import sys


def run_cli(monkeypatch, *args: str) -> int:
    """Run ``scfan ARGS`` in this process (like the console script); returns the exit code."""
    from scfan.cli import main

    monkeypatch.setattr(sys, "argv", ["scfan", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
