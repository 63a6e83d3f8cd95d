"""Where `predict --engine ray` runs: starting or joining Ray, the options that spare a small node, which
node a piece of work ran on, and the words for a node lost mid-job.

Kept apart from the job itself (predict_ray.py): these are facts about the cluster, not about scoring.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from imdb_deploy.errors import ConfigError, ImdbDeployError
from imdb_deploy.fileio import remove_at_exit, remove_leftovers, work_dir_name
from imdb_deploy.runtimes.config import ONNX_FOLDER, ONNX_VARIANTS, OPENVINO_VARIANTS

# What a Ray started by `predict` turns off when `lean` (the default): on a 2-core node each costs a
# process or a thread that competes with the actors for the same cores, and a job run from the CLI has
# no use for them once it ends. The dashboard's web UI (include_dashboard=False; Ray still runs its small
# API server), the metrics agent's collection and export (enable_metrics_collection) and usage stats.
# Ray's log forwarding to the driver (log_to_driver) is off whenever the user asked for quiet.
LEAN_SYSTEM_CONFIG = {"enable_metrics_collection": False}

LEAN_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}

# A pool scores once its MIN actors are up (else the first actor up takes batches while the others load the
# model, and a small job runs on one node); a cluster that cannot place them fails after this long.
ACTOR_START_TIMEOUT_S = 600


class RayJobError(ImdbDeployError):
    """The Ray job failed for a reason outside the rows (a node, an actor or its objects lost)."""


def start_options(quiet: bool = True, lean: bool = True) -> tuple[dict, dict]:
    """`ray.init` keyword arguments and environment variables for a Ray this process starts.

    Args:
        quiet: Ray's own logs at ERROR only, worker logs kept out of the terminal (no log forwarding).
        lean: dashboard off, metrics collection and export off, usage stats off (LEAN_SYSTEM_CONFIG);
            False keeps Ray's defaults (dashboard on where its packages are installed).

    Returns:
        (init kwargs, environment variables to set before Ray starts).
    """
    options: dict = {"logging_level": logging.ERROR if quiet else logging.INFO, "log_to_driver": not quiet}
    env = {"RAY_BACKEND_LOG_LEVEL": "fatal"} if quiet else {}  # the C++ core logs warnings at ERROR (#53727)
    if lean:
        options |= {"include_dashboard": False, "_system_config": dict(LEAN_SYSTEM_CONFIG)}
        env |= LEAN_ENV
    return options, env


def connect(address: str | None = None, num_cpus: int | None = None, quiet: bool = True, lean: bool = True) -> bool:
    """Join a Ray cluster, or start a local one; returns True when this call connected (then shut it down).

    Args:
        address: None: RAY_ADDRESS when set, else a new local Ray; "auto", "HOST:PORT" (a head's GCS
            address, as `ray start --head` prints it) or "ray://host:10001": that cluster.
        num_cpus: CPUs of a new local Ray; None takes the machine's.
        quiet: see start_options; applies when joining too (log forwarding).
        lean: see start_options; only for a Ray started here (a cluster keeps the options it was started with).

    Raises:
        ConfigError: Ray is not installed, or the cluster named cannot be joined (unreachable, refused).
    """
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "--engine ray needs Ray Data: pip install 'imdb-deploy[ray]' (scripts/setup.sh installs it)"
        ) from exc

    if ray.is_initialized():
        return False
    options, env = start_options(quiet=quiet, lean=lean)
    added = {name: value for name, value in env.items() if name not in os.environ}  # the user's settings win
    os.environ.update(added)  # Ray's processes read them as they start; this process gets its own back after
    try:
        with _quiet_stderr(quiet):
            if address is None and not os.environ.get("RAY_ADDRESS"):
                # "local": a new Ray of our own even when `ray start` left a cluster on this machine
                ray.init(address="local", num_cpus=num_cpus, **options)
            else:
                joining = {k: v for k, v in options.items() if k in ("logging_level", "log_to_driver")}
                try:
                    ray.init(address=address, **joining)
                except (ConnectionError, RuntimeError, ray.exceptions.RayError) as exc:
                    given = address or f"RAY_ADDRESS={os.environ.get('RAY_ADDRESS')}"
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    texts = [str(seen) for seen in error_chain(exc)]
                    fix = (
                        "the cluster asks for a token: set RAY_AUTH_MODE=token (its token in ~/.ray/auth_token or "
                        "RAY_AUTH_TOKEN)"
                        if any("InvalidAuthToken" in text or "Authentication token" in text for text in texts)
                        else "check the address with `ray status` on its head node"
                    )
                    raise ConfigError(
                        f"{given}: cannot join that Ray cluster ({reason}); {fix}, or unset RAY_ADDRESS and leave "
                        "out --address to start a local Ray"
                    ) from None
    finally:
        for name in added:
            os.environ.pop(name, None)
    return True


@contextlib.contextmanager
def _quiet_stderr(quiet: bool):
    """While Ray starts, with `quiet`: file descriptor 2 to /dev/null. Ray's C++ core writes straight to it,
    past Python, and announces RAY_BACKEND_LOG_LEVEL itself ("logging.cc: Set ray log level from environment
    variable ...") before that level applies. Failures still arrive, as the exception ray.init raises."""
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def here() -> dict:
    """The node this Ray worker runs on: its Ray node id and IP address (nodes of a simulated cluster
    share a host name and an IP; the node id tells them apart)."""
    import ray

    return {"node": ray.get_runtime_context().get_node_id(), "address": ray.util.get_node_ip_address()}


def on_this_node() -> dict:
    """Ray options that keep an actor on the caller's node: the job's ledger stays with the driver, so losing
    a worker node never loses the counts."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node, soft=False)}


def per_node(actors: dict[str, dict]) -> dict[str, dict]:
    """Rows, batches and actors per node, from the ledger's per-actor entries (each names its node)."""
    nodes: dict[str, dict] = {}
    for entry in actors.values():
        node = nodes.setdefault(entry["node"], {"address": entry["address"], "actors": 0, "rows": 0, "batches": 0})
        node["actors"] += 1
        node["rows"] += entry["rows"]
        node["batches"] += entry["batches"]
    return nodes


def lost_work(exc: BaseException, output: str) -> RayJobError | None:
    """A Ray failure that lost a node, an actor or an object, as one line; None for any other exception."""
    import ray.exceptions as rex

    lost = (rex.NodeDiedError, rex.ObjectLostError, rex.ActorDiedError, rex.WorkerCrashedError)
    for seen in error_chain(exc):
        if isinstance(seen, rex.GetTimeoutError) and "starting actors" in str(seen):
            return RayJobError(
                f"the cluster did not start the pool's actors within {ACTOR_START_TIMEOUT_S} s (too few free CPUs "
                f"for --actors x --cpus-per-actor?); nothing was written to {output}. Lower --actors or add nodes"
            )
        if isinstance(seen, lost):
            detail = str(seen).strip().splitlines()[0] if str(seen).strip() else type(seen).__name__
            return RayJobError(
                f"the Ray job lost work it could not redo ({type(seen).__name__}: {detail}); nothing was written "
                f"to {output}. Check the cluster's nodes (ray status) and run the job again"
            )
    return None


def error_chain(exc: BaseException, limit: int = 16):
    """`exc` and the errors behind it (`__cause__`, or a RayTaskError's `cause`), at most `limit`: never a loop."""
    seen: BaseException | None = exc
    for _ in range(limit):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or getattr(seen, "cause", None)


def model_folder(model: dict) -> Path:
    """Where an actor writes its copy of a shipped model. On the driver's host: inside the job's scratch
    folder, which the driver removes when the job ends however it ends (a killed actor, Ctrl-C). Elsewhere:
    a folder named for this process (fileio.work_dir_name), removed at exit; the copies of killed actors
    on this host are removed when the next actor starts (fileio.remove_leftovers)."""
    scratch = model.get("scratch")
    if scratch and model.get("host") == socket.gethostname() and os.path.isdir(scratch):
        return Path(tempfile.mkdtemp(prefix="imdb-deploy-model-", dir=scratch))
    remove_leftovers(tempfile.gettempdir())
    folder = work_dir_name(Path(tempfile.gettempdir()) / "imdb-deploy-model")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)
    remove_at_exit(folder)
    return folder


