"""`imdb-deploy bench`: PyTorch and ONNX Runtime side by side, on the same real reviews, on this machine.

Every row scores the same seeded sample of labelled reviews, end to end from text (tokenization included):
- `pytorch-fp32`: PyTorch fp32 eager, fixed batches in input order, each padded to its own longest review
  (dynamic padding): the way a user runs a Hugging Face classifier. It is the baseline of every speed-up.
- `pytorch-fp32-sorted`: the same model with length-sorted batches (what `evaluate` does).
- `onnx-fp32`, `onnx-optimized`, `onnx-int8`: the exported graphs through `predict.Predictor`, batched
  exactly like the baseline, so the row shows the runtime and the graph alone.
- `predict`: imdb-deploy's own predict path, `Predictor.predict_proba` with its defaults (on a CPU dynamic
  INT8 one review per call: batch-invariant).
- `predict-int8-batched`: the same INT8 file in length-sorted batches capped by a token budget (the
  opt-in `int8-batched` variant: faster on short reviews, but batch-dependent).
- `predict-openvino-int8`, `predict-openvino-fp32`: the folder's OpenVINO variants as predict runs them (one review
  per infer request: batch-invariant); skipped where the folder has no IR (`export --quantize` writes them where
  the extra is installed). With `--model` an exported folder, `predict` runs its measured `default_variant`, and
  the report's `default` puts it beside each runtime's own fastest row (bench_report.default_and_best).
- `openvino-fp32`, `openvino-int8`: the exported fp32 graph through OpenVINO (imdb_deploy.openvino_runtime) at
  the precision its CPU plugin picks (bf16 on CPUs that have it), and nncf static INT8 calibrated on training
  reviews, both in predict's batches; skipped (with the reason) where the `openvino` extra is not installed.
- `*-cuda`: the GPU rows, skipped (with the reason) where no CUDA device is present.

Per row: throughput (median of `repeats` timed passes after warm-up), latency p50/p95 at batch 1 on the
shortest and the longest quarter of the reviews, accuracy (None for random weights, never invented),
agreement with the baseline under the parity gate's thresholds, model file size, peak resident memory.
The report also gives the share of the CPU's INT8 peak that the fastest row reaches (see `machine.cpu_peak`).

`--model` is a trained folder, an exported ONNX folder (its PyTorch original comes from
export_report.json), or an architecture spec such as "distilbert-base" (DistilBertConfig() defaults,
distilbert-base-uncased's exact compute, random weights) for timing where no trained weights exist.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from transformers import AutoConfig

from imdb_deploy.bench.classical import classical_row
from imdb_deploy.bench.config import BASELINE, ROWS, BenchConfig
from imdb_deploy.bench.frontier import frontier_report, write_frontier_chart
from imdb_deploy.bench.report import default_and_best, fastest_row, write_chart
from imdb_deploy.bench.rows import ModelUnderTest, row_unavailable, run_row
from imdb_deploy.errors import ConfigError, ModelLoadError
from imdb_deploy.export.config import DEFAULT_EXACT, DEFAULT_THRESHOLDS, ExportConfig
from imdb_deploy.export.parity import compare
from imdb_deploy.export.stage import export
from imdb_deploy.fileio import write_json_atomic
from imdb_deploy.folders import is_local_reference, load_train_config
from imdb_deploy.machine import cpu_peak, machine_info
from imdb_deploy.metrics import softmax
from imdb_deploy.outputs import Output
from imdb_deploy.rows.labelled import load_split, source_paths, stratified_sample
from imdb_deploy.runtimes.config import (
    OPENVINO_VARIANTS,
)
from imdb_deploy.runtimes.folder import openvino_variants, source_model
from imdb_deploy.runtimes.onnx import onnx_variants
from imdb_deploy.tokenization import encode
from imdb_deploy.training.architectures import ARCHITECTURES, parse_architecture, save_random_classifier, useful_macs


def run_bench(
    model: str | os.PathLike | Sequence[str | os.PathLike],
    config: BenchConfig | None = None,
    log: Callable[[str], None] | None = None,
):
    """Time every row on the same reviews and return bench.json's content (also written when asked).

    Args:
        model: a trained model folder, an exported ONNX folder, or an architecture spec (ARCHITECTURES,
            e.g. "distilbert-base", random weights: accuracy is then None); or several of them (a teacher and its
            student), benched one after the other on the same reviews into one frontier (bench.frontier).
        config: data, sample, rows, repeats, the classical baseline; defaults to BenchConfig().
        log: receives progress lines for people.

    Returns:
        The report (JSON-ready): machine, data, per-row figures, speed-ups, useful work, CPU peak and the
        classical baseline; for several models, each model's report and the frontier's points. With
        `config.output_dir` set, also writes bench.json and bench.png there.

    Raises:
        ModelLoadError, HubUnreachableError: the model or tokenizer cannot be loaded or exported.
        DataError: the reviews cannot be read.
        ConfigError: a bad setting (one --onnx folder for several models).
    """
    config = config or BenchConfig()
    log = log or (lambda message: None)
    models = [str(m) for m in model] if isinstance(model, (list, tuple)) else [str(model)]
    if len(models) > 1 and config.onnx_dir:
        raise ConfigError("--onnx names the export of one --model; with several models, pass their ONNX folders")
    started = time.perf_counter()
    if not config.output_dir:
        with tempfile.TemporaryDirectory(prefix="imdb-deploy-bench-") as work:
            report = _bench(models, config, Path(work), log)
        report["seconds"] = round(time.perf_counter() - started, 1)
        return report
    # The folder is one output, built beside it and put in place complete: never an input, and an existing
    # folder only with overwrite.
    output = Output(config.output_dir, bench_inputs(models, config), folder=True, overwrite=config.overwrite)
    with output.writing() as work:
        report = _bench(models, config, work, log)
        report["seconds"] = round(time.perf_counter() - started, 1)
        report["files"] = {"json": str(output.path / "bench.json"), "chart": str(output.path / "bench.png")}
        write_json_atomic(work / "bench.json", report)
        (write_frontier_chart if len(models) > 1 else write_chart)(report, work / "bench.png")
    if output.replaces:
        log(f"replaced the folder that was at {output.path} (--overwrite)")
    return report


def _bench(models: list[str], config: BenchConfig, work: Path, log: Callable[[str], None]) -> dict:
    """One model's report (with the classical row), or the frontier of several."""
    reports = {}
    for label, model in zip(model_labels(models), models, strict=True):
        reports[label] = _run(model, config, work / label if len(models) > 1 else work, log)
    classical = None
    if config.classical:
        data = stratified_sample(load_split(config.data, config.split), config.samples, config.seed)
        classical = classical_row(config.data, data.texts, np.asarray(data.labels), config.repeats, log)
    if len(models) == 1:
        return {**next(iter(reports.values())), "classical": classical}
    return frontier_report(reports, classical)


