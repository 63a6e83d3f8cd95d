"""How big should the predict path's batches be? Time `Predictor` over token budgets on real reviews.

For one exported folder and variant, runs `Predictor.logits` (the product's own path: tokenization,
length sorting, token-capped batches) with each (batch_size, max_tokens) pair on the same seeded sample,
interleaved over `--repeats` rounds, and writes reviews/s per setting to a JSON file.

Example (from the repository root, on an otherwise idle machine):
    python -m research.bench_token_budget --model runs/minilm-2k-onnx \
        --data data/imdb --samples 256 --out runs/bench_research/token_budget-minilm.json
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

from imdb_deploy.rows.labelled import load_split, stratified_sample
from imdb_deploy.runtimes.predictor import Predictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="folder written by imdb-deploy export")
    parser.add_argument("--variant", default="auto")
    parser.add_argument("--data", default="imdb")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--settings",
        default="1:none,64:1024,64:2048,64:4096,64:8192,64:16384",
        help="comma-separated BATCH:MAX_TOKENS pairs (none: no token cap)",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    texts = stratified_sample(load_split(args.data, "test"), args.samples, args.seed).texts
    settings = []
    for item in args.settings.split(","):
        batch, _, tokens = item.partition(":")
        settings.append((int(batch), None if tokens == "none" else int(tokens)))
    seconds: dict[str, list[float]] = {f"{b}:{t}": [] for b, t in settings}
    for round_ in range(args.repeats):
        for batch, tokens in settings:
            predictor = Predictor(args.model, variant=args.variant, batch_size=batch, max_tokens=tokens)
            predictor.logits(texts[:8])  # warm-up
            start = time.perf_counter()
            predictor.logits(texts)
            seconds[f"{batch}:{tokens}"].append(time.perf_counter() - start)
            print(
                f"round {round_ + 1} batch {batch} max_tokens {tokens}: "
                f"{len(texts) / seconds[f'{batch}:{tokens}'][-1]:.2f} reviews/s",
                file=sys.stderr,
                flush=True,
            )
            del predictor
            gc.collect()
    report = {
        "model": args.model,
        "variant": args.variant,
        "samples": len(texts),
        "results": {
            key: {
                "seconds": t,
                "reviews_per_s_best": len(texts) / min(t),
                "reviews_per_s_median": len(texts) / statistics.median(t),
            }
            for key, t in seconds.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for key, r in sorted(report["results"].items(), key=lambda kv: -kv[1]["reviews_per_s_best"]):
        print(
            f"{key:>12}  best {r['reviews_per_s_best']:7.2f}  median {r['reviews_per_s_median']:7.2f}", file=sys.stderr
        )


if __name__ == "__main__":
    main()
