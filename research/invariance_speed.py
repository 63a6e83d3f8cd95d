"""Batch invariance: what it costs in speed, on this CPU, for each exact scheme.

Two model sizes with random weights (speed does not depend on the weights): distilbert-base
(DistilBertConfig(), 512 tokens) and MiniLM-L6-H384 in DistilBERT form (256 tokens), both with the uncased
tokenizer (--tokenizer), exported by `imdb-deploy export --quantize` (fused graph, [CLS]-only last layer, dynamic
INT8 per channel). Timed on the same seeded real IMDb test reviews, interleaved (round-robin, `--repeats`
rounds, best and median kept), over all reviews and over the shortest and the longest quarter:

- int8-batched: today's predict path, dynamic INT8 in length-sorted batches of <= 1,024 padded tokens
  (batch-dependent).
- int8: the same file, one review per onnxruntime call, 2 intra-op threads (invariant by construction).
- int8-2x1: one review per call, one session with 1 intra-op thread run by 2 Python threads at once.
- optimized: fused fp32 in predict's batches (row-independent kernels).
- static-qdq / static-qop: static INT8 (per-channel int8 weights, uint8 activations with fixed scales
  calibrated on 64 TRAIN reviews, one review per calibration feed so padding never enters a range) of the
  [CLS]-only fp32 graph, in predict's batches.

Examples:
    .venv/bin/python research/invariance_speed.py --stage prepare --data imdb --tokenizer distilbert-base-uncased
    .venv/bin/python research/invariance_speed.py --stage time --size base --samples 128 --data imdb
    .venv/bin/python research/invariance_speed.py --stage time --size minilm --samples 256 --data imdb

(on otherwise idle cores; --data: the Hub id or a local folder with train/test files, see `imdb-deploy train --help`)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imdb_deploy.folders import load_settings  # noqa: E402
from imdb_deploy.rows.labelled import load_split, stratified_sample  # noqa: E402
from imdb_deploy.runtimes.folder import load_tokenizer  # noqa: E402
from imdb_deploy.runtimes.onnx import open_onnx_session  # noqa: E402
from imdb_deploy.runtimes.predictor import Predictor  # noqa: E402
from imdb_deploy.tokenization import encode  # noqa: E402
from imdb_deploy.training.architectures import save_random_classifier  # noqa: E402

SIZES = {
    "base": ("distilbert-base", 512),
    "minilm": ("distilbert-base:n_layers=6,dim=384,hidden_dim=1536,n_heads=12", 256),
}


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def prepare(work: Path, size: str, calibration: int, data: str, tokenizer: str) -> Path:
    """Random-weight model, its export (fp32, fused, dynamic INT8) and two static INT8 files."""
    from imdb_deploy.export.config import ExportConfig
    from imdb_deploy.export.stage import export

    spec, max_length = SIZES[size]
    folder = work / size
    onnx_dir = folder / "onnx"
    if not (onnx_dir / "model_quantized.onnx").is_file():
        save_random_classifier(spec, folder / "model", tokenizer=tokenizer, max_length=max_length)
        export(folder / "model", onnx_dir, ExportConfig(quantize=True, verify=False, overwrite=True), log=log)
    tokenizer = load_tokenizer(onnx_dir)
    settings = load_settings(onnx_dir, tokenizer)
    train = stratified_sample(load_split(data, "train"), calibration, 7)
    feeds = [
        {"input_ids": np.asarray([ids], dtype=np.int64), "attention_mask": np.ones((1, len(ids)), dtype=np.int64)}
        for ids in encode(tokenizer, train.texts, settings)
    ]
    for name, qdq in (("static-qdq", True), ("static-qop", False)):
        path = folder / f"{name}.onnx"
        if not path.is_file():
            try:
                quantize_static(onnx_dir / "model.onnx", path, feeds, qdq)
            except Exception as exc:  # noqa: BLE001 - a research candidate that cannot be built is reported, not fatal
                log(f"{name}: quantize_static failed: {exc!r}")
    return onnx_dir


def quantize_static(source: Path, target: Path, feeds: list[dict], qdq: bool) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    pre = target.with_name(target.stem + "-pre.onnx")
    if not pre.is_file():
        quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
    started = time.perf_counter()
    ort_quantize_static(
        str(pre),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ if qdq else QuantFormat.QOperator,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        extra_options={"MatMulConstBOnly": True},
    )
    log(f"{target.name}: calibrated on {len(feeds)} train reviews in {time.perf_counter() - started:.0f}s")


class TwoSingleThreaded:
    """One review per call on one 1-thread session, run by `workers` Python threads at once."""

    def __init__(self, onnx_dir: Path, workers: int = 2) -> None:
        self.predictor = Predictor(onnx_dir, variant="int8", threads=1)
        self.session = self.predictor.session
        self.pool = ThreadPoolExecutor(workers)

    def _one(self, ids: list[int]) -> np.ndarray:
        feed = {"input_ids": np.asarray([ids], dtype=np.int64), "attention_mask": np.ones((1, len(ids)), np.int64)}
        return self.session.run(["logits"], feed)[0][0]

    def logits_from_ids(self, encoded) -> np.ndarray:
        return np.stack(list(self.pool.map(self._one, encoded)))


class StaticRunner:
    """A static INT8 file in predict's batches, through a Predictor pointed at a copy-free temp folder."""

    def __init__(self, onnx_dir: Path, path: Path) -> None:
        self.predictor = Predictor(onnx_dir, variant="optimized")
        self.predictor.session = open_onnx_session(path)
        self.predictor.model_path = path

    def logits_from_ids(self, encoded) -> np.ndarray:
        return self.predictor.logits_from_ids(encoded)


