"""bench's rows: the model under test (a trained folder, an export, or an architecture with random weights), how
each row loads it the one way its stage does, and the timing of one row (throughput, batch-1 latency, memory)."""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from imdb_deploy.bench.config import BenchConfig, Row
from imdb_deploy.errors import ConfigError
from imdb_deploy.folders import load_settings
from imdb_deploy.machine import PeakMemory, physical_cores
from imdb_deploy.rows.labelled import load_split, stratified_sample
from imdb_deploy.runtimes.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CALIBRATION_SAMPLES,
    DEFAULT_MAX_TOKENS,
    INT8_IR,
    unavailable_reason,
)
from imdb_deploy.runtimes.folder import ExportFolder, graph_bytes, load_tokenizer, load_torch_classifier
from imdb_deploy.runtimes.openvino import OpenVINOModel, quantize_static
from imdb_deploy.runtimes.predictor import Predictor
from imdb_deploy.runtimes.pytorch import torch_logits


@dataclass
class ModelUnderTest:
    """The PyTorch folder and the ONNX folder that bench times, and what they are."""

    spec: str
    kind: str  # "trained", "onnx" (an export given directly) or "architecture"
    torch_dir: Path
    onnx_dir: Path
    trained: bool
    work: Path  # bench's own folder (an export, OpenVINO's IRs): the output being written, or a temporary one

    @cached_property
    def folder(self) -> ExportFolder:
        """The ONNX folder, opened once for every row (tokenizer, settings, report)."""
        return ExportFolder(self.onnx_dir)


def row_unavailable(row: Row) -> str | None:
    """Why a row cannot run on this machine, or None."""
    if row.runtime == "openvino":
        return unavailable_reason()
    if row.device != "cuda":
        return None
    if row.runtime == "pytorch":
        return None if torch.cuda.is_available() else "no CUDA device visible to PyTorch"
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu)"
    return None


class _Runner:
    """A loaded row: `logits(texts)` scores reviews in the row's batching; `info` describes it."""

    def __init__(self, logits: Callable[[list[str]], np.ndarray], info: dict, release: Callable[[], None]):
        self.logits = logits
        self.info = info
        self.release = release


def _weights_bytes(folder: Path) -> int:
    names = ("model.safetensors", "pytorch_model.bin")
    return sum((folder / name).stat().st_size for name in names if (folder / name).is_file())


def open_row(row: Row, target: ModelUnderTest, config: BenchConfig) -> _Runner:
    """Load a row's model the one way its stage loads it (runtimes: loading, Predictor, OpenVINO)."""
    if row.runtime == "openvino":
        return _open_openvino(row, target, config)
    if row.runtime == "pytorch":
        return _open_pytorch(row, target, config)
    return _open_predictor(row, target, config)


def _open_openvino(row: Row, target: ModelUnderTest, config: BenchConfig) -> _Runner:
    """A batched OpenVINO row: the exported fp32 graph, or nncf's static INT8 of it (kept under OUTPUT/openvino)."""
    model = open_model(
        target.onnx_dir,
        row.variant,
        config.data,
        config.calibration_samples,
        config.seed,
        save_dir=target.work / "openvino" if config.output_dir else None,
        threads=config.threads,
        batch_size=DEFAULT_BATCH_SIZE,
        max_tokens=DEFAULT_MAX_TOKENS,
    )
    info = {**model.info, "variant": row.variant, "batch_size": model.batch_size, "max_tokens": model.max_tokens}
    if row.variant == "fp32":  # what the plugin picked (bf16 on CPUs with it): no fp32 peak applies then
        info["precision"] = model.info["inference_precision"].replace("f32", "fp32")
    info["engine"] = "openvino"
    return _Runner(model.logits, {**info, "settings": model.settings.to_dict()}, lambda: None)


