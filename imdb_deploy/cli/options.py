"""What every command shares: options whose defaults come from the stage configs, the error wrapper that
turns package errors into one line and exit 1, and stderr/stdout helpers. No ML and no stage here."""

from __future__ import annotations

import functools
import inspect
import os
import sys
from pathlib import Path

import click

from imdb_deploy.errors import ImdbDeployError
from imdb_deploy.fileio import json_text, output_error
from imdb_deploy.outputs import Inputs, Output


def default_of(owner, name: str):
    """The default that a stage's config dataclass (or Predictor) declares for `name`: each default is
    declared once, there, and the options below show it."""
    return inspect.signature(owner).parameters[name].default


def config_option(config, *decls: str, **attrs):
    """click.option whose default, shown in --help, is the one `config` declares for the same name."""
    long_flag = next(d for d in decls if d.startswith("--"))
    name = next((d for d in decls if not d.startswith("-")), long_flag[2:].split("/")[0].replace("-", "_"))
    return click.option(*decls, default=default_of(config, name), show_default=True, **attrs)


def config_flag(config, flag: str, help: str):
    """An on/off click flag whose default is the one `config` declares for the same name."""
    return click.option(flag, is_flag=True, default=default_of(config, flag[2:].replace("-", "_")), help=help)


def user_errors(func):
    """Turn package errors into click errors: a one-line message on stderr and exit code 1.

    A full disk or an unwritable place that a library reports as a plain OSError gets the same treatment
    (fileio.output_error words it); any other OSError is a bug to see in full.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ImdbDeployError as exc:
            raise click.ClickException(_one_line(str(exc))) from exc
        except BrokenPipeError as exc:
            _silence_stdout()  # else Python's exit flush reports the broken pipe a second time
            raise click.ClickException(
                "stdout was closed before all output was written (the reader of the pipe stopped early); "
                "write to a file with --output to keep every row"
            ) from exc
        except OSError as exc:
            error = output_error(exc, exc.filename or "the output")
            if error is None:
                raise
            raise click.ClickException(_one_line(str(error))) from exc

    return wrapper


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file descriptor (tests' captured streams)
        pass


def _one_line(message: str) -> str:
    """Messages are one line: a library's multi-line detail is folded onto it."""
    return " ".join(part.strip() for part in message.strip().splitlines() if part.strip())


def echo_err(message: str = "") -> None:
    """A line for people, on stderr."""
    click.echo(message, err=True)


def json_output(path: Path | None, inputs: Inputs) -> Output | None:
    """The file a command's JSON goes to (None: stdout), declared with what the command reads before any work."""
    return None if path is None else Output(path, inputs)


def emit_json(payload: dict, output: Output | None) -> None:
    """JSON to `output` (written complete or not at all, through the one output mechanism) or to stdout."""
    if output is None:
        click.echo(json_text(payload))
        return
    with output.writing() as tmp:
        tmp.write_text(json_text(payload) + "\n")
    echo_err(f"wrote {output.path}")


def sample_count(ctx, param, value: str) -> int | None:
    """--verify-samples: a count of reviews (at least 2) or "all"."""
    if value.strip().lower() == "all":
        return None
    try:
        count = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use a number of reviews or 'all'") from None
    if count < 2:
        raise click.BadParameter(f"{value!r}: use at least 2 reviews or 'all'")
    return count


def count_option(config, flag: str, name: str, field: str, help: str):
    """A review-count option (a number or 'all') whose default is `config`'s `field`."""
    default = default_of(config, field)
    return click.option(flag, name, default=default, show_default=True, type=str, callback=sample_count, help=help)


def gate_options(config, samples_field: str, exact_field: str):
    """Options shared by export and verify: the gate's data, sample and thresholds (defaults from `config`)."""
    options = [
        config_option(config, "--data", help="Labelled reviews for the gate (see train)."),
        config_option(config, "--split", help="Split of --data the gate scores."),
        count_option(
            config,
            "--verify-samples",
            "samples",
            samples_field,
            "Stratified sample of the split for the gate, or 'all'.",
        ),
        count_option(
            config,
            "--exact-samples",
            "exact_samples",
            exact_field,
            "Most of those reviews the fp32 "
            "graphs (fp32, optimized) are checked on, or 'all'; PyTorch and INT8 always get the whole sample.",
        ),
        click.option(
            "--threshold",
            "thresholds",
            multiple=True,
            metavar="VARIANT.FIELD=VALUE",
            help="Override a gate threshold (repeatable), e.g. int8.min_agreement=0.97. Fields: min_agreement, "
            "max_accuracy_drop, max_prob_diff, max_mean_prob_diff (fractions; 'none' turns the last two off).",
        ),
    ]

    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func

    return decorate
