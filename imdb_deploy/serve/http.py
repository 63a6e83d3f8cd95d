"""How `imdb-deploy serve` meets HTTP: TEI-shaped errors for every status, /docs without a CDN, the documented
answers of /predict, and uvicorn's settings and protocol (a deadline on the request head, half-close kept).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress

import uvicorn
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from imdb_deploy.serve.config import ServeConfig
from imdb_deploy.serve.types import CLIENT_CLOSED, STATUS_TYPES, ErrorBody, RequestError

try:  # Swagger UI's files, served by /docs without a CDN (the `serve` extra installs them)
    from swagger_ui_bundle import swagger_ui_path
except ImportError:  # pragma: no cover - /docs then says how to get them
    swagger_ui_path = None


def predict_responses() -> dict:
    prediction = {
        "type": "object",
        "required": ["label", "score"],
        "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
    }
    detailed = {
        "type": "object",
        "required": ["label", "score", "probabilities", "variant"],
        "properties": {
            "label": {"type": "string"},
            "score": {"type": "number"},
            "probabilities": {"type": "object", "additionalProperties": {"type": "number"}},
            "variant": {"type": "string"},
        },
    }
    ok = {
        "anyOf": [
            {"type": "array", "items": prediction, "description": "one input: every class, best first"},
            {"type": "array", "items": {"type": "array", "items": prediction}, "description": "one list per input"},
            detailed,
            {"type": "array", "items": detailed},
        ]
    }
    out = {
        200: {"description": "TEI's answer (or ours, with details)", "content": {"application/json": {"schema": ok}}}
    }
    for status, text in (
        (400, "An empty or blank text (TEI's Empty), a Content-Length that is not a number, or two Host headers"),
        (401, "--api-key is set and the request has no or the wrong Authorization: Bearer"),
        (403, "The Host header is not one this server answers"),
        (408, "The body did not arrive within --body-timeout"),
        (413, "A body over --payload-limit or a text over max_review_bytes"),
        (415, "The body is not sent as application/json"),
        (422, "Malformed JSON, a missing field, a wrong type, a pair of texts, too many texts or tokens"),
        (424, "The model failed on this request (other requests are unaffected)"),
        (429, "More reviews or body bytes in flight than the limits; see Retry-After"),
        (500, "The tokenizer failed on this request"),
        (503, "Shutting down"),
    ):
        out[status] = {"model": ErrorBody, "description": text}
    return out


async def read_body(request, config: ServeConfig, reserve, release) -> int:
    """Read the body within body_timeout_s, calling `reserve` for its bytes as they are known; the bytes reserved.

    The body is left in `request.state.body`; the caller `release`s the returned byte count when done.
    `reserve` raises (429) past the server's byte budget, so a body over it is never read.
    """
    limit = config.max_body_bytes
    too_big = f"body: over the payload limit of {limit:,} bytes; send fewer or shorter reviews per request"
    declared = request.headers.get("content-length")
    reserved = 0
    if declared is not None:
        if not declared.isdigit() or len(declared) > 18:
            raise RequestError(400, "BadRequest", f"Content-Length {declared[:20]!r} is not a number")
        if int(declared) > limit:
            raise RequestError(413, "Validation", too_big, {"Connection": "close"})
        reserve(int(declared))
        reserved = int(declared)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(config.body_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestError(413, "Validation", too_big, {"Connection": "close"})
                if size > reserved:
                    reserve(size - reserved)
                    reserved = size
                chunks.append(chunk)
    except TimeoutError:
        release(reserved)
        raise RequestError(
            408, "Timeout", f"body: not received within {config.body_timeout_s} s", {"Connection": "close"}
        ) from None
    except BaseException:
        release(reserved)
        raise
    request.state.body = b"".join(chunks)
    return reserved


async def unless_client_leaves(request: Request, work):
    """Await `work`, or cancel it when the client disconnects first (its reviews are then dropped from the
    queue, not scored) and raise ClientDisconnect, which the metrics count as 499."""
    task = asyncio.ensure_future(work)

    async def until_disconnect() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(until_disconnect())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        raise ClientDisconnect()
    return task.result()


def install_error_handlers(app: FastAPI) -> None:
    """TEI's `{"error", "error_type"}` body for every error, Starlette's own (404, 405) and a crash's included."""

    @app.exception_handler(RequestError)
    async def request_error(request, exc: RequestError):
        return exc.response()

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        error_type = STATUS_TYPES.get(exc.status_code, "Validation" if exc.status_code < 500 else "Internal")
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)[:200]
        return JSONResponse({"error": message, "error_type": error_type}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        return JSONResponse({"error": str(exc)[:200], "error_type": "Validation"}, 422)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request, exc: ClientDisconnect):
        # Nobody reads this answer; it is here so that the metrics count 499 and nothing logs a traceback.
        return JSONResponse({"error": "the client closed the connection", "error_type": "ClientClosed"}, CLIENT_CLOSED)

    @app.exception_handler(Exception)
    async def crashed(request, exc: Exception):
        return JSONResponse({"error": f"internal error ({type(exc).__name__})", "error_type": "Internal"}, 500)


