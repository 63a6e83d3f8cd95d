"""transformers.js (Node and headless Chromium) against imdb-deploy's Predictor on real reviews of an export.

    python scripts/portable_check.py runs/minilm-2k-onnx --data imdb --samples 200 \
        --out docs/results/portable-minilm.json --screenshot docs/img/browser.png

Steps: (1) the export with the training cut inside its graphs (an export made before that is rebuilt into
--work by imdb_deploy.export.portable.with_truncation, its fused operators compared), (2) its transformers.js copy
(portable.transformersjs_folder), (3) Predictor on the export as given, fp32 and int8, on a stratified sample of
the split, (4) js/classify.mjs (Node, onnxruntime-node) with dtype fp32 and q8, and js/browser.mjs (headless
Chromium, WASM) likewise, one review per call; per pair, label agreement and the largest probability difference.
Needs `cd js && ONNXRUNTIME_NODE_INSTALL=skip npm ci` and, for the browser, /usr/bin/chromium. Prints a table on
stderr and writes the numbers (with the machine and versions) to --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from imdb_deploy.export.card import plain_name
from imdb_deploy.export.portable import graph_truncation, transformersjs_folder, with_truncation
from imdb_deploy.fileio import write_json_atomic
from imdb_deploy.machine import versions
from imdb_deploy.metrics import softmax
from imdb_deploy.rows.labelled import load_split, stratified_sample
from imdb_deploy.runtimes.onnx import onnx_path
from imdb_deploy.runtimes.predictor import Predictor

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "js"
PAIRS = (("fp32", "fp32"), ("q8", "int8"))  # transformers.js dtype, Predictor variant


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("--data", default="imdb")
    parser.add_argument("--split", default="test")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "portable-check")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--screenshot", type=Path, default=None)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    record: dict = {
        "export": args.export_dir.name,
        "data": plain_name(args.data),
        "split": args.split,
        "seed": args.seed,
    }
    folder = args.export_dir
    if graph_truncation(onnx_path(folder, "fp32")) is None:
        folder = args.work / f"{args.export_dir.name}-cut"
        record["operators"] = with_truncation(args.export_dir, folder)
        for name, change in record["operators"].items():
            same = "same" if change["before"] == change["after"] else "CHANGED"
            print(f"{name:<13} fused operators {same}: {change['after']}", file=sys.stderr)
    js_folder = transformersjs_folder(folder, args.work / "js" / f"{args.export_dir.name}-js")

    reviews = stratified_sample(load_split(args.data, args.split), args.samples, args.seed)
    texts = list(reviews.texts)
    record["reviews"] = len(texts)
    lines = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts))
    predictors = {variant: Predictor(args.export_dir, variant=variant) for _, variant in PAIRS}
    expected = {variant: softmax(p.logits(texts)) for variant, p in predictors.items()}
    names = predictors["fp32"].label_names
    tokens = [len(ids) for ids in predictors["fp32"].tokenizer(texts, verbose=False)["input_ids"]]
    max_length = predictors["fp32"].settings.max_length
    record["longer_than_max_length"] = int(sum(n > max_length for n in tokens))
    # The cut inside the graph changes nothing for Predictor, which cuts in Python first.
    cut = {variant: softmax(Predictor(folder, variant=variant).logits(texts)) for _, variant in PAIRS}
    record["predictor_cut_vs_plain_max_diff"] = {v: float(np.abs(cut[v] - expected[v]).max()) for v in cut}

    runs = [("node", "classify.mjs", [])]
    if not args.no_browser:
        shot = args.screenshot or args.work / "browser.png"
        runs.append(("browser", "browser.mjs", ["--screenshot", str(shot)]))
    record["results"] = {}
    for where, script, extra in runs:
        for dtype, variant in PAIRS:
            started = time.perf_counter()
            command = ["node", str(JS / script), str(js_folder), "--dtype", dtype, *extra]
            done = subprocess.run(command, input=lines, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            rows = [json.loads(line) for line in done.stdout.splitlines()]
            got = np.array([[row["probabilities"][n] for n in names] for row in rows])
            want = expected[variant]
            labels = [row["label"] for row in rows]
            agree = float(np.mean([label == names[k] for label, k in zip(labels, want.argmax(axis=1), strict=True)]))
            diff = np.abs(got - want)
            row = record["results"][f"{where} {dtype}"] = {
                "predictor_variant": variant,
                "agreement": agree,
                "max_prob_diff": float(diff.max()),
                "mean_prob_diff": float(diff.mean()),
                "seconds": round(time.perf_counter() - started, 1),
                "runtime": done.stderr.strip().splitlines()[-1] if where == "browser" and done.stderr.strip() else None,
            }
            print(
                f"{where:<8} {dtype:<5} vs Predictor {variant:<5}: agreement {100 * agree:.2f}%, "
                f"max |dp| {diff.max():.2e}, mean {diff.mean():.2e} ({row['seconds']} s)",
                file=sys.stderr,
            )
    record["versions"] = {**versions(), **_npm_versions()}
    if args.out:
        write_json_atomic(args.out, record)
    print(json.dumps(record, indent=2))
    return 0


def _npm_versions() -> dict:
    lock = json.loads((JS / "package-lock.json").read_text())["packages"]
    names = ("@huggingface/transformers", "onnxruntime-node", "onnxruntime-web", "playwright-core")
    out = {name: lock.get(f"node_modules/{name}", {}).get("version") for name in names}
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return {**out, "node": node}


if __name__ == "__main__":
    raise SystemExit(main())
