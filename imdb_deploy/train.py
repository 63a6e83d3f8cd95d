"""`imdb-deploy train`: fine-tune a DistilBERT classifier on IMDb with Hugging Face accelerate.

The loop is accelerate's canonical one, readable top to bottom: seed -> data -> model -> optimizer ->
scheduler -> one `accelerator.prepare(...)` -> `accumulate`/`backward` -> `gather_for_metrics` -> `end_training`.
It runs unchanged on one CPU, one GPU, or several processes under `accelerate launch` / `torchrun`.

The validation split (carved from train) picks the best epoch; the test split is only reported.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from imdb_deploy import __version__
from imdb_deploy.artifacts import (
    METRICS,
    is_local_reference,
    load_tokenizer,
    load_torch_classifier,
    read_json,
    write_train_config,
)
from imdb_deploy.data import ReviewSplit, is_single_file, load_split, stratified_sample, train_validation_split
from imdb_deploy.errors import ConfigError, DataError, ImdbDeployError, OutputError
from imdb_deploy.evaluation import metrics_from_logits
from imdb_deploy.fileio import (
    honour_umask,
    out_of_space,
    refuse_overlap,
    refuse_replacing,
    remove_at_exit,
    remove_leftovers,
    replace_dir,
    work_dir_name,
    write_json_atomic,
)
from imdb_deploy.metrics import format_metrics_table
from imdb_deploy.tokenization import TRUNCATION_STRATEGIES, TokenizationSettings, encode, pad
from imdb_deploy.train_step import make_optimizer, training_step

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
RUN_CONFIG = "run_config.json"
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")


@dataclass
class TrainConfig:
    """Everything `train` needs; saved into the model folder so later stages need none of these flags.

    Attributes:
        model: Hub id or local folder of the base encoder (or of a classifier to fine-tune further).
        data: data source (see imdb_deploy.data): "imdb" is the Hub dataset, or a local folder/files.
        output_dir: the model folder to write.
        epochs: 2 is the standard BERT fine-tuning recipe on IMDb (Devlin et al. use 2-4).
        batch_size: per device; 16 fits distilbert-base at 512 tokens on small GPUs and on CPU RAM.
        lr: peak learning rate; 2e-5 is the usual stable choice for a full 25k-review run. Short runs
            (a few hundred steps) learn faster with 5e-5.
        weight_decay: AdamW decay on all weights but biases and LayerNorm (BERT recipe).
        warmup_ratio: share of steps with linear warm-up, then linear decay to zero.
        gradient_accumulation_steps: effective batch = batch_size * this * processes.
        max_length: tokens per review; 512 is DistilBERT's limit, and half of IMDb reviews exceed 230 tokens.
        truncation: "head+tail" keeps the first and last tokens of long reviews (Sun et al., 2019: best on
            IMDb; here 0.850 vs 0.820 for "head" on 1,000 test reviews after the same 2,000-review run at
            256 tokens); "head" keeps the first.
        val_size: validation share (fraction) or count carved from train, seeded and stratified; 0 disables
            model selection (the last epoch is kept).
        max_train_samples / max_eval_samples: stratified samples for quick runs (eval caps validation and test).
        mixed_precision: "auto" picks bf16 on a GPU that supports it (Ampere and newer), fp16 on an older
            GPU, and "no" on the CPU (CPU autocast is slower than fp32 there); or name one.
        seed: seeds sampling, the new head, dropout and batch order.
        checkpoint_every: save a resumable checkpoint every N optimizer steps (and at each epoch end).
        eval_batch_size: inference needs no gradients, so batches can be larger; None: 64 on the CPU,
            256 on a GPU.
        num_workers: DataLoader workers; None: 0 on the CPU (tokenization is done up front, so workers would
            only collate, and would take cores from the model), 2 on a GPU, where collating and pinned-memory
            copies then overlap the GPU's work.
        tf32: on a GPU, let fp32 matmuls (the parts autocast leaves in fp32, or all of them without mixed
            precision) use TF32 tensor cores on Ampere and newer; no effect on the CPU.
        cpu: train on the CPU even when a GPU is present.
    """

    model: str = "distilbert-base-uncased"
    data: str = "imdb"
    output_dir: str = "runs/distilbert-imdb"
    epochs: int = 2
    batch_size: int = 16
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    gradient_accumulation_steps: int = 1
    max_length: int = 512
    truncation: str = "head+tail"
    val_size: float = 0.1
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    mixed_precision: str = "auto"
    seed: int = 42
    checkpoint_every: int = 500
    eval_batch_size: int | None = None
    num_workers: int | None = None
    tf32: bool = True
    cpu: bool = False

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "gradient_accumulation_steps", "checkpoint_every", "eval_batch_size")
        for name in positive:
            value = getattr(self, name)
            if name == "eval_batch_size" and value is None:
                continue
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r}: use a whole number of at least 1")
        if not 0 < self.lr < 1:
            raise ConfigError(f"lr={self.lr!r}: use a learning rate between 0 and 1, e.g. 2e-5")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio={self.warmup_ratio!r}: use a fraction from 0 to below 1")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay={self.weight_decay!r}: use 0 or more")
        if self.truncation not in TRUNCATION_STRATEGIES:
            raise ConfigError(f"truncation={self.truncation!r}: use one of {', '.join(TRUNCATION_STRATEGIES)}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(f"mixed_precision={self.mixed_precision!r}: use one of {', '.join(MIXED_PRECISION)}")
        if self.val_size < 0 or (self.val_size >= 1 and not float(self.val_size).is_integer()):
            raise ConfigError(f"val_size={self.val_size!r}: use a fraction below 1, a count of reviews, or 0")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ConfigError(f"{name}={value!r}: use at least 2 so both labels stay present")
        if self.num_workers is not None and (not isinstance(self.num_workers, int) or self.num_workers < 0):
            raise ConfigError(f"num_workers={self.num_workers!r}: use 0 or more (or leave it unset)")
        _ = self.settings  # validates max_length

    @property
    def settings(self) -> TokenizationSettings:
        return TokenizationSettings(max_length=self.max_length, truncation=self.truncation)

    def training_fields(self) -> dict:
        """The fields that change the result (resume refuses to continue a run with different ones)."""
        skip = {"output_dir", "checkpoint_every", "eval_batch_size", "num_workers", "tf32", "cpu"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


@dataclass(frozen=True)
class DeviceSettings:
    """The settings whose best value depends on the device, resolved for the one the run uses."""

    mixed_precision: str
    eval_batch_size: int
    num_workers: int
    pin_memory: bool
    tf32: bool


def device_settings(config: TrainConfig, cuda: bool, bf16_supported: bool = False) -> DeviceSettings:
    """Fill the device-dependent defaults of `config` (see TrainConfig) for a CUDA or a CPU run."""
    mixed = config.mixed_precision
    if mixed == "auto":
        mixed = ("bf16" if bf16_supported else "fp16") if cuda else "no"
    return DeviceSettings(
        mixed_precision=mixed,
        eval_batch_size=config.eval_batch_size or (256 if cuda else 64),
        num_workers=config.num_workers if config.num_workers is not None else (2 if cuda else 0),
        pin_memory=cuda,
        tf32=cuda and config.tf32,
    )


class _Encoded:
    """Token ids and labels of a split, as a map-style dataset."""

    def __init__(self, ids: list[list[int]], labels: list[int]):
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[list[int], int]:
        return self.ids[index], self.labels[index]


def _collate(pad_id: int):
    import torch

    def collate(items):
        arrays = pad([ids for ids, _ in items], pad_id)
        batch = {k: torch.from_numpy(v) for k, v in arrays.items()}
        batch["labels"] = torch.tensor([label for _, label in items], dtype=torch.long)
        return batch

    return collate


def load_training_data(config: TrainConfig) -> dict[str, ReviewSplit]:
    """Train, validation and test splits as the config asks (sampled, stratified, seeded)."""
    if is_single_file(config.data):
        raise DataError(
            f"--data {config.data!r} is one file, but training needs a train and a test split: pass a folder "
            "with train/test files, an aclImdb/ folder, or train=FILE,test=FILE"
        )
    train = load_split(config.data, "train")
    test = load_split(config.data, "test")
    for split in (train, test):
        if len(split.label_counts()) < 2:
            raise DataError(f"{split.source} [{split.name}]: holds only one label {list(split.label_counts())}")
    splits = {}
    if config.val_size:
        val_size = int(config.val_size) if config.val_size >= 1 else float(config.val_size)
        train, val = train_validation_split(train, val_size, config.seed)
        splits["validation"] = stratified_sample(val, config.max_eval_samples, config.seed)
    splits["train"] = stratified_sample(train, config.max_train_samples, config.seed)
    splits["test"] = stratified_sample(test, config.max_eval_samples, config.seed)
    return splits


def _latest_checkpoint(output_dir: Path) -> Path | None:
    folder = output_dir / CHECKPOINTS
    done = [p for p in folder.glob("step-*") if (p / "state.json").is_file()] if folder.is_dir() else []
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def _input_paths(config: TrainConfig) -> dict[str, str | None]:
    """The local paths this run reads: the base model and the data (a folder, or train=F,test=F files)."""
    inputs: dict[str, str | None] = {"the base model": config.model if is_local_reference(config.model) else None}
    parts = [part.partition("=") for part in str(config.data).split(",")] if "=" in str(config.data) else []
    if parts:
        for key, _, value in parts:
            inputs[f"the --data {key.strip()} file"] = value.strip() or None
    elif Path(str(config.data)).expanduser().exists():
        inputs["the --data source"] = config.data
    return inputs


def _prepare_output(config: TrainConfig, resume: bool, overwrite: bool) -> Path:
    """The folder this run writes into, checked before anything is touched.

    --output itself, or, when --overwrite replaces a non-empty folder, a new temporary sibling that takes
    its place only once the model is complete (train() swaps them): a run that fails or is stopped leaves
    the old folder as it was.

    Raises:
        OutputError: --output is, holds or sits inside the base model or the data; or it is the working
            folder, the home folder or a parent of one (which --overwrite would delete).
        ConfigError: --output is a file, is not empty without --overwrite, or cannot be resumed.
    """
    out = Path(config.output_dir)
    refuse_overlap(out, _input_paths(config), "--output")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output {str(out)!r} is a file; name a folder for the model")
    if resume:
        saved = out / CHECKPOINTS / RUN_CONFIG
        if not saved.is_file():
            raise ConfigError(f"--resume: {out} has no checkpoint to resume from; run without --resume")
        previous = read_json(saved)
        if not isinstance(previous, dict):
            raise ConfigError(f"--resume: {saved} is not a JSON object; delete {out / CHECKPOINTS} and start again")
        changed = {k: (previous.get(k), v) for k, v in config.training_fields().items() if previous.get(k) != v}
        if changed:
            detail = ", ".join(f"{k}: was {a!r}, now {b!r}" for k, (a, b) in changed.items())
            raise ConfigError(f"--resume with different settings ({detail}); use the original ones")
        return out
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"output folder {str(out)!r} is not empty; choose another --output, --resume an interrupted "
                "run, or pass --overwrite"
            )
        refuse_replacing(out)
        # Created by the first write, so a run that fails before training leaves nothing; named so that a
        # later completed run removes it if this one is killed (fileio.remove_leftovers).
        work = work_dir_name(out)
        shutil.rmtree(work, ignore_errors=True)  # a dead run's, whose pid this process now has
        remove_at_exit(work)  # Ctrl-C or SIGTERM: its checkpoints cannot be resumed, so nothing is kept
        return work
    return out


def _write_model_card(folder: Path, config: TrainConfig, metrics: dict) -> None:
    test = metrics["test"]
    rows = "\n".join(
        f"| {e['epoch']} | {e['train_loss']:.4f} | "
        + (f"{e['validation']['accuracy']:.4f} |" if e.get("validation") else "- |")
        for e in metrics["epochs"]
    )
    (folder / "README.md").write_text(
        f"""---
