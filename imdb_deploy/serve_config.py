"""`imdb-deploy serve`'s settings, apart from the server so the CLI reads their defaults without FastAPI.

`imdb_deploy.serve` (the app, batcher and server) needs the `serve` extra; this module needs nothing but the
package, so `imdb-deploy --help` and every other command work on an install without it.
"""

from __future__ import annotations

from dataclasses import dataclass

from imdb_deploy.errors import ConfigError
from imdb_deploy.readers import MAX_REVIEW_BYTES


@dataclass(frozen=True)
class ServeConfig:
    """How `imdb-deploy serve` listens, batches and protects itself.

    Attributes:
        host: address to listen on. Loopback by default: exposing the model to a network is a choice.
        port: TCP port.
        variant: ONNX file to serve ("auto" takes INT8 on the CPU, as predict does).
        threads: onnxruntime intra-op threads; None uses all physical cores (one model thread runs at a time).
        max_batch_tokens: most padded tokens (reviews x longest) the batcher gathers into one batch from across
            requests. 16,384 is text-embeddings-inference's default: 64 reviews of 256 tokens, enough for the
            length sort inside the batch to find neighbours, small enough that a batch takes ~1.5 s on 2 cores.
        max_batch_size: most reviews in one batch; None leaves only the token budget. 1 turns batching off
            (one review per onnxruntime call: the baseline of the load benchmark).
        max_wait_ms: how long the batcher may hold a batch open for reviews that were admitted but are still
            being tokenized; it never waits when no other request is in flight, so a lone client pays nothing.
        max_concurrent_requests: most reviews admitted and not yet answered (queued, tokenizing or scoring);
            past it a request gets 429. Each text of a list counts, as in text-embeddings-inference, so the
            queue is bounded in reviews. 512 reviews is ~13 s of work for MiniLM on 2 cores: a client
            waiting longer than that is better told to retry.
        max_client_batch_size: most texts in one request (text-embeddings-inference's default, 32).
        max_body_bytes: largest request body; bigger ones get 413 before they are read (text-embeddings-
            inference's 2 MB payload limit).
        max_review_bytes: largest single text, in UTF-8 bytes: the project's review cap (readers.MAX_REVIEW_BYTES,
            the same for predict and serve; a review is tokenized whole before it is cut to max_length, so this
            bounds the tokenizer's work per text); bigger ones get 413.
            Long reviews under it are cut exactly as in training, never rejected.
        retry_after_s: the Retry-After header of a 429 or 503, in whole seconds.
        health_timeout_s: how long /health waits for its probe review to be scored before answering 503.
        access_log: one uvicorn log line per request on stderr.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    variant: str = "auto"
    threads: int | None = None
    max_batch_tokens: int = 16384
    max_batch_size: int | None = None
    max_wait_ms: float = 5.0
    max_concurrent_requests: int = 512
    max_client_batch_size: int = 32
    max_body_bytes: int = 2_000_000
    max_review_bytes: int = MAX_REVIEW_BYTES
    retry_after_s: int = 1
    health_timeout_s: float = 10.0
    access_log: bool = True

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("host='': name an address to listen on, e.g. 127.0.0.1")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port={self.port!r}: use 0 to 65535")
        for name in (
            "max_batch_tokens",
            "max_concurrent_requests",
            "max_client_batch_size",
            "max_body_bytes",
            "max_review_bytes",
            "retry_after_s",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r}: use a whole number of 1 or more")
        for name in ("threads", "max_batch_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name}={value!r}: use a whole number of 1 or more (or None)")
        if self.max_wait_ms < 0:
            raise ConfigError(f"max_wait_ms={self.max_wait_ms!r}: use 0 or more")
        if self.health_timeout_s <= 0:
            raise ConfigError(f"health_timeout_s={self.health_timeout_s!r}: use more than 0")
        if self.max_client_batch_size > self.max_concurrent_requests:
            raise ConfigError(
                f"max_client_batch_size={self.max_client_batch_size!r} is more than max_concurrent_requests="
                f"{self.max_concurrent_requests!r}: such a request could never be admitted; lower the first"
            )
