"""bench: a complete bench.json and a valid PNG on the tiny model, accuracy per row equal to what evaluate
and predict give on the same reviews, random weights leave accuracy blank, and the peak/work arithmetic."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from imdb_deploy.bench import config as bench_config
from imdb_deploy.bench import report as bench_report
from imdb_deploy.bench import rows as bench_rows
from imdb_deploy.bench import run as bench
from imdb_deploy.cli import cli
from imdb_deploy.errors import ConfigError

SAMPLES = 12  # fewer than --batch-size: every row sees all reviews in one batch, so INT8 scales match predict's
# The openvino-* Predictor rows need the IR in the folder, which bench's own (ungated) export does not write.
CPU_ROWS = [row.name for row in bench_config.ROWS if row.device == "cpu" and not row.variant.startswith("openvino-")]


@pytest.fixture(scope="module")
def trained_dir(tiny_classifier_dir, toy_data_dir, tmp_path_factory):
    """The tiny classifier with its head fitted (logistic regression on the frozen encoder's [CLS] features
    of the toy training reviews), so its labels vary from review to review and accuracy means something.
    Seconds, where fine-tuning the tiny model until it learns takes half a minute."""
    import shutil

    import torch
    from sklearn.linear_model import LogisticRegression

    from imdb_deploy.folders import load_settings
    from imdb_deploy.rows.labelled import load_split
    from imdb_deploy.runtimes.folder import load_tokenizer, load_torch_classifier
    from imdb_deploy.tokenization import encode, pad

    folder = tmp_path_factory.mktemp("bench-model") / "model"
    shutil.copytree(tiny_classifier_dir, folder)
    tokenizer = load_tokenizer(folder)
    model = load_torch_classifier(folder)
    reviews = load_split(str(toy_data_dir), "train")
    batch = pad(encode(tokenizer, reviews.texts, load_settings(folder, tokenizer)), tokenizer.pad_token_id)
    with torch.no_grad():
        features = model.distilbert(**{k: torch.from_numpy(v) for k, v in batch.items()}).last_hidden_state[:, 0]
        fit = LogisticRegression(C=100, max_iter=2000).fit(torch.relu(features).numpy(), reviews.labels)
        weights = torch.tensor(fit.coef_[0], dtype=torch.float32)
        bias = float(fit.intercept_[0])
        model.pre_classifier.weight.copy_(torch.eye(features.shape[1]))  # ReLU(CLS) reaches the fitted head
        model.pre_classifier.bias.zero_()
        model.classifier.weight.copy_(torch.stack([-weights / 2, weights / 2]))
        model.classifier.bias.copy_(torch.tensor([-bias / 2, bias / 2]))
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bench_run(trained_dir, toy_data_dir, tmp_path_factory):
    """One bench run through the CLI; bench exports the model itself into OUTPUT/onnx."""
    out = tmp_path_factory.mktemp("bench") / "run"
    args = [
        "bench",
        "--model", str(trained_dir),
        "--data", str(toy_data_dir),
        "--samples", str(SAMPLES),
        "--repeats", "2",
        "--latency-samples", "2",
        "--output", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out, result, json.loads((out / "bench.json").read_text())


def test_bench_writes_a_complete_report_and_table(bench_run):
    out, result, report = bench_run
    assert list(report["rows"]) == [row.name for row in bench_config.ROWS]
    for name in CPU_ROWS:
        row = report["rows"][name]
        assert row["status"] == "ok", (name, row)
        assert len(row["seconds"]) == 2 and row["reviews_per_s"] > 0
        for length in ("short", "long"):
            latency = row["latency_batch1"][length]
            assert latency["calls"] == 2 and 0 < latency["p50_ms"] <= latency["p95_ms"]
        assert row["model_bytes"] > 0 and row["peak_rss_mb"] > 0 and row["useful_macs_per_s"] > 0
        assert row["speedup"] == pytest.approx(row["reviews_per_s"] / report["rows"]["pytorch-fp32"]["reviews_per_s"])
        if name != "pytorch-fp32":
            assert row["vs_baseline"]["within_gate"] is not None
    for name in set(report["rows"]) - set(CPU_ROWS):  # no GPU here: CUDA rows are skipped with the reason
        if report["rows"][name]["status"] == "skipped":
            assert "CUDA" in report["rows"][name]["reason"] or "openvino extra" in report["rows"][name]["reason"]
    assert report["rows"]["predict"]["variant"] == "int8"
    openvino = report["rows"]["openvino-fp32"]
    assert openvino["precision"] == {"f32": "fp32", "bf16": "bf16"}[openvino["inference_precision"]]
    assert report["rows"]["openvino-int8"]["quantization"]["calibration_source"].endswith("[train]")
    # predict's default is batch-invariant; the batched INT8 row beside it says it is not.
    assert report["rows"]["predict"]["per_review"] is True and report["rows"]["predict"]["batch_invariant"] is True
    assert report["rows"]["predict-int8-batched"]["batch_invariant"] is False
    assert report["rows"]["onnx-int8"]["model_bytes"] < report["rows"]["onnx-fp32"]["model_bytes"]
    assert report["data"]["samples"] == SAMPLES and report["model"]["weights"] == "trained"
    machine = report["machine"]
    assert machine["cpu_model"] and machine["physical_cores"] >= 1 and machine["versions"]["onnxruntime"]
    assert report["fastest"]["row"] in CPU_ROWS
    if report["peak"]["int8"]["macs_per_s"]:
        share = report["fastest"]["executed_macs_per_s"] / report["peak"]["int8"]["macs_per_s"]
        assert report["fastest"]["share_of_int8_peak"] == pytest.approx(share)
    # The export ran the last layer for [CLS] only: ONNX rows are held to the work that graph does.
    assert report["onnx_macs"]["cls_only_last_layer"] and report["onnx_macs"]["total"] < report["useful_macs"]["total"]
    int8 = report["rows"]["onnx-int8"]
    ratio = report["onnx_macs"]["total"] / report["useful_macs"]["total"]
    assert int8["executed_macs_per_s"] == pytest.approx(int8["useful_macs_per_s"] * ratio)
    assert report["files"] == {"json": str(out / "bench.json"), "chart": str(out / "bench.png")}
    # The table is on stderr (CliRunner mixes the streams): one line per row.
    for name in report["rows"]:
        assert f"  {name} " in result.output


def test_bench_chart_is_a_valid_png(bench_run):
    out, _, _ = bench_run
    data = (out / "bench.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    image = imread(out / "bench.png")
    assert image.shape[0] > 100 and image.shape[1] > 400


def test_every_row_accuracy_equals_evaluate_and_predict(bench_run, trained_dir, toy_data_dir):
    from imdb_deploy.rows.labelled import load_split, stratified_sample
    from imdb_deploy.runtimes.config import INT8_IR
    from imdb_deploy.runtimes.openvino import OpenVINOModel
    from imdb_deploy.runtimes.predictor import Predictor
    from imdb_deploy.training.config import EvaluateConfig
    from imdb_deploy.training.evaluate import evaluate

    out, _, report = bench_run
    evaluated = evaluate(trained_dir, EvaluateConfig(data=str(toy_data_dir), max_samples=SAMPLES), progress=False)
    assert 0.6 < evaluated["accuracy"] < 1  # labels vary and beat chance: equal accuracies are no coincidence
    data = stratified_sample(load_split(str(toy_data_dir), "test"), SAMPLES, 42)
    labels = np.asarray(data.labels)
    expected = {"pytorch-fp32": evaluated["accuracy"], "pytorch-fp32-sorted": evaluated["accuracy"]}
    for name, variant in (
        ("onnx-fp32", "fp32"),
        ("onnx-optimized", "optimized"),
        ("onnx-int8", "int8"),
        ("predict", "auto"),
        ("predict-int8-batched", "int8-batched"),
    ):
        probabilities = Predictor(out / "onnx", variant=variant).predict_proba(data.texts)
        expected[name] = float((probabilities.argmax(axis=1) == labels).mean())
    # The OpenVINO rows as openvino_runtime runs them; bench kept the INT8 IR it quantized in OUTPUT/openvino.
    for name, graph in (("openvino-fp32", "fp32"), ("openvino-int8", str(out / "openvino" / INT8_IR))):
        logits = OpenVINOModel(out / "onnx", graph).logits(data.texts)
        expected[name] = float((logits.argmax(axis=1) == labels).mean())
    assert {name: report["rows"][name]["accuracy"] for name in CPU_ROWS} == expected


def test_architecture_spec_times_random_weights_without_accuracy(tiny_model_dir, toy_data_dir, tmp_path):
    spec = "distilbert-base:n_layers=1,dim=32,hidden_dim=64,n_heads=2"
    config = bench_config.BenchConfig(
        data=str(toy_data_dir),
        samples=8,
        rows=("pytorch-fp32", "predict"),
        repeats=1,
        latency_samples=1,
        tokenizer=str(tiny_model_dir),
        max_length=48,
        output_dir=str(tmp_path / "arch"),
    )
    report = bench.run_bench(spec, config)
    assert report["model"]["weights"] == "random" and report["model"]["kind"] == "architecture"
    assert report["model"]["architecture"]["n_layers"] == 1 and report["model"]["architecture"]["dim"] == 32
    assert report["data"]["settings"]["max_length"] == 48
    assert list(report["rows"]) == ["pytorch-fp32", "predict"]
    for row in report["rows"].values():
        assert row["status"] == "ok" and row["accuracy"] is None
    assert report["rows"]["predict"]["vs_baseline"]["within_gate"] is None
    assert (tmp_path / "arch" / "bench.png").is_file() and (
        tmp_path / "arch" / "onnx" / "onnx" / "model_quantized.onnx"
    ).is_file()
    assert "random" in bench_report.format_table(report)


def test_latency_sets_take_the_shortest_and_longest_quarter():
    lengths = [10, 500, 20, 300, 40, 480, 60, 250]
    sets = bench_rows.latency_sets(lengths, 5)
    assert sorted(lengths[i] for i in sets["short"]) == [10, 20]
    assert sorted(lengths[i] for i in sets["long"]) == [480, 500]
    assert bench_rows.latency_sets(lengths, 0) == {"short": [], "long": []}


def test_bad_settings_name_the_value(tmp_path):
    with pytest.raises(ConfigError, match="rows=gpu-magic"):
        bench_config.BenchConfig(rows=("gpu-magic",))
    result = CliRunner().invoke(cli, ["bench", "--model", str(tmp_path / "nope"), "--output", str(tmp_path / "o")])
    assert result.exit_code == 1 and "no such folder and not an architecture" in result.output


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_half_precision_pytorch_rows_cast_the_model(trained_dir, dtype):
    """The CUDA rows' dtype handling, run on the CPU (the device is the only difference)."""
    target = bench_rows.ModelUnderTest(str(trained_dir), "trained", trained_dir, trained_dir, True, trained_dir)
    config = bench_config.BenchConfig(batch_size=4)
    texts = ["a wonderful film", "dull and boring", "great acting"]
    logits = {}
    for name, variant in (("fp32", "fp32"), (dtype, dtype)):
        runner = bench_rows.open_row(bench_config.Row(name, "test", "pytorch", variant, "input-order"), target, config)
        try:
            logits[name] = runner.logits(texts)
        finally:
            runner.release()
    assert logits[dtype].dtype == np.float32 and logits[dtype].shape == (3, 2)
    assert not np.array_equal(logits[dtype], logits["fp32"])  # really computed in half precision
    np.testing.assert_allclose(logits[dtype], logits["fp32"], atol=0.2)  # bf16 keeps 8 significant bits


