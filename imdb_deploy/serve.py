"""`imdb-deploy serve`: an HTTP service over `Predictor` with dynamic batching, backpressure and metrics.

One FastAPI app on uvicorn. A request's reviews are checked, tokenized in a worker thread (the event loop
never waits on the tokenizer), and queued one review per entry. A single batcher task takes reviews from the
front of the queue, across requests, until the next one would push the batch past `max_batch_tokens` padded
tokens (reviews x longest, the rule text-embeddings-inference uses for padded models), and hands the batch to
a model thread: `Predictor.logits_from_ids` sorts it by length and runs it in cache-sized onnxruntime calls
(onnxruntime releases the GIL), or, for a per-review variant (the default INT8), one review per call on the
Predictor's `workers` threads, with up to `workers` batches in flight so that no core idles at a batch's end.
Every request's future is answered from the batch's rows. The queue is
bounded by `max_concurrent_requests` reviews in flight; past it a request gets 429 with Retry-After.

Scoring goes through the Predictor's public methods (encode, logits_from_ids, to_predictions), so the server
answers exactly as `Predictor.predict` does, with whatever batch-invariance the Predictor's variant has.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from imdb_deploy.errors import ConfigError, ImdbDeployError, ModelLoadError
from imdb_deploy.machine import STACK, versions
from imdb_deploy.serve_config import ServeConfig
from imdb_deploy.sources import MAX_JSON_DEPTH, json_depth, json_kind

logger = logging.getLogger(__name__)

# Paths that get their own label in the request metrics; anything else is counted as "other" so that a
# scan of random URLs cannot grow the metrics without bound.
ROUTES = ("/predict", "/health", "/info", "/metrics", "/openapi.json", "/docs", "/redoc")


class RequestError(Exception):
    """A request the server refuses: HTTP status, error type, message naming the field or the limit."""

    def __init__(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": self.message, "error_type": self.error_type}


def parse_predict_body(body: bytes, config: ServeConfig) -> tuple[list[str], bool]:
    """The texts of a /predict body, checked against the request limits.

    Args:
        body: the raw request body.
        config: the limits (max_client_batch_size, max_review_bytes).

    Returns:
        The texts, and whether `inputs` was a single string (the answer is then one object, not a list).

    Raises:
        RequestError: 422 for malformed JSON, a missing or unknown field, a non-string or empty text (naming
            the field and index); 413 for too many texts or a text over max_review_bytes (naming the limit).
    """
    try:
        text = body.decode("utf-8")
        if json_depth(text) > MAX_JSON_DEPTH:
            raise RequestError(422, "validation", f"body: JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)")
        payload = json.loads(text)
    except UnicodeDecodeError as exc:
        raise RequestError(422, "validation", f"body: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise RequestError(
            422,
            "validation",
            f'body: malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); send {{"inputs": "a review"}}',
        ) from exc
    except RecursionError as exc:
        raise RequestError(422, "validation", "body: JSON nested too deeply") from exc
    if not isinstance(payload, dict):
        raise RequestError(
            422, "validation", f'body: expected a JSON object like {{"inputs": ...}}, got {json_kind(payload)}'
        )
    unknown = sorted(set(payload) - {"inputs"})
    if unknown:
        raise RequestError(
            422,
            "validation",
            f"body: unknown field {unknown[0]!r}; the only field is 'inputs' (long reviews are always cut as in "
            "training, so there is no 'truncate')",
        )
    if "inputs" not in payload:
        raise RequestError(422, "validation", "inputs: field missing; send a review or a list of reviews")
    inputs = payload["inputs"]
    single = isinstance(inputs, str)
    texts = [inputs] if single else inputs
    if not isinstance(texts, list):
        raise RequestError(
            422, "validation", f"inputs: expected a string or an array of strings, got {json_kind(inputs)}"
        )
    if not texts:
        raise RequestError(422, "validation", "inputs: empty array; send at least one review")
    if len(texts) > config.max_client_batch_size:
        raise RequestError(
            413,
            "payload_too_large",
            f"inputs: {len(texts)} texts, more than max_client_batch_size={config.max_client_batch_size}; "
            "split them into several requests",
        )
    for i, text in enumerate(texts):
        where = "inputs" if single else f"inputs[{i}]"
        if not isinstance(text, str):
            raise RequestError(422, "validation", f"{where}: expected a string, got {json_kind(text)}")
        if not text.strip():
            raise RequestError(422, "validation", f"{where}: empty text; give a review")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise RequestError(
                422, "validation", f"{where}: not valid Unicode (a lone surrogate at character {exc.start})"
            ) from exc
        if size > config.max_review_bytes:
            raise RequestError(
                413,
                "payload_too_large",
                f"{where}: {size:,} bytes, more than max_review_bytes={config.max_review_bytes:,}",
            )
    return texts, single


# --- metrics ----------------------------------------------------------------------------------------------


class ServeMetrics:
    """The server's Prometheus metrics, in a registry of its own (several apps can live in one process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "imdb_deploy_http_requests", "HTTP requests answered, by route and status.", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "imdb_deploy_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route.",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.queue = Gauge("imdb_deploy_queue_reviews", "Reviews waiting in the queue for a batch.", registry=r)
        self.in_flight = Gauge(
            "imdb_deploy_in_flight_reviews", "Reviews admitted and not yet answered (the 429 limit).", registry=r
        )
        self.batch_reviews = Histogram(
            "imdb_deploy_batch_reviews",
            "Reviews per batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.batch_tokens = Histogram(
            "imdb_deploy_batch_padded_tokens",
            "Padded tokens per batch, summed over its length-sorted onnxruntime calls.",
            buckets=(64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536),
            registry=r,
        )
        self.batch_seconds = Histogram(
            "imdb_deploy_batch_seconds",
            "Model time per batch.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.reviews = Counter("imdb_deploy_reviews_scored", "Reviews scored and answered.", registry=r)
        self.batch_failures = Counter(
            "imdb_deploy_batch_failures",
            "Batches whose model call raised (their requests were retried alone).",
            registry=r,
        )

    def render(self) -> tuple[bytes, str]:
        """The metrics as Prometheus text, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP answer by route and status and times it."""

    def __init__(self, app, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in ROUTES else "other"
        status = 500  # what the client gets if the app raises before answering
        start = time.perf_counter()

        async def send_and_record(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


# --- the batcher ------------------------------------------------------------------------------------------


class InferenceError(Exception):
    """The model call for a request's reviews raised."""


@dataclass(eq=False)
class _Job:
    """One request's reviews: its future resolves to their probabilities once every row is filled."""

    future: asyncio.Future
    probabilities: np.ndarray
    remaining: int


@dataclass(eq=False)
class _Entry:
    job: _Job
    row: int
    ids: list[int]


class Batcher:
    """A bounded FIFO of reviews and the one task that batches them across requests onto one model thread.

    Args:
        predictor: the model (`encode` and `logits_from_ids` are used).
        config: batching settings.
        metrics: where queue depth and batch sizes are recorded.
    """

    def __init__(self, predictor, config: ServeConfig, metrics: ServeMetrics) -> None:
        self.predictor = predictor
        self.config = config
        self.metrics = metrics
        self.tokenizing = 0  # reviews admitted and still in the tokenizer thread
        self._queue: deque[_Entry] = deque()
        self._running = 0  # batches in the model threads
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        # One tokenizer thread (a fast tokenizer must not be called from two threads at once). Batches run one
        # at a time when a call uses every core (a batched variant: two calls would fight for the cores), and
        # `workers` at a time for a per-review variant: there the Predictor's own `workers` threads run one
        # review per call, shared by every batch, so a second batch only fills the thread the first leaves idle
        # at its end (the cores stay busy across batch boundaries; the answers cannot change, each review is
        # its own call).
        # --max-batch-size 1 is batching off: one review per call, one call at a time.
        per_review = predictor.batching.per_review and config.max_batch_size != 1
        self.slots = max(1, getattr(predictor, "workers", 1)) if per_review else 1
        self._tokenizer = ThreadPoolExecutor(1, thread_name_prefix="imdb-deploy-tokenize")
        self._model = ThreadPoolExecutor(self.slots, thread_name_prefix="imdb-deploy-model")
        self._task: asyncio.Task | None = None
        self._batches: set[asyncio.Task] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="imdb-deploy-batcher")

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def score(self, texts: Sequence[str], urgent: bool = False) -> np.ndarray:
        """Class probabilities of `texts`, in order: tokenized off the event loop, then batched.

        Args:
            texts: checked reviews.
            urgent: put them at the front of the queue (the /health probe), not the back.

        Raises:
            InferenceError: the model call for these reviews failed.
        """
        loop = asyncio.get_running_loop()
        self.tokenizing += len(texts)
        try:
            encoded = await loop.run_in_executor(self._tokenizer, self.predictor.encode, list(texts))
        finally:
            self.tokenizing -= len(texts)
            self._wake.set()
        job = _Job(
            loop.create_future(), np.empty((len(encoded), len(self.predictor.label_names)), np.float32), len(encoded)
        )
        entries = [_Entry(job, row, ids) for row, ids in enumerate(encoded)]
        if urgent:
            self._queue.extendleft(reversed(entries))
        else:
            self._queue.extend(entries)
        self.metrics.queue.set(len(self._queue))
        self._wake.set()
        return await job.future

    def _fits(self) -> int:
        """How many reviews at the front of the queue make the next batch (at least one)."""
        limit = self.config.max_batch_size or len(self._queue)
        longest = 0
        count = 0
        for entry in self._queue:
            longest = max(longest, len(entry.ids))
            if count and (longest * (count + 1) > self.config.max_batch_tokens or count >= limit):
                break
            count += 1
        return count

    async def _gather(self) -> list[_Entry]:
        """Wait for reviews, give ones still being tokenized up to max_wait_ms to join, then take a batch."""
        while not self._queue:
            self._wake.clear()
            await self._wake.wait()
        deadline = time.perf_counter() + self.config.max_wait_ms / 1000
        while self.tokenizing and self._fits() == len(self._queue):
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                break
        batch = [self._queue.popleft() for _ in range(self._fits())]
        self.metrics.queue.set(len(self._queue))
        return [entry for entry in batch if not entry.job.future.done()]  # drop answered or abandoned requests

    def _infer(self, batch: list[_Entry]) -> list[tuple[list[_Entry], np.ndarray | Exception]]:
        """In the model thread: probabilities for the batch; if it fails, each request's reviews alone."""
        from imdb_deploy.evaluation import softmax

        start = time.perf_counter()
        try:
            outcome = [(batch, softmax(self.predictor.logits_from_ids([e.ids for e in batch])))]
        except Exception:
            self.metrics.batch_failures.inc()
            logger.exception("a batch of %d reviews failed; scoring its requests one by one", len(batch))
            by_job: dict[int, list[_Entry]] = {}
            for entry in batch:
                by_job.setdefault(id(entry.job), []).append(entry)
            outcome = []
            for entries in by_job.values():
                try:
                    outcome.append((entries, softmax(self.predictor.logits_from_ids([e.ids for e in entries]))))
                except Exception as exc:
                    logger.exception("a request of %d reviews failed", len(entries))
                    outcome.append((entries, exc))
        self.metrics.batch_seconds.observe(time.perf_counter() - start)
        return outcome

    def _record(self, batch: list[_Entry]) -> None:
        from imdb_deploy.tokenization import length_sorted_batches

        lengths = [len(e.ids) for e in batch]
        # The onnxruntime calls Predictor.logits_from_ids makes of this batch (the same grouping function).
        calls = length_sorted_batches(lengths, self.predictor.batch_size, self.predictor.max_tokens)
        self.metrics.batch_reviews.observe(len(batch))
        self.metrics.batch_tokens.observe(sum(len(call) * lengths[call[0]] for call in calls))

    async def _run(self) -> None:
        while True:
            while self._running >= self.slots:
                self._slot_free.clear()
                await self._slot_free.wait()
            batch = await self._gather()
            if not batch:
                continue
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._score_batch(batch))
            self._batches.add(task)  # a reference until it is done (asyncio keeps only weak ones)
            task.add_done_callback(self._batches.discard)

    async def _score_batch(self, batch: list[_Entry]) -> None:
        """Run one batch in a model thread and answer its requests."""
        try:
            self._record(batch)
            outcome = await asyncio.get_running_loop().run_in_executor(self._model, self._infer, batch)
        except Exception as exc:  # never expected: keep serving, fail only this batch's requests
            logger.exception("the batcher failed on a batch of %d reviews", len(batch))
            outcome = [(batch, exc)]
        finally:
            self._running -= 1
            self._slot_free.set()
        for entries, result in outcome:
            for k, entry in enumerate(entries):
                job = entry.job
                if job.future.done():
                    continue
                if isinstance(result, Exception):
                    job.future.set_exception(InferenceError(f"{type(result).__name__}: {result}"))
                    continue
                job.probabilities[entry.row] = result[k]
                job.remaining -= 1
                self.metrics.reviews.inc()
                if job.remaining == 0:
                    job.future.set_result(job.probabilities)

    async def drain(self) -> None:
        """Return once every queued review is answered and no batch is running."""
        while self._queue or self._batches or self.tokenizing:  # a batch stays in _batches until answered
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Drain, then stop the batcher task and the threads."""
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        self._tokenizer.shutdown(wait=True)
        self._model.shutdown(wait=True)


# --- the app ----------------------------------------------------------------------------------------------


def parity_verdict(onnx_dir: str | os.PathLike, variant: str) -> dict:
    """The parity gate's verdict for the served variant, from the folder's export_report.json."""
    from imdb_deploy.artifacts import load_export_report

    report = load_export_report(onnx_dir)
    if not report:
        return {"verified": False, "reason": "no export_report.json in the model folder"}
    parity = report.get("parity")
    if not parity:
        return {"verified": bool(report.get("verified")), "reason": "exported without the parity gate (--no-verify)"}
    checked = parity.get("variants", {}).get(variant)
    out = {
        "verified": bool(report.get("verified")),
        "gate_passed": parity.get("passed"),
        "data": parity.get("data"),
        "split": parity.get("split"),
        "samples": parity.get("samples"),
        "pytorch_accuracy": parity.get("pytorch_accuracy"),
    }
    if checked:
        out["variant"] = {
            key: checked.get(key)
            for key in ("accuracy", "accuracy_change", "agreement", "max_prob_diff", "flip_count", "passed")
        }
    else:
        out["variant"] = None
        out["reason"] = f"the gate did not check the {variant} variant"
    return out


def _request_models():
    """Pydantic models that describe the API in the OpenAPI schema."""
    from pydantic import BaseModel, ConfigDict, Field

    class PredictRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={"examples": [{"inputs": "A wonderful film."}, {"inputs": ["Loved it.", "Dull."]}]},
        )
        inputs: str | list[str] = Field(
            description="A review, or a list of reviews (at most max_client_batch_size). Long reviews are cut "
            "exactly as in training; empty ones are refused."
        )

    class Prediction(BaseModel):
        label: str = Field(description="The most probable class.")
        score: float = Field(description="Its probability.")
        probabilities: dict[str, float] = Field(description="Every class's probability, by name.")

    class ErrorBody(BaseModel):
        error: str = Field(description="What was wrong: the field and index, or the limit.")
        error_type: str

    return PredictRequest, Prediction, ErrorBody


class _Service:
    """What the routes share: config, predictor, batcher, metrics, the in-flight count and the drain flag."""

    def __init__(self, predictor, config: ServeConfig, onnx_dir: str) -> None:
        self.predictor = predictor
        self.config = config
        self.onnx_dir = onnx_dir
        self.metrics = ServeMetrics()
        self.batcher: Batcher | None = None
        self.in_flight = 0
        self.draining = False
        self._probe: asyncio.Task | None = None

    def begin_drain(self) -> None:
        """Refuse new work (503) while the requests already admitted are answered."""
        self.draining = True

    def retry_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.config.retry_after_s)}

    async def predict(self, texts: list[str]) -> np.ndarray:
        if self.draining:
            raise RequestError(
                503, "unavailable", "the server is shutting down; retry on another instance", self.retry_headers()
            )
        if self.in_flight + len(texts) > self.config.max_concurrent_requests:
            raise RequestError(
                429,
                "overloaded",
                f"Model is overloaded: {self.in_flight} reviews in flight, max_concurrent_requests="
                f"{self.config.max_concurrent_requests}; retry after {self.config.retry_after_s} s",
                self.retry_headers(),
            )
        self.in_flight += len(texts)
        self.metrics.in_flight.set(self.in_flight)
        try:
            return await self.batcher.score(texts)
        except InferenceError as exc:
            raise RequestError(500, "inference", f"the model failed on this request: {exc}") from exc
        except Exception as exc:  # e.g. the tokenizer raised: this request fails, the server goes on
            logger.exception("a request of %d reviews failed before the model", len(texts))
            raise RequestError(500, "internal", f"this request failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self.in_flight -= len(texts)
            self.metrics.in_flight.set(self.in_flight)

    async def probe(self) -> None:
        """Score one short review ahead of the queue; concurrent /health calls share one probe."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self.batcher.score(["A fine film."], urgent=True))
            # A probe that fails after its caller timed out is still retrieved, so asyncio does not log it.
            self._probe.add_done_callback(lambda task: task.cancelled() or task.exception())
        await asyncio.wait_for(asyncio.shield(self._probe), self.config.health_timeout_s)

    def info(self) -> dict:
        p = self.predictor
        settings = p.settings
        return {
            "model_dir": str(Path(self.onnx_dir).resolve()),
            "variant": p.variant,
            "model_file": Path(str(p.model_path)).name,
            # Whether a review's answer is independent of its batch neighbours (the default INT8 runs one
            # review per onnxruntime call, so it is; int8-batched is not), and how the Predictor runs calls.
            "batch_invariant": p.batching.batch_invariant,
            "predictor": p.describe(),
            "labels": list(p.label_names),
            "max_length": settings.max_length,
            "truncation": settings.truncation,
            "head_tokens": settings.head_tokens,
            "versions": versions((*STACK, "tokenizers", "fastapi", "uvicorn", "uvloop", "httptools", "numpy")),
            "batching": {
                "max_batch_tokens": self.config.max_batch_tokens,
                "max_batch_size": self.config.max_batch_size,
                "max_wait_ms": self.config.max_wait_ms,
                "onnxruntime_call_max_reviews": p.batch_size,
                "onnxruntime_call_max_tokens": p.max_tokens,
                "threads": self.config.threads,
                "batches_in_flight": self.batcher.slots if self.batcher else None,
            },
            "limits": {
                "max_concurrent_requests": self.config.max_concurrent_requests,
                "max_client_batch_size": self.config.max_client_batch_size,
                "max_body_bytes": self.config.max_body_bytes,
                "max_review_bytes": self.config.max_review_bytes,
                "retry_after_s": self.config.retry_after_s,
            },
            "parity": parity_verdict(self.onnx_dir, p.variant),
        }


async def _read_body(request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length")
    too_big = f"body: over max_body_bytes={limit:,}; send fewer or shorter reviews per request"
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, "validation", f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise RequestError(413, "payload_too_large", too_big)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, "payload_too_large", too_big)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(predictor, config: ServeConfig | None = None, onnx_dir: str | os.PathLike | None = None):
    """The ASGI app: /predict, /health, /info, /metrics, /openapi.json and /docs over one Predictor.

    Args:
        predictor: a loaded `Predictor` (or an object with its encode, logits_from_ids, to_predictions,
            label_names, settings, variant, batch_size and max_tokens).
        config: limits and batching; ServeConfig() by default.
        onnx_dir: the model folder named in /info; defaults to `predictor.model_dir`.

    Returns:
        A FastAPI app whose lifespan starts the batcher and, at shutdown, answers every queued request first.

    Raises:
        ConfigError: max_batch_tokens is below the model's max_length.
    """
    from imdb_deploy import __version__

    config = config or ServeConfig()
    if config.max_batch_tokens < predictor.settings.max_length:
        raise ConfigError(
            f"max_batch_tokens={config.max_batch_tokens}: below the model's max_length "
            f"({predictor.settings.max_length}); use at least that"
        )
    service = _Service(predictor, config, str(onnx_dir if onnx_dir is not None else predictor.model_dir))
    PredictRequest, Prediction, ErrorBody = _request_models()

    @asynccontextmanager
    async def lifespan(app):
        service.batcher = Batcher(predictor, config, service.metrics)
        service.batcher.start()
        yield
        service.begin_drain()
        await service.batcher.close()

    app = FastAPI(
        title="imdb-deploy",
        version=__version__,
        description="IMDb review sentiment from an exported, parity-checked ONNX model, with dynamic batching.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(_MetricsMiddleware, metrics=service.metrics)

    @app.exception_handler(RequestError)
    async def request_error(request, exc: RequestError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    errors = {
        status: {"model": ErrorBody, "description": text}
        for status, text in (
            (413, "Too many texts, a text over max_review_bytes, or a body over max_body_bytes"),
            (422, "Malformed JSON, a missing or unknown field, a non-string or empty text (named with its index)"),
            (429, "More than max_concurrent_requests reviews in flight; see Retry-After"),
            (500, "The model failed on this request (other requests are unaffected)"),
            (503, "Shutting down"),
        )
    }

    @app.post(
        "/predict",
        response_model=Prediction | list[Prediction],
        responses=errors,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
            }
        },
    )
    async def predict(request: Request):
        """Sentiment of one review (answer: one object) or a list of reviews (answer: a list, in order)."""
        body = await _read_body(request, config.max_body_bytes)
        texts, single = parse_predict_body(body, config)
        probabilities = await service.predict(texts)
        answers = [asdict(p) for p in predictor.to_predictions(probabilities)]
        return JSONResponse(answers[0] if single else answers)

    @app.get("/health", responses={503: {"model": ErrorBody, "description": "The model did not answer"}})
    async def health():
        """200 once the model has scored a real probe review just now; 503 otherwise or while shutting down."""
        if service.draining:
            return JSONResponse(
                {"error": "shutting down", "error_type": "unhealthy"}, 503, headers=service.retry_headers()
            )
        try:
            await service.probe()
        except asyncio.TimeoutError:
            message = f"the probe review was not scored within {config.health_timeout_s} s"
            return JSONResponse({"error": message, "error_type": "unhealthy"}, 503)
        except Exception as exc:
            return JSONResponse({"error": f"the probe review failed: {exc}", "error_type": "unhealthy"}, 503)
        return {"status": "ok"}

    @app.get("/info")
    async def info():
        """The model folder, variant, labels, tokenization, versions, batching settings, limits and parity."""
        return service.info()

    @app.get("/metrics")
    async def metrics():
        """Prometheus text: requests, latency, queue depth, batch sizes, reviews scored."""
        if service.batcher is not None:
            service.metrics.queue.set(service.batcher.queued)
        payload, content_type = service.metrics.render()
        return Response(payload, media_type=content_type)

    return app


# --- running it -------------------------------------------------------------------------------------------


def load_predictor(onnx_dir: str | os.PathLike, config: ServeConfig):
    """The Predictor the server runs, after one warm-up prediction (a broken model fails here, not later).

    Raises:
        ModelLoadError: the folder or variant is missing, or the warm-up prediction fails.
    """
    from imdb_deploy.predict import Predictor

    predictor = Predictor(onnx_dir, variant=config.variant, threads=config.threads)
    try:
        predictor.predict(["A warm-up review."])
    except ImdbDeployError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"{onnx_dir}: the model failed its warm-up prediction ({exc})") from exc
    return predictor


