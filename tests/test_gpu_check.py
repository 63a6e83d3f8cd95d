"""scripts/gpu_check.{sh,py}: the device check's logic and JSON, checked on a CPU with --smoke.

The timings themselves need the GPU machine; here the script runs its tiny profile end to end (through the
shell entry point, as the device call would) and its failure paths must still leave a complete JSON.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "gpu_check.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gpu_check = _load_script()


def _measure_shell(*args: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """Run scripts/gpu_check.sh as the device call would (a fresh process: accelerate's state is global)."""
    out = tmp_path / "gpu_check.json"
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    env.update(PYTHON=sys.executable, GPU_CHECK_WHEELS=str(tmp_path / "no-wheels"), GPU_CHECK_TIMEOUT="300")
    command = ["bash", str(REPO / "scripts" / "gpu_check.sh"), *args, "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    return done, json.loads(out.read_text())


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, toy_data_dir, tiny_model_dir):
    """The folder `prepare` writes, from the toy task and the tiny tokenizer."""
    folder = tmp_path_factory.mktemp("gpu-data") / "data"
    gpu_check.prepare(str(toy_data_dir), str(tiny_model_dir), folder, train_reviews=60, test_reviews=40, seed=0)
    return folder


@pytest.fixture(scope="module")
def smoke(prepared, tmp_path_factory):
    """One --smoke run through scripts/gpu_check.sh: (completed process, JSON)."""
    return _measure_shell("--smoke", "--data", str(prepared), tmp_path=tmp_path_factory.mktemp("smoke"))


def test_prepare_writes_the_folder_that_travels(prepared):
    import pandas as pd

    assert sorted(p.name for p in prepared.iterdir()) == ["manifest.json", "test.parquet", "tokenizer", "train.parquet"]
    train = pd.read_parquet(prepared / "train.parquet")
    assert list(train.columns) == ["text", "label"] and len(train) == 60
    assert sorted(train.label.unique()) == [0, 1]
    assert (prepared / "tokenizer" / "tokenizer.json").is_file()
    assert json.loads((prepared / "manifest.json").read_text())["reviews"] == {"train": 60, "test": 40}


def test_smoke_run_measures_every_section_and_writes_the_schema(smoke):
    done, report = smoke
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].endswith("gpu_check.json")
    assert report["schema"] == gpu_check.SCHEMA
    assert report["complete"] is True and report["status"] == "ok" and report["smoke"] is True
    assert report["date"] and report["environment"]["versions"]["torch"]
    assert report["environment"]["cuda_available"] is False
    assert any("no wheels" in note for note in report["notes"])  # the shell script's note reached the JSON
    assert {name: s["status"] for name, s in report["sections"].items()} == dict.fromkeys(gpu_check.SECTIONS, "ok")

    setup = report["sections"]["setup"]
    assert setup["train_reviews"] == gpu_check.SMOKE.train_reviews and setup["settings"]["max_length"] == 64

    train = report["sections"]["train_bf16"]
    assert train["mixed_precision"] == "bf16"
    assert train["warmup"]["steps"] == gpu_check.SMOKE.warmup_steps
    assert len(train["epochs"]) == 2
    for epoch in train["epochs"]:
        assert epoch["steps"] == train["steps_per_epoch"] and epoch["reviews"] == setup["train_reviews"]
        assert epoch["reviews_per_s"] > 0 and 0 <= epoch["padded_share"] < 1
    assert train["reviews_per_s"] > 0

    variants = report["sections"]["inference"]["variants"]
    assert list(variants) == ["fp32", "fp32_tf32", "bf16_autocast", "bf16_weights", "bf16_autocast_unsorted"]
    assert variants["fp32_tf32"]["status"] == "skipped" and "CUDA" in variants["fp32_tf32"]["reason"]
    assert variants["fp32"]["relative_error_vs_fp32"] == 0.0
    for name in ("bf16_autocast", "bf16_weights", "bf16_autocast_unsorted"):
        assert variants[name]["status"] == "ok" and variants[name]["reviews_per_s"] > 0
        assert 0 < variants[name]["relative_error_vs_fp32"] < 0.1  # bf16 differs from fp32, but not by much

    recipe = report["sections"]["full_recipe"]
    assert recipe["optimizer_steps"] == 2 * 1563
    assert recipe["train_seconds"] == pytest.approx(50_000 / train["reviews_per_s"], rel=1e-3)
    assert set(recipe["imdb_deploy_train_defaults"]) == {
        "train_seconds",
        "tokenize_seconds",
        "eval_seconds",
        "total_seconds",
    }
    assert "train bf16:" in done.stdout  # the closing table (gpu_check.sh sends stderr to its log and stdout)


def _measure_here(*args: str, tmp_path: Path) -> tuple[int, dict]:
    """Run `measure` in this process: for the paths that fail before any accelerate state or threads change."""
    out = tmp_path / "gpu_check.json"
    code = gpu_check.main(["measure", *args, "--out", str(out)])
    return code, json.loads(out.read_text())


