"""`imdb-deploy distill`: a student with fewer layers learns from a trained teacher (knowledge distillation).

1. The student is the teacher's DistilBERT with fewer transformer layers (DistillConfig.layers, default half),
   initialised from the teacher's own layers spread evenly (0, 2, 4 of six), with its embeddings and its
   classifier head: it starts as a pruned teacher.
2. The teacher's outputs (logits) on every review the student sees (the labelled training split, the unlabelled
   reviews, validation and test) are computed once, by the default variant of the teacher's gated export
   (`teacher_onnx`) or by the PyTorch teacher, and cached with the checksums of the teacher and of the reviews
   (training.teacher): a resumed or repeated run does not pay for them again.
3. The loop is train's (training.loop.fit) with another step: a review's loss is
   alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * cross-entropy(label), and an
   unlabelled review's the first term alone (Hinton et al., 2015).
4. The student folder is a normal training output (weights, tokenizer, train_config.json naming its teacher and
   the teacher's checksum, metrics.json, a model card), so export, the gate, predict, serve, Ray and bench take it
   unchanged. metrics.json also holds the teacher on the same test reviews and their agreement.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate.utils import broadcast_object_list, set_seed
from transformers import DistilBertForSequenceClassification

from imdb_deploy.errors import ConfigError, ModelLoadError
from imdb_deploy.folders import hub_reference, is_local_reference, load_train_config
from imdb_deploy.metrics import metrics_from_logits
from imdb_deploy.rows.labelled import source_paths
from imdb_deploy.runtimes.folder import load_tokenizer, load_torch_classifier
from imdb_deploy.tokenization import TokenizationSettings, encode
from imdb_deploy.training.cards import student_card
from imdb_deploy.training.config import DistillConfig
from imdb_deploy.training.data import AUTO, NONE, labelled_splits, unlabelled_reviews
from imdb_deploy.training.loop import (
    EncodedSplit,
    RunFolder,
    data_loaders,
    finish_folder,
    fit,
    loader_logits,
    make_accelerator,
    prepare_run,
    run_metrics,
)
from imdb_deploy.training.teacher import Teacher


def spread_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """The teacher layers a student starts from, spread evenly from the first: [0, 2, 4] for 3 of 6."""
    return [round(i * teacher_layers / student_layers) for i in range(student_layers)]


def student_from_teacher(teacher, layers: int):
    """A DistilBERT classifier with `layers` of the teacher's transformer layers (spread_layers), its
    embeddings and classifier head; in train mode.

    Raises:
        ConfigError: `layers` is not below the teacher's.
        ModelLoadError: the teacher is not a DistilBERT sequence classifier.
    """
    if not isinstance(teacher, DistilBertForSequenceClassification):
        raise ModelLoadError(
            f"the teacher is a {type(teacher).__name__}; distill makes students of DistilBERT sequence classifiers "
            "(the output of `imdb-deploy train`)"
        )
    total = teacher.config.n_layers
    if not 1 <= layers < total:
        raise ConfigError(f"--layers {layers}: use fewer layers than the teacher's {total} (from 1 to {total - 1})")
    kept = spread_layers(total, layers)
    config = teacher.config.__class__.from_dict({**teacher.config.to_dict(), "n_layers": layers})
    student = DistilBertForSequenceClassification(config)
    state = {}
    for key, value in teacher.state_dict().items():
        match = re.match(r"distilbert\.transformer\.layer\.(\d+)\.(.+)", key)
        if match is None:
            state[key] = value
        elif int(match.group(1)) in kept:
            state[f"distilbert.transformer.layer.{kept.index(int(match.group(1)))}.{match.group(2)}"] = value
    student.load_state_dict(state, strict=True)
    return student.train()


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float, alpha):
    """Mean over the batch of alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(label) per labelled
    review, and of the KL term alone per unlabelled one (label -1)."""
    soft = F.kl_div(
        F.log_softmax(student / temperature, dim=-1),
        F.log_softmax(teacher / temperature, dim=-1),
        reduction="none",
        log_target=True,
    ).sum(dim=-1) * (temperature**2)
    labelled = labels >= 0
    hard = F.cross_entropy(student, labels.clamp(min=0), reduction="none")
    per_review = torch.where(labelled, alpha * soft + (1 - alpha) * hard, soft)
    return per_review.mean()


def distill_step(temperature: float, alpha: float):
    """The loop's step (training.loop.Step) for distillation."""

    def step(accelerator, model, batch, optimizer, scheduler):
        with accelerator.accumulate(model):
            teacher = batch.pop("teacher_logits")
            labels = batch.pop("labels")
            logits = model(**batch).logits.float()
            loss = distillation_loss(logits, teacher, labels, temperature, alpha)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        return loss

    return step


def teacher_settings(teacher_dir: str) -> tuple[dict, TokenizationSettings]:
    """The teacher's train_config.json and the tokenization it records.

    Raises:
        ModelLoadError: the folder is missing or is not a trained classifier (no train_config.json, random
            weights).
    """
    path = Path(teacher_dir).expanduser()
    if not path.is_dir():
        raise ModelLoadError(f"teacher {teacher_dir!r}: no such folder; train one with `imdb-deploy train`")
    recorded = load_train_config(path)
    if not recorded or recorded.get("random_weights"):
        why = "random weights" if recorded else "no train_config.json"
        raise ModelLoadError(
            f"teacher {teacher_dir!r}: not a trained classifier ({why}); distill from the output of `imdb-deploy train`"
        )
    return recorded, TokenizationSettings.from_dict(recorded)


