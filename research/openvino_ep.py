"""OpenVINO: onnxruntime's OpenVINO execution provider (the `onnxruntime-openvino` package), measured in a
THROWAWAY venv, because that package replaces `onnxruntime` (and pins its own, older version):

    python3 -m venv /tmp/ov-ep-venv && /tmp/ov-ep-venv/bin/pip install onnxruntime-openvino==1.24.1 numpy
    /tmp/ov-ep-venv/bin/python research/openvino_ep.py --onnx runs/minilm-2k-onnx \
        --ids runs/ov-minilm/compare.npz --threads 2 --output runs/ov-minilm/ep.json

It reads the token ids and reference probabilities written by research/openvino_compare.py (same reviews, same
ids), batches them exactly as Predictor does (imdb_deploy.tokenization, which needs only numpy), and times each
graph of the export under the OpenVINO EP and, for comparison in the same process, under this onnxruntime's CPU EP.
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

from imdb_deploy.tokenization import length_sorted_batches, pad  # noqa: E402

GRAPHS = {"fp32": "model.onnx", "optimized": "model_optimized.onnx", "int8": "model_quantized.onnx"}


def softmax(logits):
    z = logits.astype(np.float64) - logits.max(1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


def main() -> None:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--ids", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rows", default="ep:fp32,ep:optimized,ep:int8,cpu:int8")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    dump = np.load(args.ids)
    flat, offsets = dump["ids"], dump["offsets"]
    ids = [flat[offsets[i] : offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]
    batches = length_sorted_batches([len(x) for x in ids], 64, 1024)
    rows = {}
    for spec in args.rows.split(","):
        provider, graph = spec.split(":")
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        if provider == "ep":
            providers = [("OpenVINOExecutionProvider", {"device_type": "CPU", "num_of_threads": str(args.threads)})]
        else:
            providers = ["CPUExecutionProvider"]
        started = time.perf_counter()
        try:
            session = ort.InferenceSession(str(Path(args.onnx) / GRAPHS[graph]), options, providers=providers)
        except Exception as exc:  # report what the EP refuses, and go on
            rows[spec] = {"error": str(exc).strip().splitlines()[0][:300]}
            print(spec, rows[spec], file=sys.stderr)
            continue
        load = time.perf_counter() - started
        names = [i.name for i in session.get_inputs()]

        def score(batching, session=session, names=names):
            out = np.empty((len(ids), 2), dtype=np.float32)
            for batch in batching:
                feed = pad([ids[i] for i in batch], int(dump["pad_id"]))
                out[batch] = session.run(None, {n: feed[n] for n in names})[0]
            return out

        score(batches[:1])
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            logits = score(batches)
            seconds.append(time.perf_counter() - started)
        probs = softmax(logits)
        alone = softmax(score([[i] for i in range(len(ids))]))
        row = {
            "providers": session.get_providers(),
            "load_seconds": round(load, 2),
            "seconds": [round(s, 3) for s in seconds],
            "reviews_per_s": len(ids) / statistics.median(seconds),
            "invariance_one_per_call": {
                "max_prob_diff": float(np.abs(alone - probs).max()),
                "label_flips": int((alone.argmax(1) != probs.argmax(1)).sum()),
            },
            "accuracy": float((probs.argmax(1) == dump["labels"]).mean()),
        }
        for key in dump.files:
            if key.startswith("probs_"):
                ref = dump[key]
                row[f"vs_{key[6:]}"] = {
                    "agreement": float((ref.argmax(1) == probs.argmax(1)).mean()),
                    "max_prob_diff": float(np.abs(ref - probs).max()),
                }
        rows[spec] = row
        print(spec, json.dumps(row), file=sys.stderr)
    report = {"onnxruntime": ort.__version__, "threads": args.threads, "samples": len(ids), "rows": rows}
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