def model_labels(models: Sequence[str]) -> list[str]:
    """A short, unique label per benched model: its folder name (or spec), numbered when two are alike."""
    names = [Path(m.rstrip("/")).name or m for m in models]
    return [name if names.count(name) == 1 else f"{name}-{i + 1}" for i, name in enumerate(names)]


def bench_inputs(models: Sequence[str], config: BenchConfig) -> dict:
    """What bench reads, as outputs.Inputs: the models (folders; an architecture spec reads none), the export it
    times, the tokenizer folder, the reviews in every spelling --data takes."""
    folders = [m for m in models if parse_architecture(str(m)) is None and is_local_reference(m)]
    inputs = {
        "the --model folder": folders,
        "the --onnx folder": config.onnx_dir,
        "the --tokenizer folder": config.tokenizer,
    }
    return {what: path for what, path in inputs.items() if path} | source_paths(config.data)


def resolve_model(model: str, config: BenchConfig, work: Path, log: Callable[[str], None]) -> ModelUnderTest:
    """Find or make the PyTorch and ONNX folders for `model` (trained folder, ONNX folder or architecture).

    Raises:
        ModelLoadError, HubUnreachableError, ConfigError: the model cannot be found, built or exported.
    """

    if parse_architecture(model) is not None:
        torch_dir = work / "model"
        log(f"bench: building {model} with random weights (seed {config.seed}) in {torch_dir}")
        save_random_classifier(model, torch_dir, config.tokenizer, config.max_length or 512, config.seed)
        kind, trained = "architecture", False
    else:
        path = Path(model).expanduser()
        if not path.is_dir():
            raise ModelLoadError(
                f"--model {model!r}: no such folder and not an architecture ({', '.join(ARCHITECTURES)}); "
                "pass a trained folder, an exported ONNX folder, or e.g. distilbert-base --tokenizer PATH"
            )
        if config.max_length is not None:
            raise ConfigError(
                f"--max-length {config.max_length}: a model folder is benchmarked with the max length it was "
                "trained with (its train_config.json); --max-length is for architecture specs"
            )
        if onnx_variants(path):
            if config.onnx_dir:
                raise ConfigError(f"--model {model!r} is already an ONNX folder; drop --onnx")
            source = source_model(path)
            trained = not load_train_config(path).get("random_weights")
            return ModelUnderTest(model, "onnx", Path(source), path, trained, work)
        torch_dir, kind = path, "trained"
        trained = not load_train_config(path).get("random_weights")
    if config.onnx_dir:
        onnx_dir = Path(config.onnx_dir)
        if not onnx_variants(onnx_dir):
            raise ModelLoadError(
                f"--onnx {config.onnx_dir!r}: no ONNX model in it; create it with `imdb-deploy export`"
            )
    else:
        onnx_dir = work / "onnx"
        log(f"bench: exporting {torch_dir} to {onnx_dir} (fp32, optimized, INT8) ...")
        # No parity gate here: bench compares every row with PyTorch on its own reviews and reports it.
        export(torch_dir, onnx_dir, ExportConfig(quantize=True, verify=False, overwrite=True), log=log)
    return ModelUnderTest(model, kind, torch_dir, onnx_dir, trained, work)


