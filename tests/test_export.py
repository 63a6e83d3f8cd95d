"""Export: the folder is complete and self-describing, graphs take any batch and length, fp32 equals PyTorch,
INT8 really is integer, and a failed gate writes nothing."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from imdb_deploy.cli import cli
from imdb_deploy.errors import ConfigError
from imdb_deploy.export import exporters
from imdb_deploy.export import stage as export_module
from imdb_deploy.export.card import publishable_train_config
from imdb_deploy.export.config import ExportConfig
from imdb_deploy.export.stage import detect_quantization_target
from imdb_deploy.folders import EXPORT_REPORT, TRAIN_CONFIG
from imdb_deploy.runtimes.folder import load_torch_classifier
from imdb_deploy.runtimes.onnx import onnx_path, onnx_variants, open_onnx_session

INTEGER_MATMULS = {"MatMulInteger", "DynamicQuantizeMatMul", "QLinearMatMul", "QAttention"}


def random_batch(batch: int, length: int, vocab_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Token ids with [CLS] ... [SEP] and padding after a random length per row."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab_size, size=(batch, length), dtype=np.int64)
    mask = np.ones((batch, length), dtype=np.int64)
    for row in range(batch):
        used = int(rng.integers(2, length + 1)) if row else length  # first row unpadded
        ids[row, 0], ids[row, used - 1] = 2, 3
        ids[row, used:], mask[row, used:] = 0, 0
    return {"input_ids": ids, "attention_mask": mask}


def test_export_writes_a_complete_self_describing_folder(tiny_onnx_dir, tiny_classifier_dir):
    files = {p.relative_to(tiny_onnx_dir).as_posix() for p in tiny_onnx_dir.rglob("*") if p.is_file()}
    graphs = {"onnx/model.onnx", "onnx/model_optimized.onnx", "onnx/model_quantized.onnx"}  # transformers.js's layout
    assert {*graphs, "config.json", TRAIN_CONFIG} <= files
    assert {"tokenizer.json", EXPORT_REPORT} <= files  # transformers 5 saves the fast tokenizer alone
    assert not [name for name in files if name.startswith(".")]
    # The model's own, with its local paths reduced to plain names (a folder made to publish)
    assert json.loads((tiny_onnx_dir / TRAIN_CONFIG).read_text()) == publishable_train_config(
        json.loads((tiny_classifier_dir / TRAIN_CONFIG).read_text())
    )
    report = json.loads((tiny_onnx_dir / EXPORT_REPORT).read_text())
    assert report["verified"] is False  # the fixture skips the gate
    assert report["parity"] is None
    assert report["source_model"] == tiny_classifier_dir.name  # no path of this machine: a folder made to publish
    assert (
        report["source_sha256"] == hashlib.sha256((tiny_classifier_dir / "model.safetensors").read_bytes()).hexdigest()
    )
    assert set(report["variants"]) == {"fp32", "optimized", "int8", "int8-batched"}
    for name, variant in report["variants"].items():
        assert variant["bytes"] == (onnx_path(tiny_onnx_dir, name)).stat().st_size
    # The default (what predict and serve run) is batch-invariant; the batched INT8 run is labelled as not.
    assert report["default_variant"] == "int8"
    assert report["variants"]["int8"] | {"note": ""} == {
        "file": "onnx/model_quantized.onnx",
        "bytes": report["variants"]["int8"]["bytes"],
        "operators": report["variants"]["int8"]["operators"],
        "per_review": True,
        "batch_invariant": True,
        "note": "",
    }
    assert report["variants"]["int8-batched"]["batch_invariant"] is False
    assert report["variants"]["int8-batched"]["note"].startswith("BATCH-DEPENDENT")
    assert all(report["variants"][name]["batch_invariant"] for name in ("fp32", "optimized"))
    assert report["settings"]["opset_written"] >= 14
    assert report["settings"]["quantization"]["source"] == "model_optimized.onnx"
    assert report["cpu"]["quantize_target"] in ("avx512_vnni", "avx512", "avx2", "arm64")
    assert report["versions"]["onnxruntime"]


def test_fused_graph_carries_the_fusions_of_the_optimum_export(tiny_onnx_dir):
    """The fused graph has what optimum's ORTOptimizer O2 gave (imdb-deploy 0.1.0 under transformers 4.57):
    fused Attention in every full layer (the [CLS]-only last layer stays unfused, as it did), two
    SkipLayerNormalization and one BiasGelu per layer; the INT8 graph quantizes that Attention and the MatMuls.
    """
    report = json.loads((tiny_onnx_dir / EXPORT_REPORT).read_text())
    layers = json.loads((tiny_onnx_dir / "config.json").read_text())["n_layers"]
    assert report["exporter"]["name"] in ("torch", "optimum")
    assert report["exporter"]["transformers"] and report["exporter"]["opset"] == report["settings"]["opset_written"]
    fused = report["variants"]["optimized"]["operators"]
    assert fused["Attention"] == layers - 1
    assert fused["SkipLayerNormalization"] == 2 * layers
    assert fused["BiasGelu"] == layers
    int8 = report["variants"]["int8"]["operators"]
    assert int8["QAttention"] == layers - 1 and int8["MatMulInteger"] > 0 and "Attention" not in int8
    assert "Attention" not in report["variants"]["fp32"]["operators"]


def test_graphs_have_expected_inputs_and_dynamic_axes(tiny_onnx_dir):
    for name, path in onnx_variants(tiny_onnx_dir).items():
        graph = onnx.load(str(path)).graph
        inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
        assert set(inputs) == {"input_ids", "attention_mask"}, name
        for dims in inputs.values():
            assert all(isinstance(d, str) and d for d in dims), f"{name}: static axes {dims}"
        assert [o.name for o in graph.output] == ["logits"]


@pytest.mark.parametrize("variant", ["fp32", "optimized", "int8"])
def test_any_batch_size_and_sequence_length_runs(tiny_onnx_dir, variant):
    session = open_onnx_session(onnx_path(tiny_onnx_dir, variant), threads=1)
    for batch in (1, 7):
        for length in (5, 300):
            (logits,) = session.run(["logits"], random_batch(batch, length, vocab_size=80, seed=batch + length))
            assert logits.shape == (batch, 2)
            assert np.isfinite(logits).all()


def test_fp32_and_fused_graphs_match_pytorch(tiny_onnx_dir, tiny_classifier_dir):
    import torch

    model = load_torch_classifier(tiny_classifier_dir)
    feed = random_batch(7, 40, vocab_size=model.config.vocab_size, seed=1)
    with torch.inference_mode():
        expected = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy()
    for variant, atol in (("fp32", 1e-5), ("optimized", 1e-4)):
        session = open_onnx_session(onnx_path(tiny_onnx_dir, variant), threads=1)
        (logits,) = session.run(["logits"], feed)
        np.testing.assert_allclose(logits, expected, atol=atol, rtol=0, err_msg=variant)


def test_quantized_graph_has_integer_matmuls_and_is_smaller(tiny_onnx_dir):
    ops = {node.op_type for node in onnx.load(str(onnx_path(tiny_onnx_dir, "int8"))).graph.node}
    assert ops & INTEGER_MATMULS, f"no integer MatMul in {sorted(ops)}"
    assert "DynamicQuantizeLinear" in ops
    fused_ops = {node.op_type for node in onnx.load(str(onnx_path(tiny_onnx_dir, "optimized"))).graph.node}
    assert "Attention" in fused_ops and not fused_ops & INTEGER_MATMULS  # fusion really happened, in float
    size = {name: path.stat().st_size for name, path in onnx_variants(tiny_onnx_dir).items()}
    assert size["int8"] < 0.6 * size["optimized"]


def test_export_cli_runs_the_gate_and_marks_the_folder_verified(tiny_classifier_dir, toy_data_dir, tmp_path):
    out = tmp_path / "onnx"
    args = ["export", str(tiny_classifier_dir), "-o", str(out), "--data", str(toy_data_dir)]
    result = CliRunner().invoke(cli, [*args, "--verify-samples", "all", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"wrote {out} (verified)" in result.stderr
    report = json.loads((out / EXPORT_REPORT).read_text())
    assert report["verified"] is True
    assert report["parity"]["passed"] is True
    assert report["parity"]["samples"] == 100
    assert set(report["parity"]["variants"]) == {"fp32", "optimized"}
    assert report["parity"]["variants"]["fp32"]["agreement"] == 1.0


def test_failed_gate_writes_no_folder_and_keeps_the_old_one(tiny_classifier_dir, toy_data_dir, tmp_path, monkeypatch):
    real_optimize = export_module._optimize

    def corrupted_optimize(folder, config, model_config):
        variant = real_optimize(folder, config, model_config)
        path = onnx_path(folder, variant)
        model = onnx.load(str(path))
        rng = np.random.default_rng(0)
        for tensor in model.graph.initializer:
            values = onnx.numpy_helper.to_array(tensor)
            if values.dtype == np.float32 and values.ndim == 2:
                tensor.CopyFrom(onnx.numpy_helper.from_array(rng.permutation(values), tensor.name))
        onnx.save(model, str(path))
        return variant

    monkeypatch.setattr(export_module, "_optimize", corrupted_optimize)
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "old.txt").write_text("previous export")
    args = ["export", str(tiny_classifier_dir), "-o", str(out), "--data", str(toy_data_dir), "--overwrite", "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "parity gate FAILED on 100 reviews" in result.stderr
    assert "optimized: max |probability difference|" in result.stderr
    assert "fp32:" not in result.stderr  # the untouched fp32 graph passed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx"]  # no temporary folder left behind
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]

    fresh = tmp_path / "fresh"
    result = CliRunner().invoke(
        cli, ["export", str(tiny_classifier_dir), "-o", str(fresh), "--data", str(toy_data_dir)]
    )
    assert result.exit_code == 1
    assert not fresh.exists()


def test_export_refuses_int8_for_gpu_and_fp16_for_cpu(tiny_classifier_dir, tmp_path):
    result = CliRunner().invoke(
        cli, ["export", str(tiny_classifier_dir), "-o", str(tmp_path / "x"), "--quantize", "--device", "cuda"]
    )
    assert result.exit_code == 1
    assert "dynamic INT8 model, which is CPU-only" in result.stderr
    with pytest.raises(ConfigError, match="only a GPU runs fast"):
        ExportConfig(optimize="O4")
    with pytest.raises(ConfigError, match="opset=7"):
        ExportConfig(opset=7)
    assert not (tmp_path / "x").exists()


def test_export_names_a_missing_model_folder(tmp_path):
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "nope"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert f"model folder {str(tmp_path / 'nope')!r}: no such folder" in result.stderr


@pytest.mark.parametrize(
    ("machine", "flags", "target", "dot_product"),
    [
        ("x86_64", {"avx2", "avx512f", "avx512_vnni"}, "avx512_vnni", True),
        ("x86_64", {"avx2", "avx512f"}, "avx512", False),
        ("x86_64", {"avx2"}, "avx2", False),
        ("x86_64", {"avx2", "avx_vnni"}, "avx2", True),
        ("aarch64", {"asimd", "asimddp"}, "arm64", True),
    ],
)
def test_quantization_target_follows_the_cpu(monkeypatch, machine, flags, target, dot_product):
    monkeypatch.setattr(export_module.platform, "machine", lambda: machine)
    monkeypatch.setattr(export_module.platform, "system", lambda: "Linux")
    monkeypatch.setattr(export_module, "cpu_flags", lambda: flags)
    detected, info = detect_quantization_target()
    assert detected == target
    assert info["int8_dot_product"] is dot_product


def test_export_refuses_to_replace_its_own_model_folder(tiny_classifier_dir):
    args = ["export", str(tiny_classifier_dir), "-o", str(tiny_classifier_dir), "--overwrite"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: --output {str(tiny_classifier_dir)!r} is the model folder {str(tiny_classifier_dir)!r}; writing "
        "there could destroy the input. Choose an output outside it\n"
    )
    assert (tiny_classifier_dir / "model.safetensors").is_file()


def test_plain_graph_quantizes_too(tiny_classifier_dir, tmp_path):
    out = tmp_path / "onnx"
    export_module.export(tiny_classifier_dir, out, ExportConfig(optimize="none", quantize=True, verify=False))
    assert sorted(onnx_variants(out)) == ["fp32", "int8", "int8-batched"]
    ops = {node.op_type for node in onnx.load(str(onnx_path(out, "int8"))).graph.node}
    assert ops & INTEGER_MATMULS
    report = json.loads((out / EXPORT_REPORT).read_text())
    assert report["settings"]["quantization"]["source"] == "model.onnx"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") or p.name == "ort_config.json"]


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_cls_only_last_layer_keeps_the_logits_and_runs_one_position(tiny_classifier_dir, attention):
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir, attn_implementation=attention)
    model.eval()
    batch = {k: torch.from_numpy(v) for k, v in random_batch(5, 33, model.config.vocab_size, seed=3).items()}
    with torch.inference_mode():
        expected = model(**batch).logits
        exporters.cls_only_last_layer(model)
        shapes = []
        hook = model.distilbert.transformer.layer[-1].ffn.register_forward_hook(
            lambda module, args, output: shapes.append(tuple(args[0].shape))
        )
        pruned = model(**batch).logits
        hook.remove()
    assert shapes == [(5, 1, model.config.dim)]  # the feed-forward block saw [CLS] only
    torch.testing.assert_close(pruned, expected, atol=1e-5, rtol=0)


def test_full_last_layer_export_gives_the_same_logits(tiny_onnx_dir, tiny_classifier_dir, tmp_path):
    out = tmp_path / "full"
    config = ExportConfig(optimize="none", cls_only_last_layer=False, verify=False)
    export_module.export(tiny_classifier_dir, out, config)
    report = json.loads((out / EXPORT_REPORT).read_text())
    assert report["settings"]["cls_only_last_layer"] is False
    vocab_size = json.loads((out / "config.json").read_text())["vocab_size"]
    feed = random_batch(6, 21, vocab_size=vocab_size, seed=4)
    logits = {}
    for name, folder in (("full", out), ("cls-only", tiny_onnx_dir)):
        session = open_onnx_session(onnx_path(folder, "fp32"), threads=1)
        logits[name] = session.run(["logits"], feed)[0]
    np.testing.assert_allclose(logits["cls-only"], logits["full"], atol=1e-5, rtol=0)
    nodes = {
        name: len(onnx.load(str(onnx_path(folder, "fp32"))).graph.node)
        for name, folder in (("full", out), ("cls-only", tiny_onnx_dir))
    }
    assert nodes["full"] != nodes["cls-only"]  # the default really exported another graph
