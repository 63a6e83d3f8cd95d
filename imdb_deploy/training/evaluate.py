"""`imdb-deploy evaluate`: metrics of a model on a labelled split."""

from __future__ import annotations

import os

from imdb_deploy.folders import is_local_reference, load_settings
from imdb_deploy.metrics import metrics_from_logits
from imdb_deploy.rows.labelled import ReviewSplit, load_split, source_paths, stratified_sample
from imdb_deploy.runtimes.folder import load_tokenizer, load_torch_classifier
from imdb_deploy.runtimes.pytorch import torch_logits
from imdb_deploy.tokenization import TokenizationSettings
from imdb_deploy.training.config import EvaluateConfig


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


def evaluate_inputs(model_ref: str | os.PathLike, config: EvaluateConfig) -> dict:
    """What evaluate reads, as outputs.Inputs: the model folder and the data in every spelling --data takes."""
    return {"the model folder": model_ref if is_local_reference(model_ref) else None} | source_paths(config.data)