library_name: transformers
pipeline_tag: text-classification
base_model: {config.model}
tags: [imdb-deploy, sentiment-analysis, distilbert]
---

# DistilBERT IMDb sentiment classifier

Fine-tuned from `{config.model}` on `{config.data}` with imdb-deploy {__version__}.

## Test results ({test["samples"]} reviews of the test split)

| accuracy | F1 | precision | recall |
| --- | --- | --- | --- |
| {test["accuracy"]:.4f} | {test["f1"]:.4f} | {test["precision"]:.4f} | {test["recall"]:.4f} |

Confusion matrix [[TN, FP], [FN, TP]]: {test["confusion_matrix"]}

## Training

| epoch | train loss | validation accuracy |
| --- | --- | --- |
{rows}

Best epoch (by validation accuracy): {metrics["best_epoch"]}. Settings: max length {config.max_length},
truncation {config.truncation}, batch {config.batch_size}, lr {config.lr}, epochs {config.epochs},
seed {config.seed}. Full settings in `train_config.json`, all numbers in `metrics.json`.
"""
    )


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> Path:
    """Fine-tune a sequence classifier and write a complete model folder.

    Args:
        config: what to train, on what, and how.
        resume: continue the interrupted run in `config.output_dir` from its last checkpoint.
        overwrite: replace an existing, non-empty output folder.
        progress: progress bars on stderr (main process only).

    Returns:
        The model folder: weights, tokenizer, train_config.json, metrics.json and a model card README.md.

    Raises:
        ConfigError, DataError, ModelLoadError, HubUnreachableError.
    """
    from accelerate.utils import broadcast_object_list, set_seed
    from transformers import get_linear_schedule_with_warmup

    accelerator, device = _accelerator(config)
    main = accelerator.is_main_process
    # `out` is where this run writes; with --overwrite of a full folder, a sibling swapped in at the end.
    target = Path(config.output_dir)
    out = Path(broadcast_object_list([str(_prepare_output(config, resume, overwrite)) if main else None])[0])
    accelerator.wait_for_everyone()
    set_seed(config.seed)

    # Data: tokenized once, up front, with the same encode() that export, verify and predict use.
    settings = config.settings
    splits = load_training_data(config)
    tokenizer = load_tokenizer(config.model)
    train_loader, eval_loaders, batch_order = _data_loaders(config, device, splits, tokenizer)

    # Model, optimizer, schedule. accelerate steps a prepared scheduler once per process per optimizer step,
    # so the schedule is laid out in single-process steps; the progress bar counts this process's own steps.
    model = load_torch_classifier(config.model, label_names=settings.label_names)
    optimizer = make_optimizer(model, config.lr, config.weight_decay)
    schedule_steps = math.ceil(len(train_loader) / config.gradient_accumulation_steps) * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * schedule_steps), schedule_steps)
    steps_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes / config.gradient_accumulation_steps)

    model, optimizer, train_loader, scheduler, *loaders = accelerator.prepare(
        model, optimizer, train_loader, scheduler, *eval_loaders.values()
    )
    eval_loaders = dict(zip(eval_loaders, loaders, strict=True))

    # Resume: model, optimizer, scheduler and RNG states come back; the batches already seen are skipped.
    state, best_weights = _load_checkpoint(accelerator, out) if resume else (_fresh_state(), None)
    if main and not resume:
        write_json_atomic(out / CHECKPOINTS / RUN_CONFIG, config.training_fields())

    bar = _Progress(steps_per_epoch * config.epochs, state["step"], enabled=progress and main)
    model.train()
    for epoch in range(state["step"] // steps_per_epoch, config.epochs):
        batch_order.manual_seed(config.seed + epoch)
        done_in_epoch = (state["step"] - epoch * steps_per_epoch) * config.gradient_accumulation_steps
        loader = accelerator.skip_first_batches(train_loader, done_in_epoch) if done_in_epoch else train_loader
        # Resumed inside this epoch: carry on its running loss, so train_loss averages the whole epoch.
        epoch_loss, epoch_batches = state.get("epoch_loss", (0.0, 0)) if done_in_epoch else (0.0, 0)
        resumed_batches, tick = epoch_batches, bar.start_epoch()
        for batch in loader:
            loss = training_step(accelerator, model, batch, optimizer, scheduler)
            epoch_loss += loss.detach().float().item()
            epoch_batches += 1
            if accelerator.sync_gradients:
                state["step"] += 1
                reviews = (epoch_batches - resumed_batches) * config.batch_size * accelerator.num_processes
                bar.step(epoch, epoch_loss / epoch_batches, reviews)
                state["epoch_loss"] = (epoch_loss, epoch_batches)  # saved with every checkpoint
                # The epoch's last step is saved below, with the epoch's record in the state.
                if state["step"] % config.checkpoint_every == 0 and state["step"] != (epoch + 1) * steps_per_epoch:
                    state["train_seconds"] += time.perf_counter() - tick
                    tick = time.perf_counter()
                    _save_checkpoint(accelerator, out, state, best_weights, out == target)
        state["train_seconds"] += time.perf_counter() - tick

        record = {"epoch": epoch + 1, "train_loss": epoch_loss / max(epoch_batches, 1), "step": state["step"]}
        if "validation" in eval_loaders:
            record["validation"] = _evaluate(accelerator, model, eval_loaders["validation"])
            if state["best"] is None or record["validation"]["accuracy"] > state["best"]["accuracy"]:
                state["best"] = {"epoch": epoch + 1, "accuracy": record["validation"]["accuracy"]}
                best_weights = {
                    k: v.detach().cpu().clone() for k, v in accelerator.unwrap_model(model).state_dict().items()
                }
        state["epochs"].append(record)
        bar.epoch_done(record)
        _save_checkpoint(accelerator, out, state, best_weights, out == target)
    bar.close()

    # The best epoch by validation accuracy (or the last, without validation) is reported on test and saved.
    final = accelerator.unwrap_model(model)
    if best_weights is not None:
        final.load_state_dict(best_weights)
    test_metrics = _evaluate(accelerator, model, eval_loaders["test"])
    if main:
        metrics = _run_metrics(config, state, test_metrics, splits, accelerator, device)
        _finish(out, final, tokenizer, config, settings, metrics, splits, out == target)
        if out != target:  # --overwrite: the complete new folder replaces the old one only now
            replace_dir(out, target)
        remove_leftovers(target.parent)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return target


def _accelerator(config: TrainConfig):
    """The Accelerator for this run and the device settings it was made with (TF32 switched on here)."""
    import torch
    from accelerate import Accelerator

    # Under torchrun on a machine without CUDA, accelerate needs cpu=True to form a multi-process gloo group.
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    cuda = torch.cuda.is_available() and not config.cpu
    device = device_settings(config, cuda=cuda, bf16_supported=cuda and torch.cuda.is_bf16_supported())
    if device.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    accelerator = Accelerator(
        cpu=config.cpu or (launched and not torch.cuda.is_available()),
        mixed_precision=device.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
    )
    return accelerator, device


def _data_loaders(config: TrainConfig, device: DeviceSettings, splits: dict[str, ReviewSplit], tokenizer):
    """The training loader (length-grouped batches in a seeded order), the evaluation loaders by split, and
    the generator of the batch order (reseeded each epoch, so a resumed run sees the same batches)."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    encoded = {name: _Encoded(encode(tokenizer, s.texts, config.settings), s.labels) for name, s in splits.items()}
    collate = _collate(tokenizer.pad_token_id)
    batch_order = torch.Generator().manual_seed(config.seed)
    train_loader = torch.utils.data.DataLoader(
        encoded["train"],
        batch_size=config.batch_size,
        # Length-grouped batches: random order, but each batch holds reviews of similar length.
        sampler=LengthGroupedSampler(
            config.batch_size, lengths=[len(i) for i in encoded["train"].ids], generator=batch_order
        ),
        collate_fn=collate,
        num_workers=device.num_workers,
        pin_memory=device.pin_memory,
        generator=torch.Generator().manual_seed(config.seed),  # keeps the global RNG (dropout) untouched
    )
    eval_loaders = {
        name: torch.utils.data.DataLoader(
            encoded[name],
            batch_size=device.eval_batch_size,
            collate_fn=collate,
            num_workers=device.num_workers,
            pin_memory=device.pin_memory,
        )
        for name in ("validation", "test")
        if name in encoded
    }
    return train_loader, eval_loaders, batch_order


