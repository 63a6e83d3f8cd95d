"""Where the time goes in each runtime's default, one review per call: onnxruntime's profile of dynamic INT8
(`int8`, the onnxruntime default) and OpenVINO's per-layer performance counts of nncf static INT8
(`openvino-int8`), on the same few real reviews, one thread each (how Predictor runs a review).

Each op's time is put in a bucket a person reads: the INT8 matmuls (attention output, feed-forward), the
attention (onnxruntime's QAttention also holds the QKV projection), OpenVINO's fused subgraphs, LayerNorm, GELU,
quantize/dequantize steps (for dynamic INT8 the per-call DynamicQuantizeLinear), and the rest. A short run is
enough: the buckets' shares hardly move from one review to the next at a fixed length, and a few reviews keep
the raw profile small.

Examples:
    .venv/bin/python research/profile_runtimes.py --onnx runs/base-onnx --data imdb --reviews 4 \
        --work runs/profile-base --output research/results/profile_distilbert_base_512.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imdb_deploy.export import stage as export_stage  # noqa: E402
from imdb_deploy.machine import machine_info  # noqa: E402
from imdb_deploy.rows.labelled import load_split, stratified_sample  # noqa: E402
from imdb_deploy.runtimes import config as ov_config  # noqa: E402
from imdb_deploy.runtimes import openvino as ovr  # noqa: E402
from imdb_deploy.runtimes.config import ONNX_VARIANTS  # noqa: E402
from imdb_deploy.runtimes.predictor import Predictor  # noqa: E402

# Bucket of an op, by (lower-cased) op type or OpenVINO layer type / name, first match wins.
BUCKETS = (
    # OpenVINO's Snippets fuse the attention block (scores, softmax, context) and eltwise chains into one
    # "Subgraph" layer: its time cannot be split further from the counts.
    ("fused subgraph", ("subgraph",)),
    ("quantize", ("dynamicquantizelinear", "quantizelinear", "dequantizelinear", "fakequantize", "convert")),
    ("attention", ("qattention", "attention", "softmax", "scaleddotproduct")),
    ("int8 matmul", ("matmulinteger", "qlinearmatmul", "dynamicquantizematmul", "matmulintegertofloat")),
    ("matmul", ("matmul", "fullyconnected", "gemm")),
    ("layernorm", ("layernorm", "layernormalization", "skiplayernorm", "mvn")),
    ("gelu", ("gelu", "biasgelu", "erf")),
)


def bucket(op_type: str) -> str:
    text = op_type.lower()
    for name, keys in BUCKETS:
        if any(key in text for key in keys):
            return name
    return "other"


def log(message: str) -> None:
    print(f"[profile] {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def summarize(times: dict[str, float], reviews: int) -> dict:
    """Per bucket: milliseconds per review and share of the total; the top op types."""
    total = sum(times.values()) or 1.0
    buckets: dict[str, float] = defaultdict(float)
    for op_type, us in times.items():
        buckets[bucket(op_type)] += us
    return {
        "ms_per_review": round(total / 1000 / reviews, 2),
        "buckets": {
            name: {"ms_per_review": round(us / 1000 / reviews, 2), "share": round(us / total, 3)}
            for name, us in sorted(buckets.items(), key=lambda item: -item[1])
        },
        "top_ops": {op: round(us / total, 3) for op, us in sorted(times.items(), key=lambda item: -item[1])[:12]},
    }


def profile_onnxruntime(onnx_dir: Path, encoded: list[list[int]], work: Path) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.intra_op_num_threads = 1
    options.profile_file_prefix = str(work / "ort_int8")
    session = ort.InferenceSession(str(onnx_dir / ONNX_VARIANTS["int8"]), options, providers=["CPUExecutionProvider"])
    for ids in [encoded[0], *encoded]:  # the first call (allocations) is profiled but dropped below
        tokens = np.asarray([ids], dtype=np.int64)
        session.run(None, {"input_ids": tokens, "attention_mask": np.ones_like(tokens)})
    path = Path(session.end_profiling())
    events = [e for e in json.loads(path.read_text()) if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    runs = [e for e in json.loads(path.read_text()) if e.get("cat") == "Session" and e["name"] == "model_run"]
    cutoff = runs[0]["ts"] + runs[0]["dur"] if runs else 0  # drop the warm-up run
    times: dict[str, float] = defaultdict(float)
    for event in events:
        if event["ts"] >= cutoff:
            times[event["args"].get("op_name", "?")] += event["dur"]
    return {"file": ONNX_VARIANTS["int8"], "raw_profile": path.name, **summarize(times, len(encoded))}


def profile_openvino(onnx_dir: Path, encoded: list[list[int]], work: Path, calibration: int, data: str) -> dict:
    import openvino as ov

    ir = onnx_dir / ov_config.INT8_IR if (onnx_dir / ov_config.INT8_IR).is_file() else work / ov_config.INT8_IR
    if not ir.is_file():
        log(f"nncf static INT8 on {calibration} training reviews -> {ir}")
        ovr.quantize_static(
            onnx_dir, export_stage.calibration_reviews(data, calibration).texts, ir, calibration_source=data
        )
    core = ov.Core()
    properties = {"PERF_COUNT": True, "INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1}
    compiled = core.compile_model(core.read_model(str(ir)), "CPU", properties)
    request = compiled.create_infer_request()
    times: dict[str, float] = defaultdict(float)
    kernels: dict[str, float] = defaultdict(float)
    for k, ids in enumerate([encoded[0], *encoded]):
        tokens = np.asarray([ids], dtype=np.int64)
        request.infer({"input_ids": tokens, "attention_mask": np.ones_like(tokens)})
        if k == 0:
            continue  # warm-up
        for info in request.get_profiling_info():
            us = info.real_time.total_seconds() * 1e6
            times[info.node_type] += us
            kernels[info.exec_type] += us
    total = sum(kernels.values()) or 1.0
    top_kernels = {name: round(us / total, 3) for name, us in sorted(kernels.items(), key=lambda i: -i[1])[:8]}
    precision = str(compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())
    return {"file": ir.name, "inference_precision": precision, **summarize(times, len(encoded)), "kernels": top_kernels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", required=True, type=Path, help="exported folder (with model_quantized.onnx)")
    parser.add_argument("--data", default="imdb")
    parser.add_argument("--reviews", type=int, default=4, help="test reviews profiled, one per call")
    parser.add_argument("--calibration-samples", type=int, default=32, help="for the INT8 IR when the folder has none")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder: raw profiles, an IR")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    # The longest reviews of a small sample: at max length the shares are those of the model's full work.
    sample = stratified_sample(load_split(args.data, "test"), 8 * args.reviews, 42)
    encoded = Predictor(args.onnx, variant="int8").encode(sample.texts)
    encoded = sorted(encoded, key=len, reverse=True)[: args.reviews]
    log(f"{len(encoded)} reviews of {[len(ids) for ids in encoded]} tokens")
    result = {
        "reviews": len(encoded),
        "tokens": [len(ids) for ids in encoded],
        "threads": 1,
        "machine": {k: v for k, v in machine_info().items() if k in ("cpu_model", "isa", "physical_cores")},
        "onnxruntime int8": profile_onnxruntime(args.onnx, encoded, args.work),
        "openvino-int8": profile_openvino(args.onnx, encoded, args.work, args.calibration_samples, args.data),
    }
    text = json.dumps(result, indent=1)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
