"""architectures: the one random-weight builder (bench, gpu_check, research) and the one multiply-add counter."""

from __future__ import annotations

import json

import pytest

from imdb_deploy.errors import ConfigError
from imdb_deploy.training.architectures import (
    TINY,
    parse_architecture,
    random_classifier,
    save_random_classifier,
    useful_macs,
)


def test_useful_macs_counts_real_tokens():
    from transformers import DistilBertConfig

    config = DistilBertConfig(n_layers=2, dim=8, hidden_dim=16, n_heads=2)
    work = useful_macs(config, [3, 5])
    assert work["linear"] == 2 * (4 * 64 + 2 * 8 * 16) * 8
    assert work["attention"] == 2 * 2 * 8 * (9 + 25)
    assert work["total"] == work["linear"] + work["attention"] + 2 * (64 + 16)
    # Last layer for [CLS] only: layer 1 as before; layer 2 does K, V for 8 tokens, the rest for 2 reviews.
    cls = useful_macs(config, [3, 5], cls_only_last_layer=True)
    assert cls["linear"] == (4 * 64 + 2 * 8 * 16) * 8 + 2 * 64 * 8 + (2 * 64 + 2 * 8 * 16) * 2
    assert cls["attention"] == 2 * 8 * (9 + 25) + 2 * 8 * 8


def test_specs_parse_and_bad_overrides_name_the_value(tmp_path):
    assert parse_architecture("distilbert-base") == {}
    assert parse_architecture("distilbert-base:n_layers=1,dim=32") == {"n_layers": 1, "dim": 32}
    assert parse_architecture(str(tmp_path)) is None and parse_architecture("bert-large") is None
    with pytest.raises(ConfigError, match="'n_layer=2'"):
        parse_architecture("distilbert-base:n_layer=2")


def test_random_classifier_is_seeded_and_sized_for_the_tokenizer():
    a, b = random_classifier(TINY, 100, seed=3), random_classifier(TINY, 100, seed=3)
    assert a.config.vocab_size == 100 and a.config.n_layers == 2 and a.config.id2label == {0: "negative", 1: "positive"}
    assert all((x == y).all() for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    with pytest.raises(ConfigError, match="vocab_size 50 < the tokenizer's 100"):
        random_classifier({**TINY, "vocab_size": 50}, 100)


def test_saved_folder_describes_itself_as_random(tiny_model_dir, tmp_path):
    spec = "distilbert-base:n_layers=1,dim=32,hidden_dim=64,n_heads=2"
    folder = save_random_classifier(spec, tmp_path / "m", tokenizer=str(tiny_model_dir), max_length=48, seed=1)
    record = json.loads((folder / "train_config.json").read_text())
    assert record["random_weights"] is True and record["base_model"] == spec and record["max_length"] == 48
    assert record["tokenizer"] == str(tiny_model_dir)
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    with pytest.raises(ConfigError, match="architecture 'bert-large'"):
        save_random_classifier("bert-large", tmp_path / "x")
