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


def threads_option() -> typer.models.OptionInfo:
    """``--threads``: the one thread count of every library that computes (:func:`scfan.threads.use_threads`)."""
    return typer.Option(None, "--threads", help="CPU threads for torch, BLAS, numba and polars; default: "
                        "the CPUs this process may use (its affinity set), no cap. The pipeline passes task.cpus.")