def test_openvino_rows_are_skipped_with_the_reason_without_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    row = next(row for row in bench_config.ROWS if row.name == "openvino-int8")
    assert bench_rows.row_unavailable(row) == (
        "openvino is not installed: pip install 'imdb-deploy[openvino]' (openvino and nncf, pinned in constraints.txt)"
    )


def test_the_classical_baseline_is_fitted_on_the_training_split_and_scored_on_the_same_reviews(bench_run, toy_data_dir):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from imdb_deploy.bench import classical
    from imdb_deploy.rows.labelled import load_split, stratified_sample

    _, result, report = bench_run
    row = report["classical"]
    train = load_split(str(toy_data_dir), "train")
    test = stratified_sample(load_split(str(toy_data_dir), "test"), SAMPLES, 42)
    settings = classical.SETTINGS
    model = make_pipeline(
        TfidfVectorizer(ngram_range=settings["ngram_range"], min_df=settings["min_df"], sublinear_tf=True),
        LogisticRegression(C=settings["C"], max_iter=settings["max_iter"]),
    ).fit(train.texts, train.labels)
    expected = float((model.predict(test.texts) == np.asarray(test.labels)).mean())
    assert row["status"] == "ok" and row["train_samples"] == len(train) and row["reviews_per_s"] > 0
    assert row["accuracy"] == pytest.approx(expected)
    table_lines = [line for line in result.output.splitlines() if line.startswith("  tfidf-logreg ")]
    assert len(table_lines) == 1, result.output  # one line in the table


