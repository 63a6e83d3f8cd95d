"""The exporter choice, and that our fusion and INT8 settings are optimum's own.

The default install (transformers 5) has no optimum-onnx: there the optimum-only tests skip, and CI runs
this file again in the optimum environment (scripts/setup.sh --optimum, transformers 4.57), where they run
and the others check the automatic choice the other way round.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from imdb_deploy.cli import cli
from imdb_deploy.errors import ConfigError
from imdb_deploy.export.config import QUANTIZATION_TARGETS, ExportConfig
from imdb_deploy.export.exporters import (
    FUSION_LEVELS,
    _fusion_options,
    optimum_status,
    quantization_settings,
    resolve_exporter,
)
from imdb_deploy.export.stage import export
from imdb_deploy.runtimes.onnx import onnx_path, open_onnx_session

OPTIMUM, OPTIMUM_DETAIL = optimum_status()
needs_optimum = pytest.mark.skipif(not OPTIMUM, reason=f"optimum-onnx does not import here ({OPTIMUM_DETAIL})")


def test_auto_takes_optimum_exactly_where_it_imports():
    assert resolve_exporter("auto") == ("optimum" if OPTIMUM else "torch")
    assert resolve_exporter("torch") == "torch"


@pytest.mark.skipif(OPTIMUM, reason="optimum-onnx imports here")
def test_asking_for_optimum_where_it_cannot_import_is_a_one_line_error(tiny_classifier_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"transformers < 4\.58.*--exporter torch.*setup\.sh --optimum"):
        resolve_exporter("optimum")
    args = ["export", str(tiny_classifier_dir), "-o", str(tmp_path / "onnx"), "--exporter", "optimum", "--no-verify"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "optimum-onnx does not import here" in result.stderr
    assert not (tmp_path / "onnx").exists()


@needs_optimum
@pytest.mark.parametrize("target", QUANTIZATION_TARGETS)
@pytest.mark.parametrize("per_channel", [True, False])
def test_quantization_settings_are_optimums_presets(target, per_channel):
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    reduce_range = target in ("avx512", "avx2")
    kwargs = {"is_static": False, "per_channel": per_channel}
    if reduce_range:
        kwargs["reduce_range"] = True
    preset = getattr(AutoQuantizationConfig, target)(**kwargs)
    ours = quantization_settings(target, per_channel, reduce_range)
    # optimum's AVX2 preset has u8 weights; ours are s8 there on purpose (quantization_settings' docstring).
    assert ours.weights_dtype == ("QInt8" if target == "avx2" else preset.weights_dtype.name)
    assert ours.activations_dtype == preset.activations_dtype.name
    assert (ours.per_channel, ours.reduce_range) == (preset.per_channel, preset.reduce_range)
    assert (ours.weights_symmetric, ours.activations_symmetric) == (
        preset.weights_symmetric,
        preset.activations_symmetric,
    )
    assert list(ours.operators) == [getattr(op, "value", op) for op in preset.operators_to_quantize]


@needs_optimum
@pytest.mark.parametrize("level", sorted(FUSION_LEVELS))
def test_fusion_options_are_what_optimum_builds(level):
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    config = AutoOptimizationConfig.with_optimization_level(level, for_gpu=level == "O4")
    assert vars(_fusion_options(level)) == vars(config.create_fusion_options("bert"))
    opt_level, transformer_fusions, _, fp16 = FUSION_LEVELS[level]
    assert (opt_level, transformer_fusions, fp16) == (
        config.optimization_level,
        config.enable_transformers_specific_optimizations,
        config.fp16,
    )


@needs_optimum
def test_both_exporters_write_graphs_with_the_same_logits_and_fusions(tiny_classifier_dir, tmp_path):
    from test_export import random_batch

    logits, operators = {}, {}
    for exporter in ("torch", "optimum"):
        out = tmp_path / exporter
        export(tiny_classifier_dir, out, ExportConfig(exporter=exporter, verify=False))
        report = json.loads((out / "export_report.json").read_text())
        assert report["exporter"]["name"] == exporter
        operators[exporter] = report["variants"]["optimized"]["operators"]
        vocab_size = json.loads((out / "config.json").read_text())["vocab_size"]
        session = open_onnx_session(onnx_path(out, "optimized"), threads=1)
        logits[exporter] = session.run(["logits"], random_batch(6, 21, vocab_size=vocab_size, seed=5))[0]
    np.testing.assert_allclose(logits["torch"], logits["optimum"], atol=1e-5, rtol=0)
    assert operators["torch"] == operators["optimum"]
