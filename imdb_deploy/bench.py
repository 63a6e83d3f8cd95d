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

import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from imdb_deploy.architectures import ARCHITECTURES, parse_architecture, save_random_classifier, useful_macs
from imdb_deploy.bench_report import default_and_best, fastest_row, write_chart
from imdb_deploy.errors import ConfigError, ModelLoadError
from imdb_deploy.machine import PeakMemory, cpu_peak, machine_info, physical_cores
from imdb_deploy.model_folder import ExportFolder
from imdb_deploy.openvino_runtime import (
    DEFAULT_CALIBRATION_SAMPLES,
    OPENVINO_VARIANTS,
    graph_bytes,
    openvino_variants,
)

BASELINE = "pytorch-fp32"


@dataclass(frozen=True)
class Row:
    """One way of running the model that bench can time.

    Attributes:
        name: short id used in --rows, bench.json and the chart.
        title: what a person reads in the table.
        runtime: "pytorch", "onnx" (through predict.Predictor) or "openvino" (openvino_runtime.OpenVINOModel).
        variant: the ONNX variant (artifacts.ONNX_VARIANTS, or "auto" as predict picks it) or the torch dtype.
        batching: "input-order" (fixed batches of --batch-size) or "predict" (Predictor's length-sorted,
            token-capped batches) or "length-sorted" (fixed size, sorted by length).
        device: "cpu" or "cuda"; cuda rows are skipped where no GPU is present.
        precision: "fp32", "int8", "fp16" or "bf16": which of the CPU's peaks the row's multiply-adds are held to.
    """

    name: str
    title: str
    runtime: str
    variant: str
    batching: str
    device: str = "cpu"
    precision: str = "fp32"


# The rows, in table order. A new row (e.g. another GPU dtype) is one entry here plus, if it needs a new
# runtime, one branch in _open_row.
ROWS: tuple[Row, ...] = (
    Row("pytorch-fp32", "PyTorch fp32 eager", "pytorch", "fp32", "input-order"),
    Row("pytorch-fp32-sorted", "PyTorch fp32 eager, sorted", "pytorch", "fp32", "length-sorted"),
    Row("onnx-fp32", "ONNX fp32", "onnx", "fp32", "input-order"),
    Row("onnx-optimized", "ONNX optimized", "onnx", "optimized", "input-order"),
    Row("onnx-int8", "ONNX INT8", "onnx", "int8-batched", "input-order", precision="int8"),
    Row("predict", "imdb-deploy predict path", "onnx", "auto", "predict", precision="int8"),
    Row(
        "predict-int8-batched",
        "predict path, int8-batched (batch-dependent)",
        "onnx",
        "int8-batched",
        "predict",
        precision="int8",
    ),
    Row("predict-openvino-int8", "predict path, openvino-int8", "onnx", "openvino-int8", "predict", precision="int8"),
    Row("predict-openvino-fp32", "predict path, openvino-fp32", "onnx", "openvino-fp32", "predict"),
    Row("openvino-fp32", "OpenVINO, precision it picks", "openvino", "fp32", "predict"),
    Row("openvino-int8", "OpenVINO static INT8 (nncf)", "openvino", "int8", "predict", precision="int8"),
    Row("pytorch-fp16-cuda", "PyTorch fp16 CUDA", "pytorch", "fp16", "input-order", "cuda", "fp16"),
    Row("pytorch-bf16-cuda", "PyTorch bf16 CUDA", "pytorch", "bf16", "input-order", "cuda", "bf16"),
    Row("predict-cuda", "imdb-deploy predict path, CUDA", "onnx", "auto", "predict", "cuda", "fp16"),
)
ROW_NAMES = tuple(row.name for row in ROWS)