def test_several_models_make_one_frontier_table_chart_and_report(trained_dir, toy_data_dir, tmp_path):
    import shutil

    from imdb_deploy.bench.frontier import frontier_report

    second = tmp_path / "second"  # a second trained folder (the same weights: the points pair up)
    shutil.copytree(trained_dir, second)
    out = tmp_path / "frontier"
    args = [
        "bench", "-m", str(trained_dir), "-m", str(second), "--data", str(toy_data_dir),
        "--samples", str(SAMPLES), "--repeats", "1", "--latency-samples", "0",
        "--rows", "pytorch-fp32,onnx-int8,predict", "--output", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "bench.json").read_text())
    labels = list(report["models"])
    assert report["kind"] == "frontier" and len(labels) == 2 and labels[0] == trained_dir.name
    points = report["frontier"]
    assert {(p["model"], p["row"]) for p in points} == {
        *((label, row) for label in labels for row in ("pytorch-fp32", "onnx-int8", "predict")),
        ("tfidf-logreg", "tfidf-logreg"),
    }
    first_base = report["models"][labels[0]]["rows"]["pytorch-fp32"]["reviews_per_s"]
    for point in points:
        assert point["speedup"] == pytest.approx(point["reviews_per_s"] / first_base)
        dominated = any(
            o["reviews_per_s"] >= point["reviews_per_s"]
            and o["accuracy"] >= point["accuracy"]
            and (o["reviews_per_s"], o["accuracy"]) != (point["reviews_per_s"], point["accuracy"])
            for o in points
        )
        assert point["pareto"] is not dominated
    assert set(report["defaults"]) == set(labels)  # each model's default (its predict row)
    rebuilt = json.loads(json.dumps(frontier_report(report["models"], report["classical"])))
    assert {k: v for k, v in report.items() if k not in ("files", "seconds")} == rebuilt
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.output.count("frontier:") == 1 and all(label in result.output for label in labels)
