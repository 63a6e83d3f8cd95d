"""PyTorch inference and `imdb-deploy evaluate`: metrics of a model on a labelled split."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from imdb_deploy.artifacts import load_settings, load_tokenizer, load_torch_classifier
from imdb_deploy.data import ReviewSplit, load_split, stratified_sample
from imdb_deploy.metrics import classification_metrics
from imdb_deploy.tokenization import TokenizationSettings, encode, length_sorted_batches, pad


def torch_logits(
    model,
    tokenizer,
    texts: list[str],
    settings: TokenizationSettings,
    batch_size: int = 32,
    device=None,
    progress: bool = False,
    sort_by_length: bool = True,
) -> np.ndarray:
    """Logits of a PyTorch classifier for each text, in input order.

    Args:
        model: a sequence classifier (eval mode).
        tokenizer: its tokenizer.
        texts: the reviews.
        settings: tokenization settings (max length, truncation) the model was trained with.
        batch_size: reviews per forward pass.
        device: torch device; defaults to the model's.
        progress: show a progress bar on stderr.
        sort_by_length: batch reviews of similar length together (less padding); results keep input order.

    Returns:
        float32 array of shape (len(texts), num_labels).
    """
    import torch
    from tqdm.auto import tqdm

    device = device or next(model.parameters()).device
    encoded = encode(tokenizer, texts, settings)
    lengths = [len(ids) for ids in encoded]
    if sort_by_length:
        batches = length_sorted_batches(lengths, batch_size)
    else:
        batches = [list(range(i, min(i + batch_size, len(texts)))) for i in range(0, len(texts), batch_size)]
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode():
        for batch in tqdm(batches, desc="pytorch", unit="batch", disable=not progress, leave=False):
            arrays = pad([encoded[i] for i in batch], tokenizer.pad_token_id)
            inputs = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
            out[batch] = model(**inputs).logits.float().cpu().numpy()
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, for stable probability comparisons."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def cross_entropy(logits: np.ndarray, labels) -> float:
    """Mean cross-entropy of logits against labels."""
    probs = softmax(logits)
    picked = probs[np.arange(len(probs)), np.asarray(labels, dtype=np.int64)]
    return float(-np.log(np.clip(picked, 1e-12, None)).mean())


def metrics_from_logits(logits: np.ndarray, labels) -> dict:
    """Classification metrics plus loss from logits."""
    return classification_metrics(labels, logits.argmax(axis=1), loss=cross_entropy(logits, labels))


@dataclass
class EvaluateConfig:
    """Settings of `imdb-deploy evaluate`.

    Attributes:
        data: data source (see imdb_deploy.data); "imdb" is the Hub dataset.
        split: the split to score; "test" for reported results.
        max_samples: a stratified sample of this many reviews (None: all) for quick checks.
        batch_size: 64 keeps a CPU busy without much padding once batches are length-sorted.
        seed: seed of the sample.
    """

    data: str = "imdb"
    split: str = "test"
    max_samples: int | None = None
    batch_size: int = 64
    seed: int = 42


def evaluate_split(
    model,
    tokenizer,
    settings: TokenizationSettings,
    data: ReviewSplit,
    batch_size: int = 64,
    device=None,
    progress: bool = False,
) -> dict:
    """Metrics of a loaded PyTorch model on a split; `train` uses this for its final test numbers."""
    logits = torch_logits(model, tokenizer, data.texts, settings, batch_size, device=device, progress=progress)
    return metrics_from_logits(logits, data.labels)


def evaluate(model_ref: str | os.PathLike, config: EvaluateConfig, progress: bool = True) -> dict:
    """Accuracy, F1, precision, recall and confusion matrix of a model on a labelled split.

    Args:
        model_ref: a trained model folder (or a Hub id of a sequence classifier).
        config: data, split and sample size.
        progress: progress bar on stderr.

    Returns:
        The metrics dict, with `model`, `data` and `split` added.

    Raises:
        ModelLoadError, HubUnreachableError, DataError.
    """
    tokenizer = load_tokenizer(model_ref)
    settings = load_settings(model_ref, tokenizer)
    model = load_torch_classifier(model_ref, label_names=settings.label_names)
    data = stratified_sample(load_split(config.data, config.split), config.max_samples, config.seed)
    metrics = evaluate_split(model, tokenizer, settings, data, config.batch_size, progress=progress)
    return {**metrics, "model": str(model_ref), "data": data.source, "split": config.split}
