"""Predictor and `imdb-deploy predict`: order, batching, every input format, every bad-input case, flat memory."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import toy_reviews

from imdb_deploy.errors import ConfigError, InputError, ModelLoadError


@pytest.fixture(scope="module")
def onnx_dir(request, tmp_path_factory, tiny_classifier_dir):
    """The shared tiny exported folder when conftest has it, else a local optimum export + INT8 copy."""
    try:
        return request.getfixturevalue("tiny_onnx_dir")
    except pytest.FixtureLookupError:
        pass
    import shutil

    from onnxruntime.quantization import QuantType, quantize_dynamic
    from optimum.exporters.onnx import main_export

    folder = tmp_path_factory.mktemp("tiny-onnx")
    main_export(str(tiny_classifier_dir), folder, task="text-classification", do_validation=False)
    quantize_dynamic(folder / "model.onnx", folder / "model_quantized.onnx", weight_type=QuantType.QInt8)
    shutil.copy(tiny_classifier_dir / "train_config.json", folder / "train_config.json")
    return folder


@pytest.fixture(scope="module")
def predictor(onnx_dir):
    from imdb_deploy import Predictor

    return Predictor(onnx_dir, variant="fp32")


def test_auto_variant_takes_int8_on_cpu(onnx_dir):
    from imdb_deploy import Predictor

    assert Predictor(onnx_dir).variant == "int8"


def test_sorted_batches_keep_input_order_and_match_one_at_a_time(onnx_dir, predictor):
    from imdb_deploy import Predictor

    texts, _ = toy_reviews(120, seed=3, min_words=1, max_words=80)
    small = Predictor(onnx_dir, variant="fp32", batch_size=7, max_tokens=200)
    batched = small.predict_proba(texts)
    single = np.concatenate([predictor.predict_proba([text]) for text in texts])
    assert batched.shape == (120, 2)
    np.testing.assert_allclose(batched, single, atol=1e-5)
    # Reversing the input reverses the output: rows follow the input, not the length sort.
    np.testing.assert_allclose(small.predict_proba(texts[::-1]), batched[::-1], atol=1e-5)


def test_predict_returns_label_score_and_both_probabilities(predictor):
    texts, _ = toy_reviews(5, seed=4)
    results = predictor.predict(texts)
    proba = predictor.predict_proba(texts)
    assert len(results) == 5
    for result, row in zip(results, proba, strict=True):
        assert set(result.probabilities) == {"negative", "positive"}
        assert result.label == ("positive" if row[1] > row[0] else "negative")
        assert result.score == pytest.approx(max(row))
        assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-6)


def test_predict_handles_empty_and_long_inputs(predictor):
    assert predictor.predict_proba([]).shape == (0, 2)
    assert predictor.predict([]) == []
    long_text = " ".join(["great movie"] * 500)  # far past max_length 64: cut, not an error
    assert predictor.predict_proba([long_text, ""]).shape == (2, 2)


def test_predict_rejects_a_single_string_and_non_strings(predictor):
    with pytest.raises(InputError, match=r"pass a list of reviews"):
        predictor.predict("great movie")
    with pytest.raises(InputError, match=r"texts\[1\]: expected a string, got int"):
        predictor.predict(["fine", 3])


def test_bad_options_and_folders_are_named(onnx_dir, tmp_path):
    from imdb_deploy import Predictor

    with pytest.raises(ConfigError, match=r"batch_size=0"):
        Predictor(onnx_dir, batch_size=0)
    with pytest.raises(ModelLoadError, match=r"has no fp16 model"):
        Predictor(onnx_dir, variant="fp16")
    with pytest.raises(ModelLoadError, match=r"no such folder"):
        Predictor(tmp_path / "missing")
