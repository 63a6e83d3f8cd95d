"""`imdb-deploy export` and `imdb-deploy verify`: the ONNX folder and its parity gate."""

from __future__ import annotations

from pathlib import Path

import click

from imdb_deploy.cli.options import (
    config_flag,
    config_option,
    echo_err,
    emit_json,
    gate_options,
    json_output,
    user_errors,
)
from imdb_deploy.export.config import (
    DEVICES,
    EXPORTERS,
    OPENVINO_MODES,
    OPTIMIZATION_LEVELS,
    QUANTIZATION_TARGETS,
    QUANTIZE_SOURCES,
    ExportConfig,
    VerifyConfig,
)
from imdb_deploy.runtimes.config import VARIANTS


@click.command()
@click.argument("model_dir")
@click.option(
    "--output",
    "-o",
    "output_dir",
    type=click.Path(path_type=Path),
    help="ONNX folder to write, complete or not at all [default: MODEL_DIR-onnx].",
)
@config_flag(ExportConfig, "--quantize", "Also write a dynamic INT8 model (CPU only).")
@config_option(
    ExportConfig,
    "--optimize",
    type=click.Choice(OPTIMIZATION_LEVELS),
    help="Graph fusion level: O2 fuses attention/GELU/LayerNorm (CPU default); O3 adds approximate GELU; "
    "O4 is fp16 for --device cuda.",
)
@config_option(
    ExportConfig,
    "--exporter",
    type=click.Choice(EXPORTERS),
    help="What writes the fp32 graph: auto takes optimum where it imports (transformers < 4.58), torch's otherwise.",
)
@click.option("--opset", type=click.IntRange(11, 23), help="ONNX opset [default: the exporter's, 18 for torch's].")
@config_option(ExportConfig, "--device", type=click.Choice(DEVICES))
@config_option(
    ExportConfig,
    "--quantize-target",
    type=click.Choice(["auto", *QUANTIZATION_TARGETS]),
    help="CPU whose INT8 settings to use; auto detects this one.",
)
@config_option(ExportConfig, "--per-channel/--per-tensor", help="INT8 weight scales per column or per tensor.")
@config_flag(ExportConfig, "--reduce-range", "7-bit INT8 weights (for AVX512 CPUs without VNNI).")
@config_option(
    ExportConfig,
    "--cls-only-last-layer/--full-last-layer",
    help="Export the last layer for the [CLS] position only (same logits, ~14% less compute).",
)
@config_option(
    ExportConfig,
    "--quantize-from",
    type=click.Choice(QUANTIZE_SOURCES),
    help="Quantize the fused graph (faster) or the plain one.",
)
@config_option(
    ExportConfig,
    "--openvino",
    type=click.Choice(OPENVINO_MODES),
    help="Write the OpenVINO variants (openvino-int8, openvino-fp32): auto with --quantize where the openvino "
    "extra is installed and the gate runs.",
)
@config_option(
    ExportConfig,
    "--calibration-data",
    help="Data whose TRAINING split calibrates openvino-int8 (ids recorded) [default: --data].",
)
@config_option(
    ExportConfig, "--calibration-samples", type=click.IntRange(min=2), help="Training reviews to calibrate on."
)
@config_option(
    ExportConfig,
    "--timing-samples",
    type=click.IntRange(min=2),
    help="Reviews each gated variant is timed on to choose the default variant on this CPU.",
)
@gate_options(ExportConfig, "verify_samples", "verify_exact_samples")
@click.option("--no-verify", is_flag=True, help="Skip the parity gate; the folder is marked unverified.")
@config_flag(ExportConfig, "--overwrite", "Replace an existing output folder once the new one passed.")
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
    from imdb_deploy.export.stage import export as run_export

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


@click.command()
@click.argument("onnx_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", "-m", help="PyTorch original [default: source_model in the folder's export_report.json].")
@gate_options(VerifyConfig, "samples", "exact_samples")
@click.option(
    "--variant",
    "variants",
    multiple=True,
    type=click.Choice(list(VARIANTS)),
    help="Variant to check (repeatable) [default: every one in the folder].",
)
@config_option(VerifyConfig, "--provider", type=click.Choice(DEVICES))
@config_option(VerifyConfig, "--seed", type=int, help="Seed of the sample.")
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
    type=click.Path(path_type=Path),
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
    from imdb_deploy.export.gate import check_parity, record_parity, verify_inputs
    from imdb_deploy.export.stage import retime as run_retime

    config = VerifyConfig(threshold_overrides=thresholds, variants=variants or None, **options)
    # --record is the way to store the result in the folder: -o must be none of what the gate reads
    declared = json_output(output, verify_inputs(onnx_dir, model, config))
    if retime:
        choice = run_retime(onnx_dir, config, log=None if quiet else echo_err)
        emit_json(choice, declared)
        echo_err(f"default variant: {choice['winner']} ({choice['reason']}); recorded in {onnx_dir}")
        return
    report = check_parity(onnx_dir, model=model, config=config, log=None if quiet else echo_err)
    if not quiet:
        echo_err(report.summary())
    emit_json(report.to_dict(), declared)
    if record:
        echo_err(f"recorded the result in {record_parity(onnx_dir, report)}")
    report.raise_for_failure()
