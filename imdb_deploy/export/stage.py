"""`imdb-deploy export`: a trained model folder becomes a self-describing ONNX folder, parity-checked.

Three steps (imdb_deploy.exporters has the tools and why each):
1. The fp32 graph `model.onnx` with dynamic `batch_size` and `sequence_length` axes, by torch's exporter
   (eager attention, so onnxruntime can fuse it) or optimum's where it imports (`--exporter`, default auto),
   plus config.json and the tokenizer. By default the last transformer layer is exported for the [CLS]
   position only (`exporters.cls_only_last_layer`): the classifier reads nothing else, so the output is the same while
   that layer's query, attention output and feed-forward work shrinks from every token to one (about 14% of a
   6-layer model's multiply-adds).
2. onnxruntime's transformer optimizer fuses attention, GELU and LayerNorm into its contrib ops at optimum's
   levels (`model_optimized.onnx`; the fp16 level O4 writes `model_fp16.onnx` and is for GPUs only).
3. `--quantize`: dynamic INT8 (`model_quantized.onnx`) by onnxruntime's `quantize_dynamic` with optimum's
   per-CPU presets (avx512_vnni, avx512, avx2, arm64; int8 weights on AVX2), from the fused graph by default.
   Dynamic INT8 picks its activation scales per onnxruntime call, so the folder offers the file two ways:
   `int8` (one review per call: batch-invariant, what predict and serve pick) and `int8-batched` (opt-in,
   batch-dependent); the report says which is which.

Then the parity gate (imdb_deploy.verify) runs PyTorch and every variant on real labelled reviews. The
output folder is written under a temporary name and renamed only when everything, the gate included,
has passed: a failed gate leaves no folder (and an existing one untouched). `verify=False` (--no-verify)
writes the folder with `"verified": false` in export_report.json.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from imdb_deploy.errors import DataError, ModelLoadError, OutputError, ParityError
from imdb_deploy.export.card import (
    publishable_export_report,
    publishable_train_config,
    render_model_card,
    unverified_card,
)
from imdb_deploy.export.config import ExportConfig, VerifyConfig
from imdb_deploy.export.exporters import (
    EXPORT_ATTENTION,
    FP32_FILE,
    cls_only_last_layer,
    describe_exporter,
    export_fp32,
    fuse,
    operator_counts,
    quantization_settings,
    quantize,
    resolve_exporter,
)
from imdb_deploy.export.gate import check_parity
from imdb_deploy.export.portable import default_dtype, portable_tokenizer_config, prepend_truncation
from imdb_deploy.fileio import out_of_space, sha256_file, write_json_atomic
from imdb_deploy.folders import (
    EXPORT_REPORT,
    TRAIN_CONFIG,
    TRAIN_CONFIG_FIELDS,
    hub_reference,
    is_local_reference,
    load_export_report,
    load_settings,
    load_train_config,
    model_weights,
    read_json,
    refuse_custom_code,
    write_train_config,
)
from imdb_deploy.machine import cpu_flags, versions
from imdb_deploy.outputs import Output
from imdb_deploy.rows.labelled import load_split, source_paths, stratified_sample
from imdb_deploy.runtimes.choice import DEFAULT_TIMING_SAMPLES, measure
from imdb_deploy.runtimes.config import (
    OPENVINO_BATCHING,
    OPENVINO_VARIANTS,
    VARIANT_BATCHING,
    unavailable_reason,
)
from imdb_deploy.runtimes.folder import file_checksums, load_tokenizer, load_torch_classifier, resolve_onnx_variant
from imdb_deploy.runtimes.onnx import onnx_path, onnx_variants
from imdb_deploy.runtimes.openvino import write_variants as write_openvino_variants
from imdb_deploy.runtimes.predictor import Predictor
from imdb_deploy.tokenization import TokenizationSettings


@dataclass
class ExportReport:
    """What `export` wrote and how; saved as export_report.json in the output folder.

    Attributes:
        output: the output folder.
        source_model: the Hub id it came from, or the name of its model folder (no path of this machine: the folder
            is made to publish); `verify` reloads PyTorch from it (runtimes.folder.source_model).
        source_sha256: the sha256 of that folder's weights, by which verify recognises it beside the export; None
            for a Hub id.
        verified: True only when the parity gate ran and passed.
        variants: per ONNX variant, its file, size in bytes, and batching (artifacts.VariantBatching:
            one review per call or batched, batch-invariant or not, why).
        default_variant: what predict and serve run on a CPU ("auto"); batch-invariant. After the gate, the
            winner of `runtime_choice` (measured on this CPU), else onnxruntime's default.
        runtime_choice: the timing table, the rule, the CPU's ISA and the winner (runtime_choice.record), or
            None when the gate did not run.
        settings: the ExportConfig, plus the opset actually written and the quantization settings used.
        cpu: the CPU the export ran on and the INT8 target chosen for it.
        exporter: which exporter wrote model.onnx, how, with which versions (exporters.describe_exporter).
        versions: library versions that produced the files.
        parity: the gate's results (verify.ParityReport.to_dict()), or None when it did not run.
        checksums: {file: {"sha256", "bytes"}} of every file written beside this report, hashed last (the
            files the gate judged, as it judged them): predict, serve and the Ray engine refuse a file that no
            longer matches (model_folder.ExportFolder.check_files).
        warnings: things a person should know (e.g. INT8 runs on a slower path on a CPU without VNNI).
        seconds: wall time of each step.
    """

    output: str
    source_model: str
    source_sha256: str | None = None
    verified: bool = False
    variants: dict = field(default_factory=dict)
    default_variant: str | None = None
    runtime_choice: dict | None = None
    settings: dict = field(default_factory=dict)
    cpu: dict = field(default_factory=dict)
    exporter: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    parity: dict | None = None
    checksums: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def detect_quantization_target() -> tuple[str, dict]:
    """The AutoQuantizationConfig target for this CPU, and what it was decided from.

    Returns:
        (target, info): target is one of QUANTIZATION_TARGETS; info holds the machine, the flags that
        mattered, whether it has VNNI-class integer dot products, and a note when the flags could not be read.
    """
    machine = platform.machine().lower()
    flags = cpu_flags()
    info: dict = {"machine": machine}
    if machine in ("arm64", "aarch64"):
        info["int8_dot_product"] = "asimddp" in flags or platform.system() == "Darwin"
        return "arm64", info
    info["flags"] = sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx512vnni", "avx_vnni"})
    info["int8_dot_product"] = bool(flags & {"avx512_vnni", "avx512vnni", "avx_vnni"})
    if flags & {"avx512_vnni", "avx512vnni"}:
        return "avx512_vnni", info
    if "avx512f" in flags:
        return "avx512", info
    if not flags:
        info["note"] = "CPU flags could not be read; assumed AVX2"
    return "avx2", info


def _export_fp32(model_ref: str, folder: Path, config: ExportConfig, exporter: str) -> int:
    """onnx/model.onnx (dynamic batch/sequence axes) by `exporter`, with the training cut of a review in front of
    it (portable.prepend_truncation), plus config.json and the tokenizer files at the root; the tokenizer cuts
    nothing, so every consumer of the folder gives the graph the whole review (portable.portable_tokenizer_config).

    Returns:
        The opset written.
    """
    tokenizer = load_tokenizer(model_ref)
    settings = load_settings(model_ref, tokenizer)
    # The attention form onnxruntime's transformer optimizer fuses into its Attention op (exporters).
    model = load_torch_classifier(model_ref, label_names=settings.label_names, attn_implementation=EXPORT_ATTENTION)
    if config.cls_only_last_layer:
        cls_only_last_layer(model)
    try:
        opset = export_fp32(model, folder, exporter, config.opset, device=config.device)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        # A full disk is not the model's fault: torch.onnx and onnx report it as OSError or RuntimeError.
        if out_of_space(exc, folder):
            raise OutputError(
                f"{folder.parent}: ran out of disk space while writing the ONNX model ({_first_line(exc)}); "
                "free some space or export elsewhere with --output. Nothing was written"
            ) from exc
        raise ModelLoadError(
            f"{model_ref}: the {exporter} exporter could not export it to ONNX ({_first_line(exc)}); "
            "it must be a DistilBERT-style sequence classifier folder, e.g. the output of `imdb-deploy train`"
        ) from exc
    written = folder / FP32_FILE
    onnx_path(folder, "fp32").parent.mkdir(exist_ok=True)
    prepend_truncation(written, onnx_path(folder, "fp32"), settings)
    written.unlink()
    model.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    portable_tokenizer_config(folder)
    return opset


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _optimize(folder: Path, config: ExportConfig, model_config: dict) -> str:
    """Fuse the fp32 graph at config.optimize; returns the variant name written ("optimized" or "fp16")."""
    variant = "fp16" if config.optimize == "O4" else "optimized"
    fuse(
        onnx_path(folder, "fp32"),
        onnx_path(folder, variant),
        config.optimize,
        num_heads=int(model_config.get("n_heads") or model_config.get("num_attention_heads")),
        hidden_size=int(model_config.get("dim") or model_config.get("hidden_size")),
        gpu=config.device == "cuda",
    )
    return variant


@contextmanager
def _full_disk_is_not_the_model(out_dir: Path) -> Iterator[None]:
    """A library error raised while the disk is full (onnx and torch.onnx word it their own way) becomes an
    OutputError about the disk, not a complaint about the model."""
    try:
        yield
    except Exception as exc:  # tokenizers and safetensors raise plain Exceptions ("... (os error 28)")
        if not isinstance(exc, OutputError | ParityError) and out_of_space(exc, out_dir):
            raise OutputError(
                f"{out_dir}: ran out of disk space while exporting ({_first_line(exc)}); free some space or "
                "export elsewhere with --output. Nothing was written"
            ) from exc
        raise


def _wants_openvino(config: ExportConfig) -> bool:
    """Whether this export writes the OpenVINO variants (ExportConfig.openvino).

    Raises:
        ModelLoadError: openvino="on" and the extra is missing.
    """
    if config.openvino == "off" or config.device != "cpu":
        return False
    reason = unavailable_reason()
    if config.openvino == "on":
        if reason:
            raise ModelLoadError(f"--openvino on: {reason}")
        return True
    return config.quantize and config.verify and reason is None


def _calibration(config: ExportConfig, report: ExportReport, log: Callable[[str], None]):
    """The training reviews that calibrate openvino-int8, or None (with a warning) when --openvino auto finds no
    training split: the export then goes on as without the extra.

    Raises:
        DataError: --openvino on, and the training split cannot be read (naming --calibration-data).
    """
    source = config.calibration_data or config.data
    try:
        return calibration_reviews(source, config.calibration_samples)
    except DataError as exc:
        if config.openvino == "on":
            raise DataError(
                f"{exc}; openvino-int8 calibrates on training reviews: name them with --calibration-data"
            ) from exc
        report.warnings.append(
            f"the OpenVINO variants were not written: no training reviews to calibrate openvino-int8 on ({exc}); "
            "name some with --calibration-data"
        )
        log(f"note: {report.warnings[-1]}")
        return None


def _describe_choice(choice: dict) -> str:
    """One line per timed variant and the verdict, for people."""
    lines = [f"default variant: {choice['winner']} ({choice['reason']}; measured on {choice['sample']})"]
    for name, row in choice["timings"].items():
        lines.append(f"  {name:<14} {row['reviews_per_second']:>9} reviews/s")
    return "\n".join(lines)


def export(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: ExportConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> ExportReport:
    """Export a sequence classifier to ONNX (fp32, fused, optionally INT8) and gate it on parity.

    Args:
        model_dir: a model folder written by `imdb-deploy train` (or any local folder or Hub id of a
            DistilBERT sequence classifier).
        out_dir: the output folder; written complete or not at all.
        config: export settings; defaults to ExportConfig().
        log: receives progress lines for people (the CLI passes its stderr printer).

    Returns:
        The report, also written as export_report.json in `out_dir`.

    Raises:
        ConfigError: a bad setting.
        ModelLoadError, HubUnreachableError: the model cannot be read or exported.
        DataError: the gate's data cannot be read.
        ParityError: an ONNX variant disagrees with PyTorch beyond the thresholds; nothing is written.
        OutputError: `out_dir` exists and `config.overwrite` is False; it is, holds or sits inside the model
            folder or the data; it cannot be written (read-only, disk full). Nothing is replaced then.
    """
    config = config or ExportConfig()
    progress = log is not None  # nncf's bars too: none with --quiet
    log = log or (lambda message: None)
    model_ref = str(model_dir)
    local = is_local_reference(model_ref)
    if local and not Path(model_ref).expanduser().is_dir():
        raise ModelLoadError(f"model folder {model_ref!r}: no such folder; train one with `imdb-deploy train`")
    # Declared before any work: the output (replaced at the end with --overwrite, and only the folder that was
    # there at the start) must not be, hold or sit inside the model or any data the export reads.
    output = Output(out_dir, export_inputs(model_ref, config), folder=True, overwrite=config.overwrite)
    refuse_custom_code(model_ref)
    sha256 = sha256_file(model_weights(model_ref)) if local else None
    report = ExportReport(output=output.path.name, source_model=hub_reference(model_ref), source_sha256=sha256)
    report.versions = versions()
    exporter = resolve_exporter(config.exporter)
    quantization = _quantization_for_this_cpu(config, report, log) if config.quantize else None

    with _full_disk_is_not_the_model(output.path), output.writing() as tmp:
        opset = _write_graphs(tmp, model_ref, config, exporter, quantization, report, log, progress)
        _write_settings(tmp, model_ref, local)
        report.exporter = describe_exporter(exporter, opset)
        report.variants = _variant_table(tmp, report.settings["openvino"] or {})
        report.default_variant = resolve_onnx_variant(tmp, "auto", gpu=config.device == "cuda")[0]
        if config.verify:
            _gate_and_choose(tmp, model_ref, output.path, config, report, log)  # raises: no folder is written
        else:
            report.warnings.append("the parity gate was skipped (--no-verify): this export is not verified")
        report = _publishable(tmp, report, model_ref, output.path.name)
        report.checksums = file_checksums(tmp)  # every file of the folder, last: what the gate judged, unchanged
        write_json_atomic(tmp / EXPORT_REPORT, report.to_dict())
    if output.replaces:
        log(f"replaced the folder that was at {output.path} (--overwrite)")
    return report


def _publishable(tmp: Path, report: ExportReport, model_ref: str, name: str) -> ExportReport:
    """Make the folder one to publish as it is: train_config.json and the report name no path of this machine
    (Hub ids and plain names only: card.publishable_*), and README.md is a Hub model card with the gate's results
    (card.render_model_card), or says the export is unverified. Returns the report as it will be written."""
    recorded = read_json(tmp / TRAIN_CONFIG)
    train_config = publishable_train_config(recorded)
    base_model = train_config["base_model_hub_id"]
    write_json_atomic(tmp / TRAIN_CONFIG, train_config)
    published = publishable_export_report(report.to_dict())
    if report.verified:
        card = render_model_card(published, train_config, name, base_model=base_model)
    else:
        card = unverified_card(train_config, name, base_model=base_model)
    (tmp / "README.md").write_text(card)
    return ExportReport(**published)


def export_inputs(model_ref: str, config: ExportConfig) -> dict:
    """What an export reads, as outputs.Inputs: the model folder, the gate's data and the calibration data, in
    every spelling --data takes."""
    inputs: dict = {"the model folder": model_ref if is_local_reference(model_ref) else None}
    if config.verify or config.openvino != "off":
        inputs |= source_paths(config.data, "--data")
    return inputs | source_paths(config.calibration_data, "--calibration-data")


def _write_graphs(tmp: Path, model_ref: str, config, exporter, quantization, report, log, progress) -> int:
    """The fp32 graph, the fused one, INT8 and OpenVINO's IRs into `tmp`; their settings into the report.

    Returns:
        The opset written.
    """
    started = time.perf_counter()
    log(f"exporting {model_ref} to ONNX with the {exporter} exporter (opset {config.opset or 'default'}) ...")
    opset = _export_fp32(model_ref, tmp, config, exporter)
    report.seconds["export"] = round(time.perf_counter() - started, 2)

    fused = None
    if config.optimize != "none":
        started = time.perf_counter()
        log(f"optimizing the graph ({config.optimize}) ...")
        fused = _optimize(tmp, config, read_json(tmp / "config.json"))
        report.seconds["optimize"] = round(time.perf_counter() - started, 2)

    quantization_record = None
    if quantization is not None:
        started = time.perf_counter()
        use_fused = config.quantize_from == "optimized" and fused == "optimized"
        quantize_source = onnx_path(tmp, "optimized" if use_fused else "fp32")
        log(f"quantizing {quantize_source.name} to INT8 ({quantization.target}) ...")
        quantize(quantize_source, onnx_path(tmp, "int8"), quantization)
        default_dtype(tmp, "q8")  # transformers.js runs onnxruntime's default variant unless told otherwise
        report.seconds["quantize"] = round(time.perf_counter() - started, 2)
        quantization_record = {**quantization.to_dict(), "source": quantize_source.name}

    # OpenVINO's variants, written before the gate so that it checks them like every other one.
    openvino_record = None
    calibration = _calibration(config, report, log) if _wants_openvino(config) else None
    if calibration is not None:
        started = time.perf_counter()
        openvino_record = write_openvino_variants(tmp, calibration, log, progress)
        report.seconds["openvino"] = round(time.perf_counter() - started, 2)
    report.settings = {
        **asdict(config),
        "opset_written": opset,
        "quantization": quantization_record,
        "openvino": openvino_record,
    }
    return opset


def _write_settings(tmp: Path, model_ref: str, local: bool) -> None:
    """The folder describes its own tokenization: train_config.json copied, or the settings a model without one
    is read with (head truncation at its limit), so predict tokenizes the same way."""
    recorded = load_train_config(model_ref) if local else {}
    if recorded:
        fields = {key: recorded[key] for key in TRAIN_CONFIG_FIELDS if key in recorded}
        write_train_config(tmp, TokenizationSettings.from_dict(recorded), **{"base_model": model_ref, **fields})
    else:
        write_train_config(tmp, load_settings(model_ref, load_tokenizer(model_ref)), model_ref)


def _quantization_for_this_cpu(config: ExportConfig, report: ExportReport, log: Callable[[str], None]):
    """The INT8 settings for the target CPU (this one for "auto"); the CPU's facts and notes go in the report."""
    detected, info = detect_quantization_target()
    target = detected if config.quantize_target == "auto" else config.quantize_target
    report.cpu = {**info, "detected_target": detected, "quantize_target": target}
    if not info.get("int8_dot_product"):
        # A note, not an alarm: INT8 usually still beats fp32 without VNNI (bench measures both), but VNNI
        # doubles the int8 multiply-add rate.
        report.warnings.append(
            "this CPU has no VNNI-class int8 dot-product instructions (AVX512-VNNI / AVX-VNNI / ARM dotprod), "
            "so INT8 runs on the slower multiply-and-widen path (half VNNI's rate); it usually still beats fp32 "
            "and shrinks the model about 4x: `imdb-deploy bench` measures both on this machine"
        )
        log(f"note: {report.warnings[-1]}")
    if info.get("note"):
        report.warnings.append(info["note"])
    return quantization_settings(target, config.per_channel, config.reduce_range)


