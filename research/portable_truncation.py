"""How an exported folder should tell other consumers to read a review: the measurements behind the cut in the graph.

    python -m research.portable_truncation runs/minilm-2k-onnx --data imdb --stage all

Stages (each prints a line and adds its numbers to --out):
- `tokenizer`: what transformers.js does with the folder as export writes it today (no cut in the graph): its
  tokenizer cuts at tokenizer_config.json's model_max_length and keeps [CLS] + the first max_length - 1 tokens
  (no [SEP]). Run through js/classify.mjs on the plain fp32 graph with model_max_length 512 (today's value) and
  with the training length, against Predictor fp32: label agreement and max |probability difference|.
- `head-only`: accuracy of the same model, default variant, on --accuracy-samples test reviews cut head+tail (as
  trained) and head-only (what a tokenizer can express), and their label agreement.
- `speed`: Predictor's default (INT8, one review per call) on the plain export and on the export with the cut
  in its graphs (portable.with_truncation), interleaved, --rounds passes over --speed-samples reviews: the ratio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from imdb_deploy.export.card import plain_name
from imdb_deploy.export.portable import ROOT_FILES, with_truncation
from imdb_deploy.fileio import write_json_atomic
from imdb_deploy.metrics import softmax
from imdb_deploy.rows.labelled import load_split, stratified_sample
from imdb_deploy.runtimes.predictor import Predictor
from imdb_deploy.tokenization import TokenizationSettings, encode

JS = Path(__file__).resolve().parent.parent / "js"


def tokenizer_only(export_dir: Path, texts: list[str], work: Path) -> dict:
    """transformers.js on the plain graph, cut by its tokenizer at 512 and at the training length."""
    predictor = Predictor(export_dir, variant="fp32")
    expected = softmax(predictor.logits(texts))
    names = predictor.label_names
    lines = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts))
    out = {}
    for limit in (512, predictor.settings.max_length):
        folder = work / f"plain-{limit}"
        (folder / "onnx").mkdir(parents=True)
        for name in ROOT_FILES:
            if (export_dir / name).is_file():
                shutil.copy2(export_dir / name, folder / name)
        shutil.copy2(export_dir / "model.onnx", folder / "onnx" / "model.onnx")
        config = json.loads((folder / "tokenizer_config.json").read_text())
        (folder / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": limit}))
        command = ["node", str(JS / "classify.mjs"), str(folder), "--dtype", "fp32"]
        done = subprocess.run(command, input=lines, capture_output=True, text=True, check=True)
        rows = [json.loads(line) for line in done.stdout.splitlines()]
        got = np.array([[row["probabilities"][n] for n in names] for row in rows])
        out[f"model_max_length {limit}"] = {
            "agreement": float((got.argmax(axis=1) == expected.argmax(axis=1)).mean()),
            "max_prob_diff": float(np.abs(got - expected).max()),
        }
    return out


def head_only(export_dir: Path, texts: list[str], labels: np.ndarray) -> dict:
    """Accuracy of the default variant with the training cut and with a head-only cut of the same length."""
    predictor = Predictor(export_dir)
    trained = predictor.settings
    head = TokenizationSettings(max_length=trained.max_length, truncation="head", label_names=trained.label_names)
    out = {"variant": predictor.variant, "reviews": len(texts)}
    predictions = {}
    for name, settings in (("head+tail", trained), ("head", head)):
        ids = encode(predictor.tokenizer, texts, settings)
        predictions[name] = predictor.logits_from_ids(ids).argmax(axis=1)
        out[f"accuracy {name}"] = float((predictions[name] == labels).mean())
    out["agreement"] = float((predictions["head+tail"] == predictions["head"]).mean())
    out["longer_than_max_length"] = int(
        sum(len(ids) > trained.max_length for ids in predictor.tokenizer(texts, verbose=False)["input_ids"])
    )
    return out


def speed(export_dir: Path, texts: list[str], rounds: int, work: Path) -> dict:
    """Reviews per second of Predictor's default on the plain and the cut export, interleaved."""
    cut_dir = work / "cut"
    with_truncation(export_dir, cut_dir)
    predictors = {"plain": Predictor(export_dir, variant="int8"), "cut": Predictor(cut_dir, variant="int8")}
    encoded = predictors["plain"].encode(texts)
    seconds: dict[str, list[float]] = {name: [] for name in predictors}
    for predictor in predictors.values():  # warm-up
        predictor.logits_from_ids(encoded[:8])
    for _ in range(rounds):
        for name, predictor in predictors.items():
            started = time.perf_counter()
            predictor.logits_from_ids(encoded)
            seconds[name].append(time.perf_counter() - started)
    ratios = [p / c for p, c in zip(seconds["plain"], seconds["cut"], strict=True)]
    return {
        "reviews": len(texts),
        "rounds": rounds,
        "seconds": {name: [round(s, 3) for s in values] for name, values in seconds.items()},
        "speed ratio cut/plain (median)": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("--data", default="imdb")
    parser.add_argument("--stage", choices=("tokenizer", "head-only", "speed", "all"), default="all")
    parser.add_argument("--samples", type=int, default=200, help="reviews for the tokenizer stage")
    parser.add_argument("--accuracy-samples", type=int, default=1000)
    parser.add_argument("--speed-samples", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    test = load_split(args.data, "test")
    record: dict = {"export": args.export_dir.name, "data": plain_name(args.data), "seed": args.seed}
    with tempfile.TemporaryDirectory(prefix="portable-truncation-") as tmp:
        work = Path(tmp)
        if args.stage in ("tokenizer", "all"):
            sample = stratified_sample(test, args.samples, args.seed)
            record["tokenizer"] = tokenizer_only(args.export_dir, list(sample.texts), work)
            print(f"tokenizer cut (transformers.js, fp32): {record['tokenizer']}", file=sys.stderr)
        if args.stage in ("head-only", "all"):
            sample = stratified_sample(test, args.accuracy_samples, args.seed)
            record["head-only"] = head_only(args.export_dir, list(sample.texts), np.asarray(sample.labels))
            print(f"head-only: {record['head-only']}", file=sys.stderr)
        if args.stage in ("speed", "all"):
            sample = stratified_sample(test, args.speed_samples, args.seed + 1)
            record["speed"] = speed(args.export_dir, list(sample.texts), args.rounds, work)
            print(f"speed: {record['speed']}", file=sys.stderr)
    if args.out:
        write_json_atomic(args.out, record)
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
