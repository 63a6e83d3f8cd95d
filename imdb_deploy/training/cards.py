"""The model card (README.md) of a trained or distilled model folder, and the one-screen summary of a run.

The YAML header is the Hugging Face Hub's model card metadata; the numbers are the run's own (metrics.json).
"""

from __future__ import annotations

import json
from pathlib import Path

from imdb_deploy.folders import METRICS, hub_reference
from imdb_deploy.metrics import format_metrics_table
from imdb_deploy.version import __version__


def _header(base_model: str, tags: str) -> str:
    return f"""---
library_name: transformers
pipeline_tag: text-classification
base_model: {base_model}
tags: [imdb-deploy, sentiment-analysis, distilbert{tags}]
---
"""


def _test_table(test: dict) -> str:
    return f"""| accuracy | F1 | precision | recall |
| --- | --- | --- | --- |
| {test["accuracy"]:.4f} | {test["f1"]:.4f} | {test["precision"]:.4f} | {test["recall"]:.4f} |

Confusion matrix [[TN, FP], [FN, TP]]: {test["confusion_matrix"]}"""


def _epochs_table(metrics: dict) -> str:
    rows = "\n".join(
        f"| {e['epoch']} | {e['train_loss']:.4f} | "
        + (f"{e['validation']['accuracy']:.4f} |" if e.get("validation") else "- |")
        for e in metrics["epochs"]
    )
    return f"| epoch | train loss | validation accuracy |\n| --- | --- | --- |\n{rows}"


def train_card(config, metrics: dict) -> str:
    """README.md of a folder `train` wrote (config: training.config.TrainConfig)."""
    test = metrics["test"]
    base = hub_reference(config.model)
    return f"""{_header(base, "")}
# DistilBERT IMDb sentiment classifier

Fine-tuned from `{base}` on `{hub_reference(config.data)}` with imdb-deploy {__version__}.

## Test results ({test["samples"]} reviews of the test split)

{_test_table(test)}

## Training

{_epochs_table(metrics)}

Best epoch (by validation accuracy): {metrics["best_epoch"]}. Settings: max length {config.max_length},
truncation {config.truncation}, batch {config.batch_size}, lr {config.lr}, epochs {config.epochs},
seed {config.seed}. Full settings in `train_config.json`, all numbers in `metrics.json`.
"""


def student_card(config, metrics: dict, data: str) -> str:
    """README.md of a folder `distill` wrote (config: training.config.DistillConfig)."""
    test, teacher, layers = metrics["test"], metrics["teacher"], metrics["layers"]
    return f"""{_header(teacher["name"], ", distillation")}
# Distilled DistilBERT IMDb sentiment classifier ({layers["student"]} layers)

Distilled from the {layers["teacher"]}-layer teacher `{teacher["name"]}` (sha256 {teacher["sha256"][:12]}...) on
`{hub_reference(data)}` ({metrics["train_samples"]:,} labelled and {metrics["unlabelled_samples"]:,} unlabelled reviews)
with imdb-deploy {__version__}. The student started from the teacher's layers {layers["initialised_from"]}, its
embeddings and classifier head; its loss was {config.alpha} x T^2 x KL(teacher || student) at temperature
{config.temperature} plus {1 - config.alpha:g} x cross-entropy on labelled reviews (the KL term alone on unlabelled
ones). The teacher's outputs came from {teacher["runtime"]}{_variant(teacher)}.

## Test results ({test["samples"]} reviews of the test split)

{_test_table(test)}

The teacher on the same reviews: accuracy {teacher["accuracy"]:.4f}, F1 {teacher["f1"]:.4f}; the student's labels
agree with the teacher's on {100 * teacher["agreement"]:.2f}% of them; accuracy
{100 * teacher["accuracy_difference"]:+.2f} points against the teacher.

## Training

{_epochs_table(metrics)}

Settings: max length and truncation as the teacher's, batch {config.batch_size}, lr {config.lr}, epochs
{config.epochs}, seed {config.seed}. Full settings in `train_config.json`, all numbers in `metrics.json`.
"""


def _variant(teacher: dict) -> str:
    return f" ({teacher['variant']})" if teacher.get("variant") else ""


def summary(model_dir: str | Path) -> str:
    """A one-screen summary of a finished training or distillation run (its metrics.json)."""
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
    teacher = metrics.get("teacher")
    if teacher:
        lines.append(
            f"teacher on the same reviews: accuracy {teacher['accuracy']:.4f} "
            f"({100 * teacher['accuracy_difference']:+.2f} points for the student), "
            f"labels agree on {100 * teacher['agreement']:.2f}%"
        )
    return "\n".join(lines)
