"""Prometheus metrics of the server and the middleware that counts requests."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from imdb_deploy.serve.types import CLIENT_CLOSED, ROUTES


class ServeMetrics:
    """The server's Prometheus metrics, in a registry of its own (several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "imdb_deploy_http_requests",
            "HTTP requests answered, by route and status (499: the client went away first).",
            ["route", "status"],
            registry=r,
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
        self.in_flight_bytes = Gauge(
            "imdb_deploy_in_flight_bytes", "Request body bytes buffered or admitted (the 429 byte limit).", registry=r
        )
        self.batch_reviews = Histogram(
            "imdb_deploy_batch_reviews", "Reviews per batch.", buckets=tuple(2**k for k in range(11)), registry=r
        )
        self.batch_tokens = Histogram(
            "imdb_deploy_batch_padded_tokens",
            "Padded tokens per batch, summed over its length-sorted onnxruntime calls.",
            buckets=tuple(2**k for k in range(6, 17)),
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
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP answer by route and status and times it.

    A request whose client disconnected before its answer started counts as 499, whatever the app raised.
    """

    def __init__(self, app, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in ROUTES else "other"
        if route == "other" and scope["path"].startswith("/docs/assets/"):
            route = "/docs/assets"
        status = 500  # what the client gets if the app raises before answering
        disconnected = False
        start = time.perf_counter()

        async def receive_and_watch():
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            return message

        async def send_and_record(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive_and_watch, send_and_record)
        finally:
            if disconnected and status == 500:
                status = CLIENT_CLOSED
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
