"""The accelerate training run that train and distill share, readable top to bottom.

seed -> data (tokenized once, length-grouped batches) -> model -> optimizer -> scheduler -> one
`accelerator.prepare(...)` -> `accumulate`/`backward` in a step the stage supplies -> `gather_for_metrics` ->
checkpoints every N steps and at each epoch's end -> the best epoch by validation accuracy. Also the device
settings, the progress bar, and where a run writes (RunFolder, through the one output mechanism).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup
from transformers.trainer_pt_utils import LengthGroupedSampler

from imdb_deploy.errors import ConfigError, ImdbDeployError, OutputError
from imdb_deploy.fileio import (
    honour_umask,
    out_of_space,
    remove_at_exit,
    remove_leftovers,
    work_dir_name,
    write_json_atomic,
)
from imdb_deploy.folders import METRICS, check_weight_files, load_error_detail, read_json, write_train_config
from imdb_deploy.metrics import metrics_from_logits
from imdb_deploy.outputs import CLAIM_FILE, Output, refuse_overlap
from imdb_deploy.runtimes.folder import transformers_quiet
from imdb_deploy.tokenization import pad
from imdb_deploy.training.step import make_optimizer

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
RUN_CONFIG = "run_config.json"


@dataclass(frozen=True)
class DeviceSettings:
    """The settings whose best value depends on the device, resolved for the one the run uses."""

    mixed_precision: str
    eval_batch_size: int
    num_workers: int
    pin_memory: bool
    tf32: bool


def device_settings(config, cuda: bool, bf16_supported: bool = False) -> DeviceSettings:
    """Fill the device-dependent defaults of `config` (TrainConfig or DistillConfig) for a CUDA or a CPU run."""
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


class EncodedSplit:
    """Token ids and labels of a split (and the teacher's logits, for distill), as a map-style dataset.

    A label of -1 marks an unlabelled review (distill learns it from the teacher alone).
    """

    def __init__(self, ids: list[list[int]], labels: Sequence[int], targets: np.ndarray | None = None):
        self.ids, self.labels, self.targets = ids, list(labels), targets

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple:
        if self.targets is None:
            return self.ids[index], self.labels[index]
        return self.ids[index], self.labels[index], self.targets[index]


def collate_fn(pad_id: int):
    """Pad a list of EncodedSplit items into tensors: input_ids, attention_mask, labels (and teacher_logits)."""

    def collate(items):
        arrays = pad([item[0] for item in items], pad_id)
        batch = {k: torch.from_numpy(v) for k, v in arrays.items()}
        batch["labels"] = torch.tensor([item[1] for item in items], dtype=torch.long)
        if len(items[0]) > 2:
            batch["teacher_logits"] = torch.from_numpy(np.stack([item[2] for item in items]).astype(np.float32))
        return batch

    return collate


def latest_checkpoint(output_dir: Path) -> Path | None:
    folder = output_dir / CHECKPOINTS
    done = [p for p in folder.glob("step-*") if (p / "state.json").is_file()] if folder.is_dir() else []
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def make_accelerator(config) -> tuple[Accelerator, DeviceSettings]:
    """The Accelerator for this run and the device settings it was made with (TF32 switched on here)."""
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


def data_loaders(config, device: DeviceSettings, encoded: dict[str, EncodedSplit], pad_id: int):
    """The training loader (length-grouped batches in a seeded order), the evaluation loaders by split, and
    the generator of the batch order (reseeded each epoch, so a resumed run sees the same batches)."""
    collate = collate_fn(pad_id)
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


@dataclass
class Run:
    """A prepared run: the objects accelerate prepared, where it writes, and its state.

    Attributes:
        state: what a checkpoint's state.json holds (fresh_state); `best_weights` travels beside it.
        steps_per_epoch: optimizer steps of one process per epoch.
        resumable: `out` is --output itself (a checkpoint there can be resumed).
    """

    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    train_loader: object
    eval_loaders: dict
    batch_order: torch.Generator
    out: Path
    resumable: bool
    steps_per_epoch: int
    state: dict = field(default_factory=dict)
    best_weights: dict | None = None


def prepare_run(accelerator, config, model, loaders: tuple, out: Path, resume: bool, resumable: bool) -> Run:
    """Optimizer and schedule for `model`, one `accelerator.prepare(...)`, and the state: fresh, or the last
    checkpoint's on --resume (model, optimizer, scheduler and RNG states come back).

    accelerate steps a prepared scheduler once per process per optimizer step, so the schedule is laid out in
    single-process steps; the progress bar counts this process's own steps.
    """
    train_loader, eval_loaders, batch_order = loaders
    optimizer = make_optimizer(model, config.lr, config.weight_decay)
    schedule_steps = math.ceil(len(train_loader) / config.gradient_accumulation_steps) * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * schedule_steps), schedule_steps)
    steps_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes / config.gradient_accumulation_steps)
    model, optimizer, train_loader, scheduler, *prepared = accelerator.prepare(
        model, optimizer, train_loader, scheduler, *eval_loaders.values()
    )
    run = Run(
        accelerator,
        model,
        optimizer,
        scheduler,
        train_loader,
        dict(zip(eval_loaders, prepared, strict=True)),
        batch_order,
        out,
        resumable,
        steps_per_epoch,
    )
    run.state, run.best_weights = load_checkpoint(accelerator, out) if resume else (fresh_state(), None)
    if accelerator.is_main_process and not resume:
        write_json_atomic(out / CHECKPOINTS / RUN_CONFIG, config.training_fields())
    return run


# One optimizer step's work: (accelerator, model, batch, optimizer, scheduler) -> the batch's loss tensor.
Step = Callable[..., torch.Tensor]


def fit(run: Run, config, step: Step, progress: bool, desc: str = "train") -> None:
    """The epochs: `step` on every batch, a checkpoint every `config.checkpoint_every` steps and at each epoch's
    end, the validation split after each epoch keeping the best epoch's weights (run.best_weights).

    A resumed run skips the batches its checkpoint had seen and carries on the epoch's running loss.
    """
    accelerator, state = run.accelerator, run.state
    bar = Progress(run.steps_per_epoch * config.epochs, state["step"], progress and accelerator.is_main_process, desc)
    run.model.train()
    for epoch in range(state["step"] // run.steps_per_epoch, config.epochs):
        run.batch_order.manual_seed(config.seed + epoch)
        done_in_epoch = (state["step"] - epoch * run.steps_per_epoch) * config.gradient_accumulation_steps
        loader = accelerator.skip_first_batches(run.train_loader, done_in_epoch) if done_in_epoch else run.train_loader
        # Resumed inside this epoch: carry on its running loss, so train_loss averages the whole epoch.
        epoch_loss, epoch_batches = state.get("epoch_loss", (0.0, 0)) if done_in_epoch else (0.0, 0)
        resumed_batches, tick = epoch_batches, bar.start_epoch()
        for batch in loader:
            loss = step(accelerator, run.model, batch, run.optimizer, run.scheduler)
            epoch_loss += loss.detach().float().item()
            epoch_batches += 1
            if accelerator.sync_gradients:
                state["step"] += 1
                reviews = (epoch_batches - resumed_batches) * config.batch_size * accelerator.num_processes
                bar.step(epoch, epoch_loss / epoch_batches, reviews)
                state["epoch_loss"] = (epoch_loss, epoch_batches)  # saved with every checkpoint
                # The epoch's last step is saved below, with the epoch's record in the state.
                if state["step"] % config.checkpoint_every == 0 and state["step"] != (epoch + 1) * run.steps_per_epoch:
                    state["train_seconds"] += time.perf_counter() - tick
                    tick = time.perf_counter()
                    save_checkpoint(accelerator, run.out, state, run.best_weights, run.resumable)
        state["train_seconds"] += time.perf_counter() - tick
        _end_epoch(run, epoch, epoch_loss / max(epoch_batches, 1))
        bar.epoch_done(state["epochs"][-1])
        save_checkpoint(accelerator, run.out, state, run.best_weights, run.resumable)
    bar.close()
    # The best epoch by validation accuracy (or the last, without validation) is the model kept.
    if run.best_weights is not None:
        accelerator.unwrap_model(run.model).load_state_dict(run.best_weights)


def _end_epoch(run: Run, epoch: int, train_loss: float) -> None:
    """The epoch's record: its mean loss and, with a validation split, its accuracy (the best weights kept)."""
    state = run.state
    record = {"epoch": epoch + 1, "train_loss": train_loss, "step": state["step"]}
    if "validation" in run.eval_loaders:
        record["validation"] = evaluate_loader(run.accelerator, run.model, run.eval_loaders["validation"])
        if state["best"] is None or record["validation"]["accuracy"] > state["best"]["accuracy"]:
            state["best"] = {"epoch": epoch + 1, "accuracy": record["validation"]["accuracy"]}
            unwrapped = run.accelerator.unwrap_model(run.model)
            run.best_weights = {k: v.detach().cpu().clone() for k, v in unwrapped.state_dict().items()}
    state["epochs"].append(record)


def run_metrics(config, run: Run, test: dict, splits: dict, device: DeviceSettings) -> dict:
    """metrics.json: the epochs, the best one, its test metrics, and where and how long it trained."""
    return {
        "epochs": run.state["epochs"],
        "best_epoch": run.state["best"]["epoch"] if run.state["best"] else config.epochs,
        "test": test,
        "train_seconds": run.state["train_seconds"],
        "train_samples": len(splits["train"]),
        "validation_samples": len(splits.get("validation", [])),
        "processes": run.accelerator.num_processes,
        "device": str(run.accelerator.device),
        "device_settings": asdict(device),
    }


class Progress:
    """The progress bar on stderr (main process only): optimizer steps with an ETA, the epoch's mean loss and
    reviews/s."""

    def __init__(self, total: int, initial: int, enabled: bool, desc: str = "train"):
        self.enabled = enabled
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not enabled, dynamic_ncols=True)
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