def _variant_table(folder: Path, openvino_record: dict) -> dict[str, dict]:
    """export_report.json's `variants`: each file written, its size, fused operators and batching."""
    variants = {
        name: {
            "file": path.relative_to(folder).as_posix(),
            "bytes": path.stat().st_size,
            "operators": operator_counts(path),
            **VARIANT_BATCHING[name].to_dict(),
        }
        for name, path in onnx_variants(folder).items()
    }
    for name in openvino_record:
        path = folder / OPENVINO_VARIANTS[name]
        variants[name] = {
            "file": path.name,
            "bytes": path.stat().st_size + path.with_suffix(".bin").stat().st_size,
            "runtime": "openvino",
            **OPENVINO_BATCHING[name].to_dict(),
        }
    return variants


def _gate_and_choose(tmp: Path, model_ref: str, out_dir: Path, config: ExportConfig, report: ExportReport, log):
    """The parity gate on the folder being written (raises ParityError on a failure: inside atomic_dir, no
    folder is written), then, on the CPU, the measured choice of the default variant."""

    started = time.perf_counter()
    verify_config = VerifyConfig(
        data=config.data,
        split=config.split,
        samples=config.verify_samples,
        exact_samples=config.verify_exact_samples,
        threshold_overrides=config.threshold_overrides,
        optimize_level=config.optimize,
        provider=config.device,  # check the graphs where they will run (fp16 on the GPU)
    )
    parity = check_parity(tmp, model=model_ref, config=verify_config, log=log)
    report.seconds["verify"] = round(time.perf_counter() - started, 2)
    report.parity = {**parity.to_dict(), "onnx_dir": str(out_dir)}
    log(parity.summary())
    parity.raise_for_failure()
    report.verified = True
    if config.device == "cpu":
        started = time.perf_counter()
        report.runtime_choice = choose_default(
            tmp, report.parity, config.data, config.split, config.timing_samples, log
        )
        report.default_variant = report.runtime_choice["winner"]
        report.seconds["timing"] = round(time.perf_counter() - started, 2)
        log(_describe_choice(report.runtime_choice))