@dataclass
class BenchConfig:
    """Settings of `imdb-deploy bench`.

    Attributes:
        data: labelled reviews (see imdb_deploy.data); "imdb" is the Hub dataset.
        split: split to sample; "test" for reported numbers.
        samples: seeded stratified sample size; every row scores exactly these reviews. None: the split.
        seed: seed of the sample (and of random weights for an architecture spec).
        batch_size: reviews per call for the input-order rows; 32 is what a user typically picks.
        rows: row names to run (see ROWS); None runs every row this machine can run.
        repeats: timed passes over all reviews per row; throughput is the median.
        warmup: untimed calls on the first batch before timing (allocations, thread pools, lazy init).
        latency_samples: single-review calls timed on each of the short and the long reviews.
        threads: intra-op threads for PyTorch and onnxruntime; None: their defaults (physical cores).
        tokenizer: tokenizer for an architecture spec (a folder or Hub id with the uncased vocab).
        max_length: tokens per review for an architecture spec; a trained folder uses its train_config.json.
        onnx_dir: an existing export of the model to time; None exports into `output_dir`/onnx.
        output_dir: where bench.json, bench.png (and any export) are written; None writes no files.
        cpu_ghz: clock for the CPU peak; None reads it from the OS (often the nominal, not the boost, clock).
        calibration_samples: training reviews (of `data`) that calibrate the openvino-int8 row's static scales.
    """

    data: str = "imdb"
    split: str = "test"
    samples: int | None = 256
    seed: int = 42
    batch_size: int = 32
    rows: tuple[str, ...] | None = None
    repeats: int = 3
    warmup: int = 1
    latency_samples: int = 20
    threads: int | None = None
    tokenizer: str | None = None
    max_length: int | None = None
    onnx_dir: str | None = None
    output_dir: str | None = None
    cpu_ghz: float | None = None
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES

    def __post_init__(self) -> None:
        if self.samples is not None and self.samples < 2:
            raise ConfigError(f"samples={self.samples!r}: use at least 2 (both labels), or None for the split")
        for name in ("batch_size", "repeats", "calibration_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r}: use 1 or more")
        for name in ("warmup", "latency_samples"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)!r}: use 0 or more")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads={self.threads!r}: use 1 or more, or None for all physical cores")
        if self.cpu_ghz is not None and not 0.1 <= self.cpu_ghz <= 10:
            raise ConfigError(f"cpu_ghz={self.cpu_ghz!r}: give the clock in GHz, e.g. 3.1")
        if self.rows is not None:
            self.rows = tuple(self.rows)
            unknown = [name for name in self.rows if name not in ROW_NAMES]
            if unknown or not self.rows:
                raise ConfigError(f"rows={','.join(unknown) or '(none)'}: use names from {', '.join(ROW_NAMES)}")


# ---------------------------------------------------------------------------------------------------------
# The model under test
# ---------------------------------------------------------------------------------------------------------


@dataclass
class ModelUnderTest:
    """The PyTorch folder and the ONNX folder that bench times, and what they are."""

    spec: str
    kind: str  # "trained", "onnx" (an export given directly) or "architecture"
    torch_dir: Path
    onnx_dir: Path
    trained: bool

    @cached_property
    def folder(self) -> ExportFolder:
        """The ONNX folder, opened once for every row (tokenizer, settings, report)."""
        return ExportFolder(self.onnx_dir)


def resolve_model(model: str, config: BenchConfig, work: Path, log: Callable[[str], None]) -> ModelUnderTest:
    """Find or make the PyTorch and ONNX folders for `model` (trained folder, ONNX folder or architecture).

    Raises:
        ModelLoadError, HubUnreachableError, ConfigError: the model cannot be found, built or exported.
    """
    from imdb_deploy.artifacts import load_train_config, onnx_variants

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
            from imdb_deploy.verify import source_model

            if config.onnx_dir:
                raise ConfigError(f"--model {model!r} is already an ONNX folder; drop --onnx")
            source = source_model(path)
            return ModelUnderTest(model, "onnx", Path(source), path, not load_train_config(path).get("random_weights"))
        torch_dir, kind = path, "trained"
        trained = not load_train_config(path).get("random_weights")
    if config.onnx_dir:
        onnx_dir = Path(config.onnx_dir)
        if not onnx_variants(onnx_dir):
            raise ModelLoadError(
                f"--onnx {config.onnx_dir!r}: no ONNX model in it; create it with `imdb-deploy export`"
            )
    else:
        from imdb_deploy.export import ExportConfig, export

        onnx_dir = work / "onnx"
        log(f"bench: exporting {torch_dir} to {onnx_dir} (fp32, optimized, INT8) ...")
        # No parity gate here: bench compares every row with PyTorch on its own reviews and reports it.
        export(torch_dir, onnx_dir, ExportConfig(quantize=True, verify=False, overwrite=True), log=log)
    return ModelUnderTest(model, kind, torch_dir, onnx_dir, trained)


