"""Speed check: imdb-deploy's Predictor against the stock path a user would write, same quantized ONNX file.

The stock path is optimum's ORTModelForSequenceClassification in the transformers text-classification
pipeline, batch 32, `truncation=True`, reviews in input order:

    model = ORTModelForSequenceClassification.from_pretrained(onnx_dir, file_name="model_quantized.onnx")
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer, batch_size=32)
    classify(texts, batch_size=32, truncation=True)

Written that way it cuts reviews at the tokenizer's limit (512), while the Predictor cuts them at the length
the model was trained with (train_config.json). So two stock timings are taken:
- "stock": the code above, exactly as a user writes it (the issue's reference; headline `speedup`);
- "stock_same_length": the same plus `max_length=<training length>`, so both paths see the same number of
  tokens per review and the ratio (`speedup_same_length`) isolates batching and overhead.

All paths run in this one process over the same reviews, in rotating order, and each ratio is of median
times. Numbers go to a JSON file. Run it on an otherwise idle machine, from the repository root:

    python -m research.bench_predict_vs_pipeline \\
        --model runs/minilm-2k-onnx --data data/imdb --output runs/bench_predict_vs_pipeline.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from imdb_deploy.fileio import write_json_atomic
from imdb_deploy.rows.labelled import load_split, stratified_sample
from imdb_deploy.runtimes.config import ONNX_VARIANTS
from imdb_deploy.runtimes.folder import load_tokenizer
from imdb_deploy.runtimes.predictor import Predictor
from imdb_deploy.tokenization import length_sorted_batches


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="runs/minilm-2k-onnx", help="Exported ONNX folder.")
    parser.add_argument("--variant", default="int8", choices=list(ONNX_VARIANTS), help="Same file for all paths.")
    parser.add_argument("--data", default="imdb", help="Data source (see imdb-deploy train -h).")
    parser.add_argument("--split", default="test")
    parser.add_argument("--samples", type=int, default=1000, help="Stratified sample of the split.")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--pipeline-batch-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=None, help="Predictor batch size [its default].")
    parser.add_argument("--max-tokens", type=int, default=None, help="Predictor token budget [its default].")
    parser.add_argument("--threads", type=int, default=None, help="Intra-op threads for all [onnxruntime default].")
    parser.add_argument("--repeats", type=int, default=2, help="Timed passes per path (rotating order).")
    parser.add_argument("--skip-same-length", action="store_true", help="Time only the literal stock path.")
    parser.add_argument("--output", default="runs/bench_predict_vs_pipeline.json")
    return parser.parse_args(argv)


def stock_pipeline(model_dir: Path, file_name: str, threads: int | None, batch_size: int):
    """What a user would write: optimum's ORT model in a transformers pipeline, batch 32, truncation.

    Returns:
        run(texts, max_length=None) -> labels, and the tokenizer. max_length=None is the user's code as
        written (the tokenizer's own limit).
    """
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import pipeline

    session_options = None
    if threads:
        import onnxruntime as ort

        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = threads
    model = ORTModelForSequenceClassification.from_pretrained(
        model_dir, file_name=file_name, session_options=session_options
    )
    tokenizer = load_tokenizer(model_dir)
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer, batch_size=batch_size)

    def run(texts: list[str], max_length: int | None = None) -> list[str]:
        extra = {} if max_length is None else {"max_length": max_length}
        return [out["label"].lower() for out in classify(texts, batch_size=batch_size, truncation=True, **extra)]

    return run, tokenizer


def padded_tokens(lengths: list[int], batches: list[list[int]]) -> int:
    """Tokens the model computes over (batch rows x longest in batch), padding included."""
    return sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)


def main(argv=None) -> int:
    args = parse_args(argv)
    model_dir = Path(args.model)
    data = stratified_sample(load_split(args.data, args.split), args.samples, seed=args.seed)
    texts, labels = data.texts, np.asarray(data.labels)

    sizes = {k: v for k, v in (("batch_size", args.batch_size), ("max_tokens", args.max_tokens)) if v is not None}
    predictor = Predictor(model_dir, variant=args.variant, threads=args.threads, **sizes)
    max_length = predictor.settings.max_length
    stock, tokenizer = stock_pipeline(model_dir, predictor.model_path.name, args.threads, args.pipeline_batch_size)

    paths = {
        "stock": stock,
        "stock_same_length": lambda batch: stock(batch, max_length=max_length),
        "predictor": lambda batch: [p.label for p in predictor.predict(batch)],
    }
    if args.skip_same_length:
        del paths["stock_same_length"]
    for run in paths.values():  # warm up session arenas and tokenizer caches before timing
        run(texts[:16])

    names = list(paths)
    order = [name for r in range(args.repeats) for name in (names if r % 2 == 0 else names[::-1])]
    times: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, list[str]] = {}
    for name in order:
        start = time.perf_counter()
        results[name] = paths[name](texts)
        times[name].append(round(time.perf_counter() - start, 3))
        print(f"{name}: {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
    median = {name: statistics.median(values) for name, values in times.items()}

    label_names = list(predictor.label_names)
    accuracy = {
        name: float((np.array([label_names.index(x) for x in out]) == labels).mean()) for name, out in results.items()
    }
    agreement = {
        name: float(np.mean([a == b for a, b in zip(results[name], results["predictor"], strict=True)]))
        for name in names
        if name != "predictor"
    }

    # The tokens each path computes over: the stock pipeline pads each batch of 32 (input order) to its
    # longest review; the Predictor sorts by length and caps each batch at its token budget.
    ours_lengths = [len(ids) for ids in predictor.encode(texts)]
    b = args.pipeline_batch_size
    stock_batches = [list(range(i, min(i + b, len(texts)))) for i in range(0, len(texts), b)]
    ours_batches = length_sorted_batches(ours_lengths, predictor.batch_size, predictor.max_tokens)

    def stock_info(name: str, limit: int) -> dict:
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=limit)["input_ids"]]
        return {
            "max_length": limit,
            "truncation": "head",
            "padded_tokens": padded_tokens(lengths, stock_batches),
            "content_tokens": sum(lengths),
            "accuracy": accuracy[name],
            "label_agreement_with_predictor": agreement[name],
        }

    import onnxruntime
    import optimum.version
    import transformers

    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "speedup": round(median["stock"] / median["predictor"], 3),
        "speedup_same_length": (
            round(median["stock_same_length"] / median["predictor"], 3) if "stock_same_length" in median else None
        ),
        "seconds_median": {name: round(value, 3) for name, value in median.items()},
        "seconds_all": times,
        "order": order,
        "reviews_per_second": {name: round(len(texts) / value, 1) for name, value in median.items()},
        "reviews": len(texts),
        "data": {"source": args.data, "split": args.split, "seed": args.seed, "stratified": True},
        "model": {"dir": str(model_dir), "file": predictor.model_path.name, "variant": predictor.variant},
        "stock": {
            "code": "ORTModelForSequenceClassification.from_pretrained(dir, file_name=...); "
            "pipeline('text-classification', model=..., tokenizer=..., batch_size=32)(texts, batch_size=32, "
            "truncation=True)",
            "batch_size": b,
            **stock_info("stock", int(min(tokenizer.model_max_length, 512))),
        },
        "predictor": {
            "batch_size": predictor.batch_size,
            "max_tokens": predictor.max_tokens,
            "max_length": max_length,
            "truncation": predictor.settings.truncation,
            "padded_tokens": padded_tokens(ours_lengths, ours_batches),
            "content_tokens": sum(ours_lengths),
            "accuracy": accuracy["predictor"],
        },
        "threads": args.threads or "onnxruntime default (physical cores)",
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "versions": {
            "onnxruntime": onnxruntime.__version__,
            "optimum": optimum.version.__version__,
            "transformers": transformers.__version__,
        },
    }
    if "stock_same_length" in paths:
        report["stock_same_length"] = {
            "code": "the stock code with max_length=<training length> added to the call",
            "batch_size": b,
            **stock_info("stock_same_length", max_length),
        }
    write_json_atomic(args.output, report)
    summary = ("speedup", "speedup_same_length", "seconds_median", "reviews_per_second")
    print(json.dumps({k: report[k] for k in summary}, indent=2))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
