"""The export outside imdb-deploy: the training cut inside the graph, transformers.js in Node and in headless
Chromium, the plain onnxruntime recipe of docs/portable.md, and the Hub model card.

The Node and browser checks need `node` with js/node_modules (`cd js && ONNXRUNTIME_NODE_INSTALL=skip npm ci`)
and, for the browser, /usr/bin/chromium (Debian's package); they skip with that reason elsewhere.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import toy_reviews
from huggingface_hub import ModelCard, metadata_load

from imdb_deploy.errors import ModelLoadError
from imdb_deploy.export.card import (
    machine_paths,
    publishable_export_report,
    publishable_train_config,
    render_model_card,
)
from imdb_deploy.export.portable import (
    TRANSFORMERSJS_FILES,
    UNLIMITED_MODEL_MAX_LENGTH,
    graph_truncation,
    prepend_truncation,
    transformersjs_folder,
    with_truncation,
)
from imdb_deploy.folders import load_export_report
from imdb_deploy.metrics import softmax
from imdb_deploy.runtimes.folder import load_tokenizer
from imdb_deploy.runtimes.predictor import Predictor
from imdb_deploy.tokenization import TokenizationSettings, encode, pad

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "js"
CHROMIUM = Path("/usr/bin/chromium")
NODE = shutil.which("node")
NODE_MISSING = (
    "node or js/node_modules missing: install Node.js, then `cd js && ONNXRUNTIME_NODE_INSTALL=skip npm ci`"
    if not NODE or not (JS / "node_modules" / "@huggingface" / "transformers").is_dir()
    else None
)
# How far transformers.js's probabilities may be from Predictor's on the same graph (docs/portable.md, measured on
# 200 real reviews): Node runs onnxruntime-node, the same kernels as the Python wheel (7e-8 measured); the browser's
# WASM build rounds fp32 differently (6e-7 measured), which dynamic INT8 turns into whole quantization steps now
# and then (2.4e-2 measured, mean 1.7e-3).
TOLERANCE = {"node fp32": 1e-5, "node q8": 1e-5, "browser fp32": 1e-5, "browser q8": 5e-2}


@pytest.fixture(scope="module")
def reviews():
    """Toy reviews, a third of them longer than the tiny model's 64 tokens, so the head+tail cut matters."""
    texts, _ = toy_reviews(24, seed=5, min_words=2, max_words=150)
    return texts


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory):
    """A folder exported before the cut moved into the graph (flat layout, no cut): the tiny legacy export."""
    folder = tmp_path_factory.mktemp("plain") / "onnx"
    shutil.copytree(ROOT / "tests" / "data" / "legacy-4.57" / "onnx", folder)
    return folder


@pytest.fixture(scope="module")
def cut_dir(tmp_path_factory, plain_dir):
    """That older export rebuilt as export now builds it, with the cut inside (prepend, then fuse and quantize)."""
    folder = tmp_path_factory.mktemp("cut") / "tiny-cut"
    with_truncation(plain_dir, folder)
    return folder


@pytest.fixture(scope="module")
def js_dir(tiny_onnx_dir):
    """What transformers.js loads: an export as `imdb-deploy export` writes it (its layout, the cut inside)."""
    return tiny_onnx_dir


def _logits(path, feed) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]


@pytest.mark.parametrize("truncation", ["head+tail", "head"])
def test_the_graph_cuts_each_row_of_a_padded_batch_as_encode_does(plain_dir, tmp_path, reviews, truncation):
    settings = TokenizationSettings(max_length=48, truncation=truncation, head_tokens=12)
    prepend_truncation(plain_dir / "model.onnx", tmp_path / "cut.onnx", settings)
    tokenizer = load_tokenizer(plain_dir)
    cut = encode(tokenizer, reviews, settings)
    full = tokenizer(list(reviews), truncation=False, verbose=False)["input_ids"]
    assert max(len(ids) for ids in full) > 100 and min(len(ids) for ids in full) < 48  # both kinds of row
    expected = _logits(plain_dir / "model.onnx", pad(cut, 0))
    # The whole tokenization of every review, padded to the longest, in one call: each row cut by its length.
    assert np.abs(_logits(tmp_path / "cut.onnx", pad(full, 0)) - expected).max() <= 1e-5
    # Rows already cut (Predictor's) pass unchanged.
    assert np.abs(_logits(tmp_path / "cut.onnx", pad(cut, 0)) - expected).max() <= 1e-5
    assert graph_truncation(tmp_path / "cut.onnx")["max_length"] == 48