def candidates(onnx_dir: Path, folder: Path) -> dict:
    out = {
        "int8-batched": lambda: Predictor(onnx_dir, variant="int8-batched"),
        "int8": lambda: Predictor(onnx_dir, variant="int8"),
        "int8-2x1": lambda: TwoSingleThreaded(onnx_dir),
        "optimized": lambda: Predictor(onnx_dir, variant="optimized"),
    }
    for name in ("static-qdq", "static-qop"):
        path = folder / f"{name}.onnx"
        if path.is_file():
            out[name] = lambda path=path: StaticRunner(onnx_dir, path)
    return out


def time_all(makers: dict, sets: dict, encoded, repeats: int) -> dict:
    times = {(name, s): [] for name in makers for s in sets}
    logits = {}
    for r in range(repeats):
        for name, make in makers.items():
            runner = make()
            runner.logits_from_ids(encoded[:4])  # warm-up, untimed
            for s, indices in sets.items():
                subset = [encoded[i] for i in indices]
                started = time.perf_counter()
                result = runner.logits_from_ids(subset)
                times[(name, s)].append(time.perf_counter() - started)
                if s == "all":
                    logits[name] = result
                log(f"round {r + 1} {name:14s} {s:5s} {len(subset) / times[(name, s)][-1]:7.2f} reviews/s")
            del runner
            gc.collect()
    out: dict = {}
    for (name, s), t in times.items():
        n = len(sets[s])
        out.setdefault(name, {})[s] = {
            "seconds": [round(x, 3) for x in t],
            "reviews_per_s_best": n / min(t),
            "reviews_per_s_median": n / statistics.median(t),
        }
    reference = logits["int8"]
    for name, value in logits.items():
        out[name]["max_abs_logit_diff_vs_int8_per_review"] = float(np.abs(value - reference).max())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["prepare", "time"], required=True)
    parser.add_argument("--data", default="imdb", help="Hub id (imdb) or a local folder with train/test files")
    parser.add_argument(
        "--tokenizer", default="distilbert-base-uncased", help="uncased tokenizer (Hub id or folder) of the models"
    )
    parser.add_argument("--size", choices=list(SIZES), action="append")
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--calibration", type=int, default=64, help="train reviews for static INT8")
    parser.add_argument("--only", default="", help="comma-separated candidates (default: all)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/imdb-invariance-speed"))
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "invariance")
    args = parser.parse_args()
    sizes = args.size or list(SIZES)
    for size in sizes:
        onnx_dir = prepare(args.work, size, args.calibration, args.data, args.tokenizer)
        if args.stage == "prepare":
            continue
        tokenizer = load_tokenizer(onnx_dir)
        settings = load_settings(onnx_dir, tokenizer)
        data = stratified_sample(load_split(args.data, "test"), args.samples, args.seed)
        encoded = encode(tokenizer, data.texts, settings)
        lengths = [len(ids) for ids in encoded]
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        quarter = len(order) // 4
        sets = {"all": list(range(len(lengths))), "short": order[:quarter], "long": order[-quarter:]}
        log(f"{size}: {len(lengths)} reviews, mean {np.mean(lengths):.0f} tokens, max length {settings.max_length}")
        makers = candidates(onnx_dir, args.work / size)
        only = {name for name in args.only.split(",") if name}
        makers = {name: make for name, make in makers.items() if not only or name in only or name == "int8"}
        results = time_all(makers, sets, encoded, args.repeats)
        report = {
            "size": size,
            "spec": SIZES[size][0],
            "max_length": settings.max_length,
            "samples": len(lengths),
            "mean_tokens": {s: float(np.mean([lengths[i] for i in idx])) for s, idx in sets.items()},
            "calibration_train_reviews": args.calibration,
            "threads": os.cpu_count(),
            "candidates": results,
        }
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"speed-{size}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        log(f"wrote {path}")
        base = results.get("int8-batched", results["int8"])
        for name, r in results.items():
            best = {s: r[s]["reviews_per_s_best"] for s in sets}
            log(
                f"{name:14s} "
                + "  ".join(f"{s} {best[s]:6.2f} ({best[s] / base[s]['reviews_per_s_best']:.2f}x)" for s in sets)
                + f"  max|dlogit| vs int8 {r['max_abs_logit_diff_vs_int8_per_review']:.2e}"
            )


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
