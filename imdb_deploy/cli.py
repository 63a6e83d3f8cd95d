"""Command line: parse options, call one stage function, print the result. No ML in here.

stdout carries data (predictions, JSON); stderr carries progress, tables and messages.
Exit codes: 0 ok, 1 a failure the user can act on, 2 bad usage.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from imdb_deploy import __version__
from imdb_deploy.errors import ImdbDeployError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def user_errors(func):
    """Turn package errors into click errors: a one-line message on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (ImdbDeployError, FileExistsError) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def echo_err(message: str = "") -> None:
    """A line for people, on stderr."""
    click.echo(message, err=True)


def emit_json(payload: dict, output: Path | None) -> None:
    """JSON to `output` (written atomically) or to stdout."""
    from imdb_deploy.fileio import write_json_atomic

    if output is None:
        click.echo(json.dumps(payload, indent=2))
    else:
        write_json_atomic(output, payload)
        echo_err(f"wrote {output}")


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="imdb-deploy")
def cli() -> None:
    """Fine-tune DistilBERT on IMDb, export it to ONNX with a parity gate, and predict fast."""


def main() -> None:
    cli(prog_name="imdb-deploy")


# --- train / evaluate -------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--model", default="distilbert-base-uncased", show_default=True, help="Base model: Hub id or local folder."
)
@click.option(
    "--data",
    default="imdb",
    show_default=True,
    help="Hub dataset id, a folder with train/test Parquet/CSV/JSONL, an aclImdb/ folder, or train=F,test=F.",
)
@click.option(
    "--output",
    "-o",
    "output_dir",
    default="runs/distilbert-imdb",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Model folder to write.",
)
@click.option("--epochs", default=2, show_default=True, type=int)
@click.option("--batch-size", default=16, show_default=True, type=int, help="Per device.")
@click.option("--lr", default=2e-5, show_default=True, type=float, help="Peak learning rate.")
@click.option("--weight-decay", default=0.01, show_default=True, type=float)
@click.option(
    "--warmup-ratio", default=0.06, show_default=True, type=float, help="Linear warm-up share, then linear decay."
)
@click.option("--gradient-accumulation-steps", default=1, show_default=True, type=int)
@click.option("--max-length", default=512, show_default=True, type=int, help="Tokens per review (at most 512).")
@click.option(
    "--truncation",
    default="head+tail",
    show_default=True,
    type=click.Choice(["head", "head+tail"]),
    help="Which tokens of a long review to keep.",
)
@click.option(
    "--val-size",
    default=0.1,
    show_default=True,
    type=float,
    help="Validation share (or count) carved from train to pick the best epoch; 0 disables.",
)
@click.option("--max-train-samples", type=int, help="Stratified sample of the training split, for quick runs.")
@click.option("--max-eval-samples", type=int, help="Stratified sample of validation and test, for quick runs.")
@click.option(
    "--mixed-precision",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "no", "fp16", "bf16"]),
    help="auto: bf16 on GPUs that support it, fp16 on older GPUs, no on the CPU.",
)
@click.option("--seed", default=42, show_default=True, type=int)
@click.option(
    "--checkpoint-every", default=500, show_default=True, type=int, help="Optimizer steps between checkpoints."
)
@click.option("--eval-batch-size", type=int, help="Reviews per evaluation batch [default: 64 on CPU, 256 on GPU].")
@click.option("--num-workers", type=click.IntRange(min=0), help="DataLoader workers [default: 0 on CPU, 2 on GPU].")
@click.option("--tf32/--no-tf32", default=True, show_default=True, help="TF32 matmuls on Ampere+ GPUs.")
@click.option("--cpu", is_flag=True, help="Train on the CPU even when a GPU is present.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --output from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --output folder.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@user_errors
def train(resume: bool, overwrite: bool, quiet: bool, **options) -> None:
    """Fine-tune DistilBERT on IMDb with accelerate and report test metrics.

    Example: imdb-deploy train --data ../shared/data/imdb --max-train-samples 2000 --max-length 256 --epochs 1
    """
    import logging

    from imdb_deploy.train import TrainConfig, summary
    from imdb_deploy.train import train as run_training

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("imdb_deploy").setLevel(logging.WARNING if quiet else logging.INFO)
    config = TrainConfig(**options)
    folder = run_training(config, resume=resume, overwrite=overwrite, progress=not quiet)
    from accelerate import PartialState

    if PartialState().is_main_process:
        echo_err(summary(folder))


@cli.command()
@click.argument("model_dir")
@click.option("--data", default="imdb", show_default=True, help="Data source (see train --help).")
@click.option("--split", default="test", show_default=True)
@click.option("--max-samples", type=int, help="Stratified sample of the split.")
@click.option("--batch-size", default=64, show_default=True, type=int)
@click.option("--seed", default=42, show_default=True, type=int)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the metrics JSON here instead of stdout.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or table.")
@user_errors
def evaluate(model_dir: str, output: Path | None, quiet: bool, **options) -> None:
    """Accuracy, F1, precision, recall and confusion matrix of a model on a labelled split.

    Example: imdb-deploy evaluate runs/distilbert-imdb --data ../shared/data/imdb --max-samples 1000
    """
    from imdb_deploy.evaluation import EvaluateConfig
    from imdb_deploy.evaluation import evaluate as run_evaluation
    from imdb_deploy.metrics import format_metrics_table

    metrics = run_evaluation(model_dir, EvaluateConfig(**options), progress=not quiet)
    if not quiet:
        echo_err(format_metrics_table(metrics, f"{model_dir} on {metrics['data']} [{metrics['split']}]:"))
    emit_json(metrics, output)


# --- export / verify --------------------------------------------------------------------------------------


def _sample_count(ctx, param, value: str) -> int | None:
    """--verify-samples: a count of reviews (at least 2) or "all"."""
    if value.strip().lower() == "all":
        return None
    try:
        count = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use a number of reviews or 'all'") from None
    if count < 2:
        raise click.BadParameter(f"{value!r}: use at least 2 reviews or 'all'")
    return count


def _gate_options(func):
    """Options shared by export and verify: the gate's data, sample and thresholds."""
    options = [
        click.option("--data", default="imdb", show_default=True, help="Labelled reviews for the gate (see train)."),
        click.option("--split", default="test", show_default=True, help="Split of --data the gate scores."),
        click.option(
            "--verify-samples",
            "samples",
            default="1000",
            show_default=True,
            callback=_sample_count,
            help="Stratified sample of the split for the gate, or 'all'.",
        ),
        click.option(
            "--threshold",
            "thresholds",
            multiple=True,
            metavar="VARIANT.FIELD=VALUE",
            help="Override a gate threshold (repeatable), e.g. int8.min_agreement=0.97. Fields: min_agreement, "
            "max_accuracy_drop, max_prob_diff, max_mean_prob_diff (fractions; 'none' turns the last two off).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.command()
@click.argument("model_dir")
@click.option(
    "--output",
    "-o",
    "output_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="ONNX folder to write, complete or not at all [default: MODEL_DIR-onnx].",
)
@click.option("--quantize", is_flag=True, help="Also write a dynamic INT8 model (CPU only).")
@click.option(
    "--optimize",
    default="O2",
    show_default=True,
    type=click.Choice(["none", "O1", "O2", "O3", "O4"]),
    help="Graph fusion level: O2 fuses attention/GELU/LayerNorm (CPU default); O3 adds approximate GELU; "
    "O4 is fp16 for --device cuda.",
)
@click.option("--opset", type=click.IntRange(11, 23), help="ONNX opset [default: optimum's for the model].")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]))
@click.option(
    "--quantize-target",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "avx512_vnni", "avx512", "avx2", "arm64"]),
    help="CPU whose INT8 settings to use; auto detects this one.",
)
@click.option(
    "--per-channel/--per-tensor", default=True, show_default=True, help="INT8 weight scales per column or per tensor."
)
@click.option("--reduce-range", is_flag=True, help="7-bit INT8 weights (for AVX512 CPUs without VNNI).")
@click.option(
    "--cls-only-last-layer/--full-last-layer",
    default=True,
    show_default=True,
    help="Export the last layer for the [CLS] position only (same logits, ~14% less compute).",
)
@click.option(
    "--quantize-from",
    default="optimized",
    show_default=True,
    type=click.Choice(["optimized", "fp32"]),
    help="Quantize the fused graph (faster) or the plain one.",
)
@_gate_options
@click.option("--no-verify", is_flag=True, help="Skip the parity gate; the folder is marked unverified.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder once the new one passed.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines (the summary and warnings stay).")
@user_errors
def export(
    model_dir: str,
    output_dir: Path | None,
    thresholds: tuple[str, ...],
    samples: int | None,
    no_verify: bool,
    quiet: bool,
    **options,
) -> None:
    """Export a trained model to ONNX (fp32, fused, INT8) and gate it on parity with PyTorch.

    Example: imdb-deploy export runs/minilm-2k --output runs/minilm-2k-onnx --quantize --data ../shared/data/imdb
    """
    from imdb_deploy.export import ExportConfig
    from imdb_deploy.export import export as run_export

    if output_dir is None:
        output_dir = Path(f"{str(model_dir).rstrip('/')}-onnx")
    config = ExportConfig(
        verify=not no_verify,
        verify_samples=samples,
        threshold_overrides=thresholds,
        **options,
    )
    report = run_export(model_dir, output_dir, config, log=None if quiet else echo_err)
    for name, variant in report.variants.items():
        echo_err(f"  {name:<10} {variant['file']:<22} {variant['bytes'] / 2**20:8.1f} MiB")
    if quiet:
        for warning in report.warnings:
            echo_err(f"warning: {warning}")
    echo_err(f"wrote {output_dir} ({'verified' if report.verified else 'NOT verified'})")