class _Progress:
    """The progress bar on stderr (main process only): optimizer steps, the epoch's mean loss and reviews/s."""

    def __init__(self, total: int, initial: int, enabled: bool):
        from tqdm.auto import tqdm

        self.enabled = enabled
        self.bar = tqdm(
            total=total, initial=initial, desc="train", unit="step", disable=not enabled, dynamic_ncols=True
        )
        self.epoch_start = time.perf_counter()

    def start_epoch(self) -> float:
        """Mark the start of an epoch; returns the time."""
        self.epoch_start = time.perf_counter()
        return self.epoch_start

    def step(self, epoch: int, mean_loss: float, reviews: int) -> None:
        reviews_s = reviews / (time.perf_counter() - self.epoch_start)
        self.bar.set_postfix(epoch=epoch + 1, loss=f"{mean_loss:.4f}", reviews_s=f"{reviews_s:.1f}", refresh=False)
        self.bar.update(1)

    def epoch_done(self, record: dict) -> None:
        if self.enabled:
            val = f", validation accuracy {record['validation']['accuracy']:.4f}" if "validation" in record else ""
            self.bar.write(f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}{val}")

    def close(self) -> None:
        self.bar.close()


def _run_metrics(config: TrainConfig, state: dict, test: dict, splits, accelerator, device: DeviceSettings) -> dict:
    """metrics.json: the epochs, the best one, its test metrics, and where and how long it trained."""
    return {
        "epochs": state["epochs"],
        "best_epoch": state["best"]["epoch"] if state["best"] else config.epochs,
        "test": test,
        "train_seconds": state["train_seconds"],
        "train_samples": len(splits["train"]),
        "validation_samples": len(splits.get("validation", [])),
        "processes": accelerator.num_processes,
        "device": str(accelerator.device),
        "device_settings": asdict(device),
    }


