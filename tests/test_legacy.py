"""Folders written by the stack before transformers 5 still load, score the same, and pass the gate.

tests/data/legacy-4.57/ holds a tiny trained model folder (`model/`) and its ONNX export (`onnx/`, fp32,
fused, INT8, by optimum-onnx 0.1.0) made under transformers 4.57.6 by imdb-deploy 0.1.0, and what that stack
answered for 40 fixed reviews (`expected.json`); `make.py` there is how they were made.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from imdb_deploy.export.config import VerifyConfig
from imdb_deploy.export.gate import check_parity
from imdb_deploy.folders import load_settings
from imdb_deploy.runtimes.folder import load_tokenizer, load_torch_classifier
from imdb_deploy.runtimes.onnx import onnx_variants
from imdb_deploy.runtimes.predictor import Predictor
from imdb_deploy.tokenization import encode, pad

LEGACY = Path(__file__).parent / "data" / "legacy-4.57"
EXPECTED = json.loads((LEGACY / "expected.json").read_text())


def test_the_legacy_folders_come_from_the_old_stack():
    assert EXPECTED["versions"]["transformers"].startswith("4.57")
    report = json.loads((LEGACY / "onnx" / "export_report.json").read_text())
    assert report["versions"]["optimum-onnx"] == "0.1.0" and report["verified"] is True
    assert sorted(onnx_variants(LEGACY / "onnx")) == sorted(EXPECTED["onnx"])


def test_the_tokenizer_read_by_transformers_5_gives_the_old_stacks_ids():
    """expected.json's input_ids are what transformers 4.57.6 / tokenizers 0.22.2 made of the texts."""
    assert Predictor(LEGACY / "onnx", variant="int8").encode(EXPECTED["texts"]) == EXPECTED["input_ids"]


@pytest.mark.parametrize("variant", sorted(EXPECTED["onnx"]))
def test_an_onnx_folder_exported_under_4_57_scores_bit_identically(variant):
    """Same ids (above), same graph, same onnxruntime: Predictor's logits for each review are, to the last bit,
    what a plain onnxruntime session of the old graph answers for the old stack's ids."""
    predictor = Predictor(LEGACY / "onnx", variant=variant, threads=1)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(predictor.model_path), options, providers=["CPUExecutionProvider"])
    for text, ids in zip(EXPECTED["texts"], EXPECTED["input_ids"], strict=True):
        feed = {"input_ids": np.asarray([ids], dtype=np.int64), "attention_mask": np.ones((1, len(ids)), np.int64)}
        np.testing.assert_array_equal(predictor.logits([text]), session.run(None, feed)[0])


@pytest.mark.parametrize("variant", sorted(EXPECTED["onnx"]))
def test_an_onnx_folder_exported_under_4_57_answers_what_the_old_stack_answered(variant):
    """The labels the old stack recorded, and its probabilities as closely as the CPU allows: they were
    recorded on an AVX2 CPU, and onnxruntime's kernels differ per ISA (fp32 by ~1e-7; INT8 by ~1.4e-3 between
    AVX2's and AVX-512 VNNI's integer matmuls), so bit-identity is checked on one machine (above)."""
    probabilities = Predictor(LEGACY / "onnx", variant=variant, threads=1).predict_proba(EXPECTED["texts"])
    expected = np.asarray(EXPECTED["onnx"][variant], dtype=np.float32)
    np.testing.assert_array_equal(probabilities.argmax(-1), expected.argmax(-1))
    np.testing.assert_allclose(probabilities, expected, atol=5e-3 if variant.startswith("int8") else 1e-6, rtol=0)


def test_a_pytorch_folder_saved_under_4_57_loads_with_the_same_answers():
    model = load_torch_classifier(LEGACY / "model")
    tokenizer = load_tokenizer(LEGACY / "model")
    batch = pad(
        encode(tokenizer, EXPECTED["texts"], load_settings(LEGACY / "model", tokenizer)), tokenizer.pad_token_id
    )
    with torch.inference_mode():
        probabilities = torch.softmax(model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits, -1)
    expected = np.asarray(EXPECTED["torch"], dtype=np.float32)
    np.testing.assert_array_equal(probabilities.argmax(-1).numpy(), expected.argmax(-1))
    np.testing.assert_allclose(probabilities.numpy(), expected, atol=1e-5, rtol=0)


def test_the_gate_verifies_the_legacy_export_against_the_legacy_model(toy_data_dir):
    config = VerifyConfig(data=str(toy_data_dir), samples=None, invariance_samples=16)
    report = check_parity(LEGACY / "onnx", model=LEGACY / "model", config=config)
    assert report.passed, report.summary()
    assert report.variants["int8"].agreement >= 0.98