def loader_logits(accelerator, model, loader) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of `model` on a prepared loader, in the loader's order, gathered from every process
    (gather_for_metrics drops the duplicates that pad the last batch across processes); the model is back in
    train mode afterwards."""
    model.eval()
    logits, labels = [], []
    with torch.inference_mode():
        for batch in loader:
            targets = batch.pop("labels")
            batch.pop("teacher_logits", None)
            output = model(**batch).logits.float()
            output, targets = accelerator.gather_for_metrics((output, targets))
            logits.append(output.cpu().numpy())
            labels.append(targets.cpu().numpy())
    model.train()
    return np.concatenate(logits), np.concatenate(labels)


def evaluate_loader(accelerator, model, loader) -> dict:
    """Metrics of `model` on a prepared loader (loader_logits)."""
    return metrics_from_logits(*loader_logits(accelerator, model, loader))


def finish_folder(
    out: Path,
    model,
    tokenizer,
    metrics: dict,
    card: str,
    resumable: bool,
    progress: bool,
    settings,
    base_model,
    **fields,
):
    """Write the finished model folder: weights, tokenizer, metrics.json and the model card, the checkpoints
    removed, then train_config.json last (folders.write_train_config with `settings`, `base_model` and
    `fields`), so a folder with it is complete. Without `progress`, transformers' "Writing model shards" bar
    stays off."""
    staging = out / ".finishing"
    shutil.rmtree(staging, ignore_errors=True)
    with saving(out, "model", staging if resumable else out, resumable):
        staging.mkdir(parents=True)
        with torch.no_grad(), transformers_quiet(bars=progress):
            model.save_pretrained(staging, safe_serialization=True)
        honour_umask(staging)  # safetensors writes model.safetensors 0600
        tokenizer.save_pretrained(staging)
        write_json_atomic(staging / METRICS, metrics)
        (staging / "README.md").write_text(card)
    for item in staging.iterdir():
        os.replace(item, out / item.name)
    staging.rmdir()
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    write_train_config(out, settings, base_model, **fields)


def fresh_state() -> dict:
    """What a checkpoint's state.json holds: optimizer steps done, finished epochs' records, the best epoch
    so far and the training time."""
    return {"step": 0, "epochs": [], "best": None, "train_seconds": 0.0}


@contextmanager
def saving(out: Path, what: str, partial: Path, resumable: bool) -> Iterator[None]:
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


def save_checkpoint(accelerator, out: Path, state: dict, best_weights: dict | None, resumable: bool = True) -> None:
    """Save a resumable checkpoint at the current step and delete the older ones.

    accelerate saves model, optimizer, scheduler and RNG states; state.json is written last and marks the
    checkpoint complete. The best epoch's weights so far travel along as best.pt. On a full disk the
    partial checkpoint is removed (with the whole work folder of an --overwrite run, which cannot be resumed).
    """
    folder = out / CHECKPOINTS / f"step-{state['step']}"
    with saving(out, f"checkpoint {folder.name}", folder if resumable else out, resumable):
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


def load_checkpoint(accelerator, out: Path) -> tuple[dict, dict | None]:
    """Restore the latest complete checkpoint of `out` into the prepared objects.

    Only plain tensors and states are accepted (torch.load weights_only=True, which accelerate uses too):
    a pickle that would run code is refused.

    Returns:
        Its state (see fresh_state) and the best epoch's weights, or a fresh state when there is none.

    Raises:
        ConfigError: the checkpoint is damaged or holds more than tensors; names the fix.
    """
    checkpoint = latest_checkpoint(out)
    if checkpoint is None:
        return fresh_state(), None
    best_file = checkpoint / "best.pt"
    fix = f"delete {out / CHECKPOINTS} and train again without --resume"
    check_weight_files(checkpoint, fix)  # a damaged model.safetensors: one line naming it, not accelerate's traceback
    try:
        accelerator.load_state(str(checkpoint), load_kwargs={"weights_only": True})
        state = read_json(checkpoint / "state.json")
        best_weights = None
        if state["best"] is not None and best_file.is_file():
            best_weights = torch.load(best_file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, KeyError, ValueError, TypeError) as exc:
        detail = load_error_detail(exc)  # never torch's advice to load the pickle with weights_only=False
        raise ConfigError(
            f"--resume: checkpoint {checkpoint} could not be loaded ({detail}); it is damaged or holds more than "
            f"tensors. Delete {out / CHECKPOINTS} and train again without --resume"
        ) from exc
    if accelerator.is_main_process:
        logger.info("resuming from %s (step %d)", checkpoint, state["step"])
    return state, best_weights


class RunFolder:
    """Where a training run writes (train and distill), decided before any work through the one output mechanism.

    A new or empty --output is claimed and written in place (its checkpoints make the run resumable); --resume
    takes over the interrupted run's folder; --overwrite of a full folder builds the new model in a temporary
    sibling, which replaces the old folder only once complete, and only if it is still the folder seen at the
    start (outputs.Output.commit).

    Args:
        output_dir: --output.
        inputs: what the run reads (outputs.Inputs): the base model or teacher, the data in every spelling.
        resume: continue the interrupted run in `output_dir`.
        overwrite: replace a full `output_dir`.
        fields: the settings that change the result; --resume refuses a run whose saved ones differ.

    Attributes:
        work: where checkpoints and the finished model go.
        in_place: `work` is --output itself.

    Raises:
        OutputError: --output is, holds or sits inside an input, is another run's, or cannot be written.
        ConfigError: --output is a file, is full without --overwrite, or cannot be resumed.
    """

    def __init__(self, output_dir, inputs, resume: bool, overwrite: bool, fields: dict) -> None:
        out = Path(output_dir)
        refuse_overlap(out, inputs)  # first: an output that is an input is named as such
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--output {str(out)!r} is a file; name a folder for the model")
        full = out.is_dir() and any(entry.name != CLAIM_FILE for entry in out.iterdir())
        if resume:
            _check_resumable(out, fields)
        elif full and not overwrite:
            raise ConfigError(
                f"output folder {str(out)!r} is not empty; choose another --output, --resume an interrupted "
                "run, or pass --overwrite"
            )
        self.in_place = resume or not full
        self.output = Output(out, inputs, folder=True, overwrite=not self.in_place, reuse=self.in_place)
        self.created = not out.exists()
        if self.in_place:
            self.work = self.output.claim()
        else:
            # Named so that a later completed run removes it if this one is killed (fileio.remove_leftovers);
            # Ctrl-C or SIGTERM removes it at exit: its checkpoints cannot be resumed, so nothing is kept.
            self.work = work_dir_name(out)
            shutil.rmtree(self.work, ignore_errors=True)  # a dead run's, whose pid this process now has
            self.work.mkdir()
            remove_at_exit(self.work)

    def abandon(self) -> None:
        """The run failed or was stopped: keep what --resume can continue from (its checkpoints folder, from the
        moment training started), remove the rest this run made (a folder it created before it could train, the
        work folder of --overwrite)."""
        if not self.in_place:
            shutil.rmtree(self.work, ignore_errors=True)
            return
        self.output.release()
        if self.created and not (self.work / CHECKPOINTS).exists():
            shutil.rmtree(self.work, ignore_errors=True)

    def finish(self) -> Path:
        """The complete model is in `work`: put it at --output (see the class docstring); returns --output."""
        if self.in_place:
            self.output.release()
        else:
            self.output.commit(self.work)
        remove_leftovers(self.output.path.parent)
        return self.output.path


def _check_resumable(out: Path, fields: dict) -> None:
    saved = out / CHECKPOINTS / RUN_CONFIG
    if not saved.is_file():
        raise ConfigError(f"--resume: {out} has no checkpoint to resume from; run without --resume")
    previous = read_json(saved)
    if not isinstance(previous, dict):
        raise ConfigError(f"--resume: {saved} is not a JSON object; delete {out / CHECKPOINTS} and start again")
    changed = {k: (previous.get(k), v) for k, v in fields.items() if previous.get(k) != v}
    if changed:
        detail = ", ".join(f"{k}: was {a!r}, now {b!r}" for k, (a, b) in changed.items())
        raise ConfigError(f"--resume with different settings ({detail}); use the original ones")
