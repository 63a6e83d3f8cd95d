"""Command line: parse options, call one stage function, print the result. No ML in here.

stdout carries data (predictions, JSON); stderr carries progress, tables and messages.
Exit codes: 0 ok, 1 a failure the user can act on, 2 bad usage.
"""

from __future__ import annotations

import functools
import inspect
import sys
import warnings
from pathlib import Path

import click

from imdb_deploy import __version__
from imdb_deploy.bench import ROW_NAMES, BenchConfig
from imdb_deploy.demo import DemoConfig
from imdb_deploy.errors import ImdbDeployError
from imdb_deploy.evaluation import EvaluateConfig
from imdb_deploy.export_config import (
    DEVICES,
    EXPORTERS,
    OPENVINO_MODES,
    OPTIMIZATION_LEVELS,
    QUANTIZATION_TARGETS,
    QUANTIZE_SOURCES,
    ExportConfig,
)
from imdb_deploy.predict import ENGINES, VARIANTS, PredictFileConfig, Predictor
from imdb_deploy.predict_ray import RayPredictConfig
from imdb_deploy.readers import ON_ERROR
from imdb_deploy.runtime_choice import ISAMismatchWarning
from imdb_deploy.serve_config import ServeConfig
from imdb_deploy.sources import INPUT_FORMATS
from imdb_deploy.tokenization import TRUNCATION_STRATEGIES
from imdb_deploy.train import MIXED_PRECISION, TrainConfig
from imdb_deploy.verify import VerifyConfig
from imdb_deploy.writers import ON_DUPLICATE_ID, OUTPUT_FORMATS

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _default(owner, name: str):
    """The default that a stage's config dataclass (or Predictor) declares for `name`: each default is
    declared once, there, and the options below show it."""
    return inspect.signature(owner).parameters[name].default


def _option(config, *decls: str, **attrs):
    """click.option whose default, shown in --help, is the one `config` declares for the same name."""
    long_flag = next(d for d in decls if d.startswith("--"))
    name = next((d for d in decls if not d.startswith("-")), long_flag[2:].split("/")[0].replace("-", "_"))
    return click.option(*decls, default=_default(config, name), show_default=True, **attrs)


def _flag(config, flag: str, help: str):
    """An on/off click flag whose default is the one `config` declares for the same name."""
    return click.option(flag, is_flag=True, default=_default(config, flag[2:].replace("-", "_")), help=help)


def user_errors(func):
    """Turn package errors into click errors: a one-line message on stderr and exit code 1.

    A full disk or an unwritable place that a library reports as a plain OSError gets the same treatment
    (fileio.output_error words it); any other OSError is a bug to see in full.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from imdb_deploy.fileio import output_error

        try:
            return func(*args, **kwargs)
        except ImdbDeployError as exc:
            raise click.ClickException(_one_line(str(exc))) from exc
        except BrokenPipeError as exc:
            _silence_stdout()  # else Python's exit flush reports the broken pipe a second time
            raise click.ClickException(
                "stdout was closed before all output was written (the reader of the pipe stopped early); "
                "write to a file with --output to keep every row"
            ) from exc
        except OSError as exc:
            error = output_error(exc, exc.filename or "the output")
            if error is None:
                raise
            raise click.ClickException(_one_line(str(error))) from exc

    return wrapper


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file descriptor (tests' captured streams)
        pass


def _one_line(message: str) -> str:
    """Messages are one line: a library's multi-line detail is folded onto it."""
    return " ".join(part.strip() for part in message.strip().splitlines() if part.strip())


def echo_err(message: str = "") -> None:
    """A line for people, on stderr."""
    click.echo(message, err=True)


def refuse_overlap(output, inputs: dict, option: str) -> None:
    """fileio.refuse_overlap for the inputs that are local paths (a Hub id or architecture name is not)."""
    from imdb_deploy.fileio import refuse_overlap as refuse

    refuse(output, {what: path for what, path in inputs.items() if path and Path(str(path)).exists()}, option)


def emit_json(payload: dict, output: Path | None) -> None:
    """JSON to `output` (written atomically) or to stdout."""
    from imdb_deploy.fileio import json_text, write_json_atomic

    if output is None:
        click.echo(json_text(payload))
    else:
        write_json_atomic(output, payload)
        echo_err(f"wrote {output}")


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="imdb-deploy")
def cli() -> None:
    """Fine-tune DistilBERT on IMDb, export it to ONNX with a parity gate, and predict fast."""
    warnings.showwarning = _show_warning


