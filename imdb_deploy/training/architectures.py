"""Random-weight DistilBERT classifiers for timing, and the multiply-adds a forward pass needs.

An architecture spec names a DistilBertConfig: "distilbert-base" is DistilBertConfig() itself
(distilbert-base-uncased's exact compute: 6 layers, dim 768, 12 heads, FFN 3072, vocab 30522), and
"distilbert-base:n_layers=2,dim=64,hidden_dim=128,n_heads=2" changes fields. Random weights time exactly
as trained ones. Plain arguments only: bench, scripts/gpu_check.py and research/ all build through here.
Light at import (numpy; torch and transformers only inside the builders), like train_step.py, so gpu_check can
import it on a machine that has only torch, accelerate and transformers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification

from imdb_deploy.errors import ConfigError
from imdb_deploy.folders import write_train_config
from imdb_deploy.runtimes.folder import load_tokenizer
from imdb_deploy.tokenization import LABEL_NAMES, TokenizationSettings

# Architecture specs: name -> DistilBertConfig overrides (none: the defaults, distilbert-base-uncased's).
ARCHITECTURES = {"distilbert-base": {}}

# Tokenizer an architecture spec is paired with unless the caller names one (same uncased vocab).
ARCHITECTURE_TOKENIZERS = {"distilbert-base": "distilbert-base-uncased"}

# A 2-layer, 32-dim DistilBERT: the same code paths in seconds on a CPU (tests, smoke runs).
TINY = {"dim": 32, "hidden_dim": 64, "n_layers": 2, "n_heads": 2}


def parse_architecture(spec: str) -> dict | None:
    """DistilBertConfig overrides for an architecture spec, or None when `spec` is not one (e.g. a folder).

    Raises:
        ConfigError: a malformed override or an unknown DistilBertConfig field.
    """
    name, _, overrides = str(spec).partition(":")
    if name not in ARCHITECTURES or Path(str(spec)).exists():
        return None

    fields = dict(ARCHITECTURES[name])
    known = DistilBertConfig().to_dict()
    for item in filter(None, (part.strip() for part in overrides.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise ConfigError(f"architecture {spec!r}: {item!r} is not FIELD=VALUE with a DistilBertConfig field")
        try:
            fields[key] = type(known[key])(value) if known[key] is not None else int(value)
        except ValueError as exc:
            raise ConfigError(f"architecture {spec!r}: {item!r} needs a {type(known[key]).__name__}") from exc
    return fields


def random_classifier(fields: dict, vocab_size: int, seed: int | None = None, label_names=LABEL_NAMES):
    """A DistilBertForSequenceClassification of DistilBertConfig(**fields) with random weights (train mode).

    Args:
        fields: DistilBertConfig overrides (see parse_architecture; {} is distilbert-base).
        vocab_size: the tokenizer's size; the embedding gets this many rows unless `fields` names more.
        seed: seeds torch before the weights are drawn; None draws from the current global state.
        label_names: the labels, in id order.

    Raises:
        ConfigError: `fields` gives a vocabulary smaller than the tokenizer's.
    """

    fields = {"vocab_size": vocab_size, **fields}
    if fields["vocab_size"] < vocab_size:
        raise ConfigError(f"vocab_size {fields['vocab_size']} < the tokenizer's {vocab_size}")
    if seed is not None:
        torch.manual_seed(seed)
    config = DistilBertConfig(
        **fields,
        id2label=dict(enumerate(label_names)),
        label2id={label: i for i, label in enumerate(label_names)},
    )
    return DistilBertForSequenceClassification(config)


def save_random_classifier(
    spec: str,
    folder: str | os.PathLike,
    tokenizer: str | None = None,
    max_length: int = 512,
    seed: int = 42,
) -> Path:
    """Save a seeded random-weight classifier of an architecture spec as a model folder `train` would write
    (weights, tokenizer, train_config.json marked `random_weights`).

    Args:
        spec: an architecture spec (see parse_architecture).
        folder: where to write it.
        tokenizer: folder or Hub id of the tokenizer [default: ARCHITECTURE_TOKENIZERS for the spec].
        max_length: tokens per review recorded in train_config.json.
        seed: seed of the weights.

    Raises:
        ConfigError: `spec` is not an architecture spec, or its vocabulary is smaller than the tokenizer's.
        ModelLoadError, HubUnreachableError: the tokenizer cannot be loaded.
    """

    fields = parse_architecture(spec)
    if fields is None:
        raise ConfigError(f"architecture {spec!r}: use one of {', '.join(ARCHITECTURES)} (optionally :FIELD=VALUE,...)")
    tokenizer_ref = tokenizer or ARCHITECTURE_TOKENIZERS[spec.partition(":")[0]]
    loaded = load_tokenizer(tokenizer_ref)
    try:
        model = random_classifier(fields, len(loaded), seed=seed)
    except ConfigError as exc:
        raise ConfigError(f"architecture {spec!r}: {exc}") from exc
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(folder)
    loaded.save_pretrained(folder)
    settings = TokenizationSettings(max_length=max_length)
    write_train_config(folder, settings, spec, tokenizer=str(tokenizer_ref), random_weights=True)
    return folder


def useful_macs(model_config, lengths: Sequence[int], cls_only_last_layer: bool = False) -> dict:
    """Multiply-adds a padding-free forward pass needs for reviews of these token counts.

    Per layer and token: Q, K, V and output projections (4 d^2) and the feed-forward block (2 d f); per
    layer and pair of tokens of a review: attention scores and the weighted sum of values (2 d). Plus the
    classification head (d^2 + d x labels) once per review. Padding, softmax, LayerNorm and GELU are not
    counted: padding is wasted work and the rest is not multiply-adds. (Pass padded widths as `lengths` to
    count the work a padded batch really does.)

    With `cls_only_last_layer` (what `export` writes by default), the last layer computes K and V for every
    token (2 d^2 per token) but the query, output projection, feed-forward block (2 d^2 + 2 d f) and the
    attention (2 d n) for the [CLS] position only: the work that graph really does.

    Args:
        model_config: a DistilBertConfig (or a BERT-style config with num_hidden_layers, hidden_size,
            intermediate_size).
        lengths: tokens of each review.
        cls_only_last_layer: count the [CLS]-only last layer.

    Returns:
        The formula, the sizes, and the multiply-adds of the linear layers, the attention, the head and in total.
    """
    layers = getattr(model_config, "n_layers", None) or model_config.num_hidden_layers
    dim = getattr(model_config, "dim", None) or model_config.hidden_size
    ffn = getattr(model_config, "hidden_dim", None) or model_config.intermediate_size
    labels = getattr(model_config, "num_labels", 2)
    n = np.asarray(lengths, dtype=np.float64)
    full = layers - 1 if cls_only_last_layer else layers
    linear = full * (4 * dim * dim + 2 * dim * ffn) * float(n.sum())
    attention = full * 2 * dim * float((n**2).sum())
    formula = "sum over reviews of layers*(n*(4*d^2 + 2*d*f) + 2*d*n^2) + d^2 + d*labels; n = real tokens"
    if cls_only_last_layer:
        linear += 2 * dim * dim * float(n.sum()) + (2 * dim * dim + 2 * dim * ffn) * len(n)
        attention += 2 * dim * float(n.sum())
        formula = (
            "sum over reviews of (layers-1)*(n*(4*d^2 + 2*d*f) + 2*d*n^2) + 2*d^2*n + 2*d^2 + 2*d*f + 2*d*n "
            "+ d^2 + d*labels; n = real tokens (last layer for [CLS] only)"
        )
    head = (dim * dim + dim * labels) * len(n)
    return {
        "formula": formula,
        "cls_only_last_layer": cls_only_last_layer,
        "layers": layers,
        "dim": dim,
        "ffn_dim": ffn,
        "linear": linear,
        "attention": attention,
        "head": head,
        "total": linear + attention + head,
    }
