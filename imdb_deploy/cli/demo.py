"""`imdb-deploy demo` and `imdb-deploy convert-bert`."""

from __future__ import annotations

from pathlib import Path

import click

from imdb_deploy.cli.options import (
    config_flag,
    config_option,
    echo_err,
    sample_count,
    user_errors,
)
from imdb_deploy.demo.config import DemoConfig


@click.command()
@click.option(
    "--model",
    help="Base encoder: Hub id, local folder, or 'minilm' (the offline model) "
    "[default: distilbert-base-uncased with Hub access, else minilm].",
)
@config_option(
    DemoConfig,
    "--data",
    help="Labelled reviews: imdb-sample (shipped, no download), imdb (the full Hub dataset), or a local source.",
)
@config_option(
    DemoConfig,
    "--output",
    "-o",
    "output_dir",
    type=click.Path(),
    help="Folder for every artifact; a previous demo there is replaced.",
)
@config_option(
    DemoConfig, "--max-train-samples", type=str, callback=sample_count, help="Stratified training sample, or 'all'."
)
@config_option(
    DemoConfig,
    "--test-samples",
    type=str,
    callback=sample_count,
    help="Stratified test sample scored by predict (INT8): the headline accuracy; or 'all'.",
)
@config_option(DemoConfig, "--max-length", type=int, help="Tokens per review.")
@config_option(DemoConfig, "--epochs", type=int)
@config_option(DemoConfig, "--lr", type=float, help="Peak learning rate (tuned for short runs).")
@config_option(DemoConfig, "--batch-size", type=int)
@config_option(
    DemoConfig, "--verify-samples", type=int, help="Reviews the parity gate (and train's PyTorch test score) uses."
)
@config_option(DemoConfig, "--bench-samples", type=int, help="Reviews the benchmark times.")
@config_option(DemoConfig, "--seed", type=int)
@config_flag(DemoConfig, "--overwrite", "Replace an existing --output folder that is not a previous demo's.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or lines (the final report stays).")
@user_errors
def demo(quiet: bool, **options) -> None:
    """Run the whole pipeline (train, export INT8, verify, predict, bench) on real IMDb reviews.

    \b
    Example:
      imdb-deploy demo --output runs/demo
    """
    from imdb_deploy.demo.run import run_demo, summary

    report = run_demo(DemoConfig(**options), log=None if quiet else echo_err, progress=not quiet)
    echo_err(summary(report))
    echo_err(f"wrote {report['artifacts']['report']}")


@click.command("convert-bert")
@click.argument("bert_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    "output_dir",
    type=click.Path(path_type=Path),
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

    from imdb_deploy.folders import CONVERSION_REPORT
    from imdb_deploy.training.convert import convert_bert_to_distilbert, minilm_source_dir, offline_base_model

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
