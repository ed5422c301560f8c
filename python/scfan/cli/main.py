"""Top-level ``scfan`` app: global options, version, params validation, and the step groups."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from scfan import __version__
from scfan.cli.common import make_app
from scfan.errors import ScfanError
from scfan.logging_utils import setup_logging

log = logging.getLogger("scfan")

app = make_app("scFAN-nf: predict transcription-factor binding in single cells.")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"scfan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output (-vv for debug)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    setup_logging(-1 if quiet else verbose)


@app.command("validate-params")
def validate_params_cmd(
    params: Path = typer.Argument(..., help="Params JSON file (as written by the pipeline or -params-file)."),
    schema: Path = typer.Option(Path("nextflow_schema.json"), "--schema", help="nextflow_schema.json to check against."),
    base_dir: Path = typer.Option(None, "--base-dir", help="Resolve relative input paths against this folder."),
) -> None:
    """Check a params file against the pipeline's JSON schema; list every violation."""
    from scfan.params import check_params_file

    p = check_params_file(params, schema, base_dir=base_dir)
    log.info("params OK (%d parameters)", len(p))


def _register_groups() -> None:
    # Imported here so that `scfan --help` stays fast and each stage owns its own module.
    import importlib

    for mod_name in ("scfan.cli.simulate", "scfan.cli.bulk", "scfan.cli.sc", "scfan.cli.samplesheet"):
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name == mod_name:
                continue
            raise
        mod.register(app)


_register_groups()


def main() -> None:
    try:
        app()
    except ScfanError as exc:
        log.debug("error detail", exc_info=True)
        sys.stderr.write(f"scfan: error: {exc}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("scfan: interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
