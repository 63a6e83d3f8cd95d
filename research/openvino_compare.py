"""OpenVINO: our predict path against OpenVINO (as exported, and nncf static INT8) on the same token ids.

Every candidate scores the same seeded sample of labelled reviews from the SAME token ids (Predictor.encode),
with the same thread count, in Predictor's length-sorted, token-capped batches (except PyTorch, which uses
sorted batches of 32 as `evaluate` does). Per candidate: reviews/s (median of --repeats passes after a warm-up),
label agreement and max probability difference with PyTorch fp32 and with ONNX fp32, accuracy, and batch
invariance: the same reviews scored one review per call (no padding), compared with the default batching
(max probability difference, label flips). Static INT8 IRs are calibrated on TRAINING reviews and cached in
--work (make them outside the timed run with --stage quantize).

Examples:
    .venv/bin/python research/openvino_compare.py --stage quantize --onnx runs/minilm-2k-onnx --data imdb \
        --work runs/ov-minilm
    .venv/bin/python research/openvino_compare.py --onnx runs/minilm-2k-onnx --data imdb \
        --work runs/ov-minilm --samples 256 --threads 2 --output runs/ov-minilm/compare.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imdb_deploy.metrics import softmax  # noqa: E402
from imdb_deploy.rows.labelled import load_split, stratified_sample  # noqa: E402
from imdb_deploy.runtimes import config as ov_config  # noqa: E402
from imdb_deploy.runtimes import openvino as ovr  # noqa: E402
from imdb_deploy.runtimes.predictor import Predictor  # noqa: E402

# name -> (kind, settings). kind: pytorch | ort | ov; ov settings: graph, precision, hint.
CANDIDATES = {
    "pytorch-fp32": ("pytorch", {}),
    "ort-fp32": ("ort", {"variant": "fp32"}),
    "predict": ("ort", {"variant": "auto"}),
    "ov-fp32": ("ov", {"graph": "fp32"}),
    "ov-optimized": ("ov", {"graph": "optimized"}),
    "ov-fp32-f32": ("ov", {"graph": "fp32", "precision": "f32"}),
    "ov-int8": ("ov", {"graph": "int8-fp32"}),
    "ov-int8-optimized": ("ov", {"graph": "int8-optimized"}),
    "ov-int8-f32": ("ov", {"graph": "int8-fp32", "precision": "f32"}),
}


def log(message: str) -> None:
    print(f"[compare] {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def int8_path(work: Path, source: str, samples: int) -> Path:
    return work / f"int8-{source}-{samples}" / ov_config.INT8_IR


def quantize(args) -> None:
    train = stratified_sample(load_split(args.data, "train"), args.calibration_samples, args.seed)
    for source in args.sources.split(","):
        path = int8_path(Path(args.work), source, len(train))
        started = time.perf_counter()
        _, record = ovr.quantize_static(
            args.onnx, train.texts, path, source=source, calibration_source=f"{train.source} [train]"
        )
        record["seconds"] = round(time.perf_counter() - started, 1)
        (path.parent / "record.json").write_text(json.dumps(record, indent=2) + "\n")
        log(f"{path}: {record}")


def open_candidate(name: str, args, torch_dir: str):
    """A function scoring token ids in its default batching, one scoring one review per call, and info."""
    kind, settings = CANDIDATES[name]
    if kind == "pytorch":
        import torch

        from imdb_deploy.runtimes.folder import load_tokenizer, load_torch_classifier
        from imdb_deploy.tokenization import length_sorted_batches, pad

        torch.set_num_threads(args.threads)
        model = load_torch_classifier(torch_dir)
        pad_id = load_tokenizer(torch_dir).pad_token_id

        def score(ids, batch_size=32):
            out = np.empty((len(ids), 2), dtype=np.float32)
            with torch.inference_mode():
                for batch in length_sorted_batches([len(x) for x in ids], batch_size):
                    arrays = pad([ids[i] for i in batch], pad_id)
                    out[batch] = model(**{k: torch.from_numpy(v) for k, v in arrays.items()}).logits.numpy()
            return out

        return score, lambda ids: score(ids, 1), {"file": torch_dir, "threads": torch.get_num_threads()}
    if kind == "ort":
        predictor = Predictor(args.onnx, variant=settings["variant"], threads=args.threads)
        info = {"file": str(predictor.model_path), "model_bytes": predictor.model_path.stat().st_size}
        return predictor.logits_from_ids, lambda ids: one_per_call(predictor, ids), info
    graph = settings["graph"]
    if graph.startswith("int8-"):
        graph = str(int8_path(Path(args.work), graph.removeprefix("int8-"), args.calibration_samples))
    model = ovr.OpenVINOModel(args.onnx, graph, threads=args.threads, precision=settings.get("precision"))
    return model.logits_from_ids, lambda ids: one_per_call(model, ids), model.info


def one_per_call(model, ids) -> np.ndarray:
    """Every review alone in its call (no padding, no neighbours): the other batching of the invariance check."""
    return np.concatenate([model.run_batch([x]) for x in ids])


def timed(score, ids, repeats: int) -> tuple[np.ndarray, list[float]]:
    score(ids[:32])  # warm-up: allocations, thread pools, first shapes
    seconds, logits = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        logits = score(ids)
        seconds.append(time.perf_counter() - started)
    return logits, seconds


def compare(args) -> None:
    from imdb_deploy.runtimes.folder import source_model

    torch_dir = args.torch or source_model(args.onnx)
    data = stratified_sample(load_split(args.data, "test"), args.samples, args.seed)
    labels = np.asarray(data.labels)
    encoder = Predictor(args.onnx, variant="fp32")
    ids = encoder.encode(data.texts)
    log(f"{len(ids)} reviews, {sum(map(len, ids))} tokens, {args.threads} threads; rows {args.rows}")
    results, probabilities = {}, {}
    for name in args.rows.split(","):
        started = time.perf_counter()
        score, single, info = open_candidate(name, args, torch_dir)
        load = time.perf_counter() - started
        logits, seconds = timed(score, ids, args.repeats)
        probs = softmax(logits)
        probabilities[name] = probs
        row = {
            **info,
            "load_seconds": round(load, 2),
            "seconds": [round(s, 3) for s in seconds],
            "reviews_per_s": len(ids) / statistics.median(seconds),
            "accuracy": float((probs.argmax(1) == labels).mean()) if not args.random_weights else None,
        }
        if args.invariance and name != "pytorch-fp32":
            one = softmax(single(ids))
            row["invariance_one_per_call"] = {
                "max_prob_diff": float(np.abs(one - probs).max()),
                "label_flips": int((one.argmax(1) != probs.argmax(1)).sum()),
            }
        results[name] = row
        log(f"{name}: {row['reviews_per_s']:.2f} reviews/s {row.get('invariance_one_per_call', '')}")
    for name, row in results.items():
        for ref in ("pytorch-fp32", "ort-fp32"):
            if ref in probabilities and ref != name:
                a, b = probabilities[name], probabilities[ref]
                row[f"vs_{ref}"] = {
                    "agreement": float((a.argmax(1) == b.argmax(1)).mean()),
                    "max_prob_diff": float(np.abs(a - b).max()),
                }
        for ref in ("predict", "pytorch-fp32"):
            if ref in results:
                row[f"ratio_vs_{ref}"] = row["reviews_per_s"] / results[ref]["reviews_per_s"]
    from imdb_deploy.machine import machine_info

    report = {
        "onnx": args.onnx,
        "torch": torch_dir,
        "samples": len(ids),
        "tokens": int(sum(map(len, ids))),
        "threads": args.threads,
        "repeats": args.repeats,
        "calibration_samples": args.calibration_samples,
        "machine": {k: v for k, v in machine_info().items() if k != "flags"},
        "rows": results,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    # The token ids and reference probabilities, for research/openvino_ep.py in its own venv.
    np.savez(
        Path(args.output).with_suffix(".npz"),
        ids=np.concatenate(ids),
        offsets=np.cumsum([0] + [len(x) for x in ids]),
        labels=labels,
        pad_id=encoder.pad_id,
        **{f"probs_{name}": probs for name, probs in probabilities.items()},
    )
    for name, row in results.items():
        vs = row.get("vs_pytorch-fp32", {})
        print(
            f"{name:<20} {row['reviews_per_s']:8.2f} r/s  x{row.get('ratio_vs_predict', 0):.2f} predict  "
            f"agree(pt) {vs.get('agreement', float('nan')):.4f}  acc {row['accuracy']}  "
            f"inv {row.get('invariance_one_per_call')}  prec {row.get('inference_precision', '-')}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("quantize", "compare"), default="compare")
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--torch", default=None, help="PyTorch folder; default: the export report's source")
    parser.add_argument("--data", default="imdb", help="Hub id (imdb) or a local folder with train/test files")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--calibration-samples", type=int, default=ov_config.DEFAULT_CALIBRATION_SAMPLES)
    parser.add_argument("--sources", default="fp32,optimized", help="graphs to quantize (--stage quantize)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rows", default=",".join(CANDIDATES))
    parser.add_argument("--no-invariance", dest="invariance", action="store_false")
    parser.add_argument("--random-weights", action="store_true", help="accuracy is meaningless: leave it out")
    parser.add_argument("--work", required=True, help="folder for the INT8 IRs")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if args.stage == "quantize":
        quantize(args)
    else:
        args.output = args.output or str(Path(args.work) / "compare.json")
        compare(args)


if __name__ == "__main__":
    main()
