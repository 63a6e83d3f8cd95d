"""Batch invariance: does a review get the same answer whatever batch it lands in? Per variant, on real reviews.

For every variant of an exported folder (fp32, optimized, int8 = dynamic INT8 one review per call,
int8-batched = dynamic INT8 in predict's batches; with --static also static INT8 files calibrated on train
reviews), the same test reviews are scored through `Predictor` in several batchings:

- one:          one review per `logits_from_ids` call (nothing else in the call, no padding);
- default:      all reviews in one `logits_from_ids` call: the variant's own plan (length-sorted batches of
                <= 1,024 padded tokens for batched variants, one review per onnxruntime call for int8);
- random32:     random groups of 32 (seeded), each one `logits_from_ids` call: a server's micro-batches;
- random32-raw: random groups of 32, each ONE onnxruntime call padded to its longest review (`run_batch`),
                batched variants only: the worst case of padding and neighbours.

For each pair of batchings: label flips and the max / mean absolute probability difference. JSON output.
Not a timing script (speed: research/invariance_speed.py).

Example:
    .venv/bin/python research/batch_invariance.py --onnx runs/minilm-2k-onnx --data imdb --samples 2000 \
        --static --output runs/invariance/batch_invariance.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from imdb_deploy.metrics import softmax  # noqa: E402
from imdb_deploy.rows.labelled import load_split, stratified_sample  # noqa: E402
from imdb_deploy.runtimes.onnx import onnx_variants, open_onnx_session  # noqa: E402
from imdb_deploy.runtimes.predictor import Predictor  # noqa: E402

PAIRS = (("one", "default"), ("one", "random32"), ("default", "random32"), ("one", "random32-raw"))


def batchings(predictor: Predictor, encoded: list[list[int]], seed: int) -> dict[str, np.ndarray]:
    """Logits of the same reviews under each batching (see the module docstring)."""
    out: dict[str, np.ndarray] = {}
    started = time.perf_counter()
    out["one"] = np.concatenate([predictor.logits_from_ids([ids]) for ids in encoded])
    out["default"] = predictor.logits_from_ids(encoded)
    order = np.random.default_rng(seed).permutation(len(encoded))
    random32 = np.empty_like(out["one"])
    raw = np.empty_like(out["one"])
    for start in range(0, len(order), 32):
        group = order[start : start + 32]
        random32[group] = predictor.logits_from_ids([encoded[i] for i in group])
        if not predictor.batching.per_review:
            raw[group] = predictor.run_batch([encoded[i] for i in group])
    out["random32"] = random32
    if not predictor.batching.per_review:
        out["random32-raw"] = raw
    print(f"  {predictor.variant}: {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    return out


def differences(a: np.ndarray, b: np.ndarray) -> dict:
    pa, pb = softmax(a), softmax(b)
    diff = np.abs(pa - pb)
    return {
        "label_flips": int((pa.argmax(1) != pb.argmax(1)).sum()),
        "max_prob_diff": float(diff.max()),
        "mean_prob_diff": float(diff.mean()),
        "bit_identical": bool(np.array_equal(a, b)),
    }


def static_predictors(onnx_dir: Path, work: Path, calibration: int) -> dict[str, Predictor]:
    """Static INT8 (QDQ and QOperator, per channel) of the folder's fp32 graph, calibrated on train reviews."""
    from invariance_speed import DATA, quantize_static

    from imdb_deploy.folders import load_settings
    from imdb_deploy.runtimes.folder import load_tokenizer
    from imdb_deploy.tokenization import encode

    tokenizer = load_tokenizer(onnx_dir)
    settings = load_settings(onnx_dir, tokenizer)
    train = stratified_sample(load_split(DATA, "train"), calibration, 7)
    feeds = [
        {"input_ids": np.asarray([ids], dtype=np.int64), "attention_mask": np.ones((1, len(ids)), dtype=np.int64)}
        for ids in encode(tokenizer, train.texts, settings)
    ]
    work.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, qdq in (("static-qdq", True), ("static-qop", False)):
        path = work / f"{name}.onnx"
        if not path.is_file():
            quantize_static(onnx_dir / "model.onnx", path, feeds, qdq)
        predictor = Predictor(onnx_dir, variant="optimized")  # batched plan, folder's tokenizer and settings
        predictor.session = open_onnx_session(path)
        predictor.model_path = path
        predictor.variant = name
        out[name] = predictor
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, required=True, help="folder written by `imdb-deploy export --quantize`")
    parser.add_argument("--data", default="imdb", help="Hub id (imdb) or a local folder with train/test files")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--static", action="store_true", help="also static INT8 calibrated on train reviews")
    parser.add_argument("--calibration", type=int, default=64, help="train reviews for static calibration")
    parser.add_argument("--work", type=Path, default=Path("/tmp/imdb-invariance-static"))
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "invariance" / "batch_invariance.json")
    args = parser.parse_args()

    data = stratified_sample(load_split(args.data, "test"), args.samples, args.seed)
    labels = np.asarray(data.labels)
    present = [name for name in onnx_variants(args.onnx) if name != "fp16"]
    # the default first, so a long run has the figures that matter soonest (JSON is rewritten after each)
    order = [name for name in ("int8", "int8-batched", "optimized") if name in present]
    predictors = {name: Predictor(args.onnx, variant=name) for name in order}
    if args.static:
        predictors.update(static_predictors(args.onnx, args.work, args.calibration))
    predictors.update({name: Predictor(args.onnx, variant=name) for name in present if name not in predictors})
    encoded = next(iter(predictors.values())).encode(data.texts)
    report = {
        "onnx_dir": str(args.onnx),
        "data": data.source,
        "split": "test",
        "samples": len(data),
        "seed": args.seed,
        "mean_tokens": float(np.mean([len(ids) for ids in encoded])),
        "static_calibration": {"split": "train", "reviews": args.calibration} if args.static else None,
        "variants": {},
    }
    defaults: dict[str, np.ndarray] = {}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for name, predictor in predictors.items():
        logits = batchings(predictor, encoded, args.seed)
        defaults[name] = logits["default"]
        report["variants"][name] = {
            **predictor.describe(),
            "accuracy_default": float((logits["default"].argmax(1) == labels).mean()),
            "pairs": {f"{a} vs {b}": differences(logits[a], logits[b]) for a, b in PAIRS if b in logits},
        }
        if "optimized" in defaults:  # fused fp32 agrees with PyTorch on every label (the export's gate)
            for other, values in defaults.items():
                report["variants"][other]["vs_optimized_default"] = differences(defaults["optimized"], values)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        for pair, d in report["variants"][name]["pairs"].items():
            print(
                f"  {name:13s} {pair:20s} flips {d['label_flips']:3d}  max|dp| {d['max_prob_diff']:.2e}  "
                f"mean|dp| {d['mean_prob_diff']:.2e}  identical {d['bit_identical']}",
                file=sys.stderr,
            )
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
