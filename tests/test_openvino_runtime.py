"""openvino_runtime on the tiny exported model: the same labels and (within a stated tolerance) the same
probabilities as onnxruntime fp32 from the same token ids; nncf static INT8 really quantizes, is written
completely, records its training-split calibration, and is batch-invariant at f32; the bench rows are skipped
with the reason when the extra is missing. The openvino-* variants behind Predictor: written and gated by
export, one review per request (exactly batch-invariant, in order), the default chosen by measurement,
recorded, used by "auto", warned about on another CPU and chosen again by `verify --retime`."""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import toy_reviews

from imdb_deploy.bench import rows as bench_rows
from imdb_deploy.cli import cli
from imdb_deploy.errors import ConfigError, ISAMismatchWarning, ModelLoadError
from imdb_deploy.export import config as verify_config
from imdb_deploy.export import gate as verify
from imdb_deploy.export import stage as export_stage
from imdb_deploy.folders import EXPORT_REPORT
from imdb_deploy.metrics import softmax
from imdb_deploy.runtimes import choice as runtime_choice
from imdb_deploy.runtimes import config as ov_config
from imdb_deploy.runtimes import folder as model_folder
from imdb_deploy.runtimes import openvino as ovr
from imdb_deploy.runtimes.predictor import Predictor

pytest.importorskip("openvino", reason="the openvino extra is not installed (scripts/setup.sh installs it)")

# f32 forced: the same function as onnxruntime fp32 up to float32 rounding (measured max |dp| 6e-9 on this model).
F32_TOLERANCE = 1e-5
# The plugin's own precision is bf16 on CPUs with AVX512-BF16/AMX: 8 significant bits, so probabilities may move
# by up to about 1e-2 (measured: 1.2e-4 on this model); labels are compared where onnxruntime's margin is wider.
AUTO_TOLERANCE = 1e-2


@pytest.fixture(scope="module")
def texts():
    return toy_reviews(40, seed=5, max_words=60)[0]


@pytest.fixture(scope="module")
def reference(tiny_onnx_dir, texts):
    predictor = Predictor(tiny_onnx_dir, variant="fp32")
    return predictor.encode(texts), predictor.predict_proba(texts)


def test_fp32_graph_matches_onnxruntime_from_the_same_token_ids(tiny_onnx_dir, texts, reference):
    ids, expected = reference
    model = ovr.OpenVINOModel(tiny_onnx_dir, "fp32", threads=1, precision="f32", batch_size=8, max_tokens=256)
    assert model.encode(texts) == ids  # the folder's tokenizer and settings, as Predictor uses them
    probabilities = softmax(model.logits(texts))
    np.testing.assert_allclose(probabilities, expected, atol=F32_TOLERANCE)
    assert (probabilities.argmax(1) == expected.argmax(1)).all()
    info = model.info
    assert info["inference_precision"] == "f32" and info["threads"] == 1 and info["performance_hint"] == "LATENCY"
    assert info["input_shapes"] == {"input_ids": "[?,?]", "attention_mask": "[?,?]"}  # dynamic: no reshape needed
    assert info["model_bytes"] == (tiny_onnx_dir / "onnx" / "model.onnx").stat().st_size


def test_precision_the_plugin_picks_stays_close(tiny_onnx_dir, texts, reference):
    _, expected = reference
    model = ovr.OpenVINOModel(tiny_onnx_dir, "optimized")  # the fused graph's contrib ops are read as well
    probabilities = softmax(model.logits(texts))
    assert model.info["inference_precision"] in ("f32", "bf16")
    np.testing.assert_allclose(probabilities, expected, atol=AUTO_TOLERANCE)
    clear = np.abs(expected[:, 1] - 0.5) > AUTO_TOLERANCE
    assert (probabilities.argmax(1)[clear] == expected.argmax(1)[clear]).all()