def _open_pytorch(row: Row, target: ModelUnderTest, config: BenchConfig) -> _Runner:
    """A PyTorch row: the trained folder in fixed or length-sorted batches, on the CPU or a GPU."""
    tokenizer = load_tokenizer(target.torch_dir)
    settings = load_settings(target.torch_dir, tokenizer)
    model = load_torch_classifier(target.torch_dir, label_names=settings.label_names)
    device = torch.device(row.device)
    if row.variant in ("fp16", "bf16"):
        model = model.to({"fp16": torch.float16, "bf16": torch.bfloat16}[row.variant])
    model = model.to(device)
    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    sort = row.batching == "length-sorted"

    def logits(texts: list[str]) -> np.ndarray:
        return torch_logits(model, tokenizer, texts, settings, config.batch_size, device, sort_by_length=sort)

    def release() -> None:
        torch.set_num_threads(previous_threads)

    info = {
        "engine": "pytorch",
        "file": str(target.torch_dir),
        "model_bytes": _weights_bytes(target.torch_dir),
        "threads": torch.get_num_threads(),
        "batch_size": config.batch_size,
        "max_tokens": None,
        "settings": settings.to_dict(),
    }
    return _Runner(logits, info, release)


def _open_predictor(row: Row, target: ModelUnderTest, config: BenchConfig) -> _Runner:
    """An onnxruntime (or openvino-*) row through Predictor: predict's own batching, or the baseline's."""
    if row.batching == "predict":
        predictor = Predictor(target.folder, variant=row.variant, provider=row.device, threads=config.threads)

        def logits(texts: list[str]) -> np.ndarray:
            return predictor.logits(texts)

    else:
        predictor = Predictor(
            target.folder,
            variant=row.variant,
            provider=row.device,
            threads=config.threads,
            batch_size=config.batch_size,
            max_tokens=None,
        )

        def logits(texts: list[str]) -> np.ndarray:
            # The baseline's batches: fixed size, input order, each padded to its longest review.
            encoded = predictor.encode(texts)
            out = np.empty((len(encoded), len(predictor.label_names)), dtype=np.float32)
            for start in range(0, len(encoded), config.batch_size):
                out[start : start + config.batch_size] = predictor.run_batch(encoded[start : start + config.batch_size])
            return out

    path = predictor.model_path
    if predictor.session is None:  # an openvino-* variant: one single-threaded stream per worker
        threads, providers = predictor.workers, ["OpenVINO CPU"]
    else:
        # Cores in use: intra-op threads (0 means onnxruntime's default, one per physical core) times the
        # reviews a per-review variant scores at once (Predictor.workers).
        threads = (predictor.session.get_session_options().intra_op_num_threads or physical_cores()) * predictor.workers
        providers = predictor.session.get_providers()
    info = {
        "engine": predictor.runtime["runtime"],
        "file": str(path),
        "variant": predictor.variant,
        "precision": _precision(predictor),
        "model_bytes": graph_bytes(path),
        "threads": threads,
        "workers": predictor.workers,
        "batch_size": predictor.batch_size,
        "max_tokens": predictor.max_tokens,
        "per_review": predictor.batching.per_review,
        "batch_invariant": predictor.batching.batch_invariant,
        "providers": providers,
        "settings": predictor.settings.to_dict(),
    }
    return _Runner(logits, info, lambda: None)


def _precision(predictor) -> str:
    """Which of the CPU's peaks a Predictor's variant is held to: int8, fp32, or what OpenVINO compiled (bf16)."""
    if predictor.variant.startswith("int8") or predictor.variant == "openvino-int8":
        return "int8"
    compiled = predictor.runtime.get("inference_precision", "f32")
    return {"f32": "fp32"}.get(compiled, compiled) if predictor.variant == "openvino-fp32" else "fp32"


def _percentiles_ms(seconds: list[float]) -> dict:
    if not seconds:
        return {"p50_ms": None, "p95_ms": None, "calls": 0}
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "calls": len(ms)}


