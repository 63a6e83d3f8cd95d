"""The parity gate: it passes a faithful export, and fails (exit 1, numbers in the message) a corrupted one."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from imdb_deploy.cli import cli
from imdb_deploy.errors import ConfigError, ParityError
from imdb_deploy.export.config import (
    APPROX_GELU,
    DEFAULT_EXACT,
    DEFAULT_THRESHOLDS,
    Thresholds,
    default_thresholds,
    parse_threshold_overrides,
)
from imdb_deploy.export.parity import compare
from imdb_deploy.folders import EXPORT_REPORT, TRAIN_CONFIG
from imdb_deploy.runtimes.onnx import onnx_path


def corrupt_onnx(path, seed: int = 0) -> None:
    """Shuffle the rows of every float weight matrix: same file, same shapes, wrong model."""
    model = onnx.load(str(path))
    rng = np.random.default_rng(seed)
    for tensor in model.graph.initializer:
        values = onnx.numpy_helper.to_array(tensor)
        if values.dtype == np.float32 and values.ndim == 2:
            tensor.CopyFrom(onnx.numpy_helper.from_array(rng.permutation(values), tensor.name))
    onnx.save(model, str(path))


@pytest.fixture
def onnx_copy(tiny_onnx_dir, tiny_classifier_dir, tmp_path):
    """A copy of the export, with its source model beside it (where verify looks for it)."""
    folder = tmp_path / "onnx"
    shutil.copytree(tiny_onnx_dir, folder)
    shutil.copytree(tiny_classifier_dir, tmp_path / tiny_classifier_dir.name)
    return folder


def test_verify_passes_a_faithful_export_and_prints_json(tiny_onnx_dir, toy_data_dir):
    args = ["verify", str(tiny_onnx_dir), "--data", str(toy_data_dir), "--verify-samples", "60"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert report["samples"] == 60
    assert set(report["variants"]) == {"fp32", "optimized", "int8", "int8-batched"}
    fp32 = report["variants"]["fp32"]
    assert fp32["agreement"] == 1.0 and fp32["accuracy_change"] == 0.0 and fp32["max_prob_diff"] < 1e-4
    # F1, precision and recall beside accuracy, for PyTorch and each variant (same labels: same numbers).
    assert report["pytorch_metrics"]["accuracy"] == report["pytorch_accuracy"]
    assert report["pytorch_metrics"]["samples"] == 60
    assert fp32["metrics"] == report["pytorch_metrics"]
    int8 = report["variants"]["int8"]
    assert int8["metrics"]["accuracy"] == int8["accuracy"] and set(int8["metrics"]) >= {"f1", "precision", "recall"}
    assert "gate: PASSED" in result.stderr
    # Batch invariance: every variant measured on the same reviews; only the batch-dependent one is not claimed.
    for name, variant in report["variants"].items():
        invariance = variant["invariance"]
        assert invariance["reviews"] == 60 and invariance["max_allowed"] == 1e-5, name
        assert invariance["claimed"] is (name != "int8-batched"), name
        if invariance["claimed"]:
            assert invariance["holds"] is True and invariance["label_flips"] == 0, name
            assert invariance["max_prob_diff"] <= 1e-5, name
    assert report["variants"]["int8"]["invariance"]["per_review"] is True
    # The tiny model shows the batch dependence of dynamic INT8 in batches: recorded, not gated.
    assert report["variants"]["int8-batched"]["invariance"]["max_prob_diff"] > 1e-5
    assert "batch-dependent (" in result.stderr


def test_a_variant_that_claims_invariance_and_breaks_it_fails_the_gate(tiny_onnx_dir, toy_data_dir, monkeypatch):
    from imdb_deploy.runtimes.config import VARIANT_BATCHING, VariantBatching

    # int8-batched is batch-dependent; pretend it claimed otherwise.
    monkeypatch.setitem(VARIANT_BATCHING, "int8-batched", VariantBatching(False, True, "a false claim"))
    args = ["verify", str(tiny_onnx_dir), "--data", str(toy_data_dir), "--variant", "int8-batched"]
    result = CliRunner().invoke(cli, [*args, "--invariance-samples", "100"])
    assert result.exit_code == 1, result.output
    invariance = json.loads(result.stdout)["variants"]["int8-batched"]["invariance"]
    assert invariance["claimed"] is True and invariance["holds"] is False and invariance["reviews"] == 100
    message = result.stderr.strip().splitlines()[-1]
    assert "int8-batched: batch invariance: claims batch invariance, but one review per call vs batched" in message
    assert "BROKEN (" in result.stderr


def test_corrupted_onnx_weights_fail_the_gate_with_exit_1(onnx_copy, toy_data_dir):
    corrupt_onnx(onnx_path(onnx_copy, "fp32"))
    args = ["verify", str(onnx_copy), "--data", str(toy_data_dir), "--verify-samples", "all", "--variant", "fp32"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["passed"] is False  # the numbers still come out as data
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("Error: parity gate FAILED on 100 reviews")
    assert "fp32: max |probability difference|" in message and "> 0.0001" in message
    assert "gate: FAILED" in result.stderr


def test_the_fp32_graphs_are_checked_on_a_seeded_subset_and_still_caught(onnx_copy, toy_data_dir):
    """--exact-samples: PyTorch and INT8 on every review of the sample, fp32 graphs on a subset of them."""
    args = ["verify", str(onnx_copy), "--data", str(toy_data_dir), "--verify-samples", "all"]
    result = CliRunner().invoke(cli, [*args, "--exact-samples", "30"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    reviews = {name: variant["reviews"] for name, variant in report["variants"].items()}
    assert reviews == {"fp32": 30, "optimized": 30, "int8": 100, "int8-batched": 100}
    assert report["samples"] == 100 and report["variants"]["fp32"]["invariance"]["reviews"] == 30
    # A wrong conversion shows on every review, so the subset fails it as the whole sample would.
    corrupt_onnx(onnx_path(onnx_copy, "optimized"))
    result = CliRunner().invoke(cli, [*args, "--exact-samples", "30", "--variant", "optimized"])
    assert result.exit_code == 1, result.output
    assert "optimized: max |probability difference|" in result.stderr.strip().splitlines()[-1]
    assert json.loads(result.stdout)["variants"]["optimized"]["reviews"] == 30


def test_corrupted_pytorch_weights_fail_the_gate(tiny_onnx_dir, tiny_classifier_dir, toy_data_dir, tmp_path):
    import torch

    from imdb_deploy.runtimes.folder import load_torch_classifier

    model = load_torch_classifier(tiny_classifier_dir)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param))
    broken = tmp_path / "broken"
    model.save_pretrained(broken)
    shutil.copy(tiny_classifier_dir / TRAIN_CONFIG, broken / TRAIN_CONFIG)
    for path in tiny_classifier_dir.iterdir():  # the tokenizer's files, whichever transformers wrote
        if path.is_file() and not (broken / path.name).exists():
            shutil.copy(path, broken / path.name)
    args = ["verify", str(tiny_onnx_dir), "--model", str(broken), "--data", str(toy_data_dir), "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "int8: " in result.stderr and "optimized: " in result.stderr and "fp32: " in result.stderr


def test_tokenization_mismatch_fails_the_gate(onnx_copy, toy_data_dir):
    config = json.loads((onnx_copy / TRAIN_CONFIG).read_text())
    (onnx_copy / TRAIN_CONFIG).write_text(json.dumps({**config, "max_length": 32, "head_tokens": None}))
    args = ["verify", str(onnx_copy), "--data", str(toy_data_dir), "--variant", "fp32", "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "fp32: the ONNX folder tokenizes with" in result.stderr


def test_verify_needs_the_pytorch_original(onnx_copy, toy_data_dir):
    (onnx_copy / EXPORT_REPORT).unlink()
    result = CliRunner().invoke(cli, ["verify", str(onnx_copy), "--data", str(toy_data_dir)])
    assert result.exit_code == 1
    assert "pass the original with --model MODEL_DIR" in result.stderr


def test_compare_counts_flips_and_names_the_broken_bounds():
    labels = np.array([1, 1, 0, 0, 1, 0, 1, 0, 1, 0])
    torch_probs = np.array([[0.1, 0.9]] * 5 + [[0.9, 0.1]] * 5)  # accuracy 0.6 (rows 0, 1, 3, 4, 5, 7)
    onnx_probs = torch_probs.copy()
    onnx_probs[[0, 1]] = [[0.6, 0.4], [0.55, 0.45]]  # two correct answers flip to wrong
    ids = [f"row {i}" for i in range(10)]
    strict = Thresholds(min_agreement=0.98, max_accuracy_drop=0.005, max_mean_prob_diff=0.02)
    result = compare("int8", "model_quantized.onnx", torch_probs, onnx_probs, labels, ids, strict)
    assert result.agreement == pytest.approx(0.8)
    assert result.accuracy_change == pytest.approx(-0.2)
    assert result.flip_count == 2
    assert [flip["id"] for flip in result.flips] == ["row 0", "row 1"]  # largest probability change first
    assert result.flips[0] == {"id": "row 0", "label": 1, "pytorch": [0.1, 0.9], "onnx": [0.6, 0.4]}
    assert result.max_prob_diff == pytest.approx(0.5)
    assert result.failures == [
        "label agreement 80.00% < 98.00% (2 of 10 labels flipped)",
        "accuracy 0.4000 is 20.00 points below PyTorch's 0.6000 (allowed 0.50)",
        "mean |probability difference| 0.095 > 0.02",
    ]
    same = compare("fp32", "model.onnx", torch_probs, torch_probs, labels, ids, DEFAULT_THRESHOLDS["fp32"])
    assert same.passed and same.agreement == 1.0 and same.max_prob_diff == 0.0


def test_accuracy_drop_allows_for_flip_noise_but_not_a_real_loss():
    n = 1000
    labels = np.zeros(n, dtype=np.int64)
    torch_probs = np.tile([0.8, 0.2], (n, 1))  # all correct
    ids = [str(i) for i in range(n)]

    def int8_with(to_wrong: int, to_right: int):
        onnx_probs, truth = torch_probs.copy(), labels.copy()
        onnx_probs[:to_wrong] = [0.45, 0.55]
        truth[n - to_right :] = 1  # PyTorch was wrong there; INT8 flips to the right answer
        onnx_probs[n - to_right :] = [0.45, 0.55]
        return compare("int8", "q", torch_probs, onnx_probs, truth, ids, DEFAULT_THRESHOLDS["int8"])

    noisy = int8_with(to_wrong=8, to_right=2)  # -0.6 points from 10 flips: within 2 x sqrt(10)/1000
    assert noisy.accuracy_change == pytest.approx(-0.006) and noisy.passed, noisy.failures
    lossy = int8_with(to_wrong=15, to_right=0)  # -1.5 points, 15 flips all one way
    assert lossy.failures == [
        "accuracy 0.9850 is 1.50 points below PyTorch's 1.0000 (allowed 0.77, the larger of 0.50 and 2 "
        "standard errors of 15 flips)"
    ]


def test_threshold_overrides_are_validated():
    thresholds = parse_threshold_overrides(["int8.min_agreement=0.97", "fp32.max_prob_diff=none"])
    assert thresholds["int8"].min_agreement == 0.97
    assert thresholds["fp32"].max_prob_diff is None
    assert thresholds["optimized"] == DEFAULT_THRESHOLDS["optimized"]
    for bad, match in [
        ("int8.min_agreement", "write VARIANT.FIELD=VALUE"),
        ("bf16.min_agreement=0.9", "variant 'bf16'"),
        ("int8.agree=0.9", "field 'agree'"),
        ("int8.min_agreement=high", "'high' is not a number"),
        ("int8.min_agreement=98", "min_agreement=98.0: use a fraction"),
    ]:
        with pytest.raises(ConfigError, match=match):
            parse_threshold_overrides([bad])
    with pytest.raises(ParityError):
        from imdb_deploy.export.parity import ParityReport

        report = ParityReport("d", "m", "data", "test", 10, 0.5, 0.0, problems=["x"])
        report.raise_for_failure()
    assert Thresholds().min_agreement == 1.0
    assert default_thresholds("O3")["optimized"] == APPROX_GELU  # approximate GELU is not exact
    assert default_thresholds("O2")["optimized"] == DEFAULT_EXACT


def test_a_threshold_typo_fails_before_any_work(tiny_classifier_dir, tmp_path):
    out = tmp_path / "onnx"
    result = CliRunner().invoke(
        cli, ["export", str(tiny_classifier_dir), "-o", str(out), "--threshold", "int8.agree=1"]
    )
    assert result.exit_code == 1
    assert "field 'agree' is not one of" in result.stderr
    assert not out.exists()


def test_verify_record_marks_an_unverified_export(onnx_copy, toy_data_dir):
    report_path = onnx_copy / EXPORT_REPORT
    assert json.loads(report_path.read_text())["verified"] is False
    args = ["verify", str(onnx_copy), "--data", str(toy_data_dir), "--verify-samples", "40", "-q", "--record"]
    assert CliRunner().invoke(cli, [*args, "--variant", "fp32"]).exit_code == 0
    assert json.loads(report_path.read_text())["verified"] is False  # int8 and optimized were not checked
    assert CliRunner().invoke(cli, args).exit_code == 0
    recorded = json.loads(report_path.read_text())
    assert recorded["verified"] is True
    assert recorded["parity"]["samples"] == 40
    assert recorded["source_model"]  # the rest of the report is kept
