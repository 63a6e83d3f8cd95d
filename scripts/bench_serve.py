"""Load benchmark of `imdb-deploy serve`: one request per review, from an asyncio httpx driver, in one run.

On the same seeded sample of real IMDb test reviews it measures, in this order:
  1. offline: `Predictor.predict_proba` on all the reviews at once (what `imdb-deploy predict` runs), and the
     model's own batch-1 latency (`Predictor.predict([review])` per review, tokenization included);
  2. the server as shipped (dynamic batching), at each concurrency: reviews/s, p50/p95/p99 latency, errors by
     status, and label agreement / max probability difference with the offline answers;
  3. the same server with batching off (`--max-batch-size 1`: one review per onnxruntime call), likewise;
  4. optionally (--soak-seconds) a soak of the batched server at the highest concurrency, sampling its RSS.
Each server is a real `python -m imdb_deploy serve` subprocess on 127.0.0.1, stopped with SIGTERM (its exit
code is recorded). Every phase is bounded in requests and in time; nothing is sent anywhere but 127.0.0.1.
The driver runs on the same cores as the server; the CPU seconds of the driver, of each server phase and of
offline `predict` are recorded, so the server's own cost per review can be told from the driver's. Numbers go
to one JSON file.

    .venv/bin/python scripts/bench_serve.py --model runs/minilm-2k-onnx --data imdb --output runs/bench_serve.json

--data is the Hub id `imdb`, a local folder with train/test files (see `imdb-deploy train --help`), or one
Parquet file with a 'text' column; the test split is sampled.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imdb_deploy.fileio import write_json_atomic  # noqa: E402

HOST = "127.0.0.1"  # the only address this script ever sends to


def percentiles_ms(seconds: list[float]) -> dict:
    if not seconds:
        return {"p50": None, "p95": None, "p99": None, "mean": None}
    ms = np.asarray(seconds) * 1000
    return {
        "p50": round(float(np.percentile(ms, 50)), 2),
        "p95": round(float(np.percentile(ms, 95)), 2),
        "p99": round(float(np.percentile(ms, 99)), 2),
        "mean": round(float(ms.mean()), 2),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`python -m imdb_deploy serve MODEL` on a free port of 127.0.0.1, its log in a file."""

    def __init__(self, model: str, extra: list[str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 (closed in stop())
        cmd = [sys.executable, "-m", "imdb_deploy", "serve", model, "--host", HOST, "--port", str(self.port), *extra]
        self.command = " ".join(cmd[1:])
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)

    def wait_healthy(self, timeout: float = 180) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}); see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/health", timeout=10).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"the server was not healthy within {timeout} s; see {self.log_path}")

    def cpu_s(self) -> float:
        """CPU seconds (user + system, every thread) the server process has used so far."""
        import psutil

        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def stop(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code


async def drive(url: str, texts: list[str], concurrency: int, limit_s: float, reference: np.ndarray | None) -> dict:
    """`concurrency` clients each posting one review at a time until every review is sent or `limit_s` passes."""
    import httpx

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    probabilities = np.full((len(texts), 2), np.nan)
    next_index = 0
    deadline = time.perf_counter() + limit_s

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < len(texts) and time.perf_counter() < deadline:
            i = next_index
            next_index += 1
            start = time.perf_counter()
            try:
                # details: our answer with every class's probability by name (TEI's is a list sorted by score).
                response = await client.post("/predict", json={"inputs": texts[i], "details": True})
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
                response = None
            elapsed = time.perf_counter() - start
            statuses[status] = statuses.get(status, 0) + 1
            if status == "200":
                latencies.append(elapsed)
                answer = response.json()
                probabilities[i] = [answer["probabilities"]["negative"], answer["probabilities"]["positive"]]

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    cpu_start = time.process_time()
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    ok = len(latencies)
    out = {
        "concurrency": concurrency,
        "requests": sum(statuses.values()),
        "ok": ok,
        "statuses": statuses,
        "errors": sum(n for status, n in statuses.items() if status != "200"),
        "seconds": round(wall, 2),
        "reviews_per_s": round(ok / wall, 2) if wall else None,
        "latency_ms": percentiles_ms(latencies),
        "driver_cpu_s": round(time.process_time() - cpu_start, 2),
        "stopped_by_time_limit": sum(statuses.values()) < len(texts),
    }
    if reference is not None:
        answered = ~np.isnan(probabilities[:, 0])
        if answered.any():
            got, want = probabilities[answered], reference[answered]
            out["label_agreement_with_offline"] = round(float((got.argmax(1) == want.argmax(1)).mean()), 5)
            out["max_prob_diff_vs_offline"] = float(np.abs(got - want).max())
    return out


def batch_counters(url: str) -> dict[str, float]:
    """Batches, reviews and padded tokens the server has run so far, from its /metrics."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text)
        for sample in family.samples
        if not sample.labels or "le" not in sample.labels
    }
    return {
        "batches": values["imdb_deploy_batch_reviews_count"],
        "reviews": values["imdb_deploy_batch_reviews_sum"],
        "padded_tokens": values["imdb_deploy_batch_padded_tokens_sum"],
    }


def bench_server(name: str, model: str, extra: list[str], texts, concurrencies, limit_s, reference, out_dir, log):
    server = ServerProcess(model, extra, out_dir / f"server-{name}.log")
    try:
        server.wait_healthy()
        asyncio.run(drive(server.url, texts[:16], 4, limit_s, None))  # warm-up, untimed
        rss_start = server.rss_mb()
        runs = []
        for concurrency in concurrencies:
            before = batch_counters(server.url)
            cpu_before = server.cpu_s()
            result = asyncio.run(drive(server.url, texts, concurrency, limit_s, reference))
            result["server_cpu_s"] = round(server.cpu_s() - cpu_before, 2)
            after = batch_counters(server.url)
            batches = after["batches"] - before["batches"]
            reviews = after["reviews"] - before["reviews"]
            result["batches"] = int(batches)
            result["reviews_per_batch"] = round(reviews / batches, 2) if batches else None
            result["padded_tokens_per_review"] = (
                round((after["padded_tokens"] - before["padded_tokens"]) / reviews, 1) if reviews else None
            )
            log(
                f"  {name} c={concurrency}: {result['reviews_per_s']} reviews/s, p50 {result['latency_ms']['p50']} ms, "
                f"p99 {result['latency_ms']['p99']} ms, errors {result['errors']}, CPU s: server "
                f"{result['server_cpu_s']}, driver {result['driver_cpu_s']}"
            )
            runs.append(result)
        import httpx

        info = httpx.get(f"{server.url}/info", timeout=10).json()
        rss_end = server.rss_mb()
    finally:
        code = server.stop()
    log(f"  {name}: SIGTERM -> exit code {code}")
    return {
        "command": server.command,
        "runs": runs,
        "rss_mb": {"after_warmup": round(rss_start, 1), "at_end": round(rss_end, 1)},
        "exit_code_after_sigterm": code,
        "info": info,
    }


def soak(model: str, texts, concurrency: int, seconds: float, sample_every: float, out_dir, log) -> dict:
    """The batched server at `concurrency` for `seconds`, its RSS sampled every `sample_every` seconds."""
    server = ServerProcess(model, [], out_dir / "server-soak.log")
    samples: list[tuple[float, float]] = []
    totals = {"requests": 0, "ok": 0, "errors": 0}

    async def run() -> None:
        start = time.perf_counter()
        stop_at = start + seconds

        async def sampler() -> None:
            while time.perf_counter() < stop_at:
                samples.append((time.perf_counter() - start, server.rss_mb()))
                await asyncio.sleep(sample_every)

        async def load() -> None:
            while time.perf_counter() < stop_at:
                left = stop_at - time.perf_counter()
                result = await drive(server.url, texts, concurrency, left, None)
                for key in totals:
                    totals[key] += result[key]

        await asyncio.gather(sampler(), load())

    try:
        server.wait_healthy()
        asyncio.run(run())
    finally:
        code = server.stop()
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    settled = t >= min(60.0, seconds / 3)  # the first minute is warm-up: allocator pools and caches fill
    slope = float(np.polyfit(t[settled] / 60, rss[settled], 1)[0]) if settled.sum() >= 3 else None
    log(f"  soak: {seconds:.0f} s at c={concurrency}, RSS {rss.min():.0f}-{rss.max():.0f} MB, slope {slope} MB/min")
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        **totals,
        "rss_mb_first": round(float(rss[0]), 1),
        "rss_mb_last": round(float(rss[-1]), 1),
        "rss_mb_max": round(float(rss.max()), 1),
        "rss_slope_mb_per_min_after_warmup": round(slope, 3) if slope is not None else None,
        "samples": [[round(a, 1), round(b, 1)] for a, b in samples],
        "exit_code_after_sigterm": code,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Exported ONNX folder.")
    parser.add_argument("--data", default="imdb", help="Hub id (imdb), a data folder, or a Parquet file with 'text'.")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--concurrency", default="1,8,32", help="Comma-separated client counts.")
    parser.add_argument("--phase-limit-s", type=float, default=120, help="Longest one concurrency phase may run.")
    parser.add_argument("--skip-load", action="store_true", help="Only the soak (with --soak-seconds).")
    parser.add_argument("--soak-seconds", type=float, default=0, help="Soak the batched server this long (0: no).")
    parser.add_argument("--soak-sample-s", type=float, default=5)
    parser.add_argument("--output", required=True, type=Path, help="JSON file to write.")
    args = parser.parse_args()

    import pandas as pd

    from imdb_deploy.machine import machine_info
    from imdb_deploy.rows.labelled import load_split
    from imdb_deploy.runtimes.predictor import Predictor

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    out_dir = args.output.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.data.endswith(".parquet"):
        frame = pd.read_parquet(args.data, columns=["text"])
    else:
        frame = pd.DataFrame({"text": load_split(args.data, "test").texts})
    texts = frame.sample(n=args.samples, random_state=args.seed)["text"].tolist()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    report: dict = {
        "model": args.model,
        "data": args.data,
        "samples": len(texts),
        "seed": args.seed,
        "machine": machine_info(),
    }

    if not args.skip_load:
        predictor = Predictor(args.model)
        predictor.predict_proba(texts[:16])  # warm-up
        lengths = [len(ids) for ids in predictor.encode(texts)]
        start, cpu_start = time.perf_counter(), time.process_time()
        reference = predictor.predict_proba(texts)
        offline_s, offline_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
        single = []
        for text in texts:
            start = time.perf_counter()
            predictor.predict([text])
            single.append(time.perf_counter() - start)
        report["offline"] = {
            "variant": predictor.variant,
            "tokens_per_review_mean": round(statistics.mean(lengths), 1),
            "predict_seconds": round(offline_s, 2),
            "predict_reviews_per_s": round(len(texts) / offline_s, 2),
            "predict_cpu_s": round(offline_cpu_s, 2),
            "batch1_latency_ms": percentiles_ms(single),
            "batch1_reviews_per_s": round(len(texts) / sum(single), 2),
        }
        log(
            f"  offline predict: {report['offline']['predict_reviews_per_s']} reviews/s "
            f"({report['offline']['predict_cpu_s']} CPU s); batch-1 p50 "
            f"{report['offline']['batch1_latency_ms']['p50']} ms"
        )
        del predictor
        report["batched"] = bench_server(
            "batched", args.model, [], texts, concurrencies, args.phase_limit_s, reference, out_dir, log
        )
        report["unbatched"] = bench_server(
            "unbatched",
            args.model,
            ["--max-batch-size", "1"],
            texts,
            concurrencies,
            args.phase_limit_s,
            reference,
            out_dir,
            log,
        )
        top = max(concurrencies)
        by_c = {name: {r["concurrency"]: r for r in report[name]["runs"]} for name in ("batched", "unbatched")}
        goals = {
            f"c{top}_vs_offline_predict": round(
                by_c["batched"][top]["reviews_per_s"] / report["offline"]["predict_reviews_per_s"], 3
            ),
            f"c{top}_vs_unbatched_server": round(
                by_c["batched"][top]["reviews_per_s"] / by_c["unbatched"][top]["reviews_per_s"], 3
            ),
        }
        if 1 in by_c["batched"]:
            goals["c1_p50_vs_batch1_p50"] = round(
                by_c["batched"][1]["latency_ms"]["p50"] / report["offline"]["batch1_latency_ms"]["p50"], 3
            )
        goals["errors"] = sum(r["errors"] for name in ("batched", "unbatched") for r in report[name]["runs"])
        report["goals"] = goals
        log(f"  goals: {goals}")

    if args.soak_seconds > 0:
        report["soak"] = soak(
            args.model, texts, max(concurrencies), args.soak_seconds, args.soak_sample_s, out_dir, log
        )
    write_json_atomic(args.output, report)
    log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