def test_fusion_and_int8_keep_their_operators_with_the_cut_in_front(plain_dir, tmp_path):
    changes = with_truncation(plain_dir, tmp_path / "copy")
    assert set(changes) == {"fp32", "optimized", "int8", "int8-batched"}
    for name, change in changes.items():
        assert change["after"] == change["before"], name
    assert changes["optimized"]["after"]["Attention"] >= 1 and changes["int8"]["after"]["QAttention"] >= 1
    for file in ("model.onnx", "model_optimized.onnx", "model_quantized.onnx"):
        assert graph_truncation(tmp_path / "copy" / file) is not None, file
    report = load_export_report(tmp_path / "copy")
    assert report["verified"] is False and "with_truncation" in report["warnings"][-1]


def test_predictor_answers_the_same_with_the_cut_inside(plain_dir, cut_dir, reviews):
    for variant in ("fp32", "optimized", "int8"):
        before = Predictor(plain_dir, variant=variant, allow_unverified=True).predict_proba(reviews)
        after = Predictor(cut_dir, variant=variant, allow_unverified=True).predict_proba(reviews)
        assert np.abs(before - after).max() <= 1e-5, variant


def test_a_graph_is_cut_once(cut_dir, tmp_path):
    settings = TokenizationSettings(max_length=48, truncation="head+tail", head_tokens=12)  # the legacy export's
    prepend_truncation(cut_dir / "model.onnx", tmp_path / "again.onnx", settings)
    assert (tmp_path / "again.onnx").read_bytes() == (cut_dir / "model.onnx").read_bytes()
    with pytest.raises(ModelLoadError, match="already cuts reviews another way"):
        prepend_truncation(cut_dir / "model.onnx", tmp_path / "other.onnx", TokenizationSettings(max_length=32))


def test_an_export_is_in_transformersjs_layout_and_an_older_one_can_be_copied_into_it(
    cut_dir, plain_dir, tiny_onnx_dir, tmp_path
):
    # The export itself: graphs under onnx/, the cut in each, the tokenizer cutting nothing, q8 the default.
    graphs = sorted(p.name for p in (tiny_onnx_dir / "onnx").iterdir())
    assert graphs == ["model.onnx", "model_optimized.onnx", "model_quantized.onnx"]
    assert all(graph_truncation(tiny_onnx_dir / "onnx" / name) for name in graphs)
    assert json.loads((tiny_onnx_dir / "config.json").read_text())["transformers.js_config"] == {"dtype": "q8"}
    limit = json.loads((tiny_onnx_dir / "tokenizer_config.json").read_text())["model_max_length"]
    assert limit == UNLIMITED_MODEL_MAX_LENGTH
    # An older export, rebuilt with the cut, copied into the layout.
    js_dir = transformersjs_folder(cut_dir, tmp_path / "js")
    assert sorted(p.name for p in (js_dir / "onnx").iterdir()) == ["model.onnx", "model_quantized.onnx"]
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "train_config.json", "export_report.json"):
        assert (js_dir / name).is_file(), name
    assert json.loads((js_dir / "config.json").read_text())["transformers.js_config"] == {"dtype": "q8"}
    assert json.loads((js_dir / "tokenizer_config.json").read_text())["model_max_length"] == UNLIMITED_MODEL_MAX_LENGTH
    # The export's own files are untouched (the copy's rewrites replace its hard links).
    assert "transformers.js_config" not in json.loads((cut_dir / "config.json").read_text())
    assert TRANSFORMERSJS_FILES["q8"] == "model_quantized.onnx"
    # A folder whose graphs do not cut would be read head-only by transformers.js: refused.
    with pytest.raises(ModelLoadError, match="cuts no review itself"):
        transformersjs_folder(plain_dir, tmp_path / "plain-js")


def _recipe() -> str:
    text = (ROOT / "docs" / "portable.md").read_text()
    return re.search(r"<!-- recipe:.*?-->\n```python\n(.*?)```", text, re.S).group(1)


