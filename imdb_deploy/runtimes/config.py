"""The variants a Predictor runs, their files and batching, and the runtimes' defaults: light enough for the CLI to
import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# File name of each ONNX variant inside an exported folder, in the order a CPU prefers them last to first.
# "int8" and "int8-batched" are the same dynamic-INT8 file run two ways (see VARIANT_BATCHING).
# Where an export keeps its ONNX graphs: transformers.js's layout (graphs under onnx/, named by dtype: model.onnx
# fp32, model_quantized.onnx q8, model_fp16.onnx fp16; config and tokenizer at the root), so its pipeline() loads
# the folder as it is. A folder exported before keeps them at the root, and loads as it did.
ONNX_FOLDER = "onnx"

ONNX_VARIANTS = {
    "fp32": "model.onnx",
    "optimized": "model_optimized.onnx",
    "int8": "model_quantized.onnx",
    "int8-batched": "model_quantized.onnx",
    "fp16": "model_fp16.onnx",
}


@dataclass(frozen=True)
class VariantBatching:
    """How a variant is fed to onnxruntime, and whether a review's answer can depend on its batch.

    Attributes:
        per_review: one review per onnxruntime call (no padding, nothing shared with other reviews).
        batch_invariant: the claim `verify` holds the variant to: the same review gets the same
            probabilities (max |difference| <= verify.INVARIANCE_MAX_PROB_DIFF, no label flip) in any batch.
        note: why, in a sentence people read in --help, /info and export_report.json.
    """

    per_review: bool
    batch_invariant: bool
    note: str

    def to_dict(self) -> dict:
        return asdict(self)


# Dynamic INT8 quantizes activations with one scale per onnxruntime call, over every token of the batch
# (padding included), so batched it is batch-dependent; one review per call it depends on that review alone.
# Measured (research/batch_invariance.py, 2,000 IMDb test reviews, fine-tuned MiniLM): see the README.
VARIANT_BATCHING = {
    "fp32": VariantBatching(False, True, "fp32 kernels treat rows independently (batchings differ by float rounding)"),
    "optimized": VariantBatching(
        False, True, "fused fp32 kernels treat rows independently (batchings differ by float rounding)"
    ),
    "int8": VariantBatching(
        True, True, "dynamic INT8 run one review per call: its activation scales come from that review alone"
    ),
    "int8-batched": VariantBatching(
        False,
        False,
        "BATCH-DEPENDENT: dynamic INT8 over length-sorted batches; activation scales span the whole batch, "
        "so a review's probabilities (and near 0.5 its label) depend on the reviews batched with it",
    ),
    "fp16": VariantBatching(False, False, "fp16 on the GPU: invariance not measured (no GPU has run it)"),
}

# The ONNX variants OpenVINO can read (model_quantized.onnx holds onnxruntime-only QAttention ops).
ONNX_SOURCES = ("fp32", "optimized")

# Static INT8 written by quantize_static, inside the exported folder or wherever the caller says.
INT8_IR = "openvino_int8.xml"

# The fp32 graph as OpenVINO IR (model.onnx converted once at export, weights kept in f32).
FP32_IR = "openvino_fp32.xml"

# The variants Predictor runs through OpenVINO, beside artifacts.ONNX_VARIANTS, and the file of each.
OPENVINO_VARIANTS = {"openvino-int8": INT8_IR, "openvino-fp32": FP32_IR}

# Both run one review per infer request: a review's answer depends on that review alone (verify checks it).
OPENVINO_BATCHING = {
    "openvino-int8": VariantBatching(
        True, True, "OpenVINO static INT8 (nncf) run one review per infer request: no padding, no neighbours"
    ),
    "openvino-fp32": VariantBatching(
        True,
        True,
        "OpenVINO fp32 graph at the precision the CPU picks (bf16 with AVX512-BF16/AMX), one review per request",
    ),
}

# Precisions that change the math (gated like INT8, verify.default_thresholds' "openvino-bf16" entry).
LOSSY_PRECISIONS = ("bf16", "f16")

# ov::hint::PerformanceMode. LATENCY: one stream using every thread, which is how Predictor runs (one synchronous
# call per batch); THROUGHPUT: several streams that only pay off with parallel requests.
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT")

# None: the CPU plugin's own choice (bf16 where the CPU has it, else f32).
PRECISIONS = (None, "f32", "bf16")

# Training reviews nncf calibrates on; nncf's own default subset size is 300.
DEFAULT_CALIBRATION_SAMPLES = 300

_INSTALL_HINT = "pip install 'imdb-deploy[openvino]' (openvino and nncf, pinned in constraints.txt)"


def unavailable_reason() -> str | None:
    """Why the OpenVINO rows cannot run here (the `openvino` extra is missing), or None."""
    for module in ("openvino", "nncf"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed: {_INSTALL_HINT}"
    return None


# Most reviews in one onnxruntime call, and most padded tokens (reviews x longest) in one call. Small
# calls keep each layer's activations in the CPU caches: on a quiet 2-core AVX2 CPU, INT8, 256 IMDb test
# reviews, 1,024 tokens ran 25% faster than 16,384 (MiniLM-L6 at 256 tokens: 31.8 vs 25.4 reviews/s) and
# distilbert-base at 512 tokens likewise (research/bench_token_budget.py, research/bench_int8_research.py).
DEFAULT_BATCH_SIZE = 64

DEFAULT_MAX_TOKENS = 1024

# Every variant a Predictor runs: onnxruntime's, then OpenVINO's.
VARIANTS = (*ONNX_VARIANTS, *OPENVINO_VARIANTS)


# Where a Predictor runs (onnxruntime's execution providers), and what it runs unless told otherwise.
PROVIDERS = ("cpu", "cuda")
DEFAULT_PROVIDER = "cpu"
# "auto": on the CPU the folder's measured default_variant, else onnxruntime's default (runtimes.onnx).
DEFAULT_VARIANT = "auto"
