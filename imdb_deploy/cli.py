"""Command line: parse options, call one stage function, print the result. No ML in here.

stdout carries data (predictions, JSON); stderr carries progress, tables and messages.
Exit codes: 0 ok, 1 a failure the user can act on, 2 bad usage.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from imdb_deploy import __version__
from imdb_deploy.errors import ImdbDeployError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def user_errors(func):
    """Turn package errors into click errors: a one-line message on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (ImdbDeployError, FileExistsError) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def echo_err(message: str = "") -> None:
    """A line for people, on stderr."""
    click.echo(message, err=True)


def emit_json(payload: dict, output: Path | None) -> None:
    """JSON to `output` (written atomically) or to stdout."""
    from imdb_deploy.fileio import write_json_atomic

    if output is None:
        click.echo(json.dumps(payload, indent=2))
    else:
        write_json_atomic(output, payload)
        echo_err(f"wrote {output}")


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="imdb-deploy")
def cli() -> None:
    """Fine-tune DistilBERT on IMDb, export it to ONNX with a parity gate, and predict fast."""


def main() -> None:
    cli(prog_name="imdb-deploy")


# --- train / evaluate -------------------------------------------------------------------------------------

# --- export / verify --------------------------------------------------------------------------------------

# --- predict ----------------------------------------------------------------------------------------------

# --- bench ------------------------------------------------------------------------------------------------

# --- demo -------------------------------------------------------------------------------------------------


if __name__ == "__main__":
    sys.exit(main())
