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
    schema: Path = typer.Option(Path("nextflow_schema.json"), "--schema", help="The schema to check against."),
    base_dir: Path = typer.Option(None, "--base-dir", help="Resolve relative input paths against this folder."),
) -> None:
    """Check a params file against the pipeline's JSON schema; list every violation."""
    from scfan.params import check_params_file

    p = check_params_file(params, schema, base_dir=base_dir)
    log.info("params OK (%d parameters)", len(p))


@app.command("check-inputs")
def check_inputs_cmd(
    genome: Path = typer.Option(..., help="Genome FASTA (with .fai)."),
    mappability: Path = typer.Option(..., help="Mappability bigWig."),
    bulk_samplesheet: Path = typer.Option(..., help="Bulk samplesheet CSV."),
    sc_samplesheet: Path = typer.Option(None, help="Single-cell samplesheet CSV."),
    blacklist: Path = typer.Option(None, help="Blacklist BED."),
    outdir: Path = typer.Option(..., help="Where the checked samplesheets (absolute paths) are written."),
) -> None:
    """Check every input (samplesheets, files, chromosome names) before any work starts."""
    from scfan.inputs import CheckInputsConfig, check_inputs

    cfg = CheckInputsConfig(
        genome=str(genome), mappability=str(mappability), bulk_samplesheet=str(bulk_samplesheet),
        sc_samplesheet=str(sc_samplesheet) if sc_samplesheet else None,
        blacklist=str(blacklist) if blacklist else None,
    )
    check_inputs(cfg, outdir)


@app.command("versions")
def versions_cmd(
    process: str = typer.Option("SCFAN", "--process", help="Process name used as the YAML key."),
) -> None:
    """Print the versions of scfan and its key libraries as a versions.yml block (for Nextflow)."""
    from scfan.versions import versions_yaml

    typer.echo(versions_yaml(process), nl=False)


def _register_groups() -> None:
    # Imported here so that each stage owns its own module.
    import importlib

    for mod_name in ("scfan.cli.simulate", "scfan.cli.bulk", "scfan.cli.sc", "scfan.cli.report"):
        importlib.import_module(mod_name).register(app)


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
