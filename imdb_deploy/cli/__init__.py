"""Command line: the click group and its entry point. One module per command or command group (train.py,
export.py, predict.py, serve.py, bench.py, demo.py), sharing options.py. No ML here: a command imports its stage
only inside its own function, so `imdb-deploy --help` loads no stage.

stdout carries data (predictions, JSON); stderr carries progress, tables and messages.
Exit codes: 0 ok, 1 a failure the user can act on, 2 bad usage.

May import every light `config` module and the leaves; stages only inside a command.
"""

from __future__ import annotations

import sys
import warnings

import click

from imdb_deploy.cli import bench, demo, export, predict, serve, train
from imdb_deploy.cli.options import echo_err
from imdb_deploy.errors import ISAMismatchWarning
from imdb_deploy.fileio import terminate_like_interrupt
from imdb_deploy.version import __version__

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
COMMANDS = (
    train.train,
    train.evaluate,
    train.distill,
    export.export,
    export.verify,
    predict.predict,
    serve.serve,
    bench.bench,
    demo.demo,
    demo.convert_bert,
)


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="imdb-deploy")
def cli() -> None:
    """Fine-tune DistilBERT on IMDb, export it to ONNX with a parity gate, and predict fast."""
    warnings.showwarning = _show_warning


for _command in COMMANDS:
    cli.add_command(_command)

_PLAIN_SHOWWARNING = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our own warnings (e.g. a folder measured on another CPU) are one line for people on stderr; others as usual."""
    if issubclass(category, ISAMismatchWarning):
        echo_err(f"warning: {message}")
    else:
        _PLAIN_SHOWWARNING(message, category, filename, lineno, file, line)


def main() -> None:
    """The `imdb-deploy` entry point."""
    terminate_like_interrupt()  # SIGTERM cleans up like Ctrl-C: no temporary file or folder stays behind
    cli(prog_name="imdb-deploy")


if __name__ == "__main__":
    sys.exit(main())
