"""The parity gate: does each exported ONNX variant answer like its PyTorch original on real reviews?

`check_parity` runs the PyTorch model (evaluation.torch_logits) and every ONNX variant (through
predict.Predictor, the same code that serves predictions) on the same labelled reviews, tokenized by the
same `tokenization.encode` with the folder's settings, and compares per variant: accuracy and its change,
label agreement, max and mean absolute probability difference, and the reviews whose label flipped.
`export` runs it before it writes a folder; `imdb-deploy verify ONNX_DIR` runs it alone. A failed gate is
an error (exit 1), never a warning.

It also checks batch invariance (`check_invariance`): a subset of the same reviews is scored again one
review per call and compared with the gate's batched run. A variant that claims invariance
(artifacts.VARIANT_BATCHING) fails the gate if a label flips or a probability moves by more than
INVARIANCE_MAX_PROB_DIFF; a batch-dependent variant (int8-batched) has its numbers recorded, not gated.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from imdb_deploy.errors import ModelLoadError
from imdb_deploy.export.config import DEFAULT_EXACT, FP32_GRAPHS, OPENVINO_LOSSY, VerifyConfig
from imdb_deploy.export.parity import ParityReport, _subset, _two_label_metrics, check_invariance, compare
from imdb_deploy.fileio import write_json_atomic
from imdb_deploy.folders import EXPORT_REPORT, is_local_reference, load_settings, read_json
from imdb_deploy.metrics import softmax
from imdb_deploy.rows.labelled import load_split, source_paths, stratified_sample
from imdb_deploy.runtimes.config import LOSSY_PRECISIONS, OPENVINO_VARIANTS, unavailable_reason
from imdb_deploy.runtimes.folder import (
    GRAPH_SUFFIXES,
    ExportFolder,
    checksummed_names,
    file_checksums,
    graph_companions,
    load_tokenizer,
    load_torch_classifier,
    open_folder,
    source_model,
)
from imdb_deploy.runtimes.predictor import Predictor
from imdb_deploy.runtimes.pytorch import torch_logits


def present_variants(onnx_dir: str | os.PathLike | ExportFolder) -> dict[str, Path]:
    """Every variant the folder holds: the ONNX ones, then the OpenVINO IRs."""
    folder = open_folder(onnx_dir)
    return {**folder.variants, **folder.openvino_variants}


def record_parity(onnx_dir: str | os.PathLike, report: ParityReport) -> Path:
    """Store a gate's results in the folder's export_report.json.

    `verified` becomes True only when the gate passed and checked every variant in the folder.

    Lets an export made with --no-verify (or re-checked on other data) carry its verdict; the file is
    rewritten atomically.

    Raises:
        ModelLoadError: the folder has no export_report.json.
    """

    path = Path(str(onnx_dir)) / EXPORT_REPORT
    if not path.is_file():
        raise ModelLoadError(f"{onnx_dir}: no {EXPORT_REPORT} to record the result in; re-export the folder")
    payload = read_json(path)
    if not isinstance(payload, dict):
        raise ModelLoadError(f"{path}: expected a JSON object, got {type(payload).__name__}; re-export the folder")
    present = present_variants(onnx_dir)
    payload["parity"] = report.to_dict()
    payload["verified"] = report.passed and set(report.variants) == set(present)
    # The files the gate judged: the graphs of the variants it ran (and their weights beside them), and every
    # other file but the graphs of variants it did not run, whose recorded checksums stay as they were.
    folder = Path(str(onnx_dir))
    graphs = [present[name] for name in report.variants if name in present]
    judged = {p.relative_to(folder).as_posix() for graph in graphs for p in [graph, *graph_companions(graph)]}
    names = [name for name in checksummed_names(onnx_dir) if name in judged or not name.endswith(GRAPH_SUFFIXES)]
    recorded = payload.get("checksums") if isinstance(payload.get("checksums"), dict) else {}
    payload["checksums"] = {**recorded, **file_checksums(onnx_dir, names)}
    return write_json_atomic(path, payload)


def _wanted_variants(folder: ExportFolder, onnx_dir, variants: tuple[str, ...] | None) -> tuple[dict, tuple[str, ...]]:
    """The folder's variants (name -> file) and the ones to judge: `variants`, or all of them.

    Raises:
        ModelLoadError: the folder has no ONNX model, or lacks a named variant.
    """
    present = present_variants(folder)
    if not present:
        raise ModelLoadError(f"{onnx_dir}: no ONNX model in it; create it with `imdb-deploy export`")
    wanted = tuple(variants or present)
    missing = [name for name in wanted if name not in present]
    if missing:
        raise ModelLoadError(f"{onnx_dir}: has no {', '.join(missing)} variant; present: {', '.join(present)}")
    return present, wanted


def check_parity(
    onnx_dir: str | os.PathLike,
    model: str | os.PathLike | None = None,
    config: VerifyConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> ParityReport:
    """Run PyTorch and each ONNX variant on the same labelled reviews and compare them.

    Args:
        onnx_dir: a folder written by `export` (ONNX files, tokenizer, train_config.json).
        model: the PyTorch original; None reads `source_model` from the folder's export_report.json.
        config: data, sample, variants and thresholds; defaults to VerifyConfig().
        log: receives progress lines for people.

    Returns:
        The report; call `raise_for_failure()` (or read `passed`) to act on it.

    Raises:
        ModelLoadError, HubUnreachableError: a model cannot be loaded.
        DataError: the data cannot be read.
    """

    config = config or VerifyConfig()
    log = log or (lambda message: None)
    folder = ExportFolder(onnx_dir)  # refuses custom code before any work; read once for every variant
    present, wanted = _wanted_variants(folder, onnx_dir, config.variants)
    model_ref = str(model) if model is not None else source_model(folder)
    thresholds = config.resolve_thresholds((folder.report.get("settings") or {}).get("optimize"))

    folder.tokenizer  # noqa: B018 (loaded, and so checked against the folder's embedding table, before any model runs)
    tokenizer = load_tokenizer(model_ref)
    settings = load_settings(model_ref, tokenizer)
    torch_model = load_torch_classifier(model_ref, label_names=settings.label_names)
    data = stratified_sample(load_split(config.data, config.split), config.samples, config.seed)
    labels = np.asarray(data.labels, dtype=np.int64)

    log(f"parity: PyTorch on {len(data)} reviews ...")
    started = time.perf_counter()
    torch_probs = softmax(torch_logits(torch_model, tokenizer, data.texts, settings, config.batch_size))
    report = ParityReport(
        onnx_dir=str(onnx_dir),
        model=model_ref,
        data=data.source,
        split=config.split,
        samples=len(data),
        pytorch_accuracy=float((torch_probs.argmax(axis=1) == labels).mean()),
        pytorch_seconds=round(time.perf_counter() - started, 2),
        pytorch_metrics=_two_label_metrics(labels, torch_probs),
    )
    del torch_model

    encoded: list[list[int]] | None = None  # the folder's token ids, shared by its variants
    exact_subset = _subset(len(data), config.exact_samples, config.seed)
    for name in wanted:
        if (name.startswith("int8") or name in OPENVINO_VARIANTS) and config.provider == "cuda":
            report.skipped[name] = "runs on CPU only (dynamic INT8, OpenVINO's CPU plugin)"
            continue
        if name in OPENVINO_VARIANTS and unavailable_reason():  # the folder stays unverified (record_parity)
            report.skipped[name] = unavailable_reason()
            continue
        rows = exact_subset if name in FP32_GRAPHS else None
        reviews = len(data) if rows is None else len(rows)
        log(f"parity: {name} ({present[name].name}) on {reviews} reviews ...")
        started = time.perf_counter()
        # The gate judges the files as they are: a changed file is what it is there to re-judge.
        predictor = Predictor(folder, variant=name, provider=config.provider, allow_unverified=True)
        if predictor.settings != settings:
            report.problems.append(
                f"{name}: the ONNX folder tokenizes with {predictor.settings.to_dict()} but the PyTorch model "
                f"with {settings.to_dict()}; re-export so train_config.json matches"
            )
        if encoded is None:
            encoded = predictor.encode(data.texts)
        ids = encoded if rows is None else [encoded[i] for i in rows]
        onnx_probs = softmax(predictor.logits_from_ids(ids))
        invariance = check_invariance(predictor, ids, onnx_probs, config.invariance_samples, config.seed)
        limits = thresholds.get(name, DEFAULT_EXACT)
        if name == "openvino-fp32" and predictor.runtime.get("inference_precision") in LOSSY_PRECISIONS:
            limits = thresholds[OPENVINO_LOSSY]
        report.variants[name] = compare(
            name,
            present[name].name,
            torch_probs if rows is None else torch_probs[rows],
            onnx_probs,
            labels if rows is None else labels[rows],
            data.ids if rows is None else [data.ids[i] for i in rows],
            limits,
            config.flips_listed,
            time.perf_counter() - started,
        )
        report.variants[name].invariance = invariance.to_dict()
        report.variants[name].runtime = dict(predictor.runtime)
        if invariance.failure:
            report.variants[name].failures.append(f"batch invariance: {invariance.failure}")
    return report


def verify_inputs(onnx_dir: str | os.PathLike, model: str | os.PathLike | None, config: VerifyConfig) -> dict:
    """What the gate reads, as outputs.Inputs: the ONNX folder, the PyTorch original (--model, or the source
    model its export_report.json names) and the data in every spelling --data takes."""
    source = model
    if source is None and Path(str(onnx_dir)).is_dir():
        try:
            source = source_model(onnx_dir)
        except ModelLoadError:  # said again, with the fix, when the gate looks for it
            source = None
    local = source is not None and is_local_reference(source)
    return {"the ONNX folder": onnx_dir, "the PyTorch model": source if local else None} | source_paths(config.data)
