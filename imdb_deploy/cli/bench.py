"""`imdb-deploy bench`: every runtime side by side."""

from __future__ import annotations

from pathlib import Path

import click

from imdb_deploy.bench.config import ROW_NAMES, BenchConfig
from imdb_deploy.cli.options import (
    config_flag,
    config_option,
    echo_err,
    sample_count,
    user_errors,
)


@click.command()
@click.option(
    "--model",
    "-m",
    "models",
    required=True,
    multiple=True,
    help="Trained folder, exported ONNX folder, or an architecture to time with random weights "
    "(distilbert-base = DistilBertConfig(); distilbert-base:n_layers=2,... changes fields). Repeat it to bench "
    "several models on the same reviews: one frontier table and chart (accuracy against reviews/s).",
)
@click.option("--tokenizer", help="Tokenizer for an architecture [default: distilbert-base-uncased from the Hub].")
@click.option(
    "--onnx",
    "onnx_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="An existing export of --model to time [default: export into OUTPUT/onnx].",
)
@config_option(BenchConfig, "--data", help="Labelled reviews (see train --help).")
@config_option(BenchConfig, "--split")
@config_option(BenchConfig, "--samples", type=str, callback=sample_count, help="Seeded sample size, or all.")
@config_option(BenchConfig, "--seed", type=int)
@config_option(BenchConfig, "--batch-size", type=click.IntRange(min=1), help="For input-order rows.")
@click.option("--max-length", type=click.IntRange(8, 512), help="Tokens per review for an architecture [default: 512].")
@click.option(
    "--rows",
    help=f"Comma-separated rows [default: all this machine runs]: {', '.join(ROW_NAMES)}.",
)
@config_option(BenchConfig, "--repeats", type=click.IntRange(min=1), help="Timed passes per row.")
@config_option(BenchConfig, "--warmup", type=click.IntRange(min=0), help="Untimed calls first.")
@config_option(BenchConfig, "--latency-samples", type=click.IntRange(min=0), help="Batch-1 calls per length.")
@click.option("--threads", type=click.IntRange(min=1), help="Intra-op threads [default: physical cores].")
@click.option("--cpu-ghz", type=float, help="Clock for the INT8 peak [default: read from the OS].")
@config_option(
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
    type=click.Path(path_type=Path),
    help="Folder for bench.json, bench.png (and the export).",
)
@config_option(
    BenchConfig,
    "--classical/--no-classical",
    help="Fit and time TF-IDF + logistic regression on the training split of --data beside the rows.",
)
@config_flag(BenchConfig, "--overwrite", "Replace an existing --output folder (once the new one is complete).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines (the table stays).")
@user_errors
def bench(
    models: tuple[str, ...], rows: str | None, output: Path, onnx_dir: Path | None, quiet: bool, **options
) -> None:
    """Time PyTorch and every ONNX variant on the same reviews; table on stderr, bench.json and bench.png.

    \b
    Examples:
      imdb-deploy bench --model runs/distilbert-imdb --data data/imdb --samples 256
      imdb-deploy bench -m runs/full-minilm-onnx -m runs/student-onnx --data data/imdb --samples 2000 -o runs/frontier
      imdb-deploy bench --model distilbert-base --tokenizer models/bert-base-uncased --data data/imdb --max-length 512
    """
    from imdb_deploy.bench.frontier import format_frontier
    from imdb_deploy.bench.report import format_table
    from imdb_deploy.bench.run import run_bench

    config = BenchConfig(
        rows=tuple(name.strip() for name in rows.split(",") if name.strip()) if rows else None,
        output_dir=str(output),
        onnx_dir=str(onnx_dir) if onnx_dir else None,
        **options,
    )
    report = run_bench(list(models), config, log=None if quiet else echo_err)
    echo_err(format_frontier(report) if len(models) > 1 else format_table(report))
    echo_err(f"wrote {report['files']['json']} and {report['files']['chart']}")
