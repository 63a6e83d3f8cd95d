"""Settings of bench and the rows it can time, light enough for the CLI to import."""

from __future__ import annotations

from dataclasses import dataclass

from imdb_deploy.errors import ConfigError
from imdb_deploy.runtimes.config import DEFAULT_CALIBRATION_SAMPLES

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
        output_dir: the folder bench.json, bench.png (and any export) are written to, complete or not at all;
            None writes no files.
        classical: fit and time the classical baseline (TF-IDF + logistic regression on the training split of
            `data`: bench.classical) beside the rows.
        overwrite: replace an existing output folder (once the new one is complete).
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
    classical: bool = True
    overwrite: bool = False

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