@cli.command()
@click.argument("onnx_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", "-m", help="PyTorch original [default: source_model in the folder's export_report.json].")
@_gate_options
@click.option(
    "--variant",
    "variants",
    multiple=True,
    type=click.Choice(["fp32", "optimized", "int8", "fp16"]),
    help="Variant to check (repeatable) [default: every one in the folder].",
)
@click.option("--provider", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]))
@click.option("--seed", default=42, show_default=True, type=int, help="Seed of the sample.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the parity JSON here instead of stdout.",
)
@click.option(
    "--record", is_flag=True, help="Store the result in the folder's export_report.json (verified: passed or not)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress lines or table.")
@user_errors
def verify(
    onnx_dir: Path,
    model: str | None,
    thresholds: tuple[str, ...],
    variants: tuple[str, ...],
    output: Path | None,
    record: bool,
    quiet: bool,
    **options,
) -> None:
    """Run the parity gate alone: PyTorch vs each ONNX variant on labelled reviews; exit 1 if it fails.

    Example: imdb-deploy verify runs/minilm-2k-onnx --data ../shared/data/imdb --verify-samples 2000
    """
    from imdb_deploy.verify import VerifyConfig, check_parity, record_parity

    config = VerifyConfig(threshold_overrides=thresholds, variants=variants or None, **options)
    report = check_parity(onnx_dir, model=model, config=config, log=None if quiet else echo_err)
    if not quiet:
        echo_err(report.summary())
    emit_json(report.to_dict(), output)
    if record:
        echo_err(f"recorded the result in {record_parity(onnx_dir, report)}")
    report.raise_for_failure()


