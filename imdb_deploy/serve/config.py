"""`imdb-deploy serve`'s settings, apart from the server so the CLI reads their defaults without FastAPI.

`imdb_deploy.serve` (the app, batcher and server) needs the `serve` extra; this module needs nothing but the
package, so `imdb-deploy --help` and every other command work on an install without it.
"""

from __future__ import annotations

from dataclasses import dataclass

from imdb_deploy.errors import ConfigError
from imdb_deploy.reviews import MAX_REVIEW_BYTES


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
        max_client_batch_size: most texts in one request (text-embeddings-inference's default, 32); past it 422,
            TEI's batch-size error.
        max_body_bytes: largest request body; bigger ones get 413 before they are read (text-embeddings-
            inference's 2 MB payload limit).
        max_review_bytes: largest single text, in UTF-8 bytes: the project's review cap (readers.MAX_REVIEW_BYTES,
            the same for predict and serve; a review is tokenized whole before it is cut to max_length, so this
            bounds the tokenizer's work per text); bigger ones get 413.
            Long reviews under it are cut exactly as in training (unless a request sends "truncate": false).
        max_concurrent_bytes: most request-body bytes buffered or admitted and not yet answered; past it a
            request gets 429 before its body is read. Reviews alone do not measure work: one 1 MB review costs
            the tokenizer as much as a thousand short ones. 8 MB is four full payloads: a flood of long reviews
            is shed while short ones still fit, and 200 stalled 2 MB bodies cannot hold more than 8 MB.
        auto_truncate: what a request without `truncate` gets. True (unlike text-embeddings-inference's
            default): a review past the model's max_length is cut as in training, which is how the model was
            evaluated; a request can still send "truncate": false to have such reviews refused (422).
        api_key: when set, every route but /health needs `Authorization: Bearer <key>` (text-embeddings-
            inference's --api-key); compared in constant time.
        health_needs_key: /health needs the key too (a probe that can send headers).
        allowed_hosts: Host header names served besides the bind address and the localhost names ("*": any);
            other names get 403, which stops DNS rebinding from reading the API through a browser.
        cors_origins: origins allowed to call the API from a browser (none by default: no CORS headers).
        info_details: /info shows the model folder's absolute path and exact package versions (off by default:
            they help an attacker more than a client).
        body_timeout_s: most seconds a request's headers and body may take to arrive; a stalled client is
            then answered 408 and dropped, so it holds no memory or connection slot for longer.
        keep_alive_s: an idle keep-alive connection is closed after this many seconds (uvicorn's default).
        max_connections: most open connections and requests (uvicorn's limit_concurrency); past it uvicorn
            answers 503 at once. None: no cap.
        max_header_bytes: most bytes of a request head that is still incomplete; past it 431 and the
            connection is closed (httptools has no such limit; uvicorn's h11_max_incomplete_event_size is the
            same for h11).
        retry_after_s: the Retry-After header of a 429 or 503, in whole seconds.
        health_timeout_s: how long /health waits for its probe review to be scored before answering 503.
        access_log: one uvicorn log line per request on stderr.
        allow_unverified: serve files that differ from the checksums export_report.json recorded (or a folder
            whose report cannot be read); /info then says `verified: false` and why. Off: such a folder is
            refused at start-up.
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
    max_concurrent_bytes: int = 8_000_000
    auto_truncate: bool = True
    api_key: str | None = None
    health_needs_key: bool = False
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    info_details: bool = False
    body_timeout_s: float = 10.0
    keep_alive_s: int = 5
    max_connections: int | None = 1024
    max_header_bytes: int = 16384
    retry_after_s: int = 1
    health_timeout_s: float = 10.0
    access_log: bool = True
    allow_unverified: bool = False

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
            "max_concurrent_bytes",
            "keep_alive_s",
            "max_header_bytes",
            "retry_after_s",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r}: use a whole number of 1 or more")
        for name in ("threads", "max_batch_size", "max_connections"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name}={value!r}: use a whole number of 1 or more (or None)")
        if self.max_wait_ms < 0:
            raise ConfigError(f"max_wait_ms={self.max_wait_ms!r}: use 0 or more")
        for name in ("health_timeout_s", "body_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)!r}: use more than 0")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError("api_key: shorter than 8 characters; use a long random key (e.g. openssl rand -hex 16)")
        if self.max_body_bytes > self.max_concurrent_bytes:
            raise ConfigError(
                f"max_body_bytes={self.max_body_bytes!r} is more than max_concurrent_bytes="
                f"{self.max_concurrent_bytes!r}: such a body could never be admitted; lower the first"
            )
        if self.max_client_batch_size > self.max_concurrent_requests:
            raise ConfigError(
                f"max_client_batch_size={self.max_client_batch_size!r} is more than max_concurrent_requests="
                f"{self.max_concurrent_requests!r}: such a request could never be admitted; lower the first"
            )