def _evaluate(accelerator, model, loader) -> dict:
    """Metrics of `model` on a prepared loader, gathered from every process (gather_for_metrics drops the
    duplicates that pad the last batch across processes); the model is back in train mode afterwards."""
    import torch

    model.eval()
    logits, labels = [], []
    with torch.inference_mode():
        for batch in loader:
            targets = batch.pop("labels")
            output = model(**batch).logits.float()
            output, targets = accelerator.gather_for_metrics((output, targets))
            logits.append(output.cpu().numpy())
            labels.append(targets.cpu().numpy())
    model.train()
    return metrics_from_logits(np.concatenate(logits), np.concatenate(labels))


def _fresh_state() -> dict:
    """What a checkpoint's state.json holds: optimizer steps done, finished epochs' records, the best epoch
    so far and the training time."""
    return {"step": 0, "epochs": [], "best": None, "train_seconds": 0.0}


@contextmanager
def _saving(out: Path, what: str, partial: Path, resumable: bool) -> Iterator[None]:
    """A full disk while saving `what` becomes one line, and `partial` (what was half-written) is removed,
    so a failed run does not leave the disk full. torch, safetensors and tokenizers each word it their own way.
    """
    try:
        yield
    except Exception as exc:
        if isinstance(exc, ImdbDeployError) or not out_of_space(exc, out):
            raise
        shutil.rmtree(partial, ignore_errors=True)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        again = "run the same command again with --resume (the last complete checkpoint is kept)"
        raise OutputError(
            f"{out}: ran out of disk space while saving {what} ({detail}); free some space, then "
            f"{again if resumable else 'train again'}. The partial {what} was removed"
        ) from exc