def distill_inputs(config: DistillConfig, data: str) -> dict:
    """What distill reads, as outputs.Inputs: the teacher, its export, the data and the unlabelled reviews."""
    inputs = {"the teacher folder": config.teacher, "the --teacher-onnx folder": config.teacher_onnx}
    inputs |= source_paths(data)
    if config.unlabelled not in (AUTO, NONE) and is_local_reference(config.unlabelled):
        inputs["the --unlabelled reviews"] = config.unlabelled
    return inputs


def distill(
    config: DistillConfig,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Distil a trained teacher into a student with fewer layers and write a complete model folder.

    Args:
        config: the teacher, the student's size, the data and the recipe.
        resume: continue the interrupted run in `config.output_dir` from its last checkpoint.
        overwrite: replace an existing, non-empty output folder (once the new student is complete).
        progress: progress bars on stderr (main process only).
        log: receives lines for people (the teacher's runtime, cache hits); None is silent.

    Returns:
        The student folder: weights, tokenizer, train_config.json, metrics.json and a model card README.md.

    Raises:
        ConfigError, DataError, InputError, ModelLoadError, HubUnreachableError, OutputError: one line each;
            a problem found before training leaves nothing written.
    """
    recorded, settings = teacher_settings(config.teacher)
    data = config.data or recorded.get("data_source")
    if not data:
        raise ConfigError(f"teacher {config.teacher!r} records no data source; name the labelled reviews with --data")
    accelerator, device = make_accelerator(config)
    main = accelerator.is_main_process
    folder = None
    if main:
        folder = RunFolder(config.output_dir, distill_inputs(config, data), resume, overwrite, config.training_fields())
    try:
        _distill(config, data, settings, accelerator, device, folder, resume, progress, log if main else None)
    except BaseException:
        if folder is not None:
            folder.abandon()
        raise
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return Path(config.output_dir)


def _distill(config, data, settings, accelerator, device, folder, resume: bool, progress: bool, log) -> None:
    """The run itself, into `folder.work` (main process; the others learn where by broadcast)."""
    out = Path(broadcast_object_list([str(folder.work) if folder is not None else None])[0])
    accelerator.wait_for_everyone()
    set_seed(config.seed)

    teacher_model = load_torch_classifier(config.teacher, label_names=settings.label_names)
    layers = config.layers or max(1, teacher_model.config.n_layers // 2)
    student = student_from_teacher(teacher_model, layers)
    tokenizer = load_tokenizer(config.teacher)
    splits = labelled_splits(data, config.val_size, config.max_train_samples, config.max_eval_samples, config.seed)
    splits["unlabelled"] = unlabelled_reviews(
        config.unlabelled, data, config.text_field, config.max_unlabelled_samples, config.seed
    )
    if log is not None and config.unlabelled == AUTO and not splits["unlabelled"].texts:
        log(f"note: {hub_reference(data)} has no unlabelled split; the student learns from the labelled reviews only")
    ids = {name: encode(tokenizer, split.texts, settings) for name, split in splits.items()}
    teacher = Teacher(config, teacher_model, tokenizer, settings, log)
    targets = {name: teacher.logits(name, ids[name]) for name in splits}
    del teacher_model, teacher.model  # the student trains alone from here

    # The labelled and unlabelled reviews train together (label -1: the teacher's outputs alone).
    train_labels = [*splits["train"].labels, *splits["unlabelled"].labels]
    encoded = {
        "train": EncodedSplit(
            ids["train"] + ids["unlabelled"], train_labels, np.concatenate([targets["train"], targets["unlabelled"]])
        ),
        **{name: EncodedSplit(ids[name], splits[name].labels) for name in ("validation", "test") if name in splits},
    }
    loaders = data_loaders(config, device, encoded, tokenizer.pad_token_id)
    run = prepare_run(accelerator, config, student, loaders, out, resume, folder is None or folder.in_place)
    fit(run, config, distill_step(config.temperature, config.alpha), progress, desc="distill")
    logits, labels = loader_logits(accelerator, run.model, run.eval_loaders["test"])
    if folder is None:
        return
    metrics = run_metrics(config, run, metrics_from_logits(logits, labels), splits, device)
    metrics["teacher"] = {**teacher.describe(), **compare_with_teacher(targets["test"], logits, labels)}
    metrics["layers"] = {
        "teacher": teacher.layers,
        "student": layers,
        "initialised_from": spread_layers(teacher.layers, layers),
    }
    metrics["unlabelled_samples"] = len(splits["unlabelled"])
    finish_folder(
        out,
        accelerator.unwrap_model(run.model),
        tokenizer,
        metrics,
        student_card(config, metrics, data),
        run.resumable,
        progress,
        settings=settings,
        base_model=hub_reference(config.teacher),
        data_source=data,
        data_samples={name: len(split) for name, split in splits.items()},
        training=asdict(config),
        teacher=metrics["teacher"],
    )
    folder.finish()


def compare_with_teacher(teacher_logits: np.ndarray, student_logits: np.ndarray, labels: np.ndarray) -> dict:
    """The teacher on the student's test reviews: its accuracy and F1, the labels' agreement, and the student's
    accuracy minus the teacher's (a fraction: -0.004 is 0.4 points below)."""
    teacher = metrics_from_logits(teacher_logits, labels)
    student_accuracy = float((student_logits.argmax(axis=1) == labels).mean())
    return {
        "accuracy": teacher["accuracy"],
        "f1": teacher["f1"],
        "agreement": float((student_logits.argmax(axis=1) == teacher_logits.argmax(axis=1)).mean()),
        "accuracy_difference": student_accuracy - teacher["accuracy"],
        "samples": int(len(labels)),
    }