def test_static_int8_is_quantized_recorded_and_batch_invariant(tiny_onnx_dir, toy_data_dir, texts, reference, tmp_path):
    _, expected = reference
    calibration = export_stage.calibration_reviews(str(toy_data_dir), 16)
    assert calibration.name == "train" and len(calibration) == 16
    path = tmp_path / "ir" / ov_config.INT8_IR
    quantized, record = ovr.quantize_static(tiny_onnx_dir, calibration.texts, path, calibration_source="toy [train]")
    assert record["calibration_samples"] == 16 and record["source"] == "model.onnx"
    assert (
        record["bytes"]
        == model_folder.graph_bytes(path)
        == path.stat().st_size + path.with_suffix(".bin").stat().st_size
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["openvino_int8.bin", "openvino_int8.xml"]  # no temp left
    fake_quantize = [op for op in quantized.get_ops() if op.get_type_name() == "FakeQuantize"]
    assert len(fake_quantize) >= 8  # the matmuls' inputs and weights really go through INT8

    model = ovr.OpenVINOModel(tiny_onnx_dir, str(path), threads=1, precision="f32", batch_size=16, max_tokens=512)
    batched = softmax(model.logits(texts))
    np.testing.assert_allclose(batched, expected, atol=0.05)  # INT8 of a tiny random model: close, not equal
    # Fixed activation scales: one review per call gives the same probabilities as the batched run.
    alone = softmax(np.concatenate([model.run_batch([ids]) for ids in model.encode(texts)]))
    np.testing.assert_allclose(alone, batched, atol=1e-6)


def test_bench_open_model_int8_keeps_the_ir_where_asked(tiny_onnx_dir, toy_data_dir, tmp_path):
    model = bench_rows.open_model(tiny_onnx_dir, "int8", str(toy_data_dir), calibration_samples=8, save_dir=tmp_path)
    assert model.info["quantization"]["calibration_source"].endswith("[train]")
    assert model.info["file"] == str(tmp_path / ov_config.INT8_IR) and (tmp_path / "openvino_int8.bin").is_file()
    assert model.logits(["a great film", "dull"]).shape == (2, 2)


def test_bad_graphs_and_settings_name_the_fix(tiny_onnx_dir):
    with pytest.raises(ModelLoadError, match="write it with quantize_static"):
        ovr.resolve_graph(tiny_onnx_dir, "int8")  # no IR quantized into the folder yet
    with pytest.raises(ModelLoadError, match="onnxruntime-only ops"):
        ovr.resolve_graph(tiny_onnx_dir, "fp16")
    with pytest.raises(ModelLoadError, match="could not read it.*QAttention"):
        ovr.OpenVINOModel(tiny_onnx_dir, str(tiny_onnx_dir / "onnx" / "model_quantized.onnx"))
    with pytest.raises(ConfigError, match="hint='FAST'"):
        ovr.OpenVINOModel(tiny_onnx_dir, hint="FAST")
    with pytest.raises(ConfigError, match="calibration_texts is empty"):
        ovr.quantize_static(tiny_onnx_dir, [])


# --- the openvino-* variants behind Predictor, written and gated by export, chosen by measurement ----------


@pytest.fixture(scope="module")
def ov_dir(tmp_path_factory, tiny_classifier_dir, toy_data_dir):
    """The tiny classifier exported with --quantize and the gate on the toy data: the OpenVINO IRs are written,
    gated and timed like every variant (16 calibration reviews, 8 timed)."""
    from imdb_deploy.export.config import ExportConfig
    from imdb_deploy.export.stage import export

    folder = tiny_classifier_dir.parent / f"{tiny_classifier_dir.name}-ov"  # beside its source, as verify finds it
    config = ExportConfig(
        quantize=True, data=str(toy_data_dir), verify_samples=None, calibration_samples=16, timing_samples=8
    )
    export(tiny_classifier_dir, folder, config)
    return folder


def _report(folder):
    return json.loads((folder / EXPORT_REPORT).read_text())


def test_export_writes_gates_and_records_the_openvino_variants(ov_dir):
    report = _report(ov_dir)
    assert {"openvino_int8.xml", "openvino_int8.bin", "openvino_fp32.xml", "openvino_fp32.bin"} <= {
        p.name for p in ov_dir.iterdir()
    }
    assert report["verified"] is True
    for name in ov_config.OPENVINO_VARIANTS:
        variant = report["variants"][name]
        assert variant["runtime"] == "openvino" and variant["per_review"] and variant["batch_invariant"]
        assert variant["bytes"] == model_folder.graph_bytes(ov_dir / variant["file"])
        gated = report["parity"]["variants"][name]
        assert gated["passed"] and gated["reviews"] == 100  # the whole sample, like every lossy variant
        # One review per infer request: the gate's run and one call per review agree exactly.
        assert gated["invariance"]["claimed"] and gated["invariance"]["max_prob_diff"] == 0.0
        assert gated["runtime"]["runtime"] == "openvino"
    precision = report["parity"]["variants"]["openvino-fp32"]["runtime"]["inference_precision"]
    lossy = verify_config.DEFAULT_INT8 if precision in ov_config.LOSSY_PRECISIONS else verify_config.DEFAULT_EXACT
    assert report["parity"]["variants"]["openvino-fp32"]["thresholds"] == dataclasses.asdict(lossy)
    assert report["parity"]["variants"]["openvino-int8"]["thresholds"] == dataclasses.asdict(verify_config.DEFAULT_INT8)
    calibration = report["settings"]["openvino"]["openvino-int8"]
    assert calibration["calibration_samples"] == len(calibration["calibration_ids"]) == 16
    assert all(review.startswith("train.parquet:") for review in calibration["calibration_ids"])  # never the test split


def test_default_variant_is_chosen_by_measurement_and_recorded(ov_dir):
    report = _report(ov_dir)
    choice = report["runtime_choice"]
    assert report["default_variant"] == choice["winner"]
    assert set(choice["timings"]) == set(report["parity"]["variants"])  # every variant that passed, timed
    assert all(row["reviews"] == 8 and row["reviews_per_second"] > 0 for row in choice["timings"].values())
    assert choice["baseline"] == "int8" and set(choice["eligible"]) == set(ov_config.OPENVINO_VARIANTS)
    assert choice["excluded"] == {"int8-batched": "batch-dependent: never a default"}
    assert choice["cpu"] == runtime_choice.isa_record() and choice["rule"] == runtime_choice.RULE
    speeds = {name: row["reviews_per_second"] for name, row in choice["timings"].items()}
    expected = runtime_choice.choose("int8", choice["timings"], list(ov_config.OPENVINO_VARIANTS))["winner"]
    assert choice["winner"] == expected
    if choice["winner"] != "int8":
        assert speeds[choice["winner"]] >= runtime_choice.MIN_GAIN * speeds["int8"]


def test_the_rule_keeps_onnxruntime_unless_the_gain_is_clear():
    timings = {"int8": {"reviews_per_second": 10.0}, "openvino-int8": {"reviews_per_second": 10.9}}
    assert runtime_choice.choose("int8", timings, ["openvino-int8"])["winner"] == "int8"  # 1.09x: not enough
    timings["openvino-int8"]["reviews_per_second"] = 11.0
    assert runtime_choice.choose("int8", timings, ["openvino-int8"]) == {
        "baseline": "int8",
        "winner": "openvino-int8",
        "gain": 1.1,
        "reason": "1.100x >= 1.1x",
    }
    assert runtime_choice.choose("int8", timings, [])["winner"] == "int8"  # nothing else gated


def test_predictor_runs_openvino_with_the_same_labels_in_order_and_batch_invariant(ov_dir, texts):
    reference = Predictor(ov_dir, variant="fp32").predict_proba(texts)
    exact = Predictor(ov_dir, variant="openvino-fp32", precision="f32")
    assert exact.runtime["inference_precision"] == "f32" and exact.describe()["runtime"] == "openvino"
    probabilities = exact.predict_proba(texts)
    np.testing.assert_allclose(probabilities, reference, atol=F32_TOLERANCE)
    assert (probabilities.argmax(1) == reference.argmax(1)).all()
    # Batch-invariant by construction: each review alone gives exactly the bits it gets among the others,
    # and the results come back in input order.
    alone = np.concatenate([exact.predict_proba([text]) for text in texts])
    assert np.array_equal(alone, probabilities)
    assert np.array_equal(exact.predict_proba(texts[::-1]), probabilities[::-1])

    quantized = Predictor(ov_dir, variant="openvino-int8", threads=2)
    assert quantized.batching.per_review and quantized.workers == 2 and quantized.runtime["streams"] == 2
    int8 = quantized.predict_proba(texts)
    clear = np.abs(reference[:, 1] - 0.5) > 0.05
    assert (int8.argmax(1)[clear] == reference.argmax(1)[clear]).all()
    assert np.array_equal(np.concatenate([quantized.predict_proba([text]) for text in texts]), int8)
    predictions = quantized.predict(texts[:2])
    assert [p.label for p in predictions] == [quantized.label_names[k] for k in int8[:2].argmax(1)]


def test_auto_runs_the_recorded_default_and_warns_on_another_cpu(ov_dir, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(ov_dir, folder)
    report = _report(folder)
    report["default_variant"] = "openvino-int8"
    (folder / EXPORT_REPORT).write_text(json.dumps(report))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same CPU: no warning
        assert Predictor(folder).variant == "openvino-int8"

    report["runtime_choice"]["cpu"]["isa"] = ["avx2", "fma"]  # measured on an AVX2-only CPU
    (folder / EXPORT_REPORT).write_text(json.dumps(report))
    with pytest.warns(ISAMismatchWarning, match=r"measured on a CPU with avx2, fma.*--retime"):
        assert Predictor(folder).variant == "openvino-int8"
    assert Predictor(folder, variant="int8").variant == "int8"  # --variant overrides

    del report["runtime_choice"]  # a folder exported before the choice: onnxruntime's default, as before
    (folder / EXPORT_REPORT).write_text(json.dumps(report))
    assert Predictor(folder).variant == "int8"


def test_a_recorded_openvino_default_without_the_extra_falls_back_with_a_warning(ov_dir, tmp_path, monkeypatch):
    folder = tmp_path / "copy"
    shutil.copytree(ov_dir, folder)
    report = _report(folder)
    report["default_variant"] = "openvino-fp32"
    (folder / EXPORT_REPORT).write_text(json.dumps(report))
    monkeypatch.setattr(model_folder, "unavailable_reason", lambda: "openvino is not installed")
    with pytest.warns(ISAMismatchWarning, match="'openvino-fp32' cannot run here"):
        assert Predictor(folder).variant == "int8"
    monkeypatch.setattr(model_folder, "unavailable_reason", lambda: "openvino is not installed: pip install")
    with pytest.raises(ModelLoadError, match="runs on OpenVINO, but openvino is not installed"):
        Predictor(folder, variant="openvino-int8")


def test_verify_retime_chooses_again_on_this_cpu(ov_dir, toy_data_dir, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(ov_dir, folder)
    report = _report(folder)
    report["runtime_choice"]["cpu"]["isa"] = ["avx2"]
    report["runtime_choice"]["timings"] = {}
    report["default_variant"] = "openvino-fp32"
    (folder / EXPORT_REPORT).write_text(json.dumps(report))
    args = ["verify", str(folder), "--retime", "--data", str(toy_data_dir), "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    choice = json.loads(result.stdout)
    assert f"default variant: {choice['winner']}" in result.stderr
    stored = _report(folder)
    assert stored["runtime_choice"] == choice and stored["default_variant"] == choice["winner"]
    assert choice["cpu"]["isa"] == runtime_choice.isa_record()["isa"]
    assert set(choice["timings"]) == set(report["parity"]["variants"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Predictor(folder)  # chosen here: no warning any more

    report["parity"]["passed"] = False
    (folder / EXPORT_REPORT).write_text(json.dumps(report))
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "no passed parity gate recorded" in result.stderr


def test_export_writes_openvino_only_where_asked(monkeypatch):
    import imdb_deploy.export.stage as export_module
    from imdb_deploy.export.config import ExportConfig

    assert export_module._wants_openvino(ExportConfig(quantize=True))
    assert not export_module._wants_openvino(ExportConfig(quantize=False))  # auto: an INT8 export's companion
    assert not export_module._wants_openvino(ExportConfig(quantize=True, verify=False))  # nothing would gate it
    assert not export_module._wants_openvino(ExportConfig(quantize=True, openvino="off"))
    monkeypatch.setattr(export_module, "unavailable_reason", lambda: "openvino is not installed: pip install x")
    assert not export_module._wants_openvino(ExportConfig(quantize=True))  # the folder stays as it was
    with pytest.raises(ModelLoadError, match="--openvino on: openvino is not installed"):
        export_module._wants_openvino(ExportConfig(openvino="on"))


def test_ray_ships_only_the_ir_an_openvino_variant_runs(ov_dir):
    from imdb_deploy.engines.cluster import pack_model as _pack_model

    files = set(_pack_model(ov_dir, "openvino-int8"))
    assert {"openvino_int8.xml", "openvino_int8.bin", "tokenizer.json", "train_config.json"} <= files
    assert not files & {"onnx/model.onnx", "onnx/model_quantized.onnx", "openvino_fp32.xml", "openvino_fp32.bin"}
    assert {"onnx/model_quantized.onnx"} <= set(_pack_model(ov_dir, "int8")) and not {"openvino_int8.bin"} & set(
        _pack_model(ov_dir, "int8")
    )


def test_bench_shows_the_default_beside_each_runtimes_best_row(ov_dir, toy_data_dir):
    from imdb_deploy.bench import config as bench_config
    from imdb_deploy.bench import report as bench_report
    from imdb_deploy.bench import run as bench

    rows = ("predict", "predict-openvino-int8", "predict-openvino-fp32", "onnx-int8")
    config = bench_config.BenchConfig(data=str(toy_data_dir), samples=8, rows=rows, repeats=1, latency_samples=1)
    report = bench.run_bench(ov_dir, config)
    assert all(report["rows"][name]["status"] == "ok" for name in rows)
    assert report["rows"]["predict"]["variant"] == _report(ov_dir)["default_variant"]  # the measured default
    assert report["rows"]["predict-openvino-int8"]["engine"] == "openvino"
    assert report["rows"]["predict-openvino-int8"]["precision"] == "int8"
    assert report["rows"]["predict-openvino-int8"]["model_bytes"] == model_folder.graph_bytes(
        ov_dir / ov_config.INT8_IR
    )
    chosen = report["default"]
    assert chosen["default"]["row"] == "predict" and chosen["default"]["vs_default"] == 1.0
    best = chosen["best_by_runtime"]
    assert set(best) == {"onnxruntime", "openvino"}
    speeds = {name: row["reviews_per_s"] for name, row in report["rows"].items()}
    assert best["openvino"]["row"] == max(("predict-openvino-int8", "predict-openvino-fp32"), key=speeds.get)
    assert best["openvino"]["share_of_peak"] == report["rows"][best["openvino"]["row"]]["share_of_peak"]
    assert f"default variant {chosen['default']['variant']}" in bench_report.format_table(report)


def test_predict_cli_says_in_one_line_that_the_folder_was_measured_on_another_cpu(ov_dir, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(ov_dir, folder)
    report = _report(folder)
    report["runtime_choice"]["cpu"]["isa"] = ["avx2", "fma"]
    (folder / EXPORT_REPORT).write_text(json.dumps(report))
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("a great film\nbad and dull\n")
    result = CliRunner().invoke(cli, ["predict", str(reviews), "-m", str(folder), "-q"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and warning[0].endswith("--retime` to choose again")
    assert "Traceback" not in result.stderr and "ISAMismatchWarning" not in result.stderr


def test_serve_answers_concurrent_clients_from_openvino_exactly_as_offline(ov_dir, texts):
    import asyncio

    httpx = pytest.importorskip("httpx")
    pytest.importorskip("uvicorn")
    from test_serve import running

    from imdb_deploy.serve.app import create_app
    from imdb_deploy.serve.config import ServeConfig

    predictor = Predictor(ov_dir, variant="openvino-int8", threads=2)
    expected = predictor.predict_proba(texts)
    app = create_app(predictor, ServeConfig(access_log=False), ov_dir)
    bodies = [{"inputs": texts[i : i + 3], "details": True} for i in range(0, 24, 3)]  # our answer: probabilities

    async def post_all(base_url):
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            return await asyncio.gather(*(client.post("/predict", json=body) for body in bodies))

    with running(app) as base_url:
        responses = asyncio.run(post_all(base_url))
        info = httpx.get(f"{base_url}/info", timeout=10).json()
    assert [r.status_code for r in responses] == [200] * len(bodies)
    answers = [answer for r in responses for answer in r.json()]
    got = np.array([[a["probabilities"][name] for name in predictor.label_names] for a in answers])
    # One review per infer request whatever the server batched together: the offline bits, in order.
    np.testing.assert_array_equal(got, expected[:24].astype(np.float64))
    assert info["variant"] == "openvino-int8" and info["batch_invariant"] is True
    assert info["predictor"]["runtime"] == "openvino" and info["parity"]["variant"]["passed"] is True


def test_no_training_split_skips_openvino_with_a_note_unless_it_was_asked_for(toy_data_dir):
    import imdb_deploy.export.stage as export_module
    from imdb_deploy.errors import DataError
    from imdb_deploy.export.config import ExportConfig
    from imdb_deploy.export.stage import ExportReport

    only_test = f"test={toy_data_dir / 'test.parquet'}"
    report, notes = ExportReport(output="x", source_model="y"), []
    assert export_module._calibration(ExportConfig(quantize=True, data=only_test), report, notes.append) is None
    assert len(report.warnings) == 1 and notes == [f"note: {report.warnings[0]}"]
    assert "OpenVINO variants were not written" in report.warnings[0] and "--calibration-data" in report.warnings[0]
    with pytest.raises(DataError, match="names no 'train' file.*name them with --calibration-data"):
        export_module._calibration(ExportConfig(openvino="on", data=only_test), report, notes.append)
    config = ExportConfig(quantize=True, data=only_test, calibration_data=str(toy_data_dir), calibration_samples=4)
    assert len(export_module._calibration(config, report, notes.append)) == 4  # --calibration-data takes over


def test_the_gate_without_the_extra_skips_openvino_and_leaves_the_folder_unverified(ov_dir, toy_data_dir, monkeypatch):
    monkeypatch.setattr(verify, "unavailable_reason", lambda: "openvino is not installed: pip install x")
    config = verify_config.VerifyConfig(data=str(toy_data_dir), samples=20, variants=("fp32", "openvino-int8"))
    report = verify.check_parity(ov_dir, config=config)
    assert set(report.variants) == {"fp32"} and report.passed
    assert report.skipped == {"openvino-int8": "openvino is not installed: pip install x"}


def test_export_quiet_shows_no_nncf_progress_bars(tiny_classifier_dir, toy_data_dir, tmp_path):
    out = tmp_path / "onnx"
    args = ["export", str(tiny_classifier_dir), "-o", str(out), "--quantize", "--openvino", "on", "--no-verify"]
    result = CliRunner().invoke(cli, [*args, "--data", str(toy_data_dir), "--calibration-samples", "4", "-q"])
    assert result.exit_code == 0, result.output
    assert "Statistics collection" not in result.output and result.stdout == ""
    assert "  openvino-int8 openvino_int8.xml" in result.stderr
    report = _report(out)
    assert report["runtime_choice"] is None and report["default_variant"] == "int8"  # no gate: no measured choice
    assert report["settings"]["openvino"]["openvino-int8"]["calibration_samples"] == 4
