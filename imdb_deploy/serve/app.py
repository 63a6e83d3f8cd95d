"""`imdb-deploy serve`: an HTTP service over `Predictor` with dynamic batching, backpressure and metrics.

One FastAPI app on uvicorn, speaking text-embeddings-inference's `/predict` (the contract: serve_api). A request
is admitted by its body bytes before the body is read and by its reviews once parsed; its reviews are tokenized in
a tokenizer thread (requests over FAST_LANE_BYTES go to a second one, so one long review cannot hold up short
ones) and queued one review per entry. A single batcher task takes reviews from the front of the queue, across
requests, until the next would push the batch past `max_batch_tokens` padded tokens (reviews x longest, the rule
text-embeddings-inference uses for padded models), and hands the batch to a model thread:
`Predictor.logits_from_ids` sorts it by length and runs it in cache-sized calls (the runtimes release the GIL),
or, for a per-review variant, one review per call on the Predictor's `workers` threads, with up to `workers`
batches in flight so that no core idles at a batch's end. /health scores its pre-tokenized probe review on a
thread of its own, so it never waits behind client work.

Scoring goes through the Predictor's public methods, so the server answers exactly as `Predictor.predict` does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import threading
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.middleware.cors import CORSMiddleware

from imdb_deploy.errors import ConfigError, ImdbDeployError, ModelLoadError
from imdb_deploy.machine import STACK, versions
from imdb_deploy.runtimes.folder import ExportFolder
from imdb_deploy.runtimes.predictor import Predictor
from imdb_deploy.serve.access import AccessControl
from imdb_deploy.serve.batcher import Batcher, InferenceError
from imdb_deploy.serve.config import ServeConfig
from imdb_deploy.serve.http import (
    install_docs,
    install_error_handlers,
    predict_responses,
    read_body,
    unless_client_leaves,
    uvicorn_config,
)
from imdb_deploy.serve.metrics import MetricsMiddleware, ServeMetrics
from imdb_deploy.serve.types import (
    PREDICT_ROUTES,
    ErrorBody,
    PredictCall,
    RequestError,
    answer,
    json_schema_limits,
    parse_predict_body,
    timing_headers,
)
from imdb_deploy.version import __version__

logger = logging.getLogger(__name__)


class _Service:
    """What the routes share: config, predictor, batcher, metrics, what is in flight and the drain flag."""

    def __init__(self, predictor, config: ServeConfig, onnx_dir: str) -> None:
        self.predictor = predictor
        self.config = config
        self.onnx_dir = onnx_dir
        # Read at start-up: /info never re-reads the folder.
        self.verdict = parity_verdict(predictor, onnx_dir, config.info_details)
        self.metrics = ServeMetrics()
        self.batcher: Batcher | None = None
        self.in_flight = 0  # reviews admitted and not yet answered
        self.in_flight_bytes = 0  # body bytes reserved by requests being read or answered
        self.draining = False
        self._probe: asyncio.Future | None = None
        settings = predictor.settings
        # How each truncation request is tokenized: the trained cut, the head, the tail; and, for
        # truncate=false, one token more than the model takes (a longer review is then refused, not cut).
        self.cuts = {
            None: settings,
            "right": dataclasses.replace(settings, truncation="head"),
            "left": dataclasses.replace(settings, truncation="head+tail", head_tokens=0),
            "refuse": dataclasses.replace(settings, max_length=settings.max_length + 1, truncation="head"),
        }

    def begin_drain(self) -> None:
        """Refuse new work (503) while the requests already admitted are answered."""
        self.draining = True

    def retry_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.config.retry_after_s)}

    def overloaded(self, what: str, unread_body: bool = False) -> RequestError:
        # A body left unread cannot be skipped on a keep-alive connection: close it after the answer.
        headers = {**self.retry_headers(), **({"Connection": "close"} if unread_body else {})}
        return RequestError(
            429, "Overloaded", f"Model is overloaded: {what}; retry after {self.config.retry_after_s} s", headers
        )

    def reserve(self, nbytes: int) -> None:
        """Count `nbytes` more of request bodies in flight, or refuse with 429 past max_concurrent_bytes."""
        if self.in_flight_bytes + nbytes > self.config.max_concurrent_bytes:
            raise self.overloaded(
                f"{self.in_flight_bytes:,} request bytes in flight, max_concurrent_bytes="
                f"{self.config.max_concurrent_bytes:,}",
                unread_body=True,
            )
        self.in_flight_bytes += nbytes
        self.metrics.in_flight_bytes.set(self.in_flight_bytes)

    def release(self, nbytes: int) -> None:
        self.in_flight_bytes -= nbytes
        self.metrics.in_flight_bytes.set(self.in_flight_bytes)

    async def predict(self, call: PredictCall, nbytes: int) -> tuple[np.ndarray, dict]:
        """The logits of the call's reviews and TEI's timing headers' parts.

        Raises:
            RequestError: 503 draining, 429 overloaded, 422 a review too long with truncate=false, 424 the
                model failed on it, 500 the tokenizer did.
        """
        if self.draining:
            raise RequestError(
                503, "Unhealthy", "the server is shutting down; retry on another instance", self.retry_headers()
            )
        texts = call.texts
        if self.in_flight + len(texts) > self.config.max_concurrent_requests:
            raise self.overloaded(
                f"{self.in_flight} reviews in flight, max_concurrent_requests={self.config.max_concurrent_requests}"
            )
        truncate = self.config.auto_truncate if call.truncate is None else call.truncate
        settings = self.cuts[call.direction if truncate else "refuse"]
        self.in_flight += len(texts)
        self.metrics.in_flight.set(self.in_flight)
        try:
            try:
                encoded, tokenize_s = await self.batcher.tokenize(texts, settings, nbytes)
            except Exception as exc:  # the tokenizer raised: this request fails, the server goes on
                logger.exception("a request of %d reviews failed in the tokenizer", len(texts))
                raise RequestError(500, "Tokenizer", f"the tokenizer failed: {type(exc).__name__}: {exc}") from exc
            limit = self.predictor.settings.max_length
            for i, ids in enumerate(encoded):
                if len(ids) > limit:
                    where = "inputs" if call.single else f"inputs[{i}]"
                    raise RequestError(
                        422,
                        "Validation",
                        f'{where}: `inputs` must have less than {limit} tokens; send "truncate": true to have it cut',
                    )
            try:
                job = await self.batcher.score(encoded)
            except InferenceError as exc:
                raise RequestError(424, "Backend", f"the model failed on this request: {exc}") from exc
            timing = {"tokenization_s": tokenize_s, "queue_s": job.queue_s, "inference_s": job.inference_s}
            return job.logits, {**timing, "tokens": sum(len(ids) for ids in encoded)}
        finally:
            self.in_flight -= len(texts)
            self.metrics.in_flight.set(self.in_flight)

    async def probe(self) -> None:
        """Score the probe review on its own thread; concurrent /health calls share one probe.

        Raises:
            RequestError: 503 when a client batch has been in the model for more than health_timeout_s
                (the probe's own thread would not see a hung model call).
        """
        stuck = self.batcher.longest_running_s
        if stuck > self.config.health_timeout_s:
            raise RequestError(
                503,
                "Unhealthy",
                f"a batch has been in the model for {stuck:.1f} s, over {self.config.health_timeout_s} s",
            )
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self.batcher.probe())
            # A probe that fails after its caller timed out is still retrieved, so asyncio does not log it.
            self._probe.add_done_callback(lambda task: task.cancelled() or task.exception())
        await asyncio.wait_for(asyncio.shield(self._probe), self.config.health_timeout_s)

    def info(self) -> dict:
        p = self.predictor
        settings = p.settings
        details = self.config.info_details
        out = {
            "model_dir": str(Path(self.onnx_dir).resolve()) if details else Path(self.onnx_dir).resolve().name,
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
            "auto_truncate": self.config.auto_truncate,
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
                name: getattr(self.config, name)
                for name in (
                    "max_concurrent_requests",
                    "max_concurrent_bytes",
                    "max_client_batch_size",
                    "max_body_bytes",
                    "max_review_bytes",
                    "body_timeout_s",
                    "keep_alive_s",
                    "max_connections",
                    "retry_after_s",
                )
            },
            "auth": {"api_key": self.config.api_key is not None, "health_needs_key": self.config.health_needs_key},
            "parity": self.verdict,
        }
        if details:
            out["versions"] = versions((*STACK, "tokenizers", "fastapi", "uvicorn", "uvloop", "httptools", "numpy"))
        return out


def _add_status_routes(app: FastAPI, service: _Service) -> None:
    """/health, /info and /metrics."""

    @app.get(
        "/health",
        responses={503: {"model": ErrorBody, "description": "The model did not answer, or shutting down"}},
    )
    async def health() -> dict[str, str]:
        """200 once the model has just scored a real probe review, on a thread of its own (never behind client
        work); 503 otherwise or while shutting down."""
        if service.draining:
            raise RequestError(503, "Unhealthy", "shutting down", service.retry_headers())
        try:
            await service.probe()
        except RequestError:
            raise
        except asyncio.TimeoutError:
            raise RequestError(
                503, "Unhealthy", f"the probe review was not scored within {service.config.health_timeout_s} s"
            ) from None
        except Exception as exc:
            raise RequestError(503, "Unhealthy", f"the probe review failed: {type(exc).__name__}") from exc
        return {"status": "ok"}

    @app.get("/info")
    async def info() -> dict:
        """Model, variant, labels, tokenization, batching settings, limits, parity (paths and versions with
        --info-details)."""
        return service.info()

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
    )
    async def metrics():
        """Prometheus text: requests by route and status, latency, queue depth, batch sizes, reviews scored."""
        if service.batcher is not None:
            service.metrics.queue.set(service.batcher.queued)
        payload, content_type = service.metrics.render()
        return Response(payload, media_type=content_type)


def create_app(predictor, config: ServeConfig | None = None, onnx_dir: str | os.PathLike | None = None):
    """The ASGI app: TEI's /predict (also on / and /invocations), /health, /info, /metrics, /openapi.json, /docs.

    Args:
        predictor: a loaded `Predictor` (or an object with its encode, tokenizer, settings, logits_from_ids,
            label_names, variant, batching, batch_size and max_tokens).
        config: limits, batching and access; ServeConfig() by default.
        onnx_dir: the model folder named in /info; defaults to `predictor.model_dir`.

    Returns:
        A FastAPI app whose lifespan starts the batcher and, at shutdown, answers every queued request first.

    Raises:
        ConfigError: max_batch_tokens is below the model's max_length.
    """

    config = config or ServeConfig()
    max_length = predictor.settings.max_length
    if config.max_batch_tokens < max_length:
        raise ConfigError(
            f"max_batch_tokens={config.max_batch_tokens}: below the model's max_length ({max_length}); "
            "use at least that"
        )
    service = _Service(predictor, config, str(onnx_dir if onnx_dir is not None else predictor.model_dir))

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
        description="IMDb review sentiment from an exported, parity-checked ONNX model, with dynamic batching. "
        "Speaks text-embeddings-inference's /predict for sequence classification.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(AccessControl, config=config)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)  # outermost: counts the refusals too
    install_error_handlers(app)
    install_docs(app)
    _add_predict_routes(app, service, config)
    _add_status_routes(app, service)
    return app


def _add_predict_routes(app: FastAPI, service: _Service, config: ServeConfig) -> None:
    """TEI's /predict, also on / and /invocations, with the request schema stating the running limits."""
    predictor = service.predictor
    request_body = {
        "required": True,
        "content": {"application/json": {"schema": json_schema_limits(config, predictor.settings.max_length)}},
    }

    async def predict(request: Request):
        """Sentiment as text-embeddings-inference answers it: per input, every class as {label, score}, best first.

        A single input (a string) gets a flat list; a batch (`[["a"], ["b"]]`, or a flat list of 3+ strings)
        one list per input, in order; with `parameters` (huggingface_hub's InferenceClient) a single input
        also gets `[[...]]`. `details: true` answers our object per input instead.
        """
        start = time.perf_counter()
        reserved = await read_body(request, config, service.reserve, service.release)
        try:
            call = parse_predict_body(request.state.body, config)
            logits, timing = await unless_client_leaves(request, service.predict(call, reserved))
        finally:
            service.release(reserved)
        body = answer(call, logits, predictor.label_names, predictor.variant)
        headers = timing_headers(
            start,
            timing["tokenization_s"],
            timing["queue_s"],
            timing["inference_s"],
            call,
            timing["tokens"],
            "gpu" if "CUDA" in str(getattr(predictor, "provider", "")) else "cpu",
        )
        return JSONResponse(body, headers=headers)

    for path in PREDICT_ROUTES:
        app.add_api_route(
            path,
            predict,
            methods=["POST"],
            response_model=None,
            responses=predict_responses(),
            openapi_extra={"requestBody": request_body},
            operation_id="predict" if path == "/predict" else f"predict{path.replace('/', '_') or '_root'}",
            summary="Predict" if path == "/predict" else f"Predict (also on {path})",
        )


def load_predictor(onnx_dir: str | os.PathLike, config: ServeConfig):
    """The Predictor the server runs, after one warm-up prediction (a broken model fails here, not later).

    Raises:
        ModelLoadError: the folder or variant is missing, or the warm-up prediction fails.
    """
    predictor = Predictor(
        onnx_dir, variant=config.variant, threads=config.threads, allow_unverified=config.allow_unverified
    )
    if not predictor.files.verified:
        logger.warning("serving UNVERIFIED model files: %s", predictor.files.reason)
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
    config = config or ServeConfig()
    predictor = predictor if predictor is not None else load_predictor(onnx_dir, config)
    app = create_app(predictor, config, onnx_dir)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            app.state.service.begin_drain()  # new work gets 503 from now on; admitted work is answered
            super().handle_exit(sig, frame)

    server = Server(uvicorn_config(app, config))
    with _signals_end_cleanly():
        server.run(sockets=sockets)
    if not server.started:
        raise ImdbDeployError(f"the server did not start on {config.host}:{config.port} (see the log above)")


def parity_verdict(predictor, onnx_dir: str | os.PathLike, details: bool = False) -> dict:
    """The parity gate's verdict for the served variant, tied to the files the predictor loaded.

    A Predictor carries its opened folder and the check of its files (model_folder.ExportFolder.verdict); a
    stand-in without them gets the folder's report read here, its files unchecked.

    Args:
        predictor: the served Predictor (or a stand-in with a `variant`).
        onnx_dir: the model folder.
        details: keep the folder and the gate's data folder as written (absolute paths, maybe); else only
            their last parts.
    """
    folder = getattr(predictor, "folder", None)
    if not isinstance(folder, ExportFolder):
        try:
            folder = ExportFolder(onnx_dir)
        except ModelLoadError as exc:
            return {
                "verified": False,
                "reason": str(exc) if details else str(exc).replace(str(onnx_dir), Path(onnx_dir).name),
            }
    out = folder.verdict(predictor.variant, getattr(predictor, "files", None))
    if details:
        return out
    data = out.get("data")
    if isinstance(data, str):
        out["data"] = Path(data).name
    if isinstance(out.get("reason"), str):
        out["reason"] = out["reason"].replace(str(folder.path), folder.path.name)
    return out
