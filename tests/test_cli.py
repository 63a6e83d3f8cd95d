"""The click layer: every command has help with an example, and every default is its config's own."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from imdb_deploy.bench.config import BenchConfig
from imdb_deploy.cli import cli
from imdb_deploy.demo.config import DemoConfig
from imdb_deploy.engines.config import PredictFileConfig
from imdb_deploy.export.config import ExportConfig, VerifyConfig
from imdb_deploy.serve.config import ServeConfig
from imdb_deploy.training.config import EvaluateConfig, TrainConfig

# The config dataclass (or class) whose fields each command's options fill.
CONFIGS = {
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "export": ExportConfig,
    "verify": VerifyConfig,
    "predict": PredictFileConfig,
    "bench": BenchConfig,
    "demo": DemoConfig,
    "serve": ServeConfig,
}


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    # The example sits in a \b block: click keeps its line whole instead of reflowing it into the paragraph.
    assert re.search(rf"^  Examples?:\n    imdb-deploy {command}\b.*$", result.output, re.M), result.output
    assert "../shared" not in result.output
    assert CliRunner().invoke(cli, [command, "-h"]).output == result.output


def test_top_level_help_lists_every_command():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in cli.commands:
        assert command in result.output


@pytest.mark.parametrize("command", sorted(CONFIGS))
def test_option_defaults_are_the_config_defaults(command):
    import dataclasses

    fields = {f.name: f.default for f in dataclasses.fields(CONFIGS[command])}
    checked = 0
    for param in cli.commands[command].params:
        if param.name in fields and fields[param.name] is not None and param.default is not None:
            default = param.default
            if isinstance(fields[param.name], int) and isinstance(default, str):  # counts that also take 'all'
                default = int(default)
            assert default == fields[param.name], f"--{param.name}: {param.default!r} vs {fields[param.name]!r}"
            checked += 1
    assert checked >= 1


def test_the_cli_loads_without_the_serve_extra():
    """serve's defaults come from serve_config, which needs no FastAPI: every other command works without it."""
    import subprocess
    import sys

    servers = ("fastapi", "uvicorn", "starlette")
    code = f"import sys, imdb_deploy.cli; print(sorted(m for m in {servers!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