_PLAIN_SHOWWARNING = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our own warnings (e.g. a folder measured on another CPU) are one line for people on stderr; others as usual."""
    if issubclass(category, ISAMismatchWarning):
        echo_err(f"warning: {message}")
    else:
        _PLAIN_SHOWWARNING(message, category, filename, lineno, file, line)


def main() -> None:
    from imdb_deploy.fileio import terminate_like_interrupt

    terminate_like_interrupt()  # SIGTERM cleans up like Ctrl-C: no temporary file or folder stays behind
    cli(prog_name="imdb-deploy")


# --- train / evaluate -------------------------------------------------------------------------------------


@cli.command()
@_option(TrainConfig, "--model", help="Base model: Hub id or local folder.")
@_option(
    TrainConfig,
    "--data",
    help="Hub dataset id, a folder with train/test Parquet/CSV/JSONL, an aclImdb/ folder, or train=F,test=F.",
)
@_option(TrainConfig, "--output", "-o", "output_dir", type=click.Path(file_okay=False), help="Model folder to write.")
@_option(TrainConfig, "--epochs", type=int)
@_option(TrainConfig, "--batch-size", type=int, help="Per device.")
@_option(TrainConfig, "--lr", type=float, help="Peak learning rate.")
@_option(TrainConfig, "--weight-decay", type=float)
@_option(TrainConfig, "--warmup-ratio", type=float, help="Linear warm-up share, then linear decay.")
@_option(TrainConfig, "--gradient-accumulation-steps", type=int)
@_option(TrainConfig, "--max-length", type=int, help="Tokens per review (at most 512).")
@_option(
    TrainConfig, "--truncation", type=click.Choice(TRUNCATION_STRATEGIES), help="Which tokens of a long review to keep."
)
@_option(
    TrainConfig,
    "--val-size",
    type=float,
    help="Validation share (or count) carved from train to pick the best epoch; 0 disables.",
)
@click.option("--max-train-samples", type=int, help="Stratified sample of the training split, for quick runs.")
@click.option("--max-eval-samples", type=int, help="Stratified sample of validation and test, for quick runs.")
@_option(
    TrainConfig,
    "--mixed-precision",
    type=click.Choice(MIXED_PRECISION),
    help="auto: bf16 on GPUs that support it, fp16 on older GPUs, no on the CPU.",
)
@_option(TrainConfig, "--seed", type=int)
@_option(TrainConfig, "--checkpoint-every", type=int, help="Optimizer steps between checkpoints.")
@click.option("--eval-batch-size", type=int, help="Reviews per evaluation batch [default: 64 on CPU, 256 on GPU].")
@click.option("--num-workers", type=click.IntRange(min=0), help="DataLoader workers [default: 0 on CPU, 2 on GPU].")
@_option(TrainConfig, "--tf32/--no-tf32", help="TF32 matmuls on Ampere+ GPUs.")
@_flag(TrainConfig, "--cpu", "Train on the CPU even when a GPU is present.")
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
    import logging

    from imdb_deploy.train import summary
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
@_option(EvaluateConfig, "--data", help="Data source (see train --help).")
@_option(EvaluateConfig, "--split")
@click.option("--max-samples", type=int, help="Stratified sample of the split.")
@_option(EvaluateConfig, "--batch-size", type=int)
@_option(EvaluateConfig, "--seed", type=int)
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

    \b
    Example:
      imdb-deploy evaluate runs/distilbert-imdb --data data/imdb --max-samples 1000
    """
    from imdb_deploy.evaluation import evaluate as run_evaluation
    from imdb_deploy.metrics import format_metrics_table

    if output is not None:
        refuse_overlap(output, {"the model folder": model_dir, "the --data source": options["data"]}, "--output")

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


def _count_option(config, flag: str, name: str, field: str, help: str):
    """A review-count option (a number or 'all') whose default is `config`'s `field`."""
    default = _default(config, field)
    return click.option(flag, name, default=default, show_default=True, type=str, callback=_sample_count, help=help)