def choose_default(
    onnx_dir: str | os.PathLike,
    parity: dict,
    data: str,
    split: str,
    timing_samples: int = DEFAULT_TIMING_SAMPLES,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Time the variants that passed the gate on a few of the gate's reviews and choose the default.

    Args:
        onnx_dir: the exported folder.
        parity: the gate's results (ParityReport.to_dict()).
        data, split: where the gate's reviews came from; `timing_samples` of them are timed (seed 42).
        timing_samples: reviews per timed pass (ExportConfig.timing_samples).
        log: receives progress lines for people.

    Returns:
        The `runtime_choice` record (runtime_choice.record); its "winner" is the default_variant.
    """
    baseline, _ = resolve_onnx_variant(onnx_dir, "auto")
    reviews = stratified_sample(load_split(data, split), timing_samples, 42)
    predictors: dict[str, Predictor] = {}

    def open_predictor(name: str) -> Predictor:
        if name not in predictors:
            predictors[name] = Predictor(onnx_dir, variant=name)
        return predictors[name]

    encoded = open_predictor(baseline).encode(reviews.texts)
    sample = f"{len(reviews)} reviews of {reviews.source} [{split}] (seed 42)"
    log = log or (lambda message: None)
    log(f"timing the gated variants on {sample} ...")
    return measure(parity, baseline, tuple(OPENVINO_VARIANTS), open_predictor, encoded, sample, log=log)


def retime(onnx_dir: str | os.PathLike, config=None, log: Callable[[str], None] | None = None) -> dict:
    """`verify --retime`: choose the default variant again on this CPU and store it in export_report.json.

    The gate is not run again: the variants that passed the recorded one are timed (an openvino-fp32 that this
    CPU compiles at another precision than the gated one is left out until `verify --record` gates it here).

    Args:
        onnx_dir: the exported folder.
        config: a verify.VerifyConfig whose data and split hold the gate's reviews; None: the recorded ones.
        log: receives progress lines for people.

    Returns:
        The new `runtime_choice` record.

    Raises:
        ModelLoadError: the folder has no passed gate recorded to choose among.
    """
    path = Path(str(onnx_dir)) / EXPORT_REPORT
    payload = load_export_report(onnx_dir)
    parity = payload.get("parity") or {}
    if not parity.get("passed"):
        raise ModelLoadError(
            f"{path}: no passed parity gate recorded to choose a default among; run `imdb-deploy verify "
            f"{onnx_dir} --record` first"
        )
    data, split = (config.data, config.split) if config is not None else (parity.get("data"), parity.get("split"))
    choice = choose_default(onnx_dir, parity, data, split, log=log)
    payload["runtime_choice"] = choice
    payload["default_variant"] = choice["winner"]
    write_json_atomic(path, payload)
    return choice


def calibration_reviews(data: str, samples: int, seed: int = 42):
    """A seeded stratified sample of the TRAINING split of `data` (never the test split) to calibrate on.

    Raises:
        DataError, HubUnreachableError: the training split cannot be read.
    """
    return stratified_sample(load_split(data, "train"), samples, seed)
