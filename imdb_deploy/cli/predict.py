"""`imdb-deploy predict`: the local engine or a Ray Data job."""

from __future__ import annotations

from pathlib import Path

import click

from imdb_deploy.cli.options import (
    config_option,
    echo_err,
    user_errors,
)
from imdb_deploy.engines.config import ENGINES, PredictFileConfig, RayPredictConfig
from imdb_deploy.rows.config import INPUT_FORMATS, ON_DUPLICATE_ID, ON_ERROR, OUTPUT_FORMATS
from imdb_deploy.runtimes.config import DEFAULT_PROVIDER, DEFAULT_VARIANT, PROVIDERS, VARIANTS


@click.command()
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
@config_option(PredictFileConfig, "--format", "output_format", type=click.Choice(OUTPUT_FORMATS))
@config_option(
    PredictFileConfig,
    "--input-format",
    type=click.Choice(INPUT_FORMATS),
    help="auto: per file by suffix (.parquet, .jsonl, .csv, .txt, also .gz), else JSONL if the first line starts "
    "with '{', else text.",
)
@config_option(PredictFileConfig, "--text-field", help="JSONL field, CSV or Parquet column with the review.")
@click.option(
    "--id-field",
    help="Field or column copied to the output as id [default: 'id' where rows have it, else FILE:LINE; "
    "the line number for stdin].",
)
@config_option(
    PredictFileConfig,
    "--on-error",
    type=click.Choice(ON_ERROR),
    help="fail: stop at the first bad row (exit 1, no output); skip: set bad rows aside and score the rest.",
)
@config_option(
    PredictFileConfig,
    "--delimiter",
    help="CSV field separator: auto sniffs the header line among , ; tab and |; or tab, or one character.",
)
@config_option(
    PredictFileConfig,
    "--on-duplicate-id",
    type=click.Choice(ON_DUPLICATE_ID),
    help="warn: count repeated and null ids in the summary; fail: refuse the run (exit 1, no output).",
)
@click.option(
    "--errors",
    "errors_path",
    help="local, with --on-error skip: write bad rows (file, line, id, reason, fix) here as JSONL "
    "[default: list them on stderr]. ray: they go to OUTPUT/_errors/.",
)
@click.option(
    "--variant",
    default=DEFAULT_VARIANT,
    show_default=True,
    type=click.Choice(["auto", *VARIANTS]),
    help="Variant to run; auto takes the folder's measured default_variant on CPU (else int8: dynamic INT8, one "
    "review per call: batch-invariant), fp16/optimized/fp32 on CUDA. openvino-* run on OpenVINO. int8-batched "
    "is BATCH-DEPENDENT (a review's score depends on the reviews batched with it) and faster on short reviews.",
)
@click.option("--provider", default=DEFAULT_PROVIDER, show_default=True, type=click.Choice(PROVIDERS))
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
@config_option(PredictFileConfig, "--chunk-size", type=click.IntRange(min=1), help="Rows sorted together.")
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
@config_option(RayPredictConfig, "--cpus-per-actor", type=click.IntRange(min=1), help="ray: CPUs (threads) per actor.")
@config_option(
    RayPredictConfig,
    "--ship-model/--shared-model",
    help="ray: send the model's files to the workers through Ray, or load MODEL from the same path on each worker.",
)
@click.option("--overwrite", is_flag=True, help="ray: replace an existing output folder once the new one is complete.")
@click.option(
    "--allow-unverified",
    is_flag=True,
    help="Run model files that differ from the checksums export_report.json recorded (or a folder whose report "
    "cannot be read); the summary says UNVERIFIED. Off: such a folder is refused.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (the one-line summary stays).")
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="ray: Ray's own logs and tracebacks on stderr too (without it a failed job is our one line; Ray's log "
    "files keep them either way).",
)
@user_errors
def predict(
    inputs: tuple[str, ...],
    model_dir: Path,
    output: str | None,
    errors_path: str | None,
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
    verbose: bool,
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
        ray_options |= dict(verbose=verbose)
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
    for name, value in (
        ("--address", address),
        ("--actors", actors),
        ("--overwrite", overwrite or None),
        ("--verbose", verbose or None),
    ):
        if value is not None:
            raise click.UsageError(f"{name} applies to --engine ray")
    from imdb_deploy.engines.local import predict_file
    from imdb_deploy.runtimes.predictor import Predictor

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
    from imdb_deploy.engines.ray import predict_ray

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