# --- predict ----------------------------------------------------------------------------------------------


@cli.command()
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@click.option(
    "--model",
    "-m",
    "model_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder written by `imdb-deploy export`.",
)
@click.option(
    "--output",
    "-o",
    help="local: a file for the predictions (complete or not at all; .gz compresses) [default: stdout]. "
    "ray: the output folder of Parquet shards (required).",
)
@click.option("--format", "output_format", default="jsonl", show_default=True, type=click.Choice(["jsonl", "csv"]))
@click.option(
    "--input-format",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "jsonl", "csv", "text", "parquet"]),
    help="auto: per file by suffix (.parquet, .jsonl, .csv, .txt, also .gz), else JSONL if the first line starts "
    "with '{', else text.",
)
@click.option(
    "--text-field", default="text", show_default=True, help="JSONL field, CSV or Parquet column with the review."
)
@click.option(
    "--id-field",
    help="Field or column copied to the output as id [default: 'id' where rows have it, else FILE:LINE; "
    "the line number for stdin].",
)
@click.option(
    "--on-error",
    default="fail",
    show_default=True,
    type=click.Choice(["fail", "skip"]),
    help="fail: stop at the first bad row (exit 1, no output); skip: set bad rows aside and score the rest.",
)
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="local, with --on-error skip: write bad rows (file, line, id, reason, fix) here as JSONL "
    "[default: list them on stderr]. ray: they go to OUTPUT/_errors/.",
)
@click.option(
    "--variant",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "fp32", "optimized", "int8", "fp16"]),
    help="ONNX file to run; auto takes int8 on CPU, fp16/optimized/fp32 on CUDA.",
)
@click.option("--provider", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]))
@click.option("--threads", type=click.IntRange(min=1), help="onnxruntime intra-op threads [default: physical cores].")
@click.option("--batch-size", type=click.IntRange(min=1), help="Most reviews per onnxruntime call [default: 64].")
@click.option(
    "--max-tokens", type=click.IntRange(min=1), help="Most padded tokens per onnxruntime call [default: 1024]."
)
@click.option("--chunk-size", default=1024, show_default=True, type=click.IntRange(min=1), help="Rows sorted together.")
@click.option(
    "--io-binding/--no-io-binding",
    default=None,
    help="Bind inputs and logits on the provider's device [default: on for cuda, off for cpu].",
)
@click.option(
    "--engine",
    default="local",
    show_default=True,
    type=click.Choice(["local", "ray"]),
    help="local: one process, streaming, output in input order; ray: a Ray Data job (local Ray or a cluster).",
)
@click.option(
    "--address", help="ray: cluster to join (auto, ray://host:10001) [default: RAY_ADDRESS, else a local Ray]."
)
@click.option("--actors", help="ray: N actors, or MIN,MAX to autoscale [default: cluster CPUs / --cpus-per-actor].")
@click.option(
    "--cpus-per-actor", default=1, show_default=True, type=click.IntRange(min=1), help="ray: CPUs (threads) per actor."
)
@click.option(
    "--ship-model/--shared-model",
    default=True,
    show_default=True,
    help="ray: send the model's files to the workers through Ray, or load MODEL from the same path on each worker.",
)
@click.option("--overwrite", is_flag=True, help="ray: replace an existing output folder once the new one is complete.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (the one-line summary stays).")
@user_errors
def predict(
    inputs: tuple[str, ...],
    model_dir: Path,
    output: str | None,
    errors_path: Path | None,
    variant: str,
    provider: str,
    threads: int | None,
    batch_size: int | None,
    max_tokens: int | None,
    io_binding: bool | None,
    engine: str,
    address: str | None,
    actors: str | None,
    cpus_per_actor: int,
    ship_model: bool,
    overwrite: bool,
    quiet: bool,
    **options,
) -> None:
    """Score reviews (JSONL, CSV, text or Parquet files, folders, globs, URLs; '-' for stdin) with an ONNX model.

    Example: imdb-deploy predict reviews.jsonl --model runs/minilm-2k-onnx --output predictions.jsonl
    """
    if errors_path is not None and options["on_error"] != "skip":
        raise click.UsageError("--errors needs --on-error skip (with --on-error fail the first bad row stops the run)")
    if engine == "ray":
        _predict_ray(
            inputs,
            model_dir,
            output,
            errors_path,
            variant,
            provider,
            threads,
            io_binding,
            quiet,
            address,
            actors,
            cpus_per_actor,
            ship_model,
            overwrite,
            batch_size,
            max_tokens,
            options,
        )
        return
    for name, value in (("--address", address), ("--actors", actors), ("--overwrite", overwrite or None)):
        if value is not None:
            raise click.UsageError(f"{name} applies to --engine ray")
    from imdb_deploy.predict import PredictFileConfig, Predictor, predict_file

    config = PredictFileConfig(progress=False if quiet else None, **options)
    sizes = {k: v for k, v in (("batch_size", batch_size), ("max_tokens", max_tokens)) if v is not None}
    predictor = Predictor(
        model_dir, variant=variant, provider=provider, threads=threads, io_binding=io_binding, **sizes
    )
    output_path = Path(output) if output is not None else None
    summary = predict_file(predictor, list(inputs), output=output_path, errors=errors_path, config=config)
    where = f"; errors in {errors_path}" if errors_path is not None and summary.errors else ""
    echo_err(f"{summary.describe()}{where}")
    if output is not None:
        echo_err(f"wrote {output}")


