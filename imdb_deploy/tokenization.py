"""Tokenization shared by every stage, so training, parity checks and serving see identical inputs.

Reviews are tokenized once without special tokens or truncation, then cut to the model's limit with
either the head of the review or its head and tail (Sun et al., 2019, "How to Fine-Tune BERT for Text
Classification?", found head 128 + tail 382 tokens best on IMDb). Padding happens per batch, to the
batch's own longest review (dynamic padding).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from imdb_deploy.errors import ConfigError

TRUNCATION_STRATEGIES = ("head", "head+tail")

LABEL_NAMES = ("negative", "positive")


def default_head_tokens(max_length: int) -> int:
    """Head share of a head+tail cut: 128 of 510 content tokens at 512, scaled for other limits."""
    return round((max_length - 2) * 128 / 510)


@dataclass(frozen=True)
class TokenizationSettings:
    """How raw review text becomes model input; stored in every model folder's train_config.json.

    Attributes:
        max_length: tokens per review including [CLS] and [SEP]; 512 is DistilBERT's position limit.
        truncation: "head" keeps the first tokens, "head+tail" keeps the first `head_tokens` and the last
            `max_length - 2 - head_tokens`.
        head_tokens: head share used by "head+tail"; None means `default_head_tokens(max_length)`.
        label_names: class names by label id (0 = negative, 1 = positive for IMDb).
    """

    max_length: int = 512
    truncation: str = "head+tail"
    head_tokens: int | None = None
    label_names: tuple[str, ...] = LABEL_NAMES

    def __post_init__(self) -> None:
        if not _is_int(self.max_length):
            raise ConfigError(f"max_length={self.max_length!r}: use a whole number from 8 to 512")
        if self.head_tokens is not None and not _is_int(self.head_tokens):
            raise ConfigError(f"head_tokens={self.head_tokens!r}: use a whole number (or leave it out)")
        names = self.label_names
        if isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple)):
            raise ConfigError(f"label_names={names!r}: use a list of names, e.g. {list(LABEL_NAMES)}")
        if len(names) < 2 or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            raise ConfigError(f"label_names={list(names)!r}: use two or more different, non-empty names")
        if not 8 <= self.max_length <= 512:
            raise ConfigError(f"max_length={self.max_length!r}: use a value from 8 to 512 (DistilBERT's limit)")
        if not isinstance(self.truncation, str) or self.truncation not in TRUNCATION_STRATEGIES:
            raise ConfigError(f"truncation={self.truncation!r}: use one of {', '.join(TRUNCATION_STRATEGIES)}")
        if self.head_tokens is None:
            object.__setattr__(self, "head_tokens", default_head_tokens(self.max_length))
        if not 0 <= self.head_tokens <= self.max_length - 2:
            raise ConfigError(
                f"head_tokens={self.head_tokens!r}: use a value from 0 to max_length - 2 = {self.max_length - 2}"
            )
        object.__setattr__(self, "label_names", tuple(self.label_names))

    def to_dict(self) -> dict:
        return {**asdict(self), "label_names": list(self.label_names)}

    @classmethod
    def from_dict(cls, data: dict) -> TokenizationSettings:
        keys = {"max_length", "truncation", "head_tokens", "label_names"}
        return cls(**{k: v for k, v in data.items() if k in keys})


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_SPECIAL_TOKENS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The special-token ids a tokenizer puts before and after one text ([CLS] and [SEP] for BERT's family),
    worked out once per tokenizer from its own template (transformers 4 and 5 alike)."""
    known = _SPECIAL_TOKENS.get(tokenizer)
    if known is None:
        body = tokenizer("a", add_special_tokens=False)["input_ids"]
        full = tokenizer("a", add_special_tokens=True)["input_ids"]
        start = next(i for i in range(len(full) - len(body) + 1) if full[i : i + len(body)] == body)
        known = _SPECIAL_TOKENS[tokenizer] = (list(full[:start]), list(full[start + len(body) :]))
    return known


def encode(tokenizer, texts: Sequence[str], settings: TokenizationSettings) -> list[list[int]]:
    """Token ids for each text, with special tokens, cut to `settings.max_length`.

    Args:
        tokenizer: a Hugging Face (fast) tokenizer of the model.
        texts: the reviews.
        settings: limit and truncation strategy.

    Returns:
        One list of token ids per text, unpadded.
    """
    if not texts:
        return []
    body = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    budget = settings.max_length - 2
    tail = budget - settings.head_tokens
    prefix, suffix = special_tokens_around(tokenizer)
    out = []
    for ids in body:
        if len(ids) > budget:
            if settings.truncation == "head+tail":
                ids = ids[: settings.head_tokens] + (ids[-tail:] if tail else [])
            else:
                ids = ids[:budget]
        out.append(prefix + ids + suffix)
    return out


def pad(
    batch: Sequence[Sequence[int]], pad_id: int, buffers: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Pad token id lists to the longest in the batch.

    Args:
        batch: token id lists, unpadded.
        pad_id: the tokenizer's padding id.
        buffers: optional flat int64 arrays `input_ids` and `attention_mask`, at least batch x longest long,
            to fill in place instead of allocating (Predictor reuses one pair across calls).

    Returns:
        `input_ids` and `attention_mask` as int64 arrays of shape (batch, longest).
    """
    width = max(len(ids) for ids in batch)
    if buffers is None:
        input_ids = np.full((len(batch), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
    else:
        n = len(batch) * width
        input_ids = buffers["input_ids"][:n].reshape(len(batch), width)
        mask = buffers["attention_mask"][:n].reshape(len(batch), width)
        input_ids.fill(pad_id)
        mask.fill(0)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def length_sorted_batches(
    lengths: Sequence[int], batch_size: int = 32, max_tokens: int | None = None
) -> list[list[int]]:
    """Group indices into batches of similar length, so each batch pads to little more than its content.

    Args:
        lengths: token count of each item.
        batch_size: most items in a batch.
        max_tokens: if set, also cap a batch at this many padded tokens (batch * longest), so short
            reviews travel in big batches and long ones in small.

    Returns:
        Lists of indices into `lengths`, longest batches first; every index appears exactly once.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        full = len(current) >= batch_size or (max_tokens is not None and (len(current) + 1) * longest > max_tokens)
        if current and full:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
