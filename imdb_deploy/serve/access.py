"""Who may call the server: Host allow-list, API key, Content-Type, checked before a route runs."""

from __future__ import annotations

import hmac

from imdb_deploy.serve.config import ServeConfig
from imdb_deploy.serve.types import PREDICT_ROUTES, RequestError, excerpt


def allowed_hosts(config: ServeConfig) -> frozenset[str]:
    """Host header names the server answers: the bind address, the localhost names, and --allow-host."""
    names = {"localhost", "127.0.0.1", "::1", "[::1]"}
    if config.host not in ("0.0.0.0", "::"):
        names.add(config.host)
    return frozenset(n.lower() for n in (*names, *config.allowed_hosts))


def _host_name(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:8000
        return value.split("]")[0] + "]"
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class AccessControl:
    """Pure ASGI middleware, before any route: one Host header, Host allow-list, Bearer API key, JSON Content-Type
    on /predict.

    Every refusal is a TEI error body. /health answers any Host, and no key unless `health_needs_key`.
    """

    def __init__(self, app, config: ServeConfig) -> None:
        self.app = app
        self.config = config
        self.hosts = allowed_hosts(config)
        self.any_host = "*" in config.allowed_hosts
        self.key = f"Bearer {config.api_key}".encode() if config.api_key else None

    def refusal(self, scope) -> RequestError | None:
        headers = {}
        hosts = 0
        for name, value in scope.get("headers", ()):
            headers.setdefault(name.lower(), value)
            hosts += name.lower() == b"host"
        if hosts > 1:  # RFC 9112 3.2: a server MUST answer 400; which one names the target would be a guess
            return RequestError(400, "BadRequest", f"{hosts} Host headers; send exactly one")
        host = headers.get(b"host", b"").decode("latin-1")
        path = scope["path"]
        # /health answers any Host: an orchestrator's probe names the pod's address, and it reveals nothing.
        if not self.any_host and path != "/health" and _host_name(host) not in self.hosts:
            return RequestError(
                403, "Forbidden", f"Host {excerpt(host)} is not served here; the operator can add it with --allow-host"
            )
        # A CORS preflight carries no credentials (browsers never send them on OPTIONS): let CORS answer it.
        preflight = scope["method"] == "OPTIONS" and bool(self.config.cors_origins)
        needs_key = self.key is not None and not preflight and (path != "/health" or self.config.health_needs_key)
        if needs_key and not hmac.compare_digest(headers.get(b"authorization", b""), self.key):
            return RequestError(
                401,
                "Unauthorized",
                "missing or wrong API key; send Authorization: Bearer <key>",
                {"WWW-Authenticate": "Bearer"},
            )
        if path in PREDICT_ROUTES and scope["method"] == "POST":
            kind = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
            if kind != "application/json":
                return RequestError(
                    415,
                    "UnsupportedMediaType",
                    f"Content-Type {excerpt(kind)}: send the body as application/json",
                )
        return None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            error = self.refusal(scope)
            if error is not None:
                await error.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)