def install_docs(app: FastAPI) -> None:
    """/docs: Swagger UI from the installed swagger-ui-bundle package, never from a CDN."""
    if swagger_ui_path is not None:
        app.mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        if swagger_ui_path is None:
            raise RequestError(404, "NotFound", "no Swagger UI files: pip install swagger-ui-bundle (the serve extra)")
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="imdb-deploy",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )


def protocol(config: ServeConfig) -> type:
    """uvicorn's httptools protocol with a deadline on the request head, TEI-shaped 400s, and half-close kept."""
    head_timeout = config.body_timeout_s
    head_limit = config.max_header_bytes

    class Protocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _half_closed = False
        _in_head = True  # the request head being received is not complete yet
        _head_bytes = 0

        def data_received(self, data: bytes) -> None:
            # httptools has no limit on the request head (uvicorn's h11_max_incomplete_event_size is h11's):
            # a head still incomplete after max_header_bytes is refused, so no client can park megabytes in it.
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if self._in_head and self._head_bytes > head_limit and not self.transport.is_closing():
                self._write_error(431, "Validation", f"request head over {head_limit:,} bytes")

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm_head_timer()

        def _arm_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(head_timeout, self._head_too_slow)

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if self.cycle is None or self.cycle.response_complete:  # no request is being answered
                self._write_error(408, "Timeout", f"request head not received within {head_timeout} s")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm_head_timer()

        def on_headers_complete(self) -> None:
            self._in_head = False
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().on_headers_complete()

        def connection_lost(self, exc) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            super().connection_lost(exc)

        def eof_received(self) -> bool | None:
            # A client that half-closes after its whole request (nc -N) still reads the answer: keep the
            # transport open while that request is answered; it is closed once the answer is sent.
            self._half_closed = True
            # A client that closes before its body is complete has gone: close, so the app sees the disconnect.
            answering = self.cycle is not None and not self.cycle.response_complete and not self.cycle.more_body
            return True if answering else None

        def on_response_complete(self) -> None:
            self._in_head, self._head_bytes = True, 0  # the next request's head
            super().on_response_complete()
            if self._half_closed and not self.transport.is_closing():
                self.transport.close()

        def send_400_response(self, msg: str) -> None:
            self._write_error(400, "BadRequest", msg)

        def _write_error(self, status: int, error_type: str, message: str) -> None:
            if self.transport.is_closing():
                return
            body = json.dumps({"error": message, "error_type": error_type}).encode()
            reason = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}[status]
            head = (
                f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            self.transport.write(head.encode() + body)
            self.transport.close()

    return Protocol


def uvicorn_config(app, config: ServeConfig, **overrides) -> uvicorn.Config:
    """uvicorn's settings for `app`: the timeouts, caps and protocol `config` asks for."""
    settings = {
        "host": config.host,
        "port": config.port,
        "access_log": config.access_log,
        "lifespan": "on",
        "http": protocol(config),
        "timeout_keep_alive": config.keep_alive_s,
        "limit_concurrency": config.max_connections,
        "h11_max_incomplete_event_size": config.max_header_bytes,
        "timeout_graceful_shutdown": None,  # wait for every admitted request, however long the queue
        **overrides,
    }
    return uvicorn.Config(app, **settings)