# ---------------------------------------------------------------------------------------------------------
# Running one row
# ---------------------------------------------------------------------------------------------------------


def row_unavailable(row: Row) -> str | None:
    """Why a row cannot run on this machine, or None."""
    if row.runtime == "openvino":
        from imdb_deploy.openvino_runtime import unavailable_reason

        return unavailable_reason()
    if row.device != "cuda":
        return None
    if row.runtime == "pytorch":
        import torch

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


def _open_row(row: Row, target: ModelUnderTest, config: BenchConfig) -> _Runner:
    """Load a row's model the one way its stage loads it (artifacts / Predictor / openvino_runtime)."""
    if row.runtime == "openvino":
        from imdb_deploy.openvino_runtime import open_model
        from imdb_deploy.predict import DEFAULT_BATCH_SIZE, DEFAULT_MAX_TOKENS

        model = open_model(
            target.onnx_dir,
            row.variant,
            config.data,
            config.calibration_samples,
            config.seed,
            save_dir=Path(config.output_dir) / "openvino" if config.output_dir else None,
            threads=config.threads,
            batch_size=DEFAULT_BATCH_SIZE,
            max_tokens=DEFAULT_MAX_TOKENS,
        )
        info = {**model.info, "variant": row.variant, "batch_size": model.batch_size, "max_tokens": model.max_tokens}
        if row.variant == "fp32":  # what the plugin picked (bf16 on CPUs with it): no fp32 peak applies then
            info["precision"] = model.info["inference_precision"].replace("f32", "fp32")
        info["engine"] = "openvino"
        return _Runner(model.logits, {**info, "settings": model.settings.to_dict()}, lambda: None)
    if row.runtime == "pytorch":
        import torch

        from imdb_deploy.artifacts import load_settings, load_tokenizer, load_torch_classifier
        from imdb_deploy.evaluation import torch_logits

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

    from imdb_deploy.predict import Predictor

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
        runner = _open_row(row, target, config)
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


# ---------------------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------------------


def run_bench(model: str | os.PathLike, config: BenchConfig | None = None, log: Callable[[str], None] | None = None):
    """Time every row on the same reviews and return bench.json's content (also written when asked).

    Args:
        model: a trained model folder, an exported ONNX folder, or an architecture spec (ARCHITECTURES,
            e.g. "distilbert-base", random weights: accuracy is then None).
        config: data, sample, rows, repeats; defaults to BenchConfig().
        log: receives progress lines for people.

    Returns:
        The report (JSON-ready): machine, data, per-row figures, speed-ups, useful work and CPU peak.
        With `config.output_dir` set, also writes bench.json and bench.png there.

    Raises:
        ModelLoadError, HubUnreachableError: the model or tokenizer cannot be loaded or exported.
        DataError: the reviews cannot be read.
        ConfigError: a bad setting.
    """
    config = config or BenchConfig()
    log = log or (lambda message: None)
    started = time.perf_counter()
    if config.output_dir:
        work_context = None
        work = Path(config.output_dir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        work_context = tempfile.TemporaryDirectory(prefix="imdb-deploy-bench-")
        work = Path(work_context.name)
    try:
        report = _run(str(model), config, work, log)
    finally:
        if work_context is not None:
            work_context.cleanup()
    report["seconds"] = round(time.perf_counter() - started, 1)
    if config.output_dir:
        from imdb_deploy.fileio import write_json_atomic

        write_json_atomic(work / "bench.json", report)
        write_chart(report, work / "bench.png")
        report["files"] = {"json": str(work / "bench.json"), "chart": str(work / "bench.png")}
        write_json_atomic(work / "bench.json", report)
    return report


def _run(model: str, config: BenchConfig, work: Path, log: Callable[[str], None]) -> dict:
    from transformers import AutoConfig

    from imdb_deploy.data import load_split, stratified_sample
    from imdb_deploy.evaluation import softmax
    from imdb_deploy.tokenization import encode

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
    from imdb_deploy.verify import DEFAULT_EXACT, DEFAULT_THRESHOLDS, compare

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