def _gate_options(config, samples_field: str, exact_field: str):
    """Options shared by export and verify: the gate's data, sample and thresholds (defaults from `config`)."""
    options = [
        _option(config, "--data", help="Labelled reviews for the gate (see train)."),
        _option(config, "--split", help="Split of --data the gate scores."),
        _count_option(
            config,
            "--verify-samples",
            "samples",
            samples_field,
            "Stratified sample of the split for the gate, or 'all'.",
        ),
        _count_option(
            config,
            "--exact-samples",
            "exact_samples",
            exact_field,
            "Most of those reviews the fp32 "
            "graphs (fp32, optimized) are checked on, or 'all'; PyTorch and INT8 always get the whole sample.",
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

    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


@cli.command()
@click.argument("model_dir")
@click.option(
    "--output",
    "-o",
    "output_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="ONNX folder to write, complete or not at all [default: MODEL_DIR-onnx].",
)
@_flag(ExportConfig, "--quantize", "Also write a dynamic INT8 model (CPU only).")
@_option(
    ExportConfig,
    "--optimize",
    type=click.Choice(OPTIMIZATION_LEVELS),
    help="Graph fusion level: O2 fuses attention/GELU/LayerNorm (CPU default); O3 adds approximate GELU; "
    "O4 is fp16 for --device cuda.",
)
@_option(
    ExportConfig,
    "--exporter",
    type=click.Choice(EXPORTERS),
    help="What writes the fp32 graph: auto takes optimum where it imports (transformers < 4.58), torch's otherwise.",
)
@click.option("--opset", type=click.IntRange(11, 23), help="ONNX opset [default: the exporter's, 18 for torch's].")
@_option(ExportConfig, "--device", type=click.Choice(DEVICES))
@_option(
    ExportConfig,
    "--quantize-target",
    type=click.Choice(["auto", *QUANTIZATION_TARGETS]),
    help="CPU whose INT8 settings to use; auto detects this one.",
)
@_option(ExportConfig, "--per-channel/--per-tensor", help="INT8 weight scales per column or per tensor.")
@_flag(ExportConfig, "--reduce-range", "7-bit INT8 weights (for AVX512 CPUs without VNNI).")
@_option(
    ExportConfig,
    "--cls-only-last-layer/--full-last-layer",
    help="Export the last layer for the [CLS] position only (same logits, ~14% less compute).",
)
@_option(
    ExportConfig,
    "--quantize-from",
    type=click.Choice(QUANTIZE_SOURCES),
    help="Quantize the fused graph (faster) or the plain one.",
)
@_option(
    ExportConfig,
    "--openvino",
    type=click.Choice(OPENVINO_MODES),
    help="Write the OpenVINO variants (openvino-int8, openvino-fp32): auto with --quantize where the openvino "
    "extra is installed and the gate runs.",
)
@_option(
    ExportConfig,
    "--calibration-data",
    help="Data whose TRAINING split calibrates openvino-int8 (ids recorded) [default: --data].",
)
@_option(ExportConfig, "--calibration-samples", type=click.IntRange(min=2), help="Training reviews to calibrate on.")
@_option(
    ExportConfig,
    "--timing-samples",
    type=click.IntRange(min=2),
    help="Reviews each gated variant is timed on to choose the default variant on this CPU.",
)
@_gate_options(ExportConfig, "verify_samples", "verify_exact_samples")
@click.option("--no-verify", is_flag=True, help="Skip the parity gate; the folder is marked unverified.")
@_flag(ExportConfig, "--overwrite", "Replace an existing output folder once the new one passed.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines (the summary and warnings stay).")
@user_errors
def export(
    model_dir: str,
    output_dir: Path | None,
    thresholds: tuple[str, ...],
    samples: int | None,
    exact_samples: int | None,
    no_verify: bool,
    quiet: bool,
    **options,
) -> None:
    """Export a trained model to ONNX (fp32, fused, INT8) and gate it on parity with PyTorch.

    \b
    Example:
      imdb-deploy export runs/distilbert-imdb --output runs/distilbert-imdb-onnx --quantize --data data/imdb
    """
    from imdb_deploy.export import export as run_export

    if output_dir is None:
        output_dir = Path(f"{str(model_dir).rstrip('/')}-onnx")
    config = ExportConfig(
        verify=not no_verify,
        verify_samples=samples,
        verify_exact_samples=exact_samples,
        threshold_overrides=thresholds,
        **options,
    )
    report = run_export(model_dir, output_dir, config, log=None if quiet else echo_err)
    for name, variant in report.variants.items():
        invariance = "batch-invariant" if variant["batch_invariant"] else "BATCH-DEPENDENT"
        default = "  (default)" if name == report.default_variant else ""
        echo_err(f"  {name:<13} {variant['file']:<22} {variant['bytes'] / 2**20:8.1f} MiB  {invariance}{default}")
    if quiet:
        for warning in report.warnings:
            echo_err(f"warning: {warning}")
    echo_err(f"wrote {output_dir} ({'verified' if report.verified else 'NOT verified'})")


@cli.command()
@click.argument("onnx_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", "-m", help="PyTorch original [default: source_model in the folder's export_report.json].")
@_gate_options(VerifyConfig, "samples", "exact_samples")
@click.option(
    "--variant",
    "variants",
    multiple=True,
    type=click.Choice(list(VARIANTS)),
    help="Variant to check (repeatable) [default: every one in the folder].",
)
@_option(VerifyConfig, "--provider", type=click.Choice(DEVICES))
@_option(VerifyConfig, "--seed", type=int, help="Seed of the sample.")
@click.option(
    "--invariance-samples",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Reviews scored again one per call: a variant that claims batch invariance fails the gate if a label "
    "flips or a probability moves by more than 1e-5.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the parity JSON here instead of stdout.",
)
@click.option(
    "--record",
    is_flag=True,
    help="Store the result in the folder's export_report.json (verified: passed or not), with the checksums of "
    "the files it judged.",
)
@click.option(
    "--retime",
    is_flag=True,
    help="Instead of the gate: time the variants that passed the recorded gate on this CPU and store the new "
    "default_variant (after moving the folder to another CPU).",
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
    retime: bool,
    quiet: bool,
    **options,
) -> None:
    """Run the parity gate alone: PyTorch vs each ONNX variant (and its batch invariance); exit 1 if it fails.

    \b
    Example:
      imdb-deploy verify runs/distilbert-imdb-onnx --data data/imdb --verify-samples 2000
    """
    from imdb_deploy.verify import check_parity, record_parity

    if output is not None:  # --record is the way to store the result in the folder
        refuse_overlap(output, {"the ONNX folder": onnx_dir, "the --model folder": model}, "--output")

    config = VerifyConfig(threshold_overrides=thresholds, variants=variants or None, **options)
    if retime:
        from imdb_deploy.export import retime as run_retime

        choice = run_retime(onnx_dir, config, log=None if quiet else echo_err)
        emit_json(choice, output)
        echo_err(f"default variant: {choice['winner']} ({choice['reason']}); recorded in {onnx_dir}")
        return
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
@_option(PredictFileConfig, "--format", "output_format", type=click.Choice(OUTPUT_FORMATS))
@_option(
    PredictFileConfig,
    "--input-format",
    type=click.Choice(INPUT_FORMATS),
    help="auto: per file by suffix (.parquet, .jsonl, .csv, .txt, also .gz), else JSONL if the first line starts "
    "with '{', else text.",
)
@_option(PredictFileConfig, "--text-field", help="JSONL field, CSV or Parquet column with the review.")
@click.option(
    "--id-field",
    help="Field or column copied to the output as id [default: 'id' where rows have it, else FILE:LINE; "
    "the line number for stdin].",
)
@_option(
    PredictFileConfig,
    "--on-error",
    type=click.Choice(ON_ERROR),
    help="fail: stop at the first bad row (exit 1, no output); skip: set bad rows aside and score the rest.",
)
@_option(
    PredictFileConfig,
    "--delimiter",
    help="CSV field separator: auto sniffs the header line among , ; tab and |; or tab, or one character.",
)
@_option(
    PredictFileConfig,
    "--on-duplicate-id",
    type=click.Choice(ON_DUPLICATE_ID),
    help="warn: count repeated and null ids in the summary; fail: refuse the run (exit 1, no output).",
)
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="local, with --on-error skip: write bad rows (file, line, id, reason, fix) here as JSONL "
    "[default: list them on stderr]. ray: they go to OUTPUT/_errors/.",
)
@_option(
    Predictor,
    "--variant",
    type=click.Choice(["auto", *VARIANTS]),
    help="Variant to run; auto takes the folder's measured default_variant on CPU (else int8: dynamic INT8, one "
    "review per call: batch-invariant), fp16/optimized/fp32 on CUDA. openvino-* run on OpenVINO. int8-batched "
    "is BATCH-DEPENDENT (a review's score depends on the reviews batched with it) and faster on short reviews.",
)
@_option(Predictor, "--provider", type=click.Choice(DEVICES))
@click.option("--threads", type=click.IntRange(min=1), help="onnxruntime intra-op threads [default: physical cores].")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Most reviews per onnxruntime call for batched variants [default: 64].",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    help="Most padded tokens per onnxruntime call for batched variants [default: 1024].",
)
@_option(PredictFileConfig, "--chunk-size", type=click.IntRange(min=1), help="Rows sorted together.")
@click.option(
    "--io-binding/--no-io-binding",
    default=None,
    help="Bind inputs and logits on the provider's device [default: on for cuda, off for cpu].",
)
@click.option(
    "--engine",
    default=ENGINES[0],
    show_default=True,
    type=click.Choice(ENGINES),
    help="local: one process, streaming, output in input order; ray: a Ray Data job (local Ray or a cluster).",
)
@click.option(
    "--address", help="ray: cluster to join (auto, ray://host:10001) [default: RAY_ADDRESS, else a local Ray]."
)
@click.option("--actors", help="ray: N actors, or MIN,MAX to autoscale [default: cluster CPUs / --cpus-per-actor].")
@_option(RayPredictConfig, "--cpus-per-actor", type=click.IntRange(min=1), help="ray: CPUs (threads) per actor.")
@_option(
    RayPredictConfig,
    "--ship-model/--shared-model",
    help="ray: send the model's files to the workers through Ray, or load MODEL from the same path on each worker.",
)
@click.option("--overwrite", is_flag=True, help="ray: replace an existing output folder once the new one is complete.")
@_flag(
    Predictor,
    "--allow-unverified",
    help="Run model files that differ from the checksums export_report.json recorded (or a folder whose report "
    "cannot be read); the summary says UNVERIFIED. Off: such a folder is refused.",
)
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
    allow_unverified: bool,
    quiet: bool,
    **options,
) -> None:
    """Score reviews (JSONL, CSV, text or Parquet files, folders, globs, URLs; '-' for stdin) with an ONNX model.

    \b
    Example:
      imdb-deploy predict reviews.jsonl --model runs/distilbert-imdb-onnx --output predictions.jsonl
    """
    if errors_path is not None and options["on_error"] != "skip":
        raise click.UsageError("--errors needs --on-error skip (with --on-error fail the first bad row stops the run)")
    if engine == "ray":
        not_for_ray = {
            "--errors": (errors_path, "bad rows go to OUTPUT/_errors/"),
            "--threads": (threads, "use --cpus-per-actor"),
            "--io-binding": (io_binding, "actors run on the CPU"),
            "--format": (None if options.pop("output_format") == "jsonl" else True, "it writes Parquet"),
            "--provider": (None if provider == "cpu" else provider, "actors run on the CPU"),
        }
        ray_options = dict(address=address, actors=actors, cpus_per_actor=cpus_per_actor, ship_model=ship_model)
        ray_options |= dict(variant=variant, batch_size=batch_size, max_tokens=max_tokens, overwrite=overwrite)
        _predict_ray(
            inputs,
            model_dir,
            output,
            not_for_ray,
            allow_unverified=allow_unverified,
            quiet=quiet,
            **options,
            **ray_options,
        )
        return
    for name, value in (("--address", address), ("--actors", actors), ("--overwrite", overwrite or None)):
        if value is not None:
            raise click.UsageError(f"{name} applies to --engine ray")
    from imdb_deploy.predict import predict_file

    config = PredictFileConfig(progress=False if quiet else None, **options)
    sizes = {k: v for k, v in (("batch_size", batch_size), ("max_tokens", max_tokens)) if v is not None}
    predictor = Predictor(
        model_dir,
        variant=variant,
        provider=provider,
        threads=threads,
        io_binding=io_binding,
        allow_unverified=allow_unverified,
        **sizes,
    )
    output_path = output if output is None or "://" in output else Path(output)  # URLs stay strings
    summary = predict_file(predictor, list(inputs), output=output_path, errors=errors_path, config=config)
    where = f"; errors in {errors_path}" if errors_path is not None and summary.errors else ""
    echo_err(f"{summary.describe()}{where}")
    if output is not None:
        echo_err(f"wrote {output}")