def _predict_ray(
    inputs,
    model_dir,
    output,
    errors_path,
    variant,
    provider,
    threads,
    io_binding,
    quiet,
    address,
    actors,
    cpus_per_actor,
    ship_model,
    overwrite,
    batch_size,
    max_tokens,
    options,
) -> None:
    """`predict --engine ray`: check the options that do not apply, run distributed.predict_ray, print."""
    from imdb_deploy.distributed import RayPredictConfig, parse_actors, predict_ray

    if output is None:
        raise click.UsageError("--engine ray needs --output FOLDER (Parquet shards are written there)")
    for name, value, instead in (
        ("--errors", errors_path, "bad rows go to OUTPUT/_errors/"),
        ("--threads", threads, "use --cpus-per-actor"),
        ("--io-binding", io_binding, "actors run on the CPU"),
        ("--format", None if options["output_format"] == "jsonl" else options["output_format"], "it writes Parquet"),
        ("--provider", None if provider == "cpu" else provider, "actors run on the CPU"),
    ):
        if value is not None:
            raise click.UsageError(f"{name} does not apply to --engine ray ({instead})")
    options.pop("output_format")
    config = RayPredictConfig(
        address=address,
        actors=parse_actors(actors) if actors else None,
        cpus_per_actor=cpus_per_actor,
        variant=variant,
        batch_size=batch_size,
        max_tokens=max_tokens,
        ship_model=ship_model,
        overwrite=overwrite,
        progress=False if quiet else None,
        **options,
    )
    summary = predict_ray(model_dir, list(inputs), output, config)
    echo_err(summary.describe())
    echo_err(f"wrote {output}")


