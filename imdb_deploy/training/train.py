"""`imdb-deploy train`: fine-tune a DistilBERT classifier on IMDb with Hugging Face accelerate.

The loop is accelerate's canonical one, readable top to bottom (training.loop): seed -> data -> model ->
optimizer -> scheduler -> one `accelerator.prepare(...)` -> `accumulate`/`backward` -> `gather_for_metrics` ->
`end_training`. It runs unchanged on one CPU, one GPU, or several processes under `accelerate launch` / `torchrun`.

The validation split (carved from train) picks the best epoch; the test split is only reported.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from accelerate.utils import broadcast_object_list, set_seed

from imdb_deploy.folders import is_local_reference
from imdb_deploy.rows.labelled import source_paths
from imdb_deploy.runtimes.folder import load_tokenizer, load_torch_classifier
from imdb_deploy.tokenization import encode
from imdb_deploy.training.cards import train_card
from imdb_deploy.training.config import TrainConfig
from imdb_deploy.training.data import labelled_splits
from imdb_deploy.training.loop import (
    EncodedSplit,
    RunFolder,
    data_loaders,
    evaluate_loader,
    finish_folder,
    fit,
    make_accelerator,
    prepare_run,
    run_metrics,
)
from imdb_deploy.training.step import training_step


def training_inputs(config: TrainConfig) -> dict:
    """What a training run reads, as outputs.Inputs: the base model and the data in every spelling."""
    return {"the base model": config.model if is_local_reference(config.model) else None} | source_paths(config.data)


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> Path:
    """Fine-tune a sequence classifier and write a complete model folder.

    Args:
        config: what to train, on what, and how.
        resume: continue the interrupted run in `config.output_dir` from its last checkpoint.
        overwrite: replace an existing, non-empty output folder (once the new one is complete).
        progress: progress bars on stderr (main process only).

    Returns:
        The model folder: weights, tokenizer, train_config.json, metrics.json and a model card README.md.

    Raises:
        ConfigError, DataError, ModelLoadError, HubUnreachableError, OutputError.
    """
    accelerator, device = make_accelerator(config)
    # Where this run writes: --output itself, or with --overwrite of a full folder a sibling swapped in at the end.
    folder = None
    if accelerator.is_main_process:
        folder = RunFolder(config.output_dir, training_inputs(config), resume, overwrite, config.training_fields())
    try:
        _train(config, accelerator, device, folder, resume, progress)
    except BaseException:
        if folder is not None:
            folder.abandon()
        raise
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return Path(config.output_dir)


def _train(config: TrainConfig, accelerator, device, folder: RunFolder | None, resume: bool, progress: bool) -> None:
    """The run itself, into `folder.work` (main process; the others learn where by broadcast)."""
    out = Path(broadcast_object_list([str(folder.work) if folder is not None else None])[0])
    accelerator.wait_for_everyone()
    set_seed(config.seed)

    # Data: tokenized once, up front, with the same encode() that export, verify and predict use.
    settings = config.settings
    splits = labelled_splits(
        config.data, config.val_size, config.max_train_samples, config.max_eval_samples, config.seed
    )
    tokenizer = load_tokenizer(config.model)
    encoded = {name: EncodedSplit(encode(tokenizer, s.texts, settings), s.labels) for name, s in splits.items()}
    loaders = data_loaders(config, device, encoded, tokenizer.pad_token_id)
    model = load_torch_classifier(config.model, label_names=settings.label_names)
    run = prepare_run(accelerator, config, model, loaders, out, resume, folder is None or folder.in_place)
    fit(run, config, training_step, progress)

    # The best epoch by validation accuracy (or the last, without validation) is reported on test and saved.
    test = evaluate_loader(accelerator, run.model, run.eval_loaders["test"])
    if folder is None:
        return
    metrics = run_metrics(config, run, test, splits, device)
    finish_folder(
        out,
        accelerator.unwrap_model(run.model),
        tokenizer,
        metrics,
        train_card(config, metrics),
        run.resumable,
        progress,
        settings=settings,
        base_model=config.model,
        data_source=config.data,
        data_samples={name: len(split) for name, split in splits.items()},
        training=asdict(config),
    )
    folder.finish()  # --overwrite: the complete new folder replaces the old one only now