def _run(model: str, config: BenchConfig, work: Path, log: Callable[[str], None]) -> dict:

    target = resolve_model(model, config, work, log)
    data = stratified_sample(load_split(config.data, config.split), config.samples, config.seed)
    labels = np.asarray(data.labels, dtype=np.int64)
    tokenizer = target.folder.tokenizer
    settings = target.folder.settings
    lengths = [len(ids) for ids in encode(tokenizer, data.texts, settings)]
    model_config = AutoConfig.from_pretrained(target.onnx_dir, trust_remote_code=False)  # load_tokenizer checked it
    work_done = useful_macs(model_config, lengths)
    # The exported graphs may run the last layer for [CLS] only: less work done for the same answer. Speed
    # is compared on the useful work (the full model's); shares of the peak use the work each row really does.
    export_settings = target.folder.report.get("settings") or {}
    onnx_work = useful_macs(model_config, lengths, bool(export_settings.get("cls_only_last_layer")))
    work_by_runtime = {"onnx": onnx_work["total"], "openvino": onnx_work["total"], "pytorch": work_done["total"]}
    machine = machine_info(config.cpu_ghz)
    peak = cpu_peak(machine)
    log(
        f"bench: {len(data)} reviews of {data.source} [{config.split}], {sum(lengths)} tokens, max length "
        f"{settings.max_length}; {machine['cpu_model']}, {machine['physical_cores']} cores"
    )

    rows: dict[str, dict] = {}
    probabilities: dict[str, np.ndarray] = {}
    wanted = [row for row in ROWS if config.rows is None or row.name in config.rows]
    for row in wanted:
        base = {
            "title": row.title,
            "runtime": row.runtime,
            "batching": row.batching,
            "device": row.device,
            "precision": row.precision,
        }
        why = row_unavailable(row)
        if not why and row.variant in OPENVINO_VARIANTS and row.variant not in openvino_variants(target.onnx_dir):
            why = (
                f"{target.onnx_dir} has no {OPENVINO_VARIANTS[row.variant]}: export it with --quantize where the "
                "openvino extra is installed, and pass that folder as --model"
            )
        if why:
            rows[row.name] = {**base, "status": "skipped", "reason": why}
            log(f"bench: {row.name} skipped: {why}")
            continue
        figures, logits = run_row(row, target, data.texts, lengths, config, log)
        probabilities[row.name] = softmax(logits)
        accuracy = float((logits.argmax(axis=1) == labels).mean()) if target.trained else None
        macs_per_s = work_done["total"] * figures["reviews_per_s"] / len(data)
        executed = work_by_runtime[row.runtime] * figures["reviews_per_s"] / len(data)
        precision_peak = peak.get(figures.get("precision", row.precision), {}).get("macs_per_s")
        rows[row.name] = {
            **base,
            **figures,
            "accuracy": accuracy,
            "useful_macs_per_s": macs_per_s,
            "executed_macs_per_s": executed,
            "share_of_peak": executed / precision_peak if precision_peak else None,
        }

    baseline = rows.get(BASELINE) if BASELINE in probabilities else None
    _compare_with_baseline(rows, probabilities, labels, data.ids, target.trained)
    summary = fastest_row(rows, work_by_runtime, peak["int8"]["macs_per_s"], len(data), baseline)
    return {
        "schema": 1,
        "model": {
            "spec": target.spec,
            "kind": target.kind,
            "weights": "trained" if target.trained else "random",
            "pytorch_dir": str(target.torch_dir),
            "onnx_dir": str(target.onnx_dir),
            "architecture": {
                k: getattr(model_config, k, None)
                for k in ("model_type", "n_layers", "dim", "n_heads", "hidden_dim", "vocab_size")
            },
        },
        "data": {
            "source": data.source,
            "split": config.split,
            "samples": len(data),
            "seed": config.seed,
            "labels": data.label_counts(),
            "tokens": int(sum(lengths)),
            "mean_tokens": float(np.mean(lengths)),
            "max_tokens": int(max(lengths)),
            "at_max_length": int(sum(n >= settings.max_length for n in lengths)),
            "settings": settings.to_dict(),
        },
        "settings": {**asdict(config), "rows": [row.name for row in wanted]},
        "machine": machine,
        "peak": peak,
        "useful_macs": work_done,
        "onnx_macs": onnx_work,
        "baseline": BASELINE if baseline else None,
        "rows": rows,
        "fastest": summary,
        "default": default_and_best(rows),
    }