def _save_checkpoint(accelerator, out: Path, state: dict, best_weights: dict | None, resumable: bool = True) -> None:
    """Save a resumable checkpoint at the current step and delete the older ones.

    accelerate saves model, optimizer, scheduler and RNG states; state.json is written last and marks the
    checkpoint complete. The best epoch's weights so far travel along as best.pt. On a full disk the
    partial checkpoint is removed (with the whole work folder of an --overwrite run, which cannot be resumed).
    """
    import torch

    folder = out / CHECKPOINTS / f"step-{state['step']}"
    with _saving(out, f"checkpoint {folder.name}", folder if resumable else out, resumable):
        accelerator.save_state(str(folder))
        if accelerator.is_main_process:
            honour_umask(folder)  # safetensors writes model.safetensors 0600
            if best_weights is not None:
                torch.save(best_weights, folder / "best.pt")
            write_json_atomic(folder / "state.json", state)
    if accelerator.is_main_process:
        for old in (out / CHECKPOINTS).glob("step-*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _load_checkpoint(accelerator, out: Path) -> tuple[dict, dict | None]:
    """Restore the latest complete checkpoint of `out` into the prepared objects.

    Only plain tensors and states are accepted (torch.load weights_only=True, which accelerate uses too):
    a pickle that would run code is refused.

    Returns:
        Its state (see _fresh_state) and the best epoch's weights, or a fresh state when there is none.

    Raises:
        ConfigError: the checkpoint is damaged or holds more than tensors; names the fix.
    """
    import pickle

    import torch

    checkpoint = _latest_checkpoint(out)
    if checkpoint is None:
        return _fresh_state(), None
    best_file = checkpoint / "best.pt"
    try:
        accelerator.load_state(str(checkpoint), load_kwargs={"weights_only": True})
        state = read_json(checkpoint / "state.json")
        best_weights = None
        if state["best"] is not None and best_file.is_file():
            best_weights = torch.load(best_file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, KeyError, ValueError, TypeError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"--resume: checkpoint {checkpoint} could not be loaded ({detail}); it is damaged or holds more than "
            f"tensors. Delete {out / CHECKPOINTS} and train again without --resume"
        ) from exc
    if accelerator.is_main_process:
        logger.info("resuming from %s (step %d)", checkpoint, state["step"])
    return state, best_weights


def _finish(
    out: Path,
    model,
    tokenizer,
    config: TrainConfig,
    settings: TokenizationSettings,
    metrics: dict,
    splits: dict[str, ReviewSplit],
    resumable: bool = True,
) -> None:
    """Write the finished model folder; train_config.json goes last, so a folder with it is complete."""
    import torch

    staging = out / ".finishing"
    shutil.rmtree(staging, ignore_errors=True)
    with _saving(out, "model", staging if resumable else out, resumable):
        staging.mkdir(parents=True)
        with torch.no_grad():
            model.save_pretrained(staging, safe_serialization=True)
        honour_umask(staging)  # safetensors writes model.safetensors 0600
        tokenizer.save_pretrained(staging)
        write_json_atomic(staging / METRICS, metrics)
        _write_model_card(staging, config, metrics)
    for item in staging.iterdir():
        os.replace(item, out / item.name)
    staging.rmdir()
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    write_train_config(
        out,
        settings,
        config.model,
        data_source=config.data,
        data_samples={name: len(split) for name, split in splits.items()},
        training=asdict(config),
    )


def summary(model_dir: Path) -> str:
    """A one-screen summary of a finished training run."""
    metrics = json.loads((Path(model_dir) / METRICS).read_text())
    lines = [f"model folder: {model_dir}"]
    for e in metrics["epochs"]:
        val = f"  validation accuracy {e['validation']['accuracy']:.4f}" if e.get("validation") else ""
        lines.append(f"epoch {e['epoch']}: train loss {e['train_loss']:.4f}{val}")
    lines.append(
        f"best epoch: {metrics['best_epoch']}   training time: {metrics['train_seconds']:.0f} s "
        f"on {metrics['processes']} process(es), {metrics['device']}"
    )
    lines.append(format_metrics_table(metrics["test"], "test split:"))
    return "\n".join(lines)
