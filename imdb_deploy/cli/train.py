"""`imdb-deploy train` and `imdb-deploy evaluate`."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from imdb_deploy.cli.options import (
    config_flag,
    config_option,
    echo_err,
    emit_json,
    json_output,
    user_errors,
)
from imdb_deploy.tokenization import TRUNCATION_STRATEGIES
from imdb_deploy.training.config import MIXED_PRECISION, DistillConfig, EvaluateConfig, TrainConfig

# --- train / evaluate -------------------------------------------------------------------------------------


@click.command()
@config_option(TrainConfig, "--model", help="Base model: Hub id or local folder.")
@config_option(
    TrainConfig,
    "--data",
    help="Hub dataset id, a folder with train/test Parquet/CSV/JSONL, an aclImdb/ folder, or train=F,test=F.",
)
@config_option(TrainConfig, "--output", "-o", "output_dir", type=click.Path(), help="Model folder to write.")
@config_option(TrainConfig, "--epochs", type=int)
@config_option(TrainConfig, "--batch-size", type=int, help="Per device.")
@config_option(TrainConfig, "--lr", type=float, help="Peak learning rate.")
@config_option(TrainConfig, "--weight-decay", type=float)
@config_option(TrainConfig, "--warmup-ratio", type=float, help="Linear warm-up share, then linear decay.")
@config_option(TrainConfig, "--gradient-accumulation-steps", type=int)
@config_option(TrainConfig, "--max-length", type=int, help="Tokens per review (at most 512).")
@config_option(
    TrainConfig, "--truncation", type=click.Choice(TRUNCATION_STRATEGIES), help="Which tokens of a long review to keep."
)
@config_option(
    TrainConfig,
    "--val-size",
    type=float,
    help="Validation share (or count) carved from train to pick the best epoch; 0 disables.",
)
@click.option("--max-train-samples", type=int, help="Stratified sample of the training split, for quick runs.")
@click.option("--max-eval-samples", type=int, help="Stratified sample of validation and test, for quick runs.")
@config_option(
    TrainConfig,
    "--mixed-precision",
    type=click.Choice(MIXED_PRECISION),
    help="auto: bf16 on GPUs that support it, fp16 on older GPUs, no on the CPU.",
)
@config_option(TrainConfig, "--seed", type=int)
@config_option(TrainConfig, "--checkpoint-every", type=int, help="Optimizer steps between checkpoints.")
@click.option("--eval-batch-size", type=int, help="Reviews per evaluation batch [default: 64 on CPU, 256 on GPU].")
@click.option("--num-workers", type=click.IntRange(min=0), help="DataLoader workers [default: 0 on CPU, 2 on GPU].")
@config_option(TrainConfig, "--tf32/--no-tf32", help="TF32 matmuls on Ampere+ GPUs.")
@config_flag(TrainConfig, "--cpu", "Train on the CPU even when a GPU is present.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --output from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --output folder.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@user_errors
def train(resume: bool, overwrite: bool, quiet: bool, **options) -> None:
    """Fine-tune DistilBERT on IMDb with accelerate and report test metrics.

    \b
    Example:
      imdb-deploy train --data data/imdb --output runs/quick --max-train-samples 2000 --max-length 256 --epochs 1
    """
    from accelerate import PartialState

    from imdb_deploy.training.cards import summary
    from imdb_deploy.training.train import train as run_training

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("imdb_deploy").setLevel(logging.WARNING if quiet else logging.INFO)
    config = TrainConfig(**options)
    folder = run_training(config, resume=resume, overwrite=overwrite, progress=not quiet)
    if PartialState().is_main_process:
        echo_err(summary(folder))


@click.command()
@click.argument("model_dir")
@config_option(EvaluateConfig, "--data", help="Data source (see train --help).")
@config_option(EvaluateConfig, "--split")
@click.option("--max-samples", type=int, help="Stratified sample of the split.")
@config_option(EvaluateConfig, "--batch-size", type=int)
@config_option(EvaluateConfig, "--seed", type=int)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Write the metrics JSON here instead of stdout.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or table.")
@user_errors
def evaluate(model_dir: str, output: Path | None, quiet: bool, **options) -> None:
    """Accuracy, F1, precision, recall and confusion matrix of a model on a labelled split.

    \b
    Example:
      imdb-deploy evaluate runs/distilbert-imdb --data data/imdb --max-samples 1000
    """
    from imdb_deploy.metrics import format_metrics_table
    from imdb_deploy.training.evaluate import evaluate as run_evaluation
    from imdb_deploy.training.evaluate import evaluate_inputs

    config = EvaluateConfig(**options)
    declared = json_output(output, evaluate_inputs(model_dir, config))
    metrics = run_evaluation(model_dir, config, progress=not quiet)
    if not quiet:
        echo_err(format_metrics_table(metrics, f"{model_dir} on {metrics['data']} [{metrics['split']}]:"))
    emit_json(metrics, declared)


@click.command()
@click.argument("teacher_dir")
@config_option(
    DistillConfig,
    "--output",
    "-o",
    "output_dir",
    type=click.Path(),
    help="Student folder to write.",
)
@click.option(
    "--layers",
    type=click.IntRange(min=1),
    help="Transformer layers of the student, below the teacher's [default: half the teacher's].",
)
@config_option(
    DistillConfig,
    "--teacher-onnx",
    type=click.Path(file_okay=False),
    help="The teacher's gated export: its default variant computes the soft targets (minutes, not hours) "
    "[default: the PyTorch teacher].",
)
@click.option("--data", help="Labelled reviews (see train) [default: the teacher's own data source].")
@config_option(
    DistillConfig,
    "--unlabelled",
    help="auto: the data source's unlabelled split (IMDb's 50,000 `unsupervised` reviews) where it has one; "
    "none; or a file, folder or glob of reviews (JSONL, CSV, text, Parquet).",
)
@config_option(DistillConfig, "--text-field", help="Field or column with the review in an --unlabelled file.")
@click.option(
    "--max-unlabelled-samples", type=int, help="Seeded sample of the unlabelled reviews [default: all of them]."
)
@config_option(DistillConfig, "--temperature", type=float, help="Softens teacher and student alike.")
@config_option(DistillConfig, "--alpha", type=float, help="The soft targets' share of a labelled review's loss.")
@config_option(DistillConfig, "--epochs", type=int)
@config_option(DistillConfig, "--batch-size", type=int, help="Per device.")
@config_option(DistillConfig, "--lr", type=float, help="Peak learning rate.")
@config_option(DistillConfig, "--val-size", type=float, help="Validation share (or count) carved from train.")
@click.option("--max-train-samples", type=int, help="Stratified sample of the training split, for quick runs.")
@click.option("--max-eval-samples", type=int, help="Stratified sample of validation and test, for quick runs.")
@config_option(DistillConfig, "--seed", type=int)
@config_option(DistillConfig, "--checkpoint-every", type=int, help="Optimizer steps between checkpoints.")
@click.option(
    "--teacher-cache",
    type=click.Path(file_okay=False),
    help="Folder for the teacher's outputs, reused while teacher and reviews are the same [default: the user cache].",
)
@config_flag(DistillConfig, "--cpu", "Train on the CPU even when a GPU is present.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --output from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --output folder (once the student is complete).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@user_errors
def distill(teacher_dir: str, resume: bool, overwrite: bool, quiet: bool, **options) -> None:
    """Distil a trained model into a smaller student (fewer layers) on labelled and unlabelled reviews.

    \b
    Example:
      imdb-deploy distill runs/full-minilm --teacher-onnx runs/full-minilm-onnx -o runs/student --layers 3
    """
    from accelerate import PartialState

    from imdb_deploy.training.cards import summary
    from imdb_deploy.training.distill import distill as run_distill

    config = DistillConfig(teacher=teacher_dir, **options)
    folder = run_distill(
        config, resume=resume, overwrite=overwrite, progress=not quiet, log=None if quiet else echo_err
    )
    if PartialState().is_main_process:
        echo_err(summary(folder))