@contextmanager
def _signals_end_cleanly():
    """uvicorn re-raises the signal that stopped it once it has shut down, so the process would die of
    SIGTERM (exit 143) or raise KeyboardInterrupt after a complete drain. A drained stop is a success:
    while the server runs, the handlers uvicorn restores at its end do nothing, and the process exits 0."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(onnx_dir: str | os.PathLike, config: ServeConfig | None = None, predictor=None, sockets=None) -> None:
    """Serve a model until SIGTERM or SIGINT, then answer every admitted request and return.

    Args:
        onnx_dir: folder written by `imdb-deploy export`.
        config: address, batching and limits.
        predictor: an already loaded Predictor (or a stand-in with its methods); None loads `onnx_dir`.
        sockets: already bound listening sockets to serve on instead of host and port.

    Raises:
        ModelLoadError: the model cannot be loaded or fails its warm-up.
        ConfigError: a setting does not fit the model.
        ImdbDeployError: the server could not start (e.g. the port is taken).
    """
    import uvicorn

    config = config or ServeConfig()
    predictor = predictor if predictor is not None else load_predictor(onnx_dir, config)
    app = create_app(predictor, config, onnx_dir)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            app.state.service.begin_drain()  # new work gets 503 from now on; admitted work is answered
            super().handle_exit(sig, frame)

    server = Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            access_log=config.access_log,
            lifespan="on",
            timeout_graceful_shutdown=None,  # wait for every admitted request, however long the queue
        )
    )
    with _signals_end_cleanly():
        server.run(sockets=sockets)
    if not server.started:
        raise ImdbDeployError(f"the server did not start on {config.host}:{config.port} (see the log above)")