def pack_model(predictor_dir: Path, variant: str) -> dict[str, bytes]:
    """The files a Predictor needs from an exported folder, by their path inside it (onnx/model.onnx): all but the
    graphs of the variants it will not run."""
    # Variants can share a file (int8 and int8-batched run the same model_quantized.onnx): keep the variant's.
    # An OpenVINO IR is its .xml and .bin.
    files = {**ONNX_VARIANTS, **OPENVINO_VARIANTS}
    ir = {Path(f).with_suffix(".bin").name for f in OPENVINO_VARIANTS.values()}
    keep = {files[variant], Path(files[variant]).with_suffix(".bin").name}
    skip = (set(files.values()) | ir) - keep
    paths = [*sorted(predictor_dir.iterdir()), *sorted((predictor_dir / ONNX_FOLDER).glob("*"))]
    return {
        path.relative_to(predictor_dir).as_posix(): path.read_bytes()
        for path in paths
        if path.is_file() and path.name not in skip and not path.name.startswith(".")
    }


def unwrap_error(exc: BaseException) -> BaseException:
    """Our own error inside a Ray task error, as it was raised: the user sees its message, not Ray's
    traceback (Ray also appends its retry advice to the message, which does not apply to a bad row)."""
    seen = exc
    while seen is not None:
        cause = getattr(seen, "cause", None)
        if isinstance(cause, ImdbDeployError):
            message = str(cause.args[0]) if cause.args else str(cause)
            return type(cause)(message.split("\nFailed to ", 1)[0])
        seen = seen.__cause__
    return exc


class DropOurErrors(logging.Filter):
    """Ray Data logs a task's exception with its traceback before re-raising it; ours is shown once, plainly."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ImdbDeployError))


class DropRayErrors(logging.Filter):
    """On a console handler, without -v: Ray's own error reports (ERROR records, and any with a traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR and not record.exc_info


DROP_RAY_ERRORS = DropRayErrors()
