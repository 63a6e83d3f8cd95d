"""Local streaming `predict` vs `predict --engine ray` on real IMDb reviews in Parquet shards, in one run.

Writes N reviews (IMDb test split, from row --skip on; or train) as --shards Parquet files in a temporary
folder, then scores them with: the local engine (one process, --threads threads), and the Ray engine with
each --ray config ACTORSxCPUS under each --start mode (lean: dashboard, metrics collection and usage stats
off, no log forwarding; default: Ray's own start options), a fresh local Ray each time, started and shut
down inside the timing. For
each: rows/s with Ray start-up included and excluded, Ray start-up seconds, rows per actor (recorded by
the job's ledger) and Ray Data's own operator stats, the stage seconds (read, tokenize, infer, write), and
whether ids and labels are identical to the local engine's (and the largest probability difference).

    .venv/bin/python scripts/bench_ray.py --model runs/minilm-2k-onnx --data imdb --rows 20000 \\
        --ray 1x2,2x1 --start lean,default --output runs/bench_ray.json

--data is the Hub id `imdb` or a local folder with train/test files (see `imdb-deploy train --help`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def write_shards(data: str, split: str, skip: int, rows: int, shards: int, folder: Path) -> list[Path]:
    """`rows` reviews of `split` from row `skip` on, as `shards` Parquet files (text column only: ids are FILE:ROW)."""
    from imdb_deploy.rows.labelled import load_split

    texts = load_split(data, split).texts
    frame = pd.DataFrame({"text": texts[skip : skip + rows]})
    if len(frame) < rows:
        raise SystemExit(f"{data} [{split}] has only {len(texts)} rows; lower --rows or --skip")
    paths = []
    size = -(-rows // shards)
    for i in range(shards):
        path = folder / f"reviews-{i:05d}.parquet"
        frame.iloc[i * size : (i + 1) * size].to_parquet(path, index=False)
        paths.append(path)
    return paths


def run_local(model: str, shards: Path, out: Path, threads: int, chunk_size: int) -> dict:
    from imdb_deploy.engines.config import PredictFileConfig
    from imdb_deploy.engines.local import predict_file
    from imdb_deploy.runtimes.predictor import Predictor

    start = time.perf_counter()
    predictor = Predictor(model, threads=threads)
    summary = predict_file(
        predictor, [str(shards)], output=out, config=PredictFileConfig(progress=False, chunk_size=chunk_size)
    )
    seconds = time.perf_counter() - start
    return {
        "engine": "local",
        "threads": threads,
        "rows": summary.input_rows,
        "seconds": seconds,
        "rows_per_second": summary.input_rows / seconds,
        "model_load_seconds": seconds - summary.seconds,
    }


def run_ray(model: str, shards: Path, out: Path, actors: int, cpus: int, chunk_size: int, start: str) -> dict:
    from imdb_deploy.engines.config import RayPredictConfig
    from imdb_deploy.engines.ray import predict_ray

    config = RayPredictConfig(
        actors=(actors, actors), cpus_per_actor=cpus, chunk_size=chunk_size, progress=False, lean_start=start == "lean"
    )
    summary = predict_ray(model, [str(shards)], str(out), config)
    work = summary.seconds - summary.startup_seconds
    per_actor = summary.actors
    return {
        "engine": "ray",
        "start": start,
        "actors": actors,
        "cpus_per_actor": cpus,
        "rows": summary.input_rows,
        "seconds": summary.seconds,
        "ray_startup_seconds": summary.startup_seconds,
        "rows_per_second": summary.rows_per_second,
        "rows_per_second_without_startup": summary.input_rows / work,
        "rows_per_actor": {name: entry["rows"] for name, entry in per_actor.items()},
        "stage_seconds": {
            "read": summary.read_seconds,
            "tokenize": sum(entry["tokenize_s"] for entry in per_actor.values()),
            "infer": sum(entry["infer_s"] for entry in per_actor.values()),
            "write": summary.write_seconds,
        },
        "ray_stats": summary.ray_stats,
    }


def compare(local_jsonl: Path, ray_folder: Path) -> dict:
    local = pd.read_json(local_jsonl, lines=True).set_index("id")
    ray = pd.read_parquet(ray_folder).set_index("id")
    same_ids = set(local.index) == set(ray.index) and len(local) == len(ray) and ray.index.is_unique
    ray = ray.reindex(local.index)
    labels = int((ray["label"] == local["label"]).sum())
    probs = [c for c in local.columns if c.startswith("prob_")]
    return {
        "identical_ids": bool(same_ids),
        "identical_labels": bool(same_ids and labels == len(local)),
        "label_agreement": labels / len(local),
        # local JSONL rounds to 6 decimals; Ray's Parquet keeps float32
        "max_probability_difference": float((ray[probs] - local[probs]).abs().to_numpy().max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Exported ONNX folder (INT8 is used when present).")
    parser.add_argument("--data", default="imdb", help="Hub id (imdb) or a local folder with train/test files.")
    parser.add_argument("--split", default="test")
    parser.add_argument("--skip", type=int, default=5000, help="Rows of the split left out first.")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="Local engine threads.")
    parser.add_argument("--ray", default="1x2,2x1", help="Ray configs ACTORSxCPUS_PER_ACTOR, comma-separated.")
    parser.add_argument("--start", default="lean,default", help="Ray start modes to compare: lean, default.")
    parser.add_argument("--chunk-size", type=int, default=1024, help="Rows sorted together (both engines).")
    parser.add_argument("--output", type=Path, default=Path("runs/bench_ray.json"))
    args = parser.parse_args()

    import platform

    import onnxruntime
    import ray

    machine = {"cpus": os.cpu_count(), "processor": platform.processor(), "python": platform.python_version()}
    machine |= {"onnxruntime": onnxruntime.__version__, "ray": ray.__version__}
    results: dict = {"rows": args.rows, "shards": args.shards, "model": args.model, "machine": machine, "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        tmp = Path(tmp)
        shards = tmp / "shards"
        shards.mkdir()
        write_shards(args.data, args.split, args.skip, args.rows, args.shards, shards)
        local_out = tmp / "local.jsonl"
        local = run_local(args.model, shards, local_out, args.threads, args.chunk_size)
        print(f"local: {local['rows_per_second']:.1f} rows/s ({local['seconds']:.1f} s)", file=sys.stderr)
        results["runs"].append(local)
        for spec, start in ((spec, start) for start in args.start.split(",") for spec in args.ray.split(",")):
            if start not in ("lean", "default"):
                raise SystemExit(f"--start {start!r}: use lean, default or both (lean,default)")
            actors, cpus = (int(x) for x in spec.split("x"))
            out = tmp / f"ray-{spec}-{start}"
            run = run_ray(args.model, shards, out, actors, cpus, args.chunk_size, start)
            run |= compare(local_out, out)
            run["vs_local_with_startup"] = run["rows_per_second"] / local["rows_per_second"]
            run["vs_local_without_startup"] = run["rows_per_second_without_startup"] / local["rows_per_second"]
            results["runs"].append(run)
            print(
                f"ray {spec} {start}: {run['rows_per_second']:.1f} rows/s with start-up "
                f"({run['vs_local_with_startup']:.0%} of local), "
                f"{run['rows_per_second_without_startup']:.1f} without; Ray start "
                f"{run['ray_startup_seconds']:.1f} s; rows per actor {list(run['rows_per_actor'].values())}; "
                f"identical ids {run['identical_ids']}, labels {run['identical_labels']} "
                f"(max prob diff {run['max_probability_difference']:.2g}); stages {run['stage_seconds']}",
                file=sys.stderr,
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
