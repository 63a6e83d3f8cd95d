"""artifacts.write_train_config: the one writer of train_config.json, one set of keys, read back as written."""

from __future__ import annotations

import json

import pytest

from imdb_deploy.folders import TRAIN_CONFIG, TRAIN_CONFIG_FIELDS, load_settings, write_train_config
from imdb_deploy.tokenization import TokenizationSettings
from imdb_deploy.version import __version__


def test_every_key_is_written_and_the_settings_read_back(tmp_path):
    settings = TokenizationSettings(max_length=64, truncation="head")
    path = write_train_config(tmp_path, settings, "some/base", data_source="imdb")
    assert path == tmp_path / TRAIN_CONFIG and [p.name for p in tmp_path.iterdir()] == [TRAIN_CONFIG]
    record = json.loads(path.read_text())
    assert set(record) == set(settings.to_dict()) | set(TRAIN_CONFIG_FIELDS)
    assert record["base_model"] == "some/base" and record["data_source"] == "imdb" and record["training"] is None
    assert record["random_weights"] is False and record["imdb_deploy_version"] == __version__
    assert load_settings(tmp_path) == settings


def test_an_unknown_field_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(TypeError, match="epochs"):
        write_train_config(tmp_path, TokenizationSettings(), "base", epochs=2)
    assert not list(tmp_path.iterdir())