def _compare_with_baseline(rows: dict, probabilities: dict, labels, ids, trained: bool) -> None:
    """Add each row's speed-up over the baseline and its agreement with it (the parity gate's measures and
    thresholds) to `rows`, in place. Random weights answer near 50/50, so their labels say nothing about
    parity: the gate's verdict is then None."""

    baseline = rows.get(BASELINE) if BASELINE in probabilities else None
    for name, row in rows.items():
        if row["status"] != "ok":
            continue
        row["speedup"] = row["reviews_per_s"] / baseline["reviews_per_s"] if baseline else None
        if baseline and name != BASELINE:
            variant = row.get("variant", "fp32")
            parity = compare(
                variant,
                Path(row["file"]).name,
                probabilities[BASELINE],
                probabilities[name],
                labels,
                ids,
                DEFAULT_THRESHOLDS.get(variant, DEFAULT_EXACT),
                flips_listed=0,
            )
            row["vs_baseline"] = {
                "agreement": parity.agreement,
                "max_prob_diff": parity.max_prob_diff,
                "mean_prob_diff": parity.mean_prob_diff,
                "accuracy_change": parity.accuracy_change if trained else None,
                "gate": parity.thresholds,
                "within_gate": parity.passed if trained else None,
                "failures": parity.failures if trained else [],
            }
