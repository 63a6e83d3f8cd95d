"""The default predict path on two ONNX folders of the same model, same reviews, one run: does the export of
the current stack (torch's exporter, transformers 5) run at least as fast as optimum's (transformers 4.57)?

Each folder is scored by `Predictor` with its default variant (what `predict` runs), in interleaved rounds
(A, B, A, B, ...) so drift of the machine's speed hits both alike; the figure per folder is its best round and
the ratio compares the best rounds. The JSON also holds every round, the fused operators of each folder's
variants, the exporter that wrote it, and the machine (ISA, cores).

    # a model folder (a fine-tuned one, or `imdb-deploy bench`'s random distilbert-base), exported both ways:
    .venv/bin/imdb-deploy export MODEL -o runs/new-onnx --quantize --no-verify
    .venv-optimum/bin/imdb-deploy export MODEL -o runs/optimum-onnx --quantize --no-verify --exporter optimum
    .venv/bin/python scripts/bench_exporters.py runs/new-onnx runs/optimum-onnx --data imdb --samples 200 \\
        --output runs/bench_exporters.json

--data is the Hub id `imdb` or a local folder with train/test files (see `imdb-deploy train --help`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from imdb_deploy.folders import load_export_report
from imdb_deploy.machine import machine_info
from imdb_deploy.rows.labelled import load_split, stratified_sample
from imdb_deploy.runtimes.predictor import Predictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("new", type=Path, help="ONNX folder of the current export")
    parser.add_argument("baseline", type=Path, help="ONNX folder to compare with (optimum's export)")
    parser.add_argument("--data", default="imdb", help="labelled reviews: Hub id or local folder [imdb]")
    parser.add_argument("--split", default="test")
    parser.add_argument("--samples", type=int, default=200, help="reviews per round [200]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per folder, interleaved [3]")
    parser.add_argument("--threads", type=int, default=None, help="cores [all physical cores]")
    parser.add_argument("--output", type=Path, default=Path("runs/bench_exporters.json"))
    args = parser.parse_args()

    texts = stratified_sample(load_split(args.data, args.split), args.samples, seed=0).texts
    folders = {"new": args.new, "baseline": args.baseline}
    predictors = {name: Predictor(folder, threads=args.threads) for name, folder in folders.items()}
    for predictor in predictors.values():
        predictor.predict_proba(texts[:8])  # warm-up: onnxruntime's first calls allocate
    rounds: dict[str, list[float]] = {name: [] for name in folders}
    answers = {}
    for _ in range(args.rounds):
        for name, predictor in predictors.items():
            started = time.perf_counter()
            answers[name] = predictor.predict_proba(texts)
            rounds[name].append(len(texts) / (time.perf_counter() - started))
    best = {name: max(values) for name, values in rounds.items()}
    labels_equal = float((answers["new"].argmax(1) == answers["baseline"].argmax(1)).mean())
    result = {
        "kind": "exporters",
        "samples": len(texts),
        "threads": args.threads,
        "folders": {
            name: {
                "path": str(folder),
                "variant": predictors[name].variant,
                "exporter": load_export_report(folder).get("exporter") or {"name": "optimum (imdb-deploy 0.1.0)"},
                "versions": load_export_report(folder).get("versions", {}),
                "operators": {
                    variant: entry.get("operators")
                    for variant, entry in load_export_report(folder).get("variants", {}).items()
                },
                "reviews_per_second": round(best[name], 2),
                "rounds": [round(value, 2) for value in rounds[name]],
            }
            for name, folder in folders.items()
        },
        "ratio_new_to_baseline": round(best["new"] / best["baseline"], 3),
        "label_agreement": labels_equal,
        "machine": machine_info(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"new {best['new']:.2f} vs baseline {best['baseline']:.2f} reviews/s: "
        f"{result['ratio_new_to_baseline']:.3f}x; labels equal on {labels_equal:.2%}; wrote {args.output}"
    )


if __name__ == "__main__":
    main()
