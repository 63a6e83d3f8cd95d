"""The advisories that could reach imdb-deploy (README "Security"), each as a hostile input every command refuses.

CVE-2026-4372 / GHSA-29pf-2h5f-8g72: a config.json whose attention implementation names a Hub kernel makes
transformers < 5.3 fetch and run that kernel's code, whatever trust_remote_code says. Every command that opens
a model folder must refuse such a folder with a one-line message before it loads anything or opens a socket.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from imdb_deploy.cli import cli
from imdb_deploy.errors import ModelLoadError
from imdb_deploy.folders import refuse_custom_code

ROOT = Path(__file__).resolve().parents[1]
KERNEL = "kernels-community/flash-attn"


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: the refusal must come before network access."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def hostile_copy(source: Path, tmp_path: Path, key: str = "_attn_implementation_internal", value=KERNEL) -> Path:
    folder = tmp_path / f"hostile-{source.name}"
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def command_lines(kind: str, folder: Path, data: Path, tmp_path: Path) -> list[str]:
    review = tmp_path / "review.txt"
    review.write_text("a good movie\n")
    return {
        "predict": ["predict", str(review), "-m", str(folder), "-o", str(tmp_path / "out.jsonl")],
        "serve": ["serve", str(folder), "--port", "0"],
        "verify": ["verify", str(folder), "--data", str(data)],
        "export": ["export", str(folder), "-o", str(tmp_path / "onnx"), "--no-verify"],
        "evaluate": ["evaluate", str(folder), "--data", str(data)],
        "train": ["train", "--model", str(folder), "--data", str(data), "-o", str(tmp_path / "model"), "-q"],
        "convert-bert": ["convert-bert", str(folder), "-o", str(tmp_path / "converted")],
    }[kind]


ONNX_COMMANDS = ("predict", "serve", "verify")
MODEL_COMMANDS = ("export", "evaluate", "train", "convert-bert")


CASES = [(command, "_attn_implementation_internal") for command in ONNX_COMMANDS + MODEL_COMMANDS] + [
    ("predict", "attn_implementation"),
    ("export", "_attn_implementation"),
]


@pytest.mark.parametrize(("command", "key"), CASES)
def test_every_command_refuses_a_config_that_names_a_hub_kernel(
    command, key, tiny_onnx_dir, tiny_classifier_dir, toy_data_dir, tmp_path, no_network, monkeypatch
):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("serve started before checking the folder"))
    source = tiny_onnx_dir if command in ONNX_COMMANDS else tiny_classifier_dir
    folder = hostile_copy(source, tmp_path, key)
    result = CliRunner().invoke(cli, command_lines(command, folder, toy_data_dir, tmp_path))
    assert result.exit_code == 1, result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert f"{folder / 'config.json'}: {key} is '{KERNEL}'" in message
    assert "attention kernel" in message and 'set it to "sdpa"' in message
    assert not (tmp_path / "onnx").exists() and not (tmp_path / "model").exists()


@pytest.mark.parametrize(
    "config",
    [
        {"text_config": {"_attn_implementation_internal": "someone/kernel"}},  # nested sub-config
        {"attn_implementation": {"text_config": "org/repo:function"}},  # per-sub-model mapping
        {"attn_implementation": ["eager"]},  # not a name at all
    ],
)
def test_nested_and_odd_attention_requests_are_refused(config, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "distilbert", **config}))
    with pytest.raises(ModelLoadError, match="attention kernel"):
        refuse_custom_code(tmp_path)


@pytest.mark.parametrize("value", [None, "eager", "sdpa", "flash_attention_2"])
def test_built_in_attention_is_accepted(value, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "distilbert", "attn_implementation": value}))
    refuse_custom_code(tmp_path)


def test_a_long_hostile_value_is_quoted_short(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"attn_implementation": "x/" + "y" * 100_000}))
    with pytest.raises(ModelLoadError) as caught:
        refuse_custom_code(tmp_path)
    assert len(str(caught.value)) < 600


def test_no_code_of_ours_trusts_remote_code():
    """trust_remote_code is only ever passed as False, and every from_pretrained of a model says which attention."""
    sources = [p for p in (ROOT / "imdb_deploy").rglob("*.py")] + list((ROOT / "scripts").glob("*.py"))
    for path in sources:
        text = path.read_text()
        assert not re.search(r"trust_remote_code\s*=\s*(?!False)", text), path
        for call in re.finditer(r"(\w+)\.from_pretrained\(", text):
            if call.group(1).endswith(("Model", "ForSequenceClassification")):
                assert "attn_implementation" in text[call.end() : call.end() + 400], f"{path}: {call.group(0)}"


@pytest.mark.parametrize(
    "templates",
    [
        [{"name": "../../outside", "template": "{{ x }}"}],
        {"sub/dir": "{{ x }}"},
        [{"name": "..\\evil", "template": ""}],
    ],
)
def test_a_chat_template_name_that_is_a_path_is_refused(templates, tiny_classifier_dir, tmp_path, no_network):
    """CVE-2026-9856: transformers < 5.10 writes a named template to a path built from its name on save."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_classifier_dir, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": templates}))
    result = CliRunner().invoke(cli, ["export", str(folder), "-o", str(tmp_path / "onnx"), "--no-verify"])
    assert result.exit_code == 1
    assert "chat_template names a template" in result.stderr and "CVE-2026-9856" in result.stderr
    assert not (tmp_path / "onnx").exists() and not (tmp_path.parent / "outside").exists()


def test_plain_chat_template_names_load(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": [{"name": "default", "template": ""}]})
    )
    refuse_custom_code(tmp_path)
