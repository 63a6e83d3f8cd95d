"""`imdb-deploy serve`: the HTTP service."""

from __future__ import annotations

from pathlib import Path

import click

from imdb_deploy.cli.options import (
    config_flag,
    config_option,
    default_of,
    user_errors,
)
from imdb_deploy.runtimes.config import VARIANTS
from imdb_deploy.serve.config import ServeConfig


@click.command()
@click.argument("onnx_dir", type=click.Path(file_okay=False, path_type=Path))
@config_option(ServeConfig, "--host", help="Address to listen on (0.0.0.0: every one).")
@config_option(ServeConfig, "--port", type=click.IntRange(0, 65535))
@config_option(
    ServeConfig,
    "--variant",
    type=click.Choice(["auto", *VARIANTS]),
    help="Variant to serve; auto takes the folder's measured default_variant on the CPU (else int8).",
)
@click.option("--threads", type=click.IntRange(min=1), help="onnxruntime intra-op threads [default: physical cores].")
@config_option(
    ServeConfig,
    "--max-batch-tokens",
    type=click.IntRange(min=1),
    help="Most padded tokens (reviews x longest) the batcher gathers across requests into one batch.",
)
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=1),
    help="Most reviews in one batch [default: no cap but the tokens]; 1 turns batching off.",
)
@config_option(
    ServeConfig,
    "--max-wait-ms",
    type=click.FloatRange(min=0),
    help="Longest a batch waits for reviews still being tokenized (never when no one else is in flight).",
)
@config_option(
    ServeConfig,
    "--max-concurrent-requests",
    type=click.IntRange(min=1),
    help="Most reviews in flight; past it 429 with Retry-After.",
)
@config_option(
    ServeConfig,
    "--max-concurrent-bytes",
    type=click.IntRange(min=1),
    help="Most request-body bytes buffered or in flight; past it 429 before the body is read.",
)
@config_option(ServeConfig, "--max-client-batch-size", type=click.IntRange(min=1), help="Most texts per request.")
@config_option(
    ServeConfig,
    "--payload-limit",
    "--max-body-bytes",
    "max_body_bytes",
    type=click.IntRange(min=1),
    help="Largest request body in bytes (text-embeddings-inference's --payload-limit).",
)
@config_option(
    ServeConfig,
    "--auto-truncate/--no-auto-truncate",
    help="Cut reviews past max_length as in training when a request does not say truncate; off: 422.",
)
@click.option(
    "--api-key",
    envvar="IMDB_DEPLOY_API_KEY",
    help="Require Authorization: Bearer KEY on every route but /health [env: IMDB_DEPLOY_API_KEY].",
)
@config_flag(ServeConfig, "--health-needs-key", help="/health needs the API key too.")
@click.option(
    "--allow-host",
    "allowed_hosts",
    multiple=True,
    default=default_of(ServeConfig, "allowed_hosts"),
    help="A Host header name to answer besides the bind address and localhost (repeat; * for any).",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    default=default_of(ServeConfig, "cors_origins"),
    help="A browser origin allowed to call the API (repeat).",
)
@config_flag(ServeConfig, "--info-details", help="/info shows the model folder's absolute path and package versions.")
@config_option(
    ServeConfig,
    "--body-timeout",
    "body_timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a request's head and body may take to arrive; then 408 and the connection is dropped.",
)
@config_option(ServeConfig, "--keep-alive", "keep_alive_s", type=click.IntRange(min=1), help="Idle keep-alive seconds.")
@config_option(
    ServeConfig,
    "--max-connections",
    type=click.IntRange(min=1),
    help="Most open connections and requests (uvicorn's limit_concurrency); past it 503.",
)
@config_option(ServeConfig, "--access-log/--no-access-log", help="One log line per request.")
@config_flag(
    ServeConfig,
    "--allow-unverified",
    help="Serve model files that differ from the checksums export_report.json recorded (or a folder whose report "
    "cannot be read); /info says verified: false and why. Off: such a folder is refused at start-up.",
)
@user_errors
def serve(onnx_dir: Path, **options) -> None:
    """Serve an exported model over HTTP as text-embeddings-inference does: POST /predict, /health, /metrics.

    \b
    Example:
      imdb-deploy serve runs/minilm-2k-onnx --port 8000
      curl -H 'Content-Type: application/json' -d '{"inputs": "A wonderful film."}' 127.0.0.1:8000/predict
    """
    from imdb_deploy.serve.app import serve as run_server

    for name in ("allowed_hosts", "cors_origins"):
        options[name] = tuple(options[name])
    run_server(onnx_dir, ServeConfig(**options))