def latency_sets(lengths: Sequence[int], per_set: int) -> dict[str, list[int]]:
    """Indices of short and long reviews for the batch-1 latency: up to `per_set` spread evenly over the
    shortest and over the longest quarter of the sample (by tokens)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    quarter = max(1, len(order) // 4)
    out = {}
    for name, part in (("short", order[:quarter]), ("long", order[-quarter:])):
        take = min(per_set, len(part))
        out[name] = [part[round(k * (len(part) - 1) / max(1, take - 1))] for k in range(take)] if take else []
    return out


def run_row(
    row: Row,
    target: ModelUnderTest,
    texts: list[str],
    lengths: list[int],
    config: BenchConfig,
    log: Callable[[str], None],
) -> tuple[dict, np.ndarray]:
    """Time one row: load, warm up, `repeats` passes, batch-1 latency; returns its figures and logits."""
    with PeakMemory() as memory:
        started = time.perf_counter()
        runner = open_row(row, target, config)
        load_seconds = time.perf_counter() - started
        first = texts[: config.batch_size]
        for _ in range(config.warmup):
            runner.logits(first)
        seconds = []
        logits = None
        for r in range(config.repeats):
            started = time.perf_counter()
            logits = runner.logits(texts)
            seconds.append(time.perf_counter() - started)
            log(f"bench: {row.name} pass {r + 1}/{config.repeats}: {len(texts) / seconds[-1]:.2f} reviews/s")
        latency = {}
        for name, indices in latency_sets(lengths, config.latency_samples).items():
            calls = []
            if indices:
                runner.logits([texts[indices[0]]])  # warm this shape
            for i in indices:
                started = time.perf_counter()
                runner.logits([texts[i]])
                calls.append(time.perf_counter() - started)
            latency[name] = {**_percentiles_ms(calls), "mean_tokens": _mean([lengths[i] for i in indices])}
        runner.release()
        info = runner.info
        del runner
        gc.collect()
    median = statistics.median(seconds)
    figures = {
        **info,
        "status": "ok",
        "load_seconds": round(load_seconds, 3),
        "seconds": [round(s, 4) for s in seconds],
        "reviews_per_s": len(texts) / median,
        "reviews_per_s_best": len(texts) / min(seconds),
        "latency_batch1": latency,
        "peak_rss_mb": memory.peak_mb,
        "rss_before_mb": memory.start_mb,
        "peak_rss_exact": memory.exact,
    }
    return figures, logits


def _mean(values) -> float | None:
    return float(np.mean(values)) if len(values) else None


def open_model(
    onnx_dir: str | os.PathLike,
    variant: str,
    data: str,
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
    seed: int = 42,
    save_dir: str | os.PathLike | None = None,
    **options,
) -> OpenVINOModel:
    """The model bench times: "fp32" compiles the exported fp32 graph at the precision the CPU plugin picks;
    "int8" first quantizes it with nncf, calibrated on `calibration_samples` training reviews of `data`.

    Args:
        onnx_dir: folder written by `imdb-deploy export`.
        variant: "fp32" or "int8".
        data: the data source whose training split calibrates the INT8 scales.
        calibration_samples: training reviews to calibrate on.
        seed: seed of the calibration sample.
        save_dir: folder to keep the INT8 IR in (openvino_int8.xml/.bin); None keeps it in a temporary folder
            only long enough to measure its size.
        **options: threads, hint, precision, batch_size, max_tokens for OpenVINOModel.

    Returns:
        The compiled model; for INT8 its `info["quantization"]` records the calibration.
    """
    if variant == "fp32":
        return OpenVINOModel(onnx_dir, "fp32", **options)
    if variant != "int8":
        raise ConfigError(f"variant={variant!r}: use fp32 or int8")
    reviews = stratified_sample(load_split(data, "train"), calibration_samples, seed)  # never the test split
    with tempfile.TemporaryDirectory(prefix="imdb-deploy-openvino-") as scratch:
        folder = Path(save_dir) if save_dir else Path(scratch)
        quantized, record = quantize_static(
            onnx_dir, reviews.texts, folder / INT8_IR, calibration_source=f"{reviews.source} [train]"
        )
        model = OpenVINOModel(onnx_dir, quantized, model_path=folder / INT8_IR, **options)
    if not save_dir:  # the size was measured; the file itself is gone with the temporary folder
        model.info["file"] = record["file"] = INT8_IR
    model.info["quantization"] = record
    return model
