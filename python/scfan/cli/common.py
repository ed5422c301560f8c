"""Shared pieces of the CLI: the typer app factory and the error boundary."""

from __future__ import annotations

import typer

CONTEXT = {"help_option_names": ["-h", "--help"]}


def make_app(help_text: str) -> typer.Typer:
    return typer.Typer(
        help=help_text,
        no_args_is_help=True,
        context_settings=CONTEXT,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
