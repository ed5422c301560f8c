"""The ``scfan`` command line: one thin command per pipeline step (logic lives in the library)."""

from scfan.cli.main import app, main

__all__ = ["app", "main"]