def test_without_cuda_a_full_run_fails_with_a_complete_json(prepared, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, report = _measure_here("--data", str(prepared), tmp_path=tmp_path)
    assert code == 1
    assert report["complete"] is True and report["status"] == "failed"
    assert report["command"][1:3] == ["measure", "--data"]
    sections = report["sections"]
    assert sections["setup"]["status"] == "error" and "no CUDA device" in sections["setup"]["error"]
    assert "--smoke" in sections["setup"]["error"]
    for name in ("train_bf16", "inference", "full_recipe"):
        assert sections[name]["status"] == "skipped" and "needs section" in sections[name]["reason"]


def test_missing_data_folder_names_the_prepare_step(tmp_path):
    code, report = _measure_here("--smoke", "--data", str(tmp_path / "absent"), tmp_path=tmp_path)
    assert code == 1
    assert "gpu_check.sh prepare" in report["sections"]["setup"]["error"]


def test_a_failing_section_is_recorded_and_the_rest_still_run(tmp_path):
    report = gpu_check.Report(tmp_path / "r.json", smoke=True, argv=["x"])

    def broken(entry):
        entry["partial_figure"] = 1.5
        raise ValueError("bad value 7")

    report.run("setup", broken)
    report.run("train_bf16", lambda entry: gpu_check._require(report.data["sections"]["setup"], "setup"))
    report.run("inference", lambda entry: entry.update(reviews_per_s=10.0))
    on_disk = json.loads((tmp_path / "r.json").read_text())
    assert on_disk["complete"] is False  # written after each section, before finish
    assert report.finish() == 1
    saved = json.loads((tmp_path / "r.json").read_text())
    setup = saved["sections"]["setup"]
    assert setup["status"] == "error" and setup["error"] == "ValueError: bad value 7" and setup["partial_figure"] == 1.5
    assert "Traceback" in setup["traceback"]
    assert saved["sections"]["train_bf16"]["status"] == "skipped"
    assert saved["sections"]["inference"] == {"status": "ok", "reviews_per_s": 10.0, "seconds": pytest.approx(0, abs=1)}
    assert saved["sections"]["full_recipe"]["status"] == "pending"
    assert saved["status"] == "partial"


SIGTERM_RUN = """
import importlib.util, os, signal, sys, time
spec = importlib.util.spec_from_file_location("gpu_check", sys.argv[1])
gpu_check = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = gpu_check
spec.loader.exec_module(gpu_check)
report = gpu_check.Report(sys.argv[2], smoke=True, argv=["x"])

def long_section(entry):
    os.kill(os.getpid(), signal.SIGTERM)  # what `timeout` sends at the limit
    for _ in range(500):
        time.sleep(0.01)  # the handler runs here and raises
    entry["finished"] = True

signal.signal(signal.SIGTERM, report.on_term)
report.run("setup", long_section)
report.run("train_bf16", lambda entry: None)
sys.exit(report.finish())
"""


def test_sigterm_stops_the_running_section_and_skips_the_rest(tmp_path):
    """In a process of its own: a SIGTERM sent to the test runner itself, after the suite's earlier tests left
    native threads (onnxruntime, OpenVINO, Ray clients) in it, can crash it outright."""
    out = tmp_path / "r.json"
    done = subprocess.run([sys.executable, "-c", SIGTERM_RUN, str(SCRIPT), str(out)], capture_output=True, timeout=120)
    assert done.returncode == 1, done.stderr.decode()[-2000:]
    sections = json.loads(out.read_text())["sections"]
    assert sections["setup"]["status"] == "error" and "time limit" in sections["setup"]["error"]
    assert "finished" not in sections["setup"]
    assert sections["train_bf16"]["status"] == "skipped" and "SIGTERM" in sections["train_bf16"]["reason"]


def test_forward_flops_match_the_parameter_count():
    from transformers import DistilBertConfig

    config = DistilBertConfig()
    # 2 FLOPs per weight of the encoder's matrices per token, plus QK^T and AV (4 * width^2 * dim per layer)
    dense_weights = config.n_layers * (4 * config.dim**2 + 2 * config.dim * config.hidden_dim)
    flops = gpu_check._forward_flops(config, batch=2, width=100)
    assert flops == 2 * dense_weights * 200 + config.n_layers * 4 * 100**2 * config.dim * 2


def test_carried_wheels_match_the_project_pins():
    constraints = REPO / "constraints.txt"
    if not constraints.is_file():
        pytest.skip("no constraints.txt to compare with")
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", constraints.read_text(), re.M))
    pins = {name.lower().replace("_", "-"): version for name, version in pins.items()}
    line = re.search(r"^WHEELS=\((.*)\)", (REPO / "scripts" / "gpu_wheels.sh").read_text(), re.M).group(1)
    for spec in line.split():
        name, version = spec.split("==")
        pinned = pins.get(name.lower().replace("_", "-"))
        assert pinned in (None, version), f"gpu_wheels.sh carries {spec}, constraints.txt pins {pinned}"
