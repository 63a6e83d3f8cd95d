import pytest

from imdb_deploy.errors import ConfigError
from imdb_deploy.tokenization import TokenizationSettings, encode, length_sorted_batches, pad


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from imdb_deploy.runtimes.folder import load_tokenizer

    return load_tokenizer(tiny_model_dir)


def test_short_text_is_untouched_and_wrapped_in_special_tokens(tokenizer):
    settings = TokenizationSettings(max_length=16, truncation="head+tail")
    (ids,) = encode(tokenizer, ["good movie"], settings)
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "good", "movie", "[SEP]"]


def test_head_keeps_first_tokens(tokenizer):
    text = " ".join(["good"] * 10 + ["bad"] * 10)
    settings = TokenizationSettings(max_length=8, truncation="head")
    (ids,) = encode(tokenizer, [text], settings)
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]"] + ["good"] * 6 + ["[SEP]"]


def test_head_tail_keeps_both_ends(tokenizer):
    text = " ".join(["good"] * 10 + ["movie"] * 10 + ["bad"] * 10)
    settings = TokenizationSettings(max_length=12, truncation="head+tail", head_tokens=4)
    (ids,) = encode(tokenizer, [text], settings)
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]"] + ["good"] * 4 + ["bad"] * 6 + ["[SEP]"]


def test_default_head_share_matches_sun_et_al_at_512():
    assert TokenizationSettings(max_length=512).head_tokens == 128


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_length": 600}, "max_length=600"),
        ({"truncation": "tail"}, "truncation='tail'"),
        ({"max_length": 16, "head_tokens": 20}, "head_tokens=20"),
    ],
)
def test_bad_settings_quote_the_value(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TokenizationSettings(**kwargs)


def test_settings_round_trip():
    settings = TokenizationSettings(max_length=256, truncation="head")
    assert TokenizationSettings.from_dict(settings.to_dict()) == settings


def test_pad_masks_only_real_tokens():
    out = pad([[1, 2, 3], [4]], pad_id=0)
    assert out["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_length_sorted_batches_cover_every_index_once_and_respect_token_budget():
    lengths = [5, 300, 40, 41, 7, 299, 6, 100]
    batches = length_sorted_batches(lengths, batch_size=3, max_tokens=600)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 600