def _predict_ray(inputs, model_dir, output, not_for_ray: dict, quiet: bool, **options) -> None:
    """`predict --engine ray`: refuse the local engine's options, run predict_ray.predict_ray (its config checks
    its own options, for Python callers too), print."""
    from imdb_deploy.predict_ray import predict_ray

    if output is None:
        raise click.UsageError("--engine ray needs --output FOLDER (Parquet shards are written there)")
    for name, (value, instead) in not_for_ray.items():
        if value is not None:
            raise click.UsageError(f"{name} does not apply to --engine ray ({instead})")
    summary = predict_ray(
        model_dir, list(inputs), output, RayPredictConfig(progress=False if quiet else None, **options)
    )
    echo_err(summary.describe())
    echo_err(f"wrote {output}")


# --- serve ------------------------------------------------------------------------------------------------


@cli.command()
@click.argument("onnx_dir", type=click.Path(file_okay=False, path_type=Path))
@_option(ServeConfig, "--host", help="Address to listen on (0.0.0.0: every one).")
@_option(ServeConfig, "--port", type=click.IntRange(0, 65535))
@_option(
    ServeConfig,
    "--variant",
    type=click.Choice(["auto", *VARIANTS]),
    help="Variant to serve; auto takes the folder's measured default_variant on the CPU (else int8).",
)
@click.option("--threads", type=click.IntRange(min=1), help="onnxruntime intra-op threads [default: physical cores].")
@_option(
    ServeConfig,
    "--max-batch-tokens",
    type=click.IntRange(min=1),
    help="Most padded tokens (reviews x longest) the batcher gathers across requests into one batch.",
)
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=1),
    help="Most reviews in one batch [default: no cap but the tokens]; 1 turns batching off.",
)
@_option(
    ServeConfig,
    "--max-wait-ms",
    type=click.FloatRange(min=0),
    help="Longest a batch waits for reviews still being tokenized (never when no one else is in flight).",
)
@_option(
    ServeConfig,
    "--max-concurrent-requests",
    type=click.IntRange(min=1),
    help="Most reviews in flight; past it 429 with Retry-After.",
)
@_option(
    ServeConfig,
    "--max-concurrent-bytes",
    type=click.IntRange(min=1),
    help="Most request-body bytes buffered or in flight; past it 429 before the body is read.",
)
@_option(ServeConfig, "--max-client-batch-size", type=click.IntRange(min=1), help="Most texts per request.")
@_option(
    ServeConfig,
    "--payload-limit",
    "--max-body-bytes",
    "max_body_bytes",
    type=click.IntRange(min=1),
    help="Largest request body in bytes (text-embeddings-inference's --payload-limit).",
)
@_option(
    ServeConfig,
    "--auto-truncate/--no-auto-truncate",
    help="Cut reviews past max_length as in training when a request does not say truncate; off: 422.",
)
@click.option(
    "--api-key",
    envvar="IMDB_DEPLOY_API_KEY",
    help="Require Authorization: Bearer KEY on every route but /health [env: IMDB_DEPLOY_API_KEY].",
)
@_flag(ServeConfig, "--health-needs-key", help="/health needs the API key too.")
@click.option(
    "--allow-host",
    "allowed_hosts",
    multiple=True,
    default=_default(ServeConfig, "allowed_hosts"),
    help="A Host header name to answer besides the bind address and localhost (repeat; * for any).",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    default=_default(ServeConfig, "cors_origins"),
    help="A browser origin allowed to call the API (repeat).",
)
@_flag(ServeConfig, "--info-details", help="/info shows the model folder's absolute path and package versions.")
@_option(
    ServeConfig,
    "--body-timeout",
    "body_timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a request's head and body may take to arrive; then 408 and the connection is dropped.",
)
@_option(ServeConfig, "--keep-alive", "keep_alive_s", type=click.IntRange(min=1), help="Idle keep-alive seconds.")
@_option(
    ServeConfig,
    "--max-connections",
    type=click.IntRange(min=1),
    help="Most open connections and requests (uvicorn's limit_concurrency); past it 503.",
)
@_option(ServeConfig, "--access-log/--no-access-log", help="One log line per request.")
@_flag(
    ServeConfig,
    "--allow-unverified",
    help="Serve model files that differ from the checksums export_report.json recorded (or a folder whose report "
    "cannot be read); /info says verified: false and why. Off: such a folder is refused at start-up.",
)
@user_errors
def serve(onnx_dir: Path, **options) -> None:
    """Serve an exported model over HTTP as text-embeddings-inference does: POST /predict, /health, /metrics.

    \b
    Example:
      imdb-deploy serve runs/minilm-2k-onnx --port 8000
      curl -H 'Content-Type: application/json' -d '{"inputs": "A wonderful film."}' 127.0.0.1:8000/predict
    """
    from imdb_deploy.serve import serve as run_server

    for name in ("allowed_hosts", "cors_origins"):
        options[name] = tuple(options[name])
    run_server(onnx_dir, ServeConfig(**options))


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
@_option(BenchConfig, "--data", help="Labelled reviews (see train --help).")
@_option(BenchConfig, "--split")
@_option(BenchConfig, "--samples", type=str, callback=_sample_count, help="Seeded sample size, or all.")
@_option(BenchConfig, "--seed", type=int)
@_option(BenchConfig, "--batch-size", type=click.IntRange(min=1), help="For input-order rows.")
@click.option("--max-length", type=click.IntRange(8, 512), help="Tokens per review for an architecture [default: 512].")
@click.option(
    "--rows",
    help=f"Comma-separated rows [default: all this machine runs]: {', '.join(ROW_NAMES)}.",
)
@_option(BenchConfig, "--repeats", type=click.IntRange(min=1), help="Timed passes per row.")
@_option(BenchConfig, "--warmup", type=click.IntRange(min=0), help="Untimed calls first.")
@_option(BenchConfig, "--latency-samples", type=click.IntRange(min=0), help="Batch-1 calls per length.")
@click.option("--threads", type=click.IntRange(min=1), help="Intra-op threads [default: physical cores].")
@click.option("--cpu-ghz", type=float, help="Clock for the INT8 peak [default: read from the OS].")
@_option(
    BenchConfig,
    "--calibration-samples",
    type=click.IntRange(min=1),
    help="Training reviews that calibrate the openvino-int8 row's static INT8 scales.",
)
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

    \b
    Examples:
      imdb-deploy bench --model runs/distilbert-imdb --data data/imdb --samples 256
      imdb-deploy bench --model distilbert-base --tokenizer models/bert-base-uncased --data data/imdb --max-length 512
    """
    from imdb_deploy.bench import run_bench
    from imdb_deploy.bench_report import format_table

    refuse_overlap(output, {"the --model folder": model, "the --onnx folder": onnx_dir}, "--output")

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
@_option(
    DemoConfig,
    "--data",
    help="Labelled reviews: imdb-sample (shipped, no download), imdb (the full Hub dataset), or a local source.",
)
@_option(
    DemoConfig,
    "--output",
    "-o",
    "output_dir",
    type=click.Path(file_okay=False),
    help="Folder for every artifact; a previous demo there is replaced.",
)
@_option(
    DemoConfig, "--max-train-samples", type=str, callback=_sample_count, help="Stratified training sample, or 'all'."
)
@_option(
    DemoConfig,
    "--test-samples",
    type=str,
    callback=_sample_count,
    help="Stratified test sample scored by predict (INT8): the headline accuracy; or 'all'.",
)
@_option(DemoConfig, "--max-length", type=int, help="Tokens per review.")
@_option(DemoConfig, "--epochs", type=int)
@_option(DemoConfig, "--lr", type=float, help="Peak learning rate (tuned for short runs).")
@_option(DemoConfig, "--batch-size", type=int)
@_option(
    DemoConfig, "--verify-samples", type=int, help="Reviews the parity gate (and train's PyTorch test score) uses."
)
@_option(DemoConfig, "--bench-samples", type=int, help="Reviews the benchmark times.")
@_option(DemoConfig, "--seed", type=int)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or lines (the final report stays).")
@user_errors
def demo(quiet: bool, **options) -> None:
    """Run the whole pipeline (train, export INT8, verify, predict, bench) on real IMDb reviews.

    \b
    Example:
      imdb-deploy demo --output runs/demo
    """
    from imdb_deploy.demo import run_demo, summary

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

    \b
    Example:
      imdb-deploy convert-bert   # prints the folder of the converted all-MiniLM-L6-v2
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