# --- bench ------------------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--model",
    "-m",
    required=True,
    help="Trained folder, exported ONNX folder, or an architecture to time with random weights "
    "(distilbert-base = DistilBertConfig(); distilbert-base:n_layers=2,... changes fields).",
)
@click.option("--tokenizer", help="Tokenizer for an architecture [default: distilbert-base-uncased from the Hub].")
@click.option(
    "--onnx",
    "onnx_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="An existing export of --model to time [default: export into OUTPUT/onnx].",
)
@click.option("--data", default="imdb", show_default=True, help="Labelled reviews (see train --help).")
@click.option("--split", default="test", show_default=True)
@click.option("--samples", default="256", show_default=True, callback=_sample_count, help="Seeded sample size, or all.")
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1), help="For input-order rows.")
@click.option("--max-length", type=click.IntRange(8, 512), help="Tokens per review for an architecture [default: 512].")
@click.option(
    "--rows",
    help="Comma-separated rows [default: all this machine runs]: pytorch-fp32, pytorch-fp32-sorted, "
    "onnx-fp32, onnx-optimized, onnx-int8, predict, pytorch-fp16-cuda, pytorch-bf16-cuda, predict-cuda.",
)
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(min=1), help="Timed passes per row.")
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(min=0), help="Untimed calls first.")
@click.option(
    "--latency-samples", default=20, show_default=True, type=click.IntRange(min=0), help="Batch-1 calls per length."
)
@click.option("--threads", type=click.IntRange(min=1), help="Intra-op threads [default: physical cores].")
@click.option("--cpu-ghz", type=float, help="Clock for the INT8 peak [default: read from the OS].")
@click.option(
    "--output",
    "-o",
    default=Path("runs/bench"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for bench.json, bench.png (and the export).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress lines (the table stays).")
@user_errors
def bench(model: str, rows: str | None, output: Path, onnx_dir: Path | None, quiet: bool, **options) -> None:
    """Time PyTorch and every ONNX variant on the same reviews; table on stderr, bench.json and bench.png.

    Example: imdb-deploy bench --model distilbert-base --tokenizer ../shared/models/distilbert-minilm-l6-h384-uncased
    --data ../shared/data/imdb --samples 256 --max-length 512
    """
    from imdb_deploy.bench import BenchConfig, format_table, run_bench

    config = BenchConfig(
        rows=tuple(name.strip() for name in rows.split(",") if name.strip()) if rows else None,
        output_dir=str(output),
        onnx_dir=str(onnx_dir) if onnx_dir else None,
        **options,
    )
    report = run_bench(model, config, log=None if quiet else echo_err)
    echo_err(format_table(report))
    echo_err(f"wrote {report['files']['json']} and {report['files']['chart']}")


# --- demo -------------------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--model",
    help="Base encoder: Hub id, local folder, or 'minilm' (the offline model) "
    "[default: distilbert-base-uncased with Hub access, else minilm].",
)
@click.option(
    "--data",
    default="imdb-sample",
    show_default=True,
    help="Labelled reviews: imdb-sample (shipped, no download), imdb (the full Hub dataset), or a local source.",
)
@click.option(
    "--output",
    "-o",
    "output_dir",
    default="runs/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for every artifact; a previous demo there is replaced.",
)
@click.option(
    "--max-train-samples",
    default="2000",
    show_default=True,
    callback=_sample_count,
    help="Stratified training sample, or 'all'.",
)
@click.option(
    "--test-samples",
    default="1000",
    show_default=True,
    callback=_sample_count,
    help="Stratified test sample scored by predict (INT8): the headline accuracy; or 'all'.",
)
@click.option("--max-length", default=128, show_default=True, type=int, help="Tokens per review.")
@click.option("--epochs", default=1, show_default=True, type=int)
@click.option("--lr", default=1e-4, show_default=True, type=float, help="Peak learning rate (tuned for short runs).")
@click.option("--batch-size", default=16, show_default=True, type=int)
@click.option(
    "--verify-samples",
    default=300,
    show_default=True,
    type=int,
    help="Reviews the parity gate (and train's PyTorch test score) uses.",
)
@click.option("--bench-samples", default=64, show_default=True, type=int, help="Reviews the benchmark times.")
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or lines (the final report stays).")
@user_errors
def demo(quiet: bool, **options) -> None:
    """Run the whole pipeline (train, export INT8, verify, predict, bench) on real IMDb reviews.

    Example: imdb-deploy demo --output runs/demo
    """
    from imdb_deploy.demo import DemoConfig, run_demo, summary

    report = run_demo(DemoConfig(**options), log=None if quiet else echo_err, progress=not quiet)
    echo_err(summary(report))
    echo_err(f"wrote {report['artifacts']['report']}")


@cli.command("convert-bert")
@click.argument("bert_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    "output_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="DistilBERT folder to write [default: BERT_DIR-distilbert; without BERT_DIR the user cache].",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@user_errors
def convert_bert(bert_dir: Path | None, output_dir: Path | None, overwrite: bool) -> None:
    """Rewrite a BERT encoder as DistilBERT (lossless); without BERT_DIR, prepare the offline base model.

    Example: imdb-deploy convert-bert   # prints the folder of the converted all-MiniLM-L6-v2
    """
    import json

    from imdb_deploy.convert import CONVERSION_REPORT, convert_bert_to_distilbert, minilm_source_dir, offline_base_model

    if bert_dir is None and output_dir is None:
        folder = offline_base_model()
    else:
        source = bert_dir if bert_dir is not None else minilm_source_dir()
        folder = convert_bert_to_distilbert(
            source, output_dir or Path(f"{str(source).rstrip('/')}-distilbert"), overwrite=overwrite
        )
    report = json.loads((folder / CONVERSION_REPORT).read_text())
    echo_err(
        f"converted {report['source']} -> {folder}: last hidden states within "
        f"{report['max_abs_hidden_state_diff']:.1e} of the BERT original"
    )
    click.echo(str(folder))


if __name__ == "__main__":
    sys.exit(main())