def test_the_plain_onnxruntime_recipe_reproduces_predictor(js_dir, reviews):
    code = _recipe().replace('folder = "runs/minilm-2k-onnx"', f"folder = {str(js_dir)!r}")
    namespace: dict = {}
    exec(compile(code, "docs/portable.md", "exec"), namespace)  # also prints one answer, as a reader sees it
    expected = Predictor(js_dir, variant="int8").predict(reviews)  # onnxruntime's default: one review per call
    got = [namespace["classify"](text) for text in reviews]
    assert [g["label"] for g in got] == [e.label for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert abs(g["score"] - e.score) <= 1e-6
        assert g["probabilities"].keys() == e.probabilities.keys()


def _check(results: list[dict], predictor: Predictor, texts: list[str], tolerance: float) -> None:
    """Probabilities within `tolerance` of Predictor's, and the same label wherever Predictor's margin is wider."""
    want = softmax(predictor.logits(texts))
    names = predictor.label_names
    got = np.array([[r["probabilities"][n] for n in names] for r in results])
    assert np.abs(got - want).max() <= tolerance
    clear = np.abs(want.max(axis=1) - 0.5) > tolerance
    labels = np.array([names.index(r["label"]) for r in results])
    assert (labels == want.argmax(axis=1))[clear].all()


def _jsonl(texts: list[str]) -> str:
    return "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts))


def _run_node(script: str, folder: Path, dtype: str, texts: list[str], *extra: str) -> list[dict]:
    result = subprocess.run(
        [NODE, str(JS / script), str(folder), "--dtype", dtype, *extra],
        input=_jsonl(texts),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == list(range(len(texts)))
    return rows


@pytest.mark.skipif(NODE_MISSING is not None, reason=NODE_MISSING or "")
@pytest.mark.parametrize(("dtype", "variant"), [("fp32", "fp32"), ("q8", "int8")])
def test_transformersjs_in_node_gives_predictors_answers(js_dir, reviews, dtype, variant):
    rows = _run_node("classify.mjs", js_dir, dtype, reviews)
    _check(rows, Predictor(js_dir, variant=variant), reviews, TOLERANCE[f"node {dtype}"])


@pytest.mark.skipif(NODE_MISSING is not None, reason=NODE_MISSING or "")
@pytest.mark.skipif(not CHROMIUM.is_file(), reason="no /usr/bin/chromium: apt-get install chromium")
def test_transformersjs_in_headless_chromium_gives_predictors_answers(js_dir, reviews, tmp_path):
    texts = reviews[:12]
    shot = tmp_path / "page.png"
    rows = _run_node("browser.mjs", js_dir, "q8", texts, "--screenshot", str(shot))
    _check(rows, Predictor(js_dir, variant="int8"), texts, TOLERANCE["browser q8"])
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def gated_report(tiny_onnx_dir, toy_data_dir):
    """export_report.json of the tiny export with the gate's results on 40 toy reviews in it."""
    from imdb_deploy.export.config import VerifyConfig
    from imdb_deploy.export.gate import check_parity

    parity = check_parity(tiny_onnx_dir, config=VerifyConfig(data=str(toy_data_dir), samples=40))
    return {**load_export_report(tiny_onnx_dir), "parity": parity.to_dict(), "verified": parity.passed}


def test_the_model_card_parses_back_with_the_gates_numbers(gated_report, tiny_onnx_dir, tmp_path):
    train_config = json.loads((tiny_onnx_dir / "train_config.json").read_text())
    text = render_model_card(gated_report, train_config, "tiny-imdb-onnx", repo_id="someone/tiny-imdb-onnx")
    (tmp_path / "README.md").write_text(text)
    metadata = metadata_load(tmp_path / "README.md")
    assert metadata["pipeline_tag"] == "text-classification"
    assert metadata["library_name"] == "transformers.js"
    assert metadata["license"] == "apache-2.0"
    card = ModelCard(text)
    results = {(r.metric_type, r.metric_name): r.metric_value for r in card.data.eval_results}
    parity = gated_report["parity"]
    for name, variant in parity["variants"].items():
        label = f"ONNX {name} ({variant['file']})"
        assert results[("accuracy", f"accuracy, {label}")] == round(variant["accuracy"], 4)
        assert results[("agreement", f"label agreement with PyTorch, {label}")] == round(variant["agreement"], 4)
        assert results[("f1", f"f1, {label}")] == round(variant["metrics"]["f1"], 4)
    assert results[("accuracy", "accuracy, PyTorch")] == round(parity["pytorch_accuracy"], 4)
    assert {r.dataset_split for r in card.data.eval_results} == {"test"}
    assert machine_paths(tmp_path) == {}


def test_the_model_card_names_hub_ids_it_can_prove(gated_report, tiny_onnx_dir):
    train_config = {**json.loads((tiny_onnx_dir / "train_config.json").read_text()), "data_source": "imdb"}
    card = ModelCard(render_model_card(gated_report, train_config, "m", base_model="distilbert-base-uncased"))
    assert card.data.base_model == "distilbert-base-uncased"
    assert card.data.datasets == ["stanfordnlp/imdb"]
    # A local base model that is not the offline all-MiniLM-L6-v2 is left out, never published as a path.
    assert ModelCard(render_model_card(gated_report, train_config, "m")).data.base_model is None


def test_an_unverified_export_has_no_card(tiny_onnx_dir):
    with pytest.raises(ValueError, match="no parity results"):
        render_model_card(load_export_report(tiny_onnx_dir), {}, "m")


def test_an_export_names_no_path_of_this_machine_and_the_publishable_forms(
    tiny_onnx_dir, tiny_classifier_dir, tmp_path
):
    assert machine_paths(tiny_onnx_dir) == {}  # every file: the graphs, the report, train_config.json, the card
    assert "without the parity gate" in (tiny_onnx_dir / "README.md").read_text()  # the fixture skips the gate
    # The rewrites that made it so, on a trained folder's own train_config.json (base_model, data: paths here).
    folder = tmp_path / "publish"
    folder.mkdir()
    train_config = json.loads((tiny_classifier_dir / "train_config.json").read_text())
    (folder / "train_config.json").write_text(json.dumps(train_config))
    assert set(machine_paths(folder)) == {"train_config.json"}
    published = publishable_train_config(train_config)
    for key in ("max_length", "truncation", "head_tokens", "label_names"):
        assert published[key] == train_config[key]
    assert published["base_model"] == Path(train_config["base_model"]).name
    assert published["base_model_hub_id"] is None  # a plain name proves no Hub id: the card leaves it out
    (folder / "train_config.json").write_text(json.dumps(published))
    report = publishable_export_report({"source_model": str(tiny_classifier_dir), "output": str(folder)})
    assert report == {"source_model": tiny_classifier_dir.name, "output": "publish"}
    assert machine_paths(folder) == {}
    hub = {"base_model": "distilbert-base-uncased", "data_source": "stanfordnlp/imdb", "training": {"data": "imdb"}}
    assert publishable_train_config(hub) == {**hub, "base_model_hub_id": "distilbert-base-uncased"}
    assert publishable_train_config(publishable_train_config(train_config))["base_model_hub_id"] is None


def test_the_npm_packages_are_pinned_exactly():
    manifest = json.loads((JS / "package.json").read_text())
    lock = json.loads((JS / "package-lock.json").read_text())
    for name, version in manifest["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name}: {version} is a range; pin it exactly"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, name


def test_portable_main_writes_a_transformersjs_copy(cut_dir, tmp_path, capsys):
    from imdb_deploy.export.portable import main

    assert main([str(cut_dir), str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out")
    assert (tmp_path / "out" / "onnx" / "model_quantized.onnx").is_file()
    assert main([str(cut_dir), str(tmp_path / "out")]) == 1  # exists: refused, nothing replaced


@pytest.mark.skipif(NODE_MISSING is not None, reason=NODE_MISSING or "")
def test_the_portable_check_script_runs_on_an_export_as_export_writes_it(tiny_onnx_dir, toy_data_dir, tmp_path):
    """scripts/portable_check.py (the numbers in docs/portable.md) on the current layout (graphs under onnx/),
    Node only: the fp32 and q8 rows agree with Predictor."""
    out = tmp_path / "portable.json"
    args = [sys.executable, str(ROOT / "scripts" / "portable_check.py"), str(tiny_onnx_dir), "--data"]
    args += [str(toy_data_dir), "--samples", "8", "--work", str(tmp_path / "work"), "--out", str(out), "--no-browser"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["reviews"] == 8 and set(record["results"]) == {"node fp32", "node q8"}
    assert all(row["agreement"] == 1.0 for row in record["results"].values()), record["results"]
    assert "operators" not in record  # the export already cuts inside its graphs: nothing was rebuilt
