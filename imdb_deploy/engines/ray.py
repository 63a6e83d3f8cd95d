"""`imdb-deploy predict --engine ray`: the same scoring as `predict_file`, spread over a Ray cluster.

The job is three Ray Data operators, streamed (nothing is held whole in memory):

1. read: Ray lists, opens and spreads the files (`FileBasedDatasource`, any filesystem pyarrow or fsspec
   knows, e.g. s3://); each file is parsed by the local engine's readers (`readers.InputReader`,
   `readers.ParquetReader`), so rows, ids and bad-row reasons are exactly the local engine's. Ray's own
   `read_json`/`read_csv` parse whole blocks with pyarrow: one malformed line fails the file without naming
   the row, and no reader numbers rows, which the ids and error reports need.
2. score: `map_batches` with a callable class, one `Predictor` per actor (onnxruntime intra-op threads =
   the actor's CPUs, so actors do not oversubscribe the cores), in an `ActorPoolStrategy` pool, fixed or
   autoscaling (`--actors MIN,MAX`); batches of chunk_size rows, each length-sorted inside the Predictor
   as in the local engine. Each actor reports the rows it scored and its node to a ledger actor kept on
   the driver's node, so the summary says what every node did (ray_cluster.py: the cluster side).
3. write: Parquet shards (id, label, score, prob_<label>...) and, for bad rows, shards in `_errors/`
   (file, line, id, reason, fix), written under a temporary sibling folder that is renamed to the output
   only after the counts check (input rows = scored + errors) and a `_SUCCESS` marker.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow.fs import FSSpecHandler, PyFileSystem

from imdb_deploy.engines.cluster import (
    ACTOR_START_TIMEOUT_S,
    DROP_RAY_ERRORS,
    DropOurErrors,
    connect,
    here,
    lost_work,
    model_folder,
    on_this_node,
    pack_model,
    per_node,
    unwrap_error,
)
from imdb_deploy.engines.config import RayPredictConfig, RayPredictSummary
from imdb_deploy.errors import InputError, OutputError
from imdb_deploy.fileio import output_error, remove_leftovers, work_dir_name
from imdb_deploy.metrics import softmax
from imdb_deploy.outputs import Output, is_url, local_path
from imdb_deploy.reviews import SKIP_HINT
from imdb_deploy.rows.config import parse_delimiter
from imdb_deploy.rows.objectstore import bucket_problem, protocol, url_error
from imdb_deploy.rows.readers import InputReader, ParquetReader, chunks
from imdb_deploy.rows.sources import expand_inputs, guess_format, gunzip_if_needed, id_prefixes, output_id_type
from imdb_deploy.rows.writers import IdTally, check_ids, id_text
from imdb_deploy.runtimes.folder import ExportFolder, FileCheck
from imdb_deploy.runtimes.predictor import Predictor

SUCCESS_MARKER = "_SUCCESS"

ERRORS_FOLDER = "_errors"  # "_" keeps it out of readers of the output folder (pyarrow, Spark, Ray skip it)

ERROR_COLUMNS = ("file", "line", "id", "reason", "fix")


def _row_key(path: str) -> str:
    """A path as Ray's resolved paths spell it: no scheme, absolute for local files."""
    return path.split("://", 1)[1] if is_url(path) else os.path.abspath(path)


def _ray_path(path: str) -> str:
    return path if is_url(path) else os.path.abspath(path)


def _rows_datasource(files, prefixes, config, id_type, ledger):
    """A Ray Data datasource whose read tasks parse files with the local engine's readers."""

    from ray.data.datasource import FileBasedDatasource

    names = {_row_key(path): (path, prefixes.get(path)) for path in files}
    fmt_of = {
        key: guess_format(path) if config.input_format == "auto" else config.input_format
        for key, (path, _) in names.items()
    }

    class ReviewRows(FileBasedDatasource):
        def _lookup(self, path: str) -> tuple[str, str | None, str]:
            key = path if path in names else _row_key(path)
            name, prefix = names.get(key, (path, None))
            return name, prefix, fmt_of.get(key, config.input_format)

        def _open_input_source(self, filesystem, path, **open_args):
            if self._lookup(path)[2] == "parquet":  # Parquet needs random access, not a stream
                return filesystem.open_input_file(path)
            return super()._open_input_source(filesystem, path, **open_args)

        def _read_stream(self, f, path):
            import ray

            start = time.perf_counter()
            busy = 0.0  # seconds spent reading and parsing, not waiting while a yielded block is consumed
            name, prefix, fmt = self._lookup(path)
            with ExitStack() as stack:
                if fmt == "parquet":
                    reader = ParquetReader(name, f, config.text_field, config.id_field, prefix, config.chunk_size)
                else:
                    stream = gunzip_if_needed(io.BufferedReader(f), stack)
                    delimiter = parse_delimiter(config.delimiter)
                    reader = InputReader(name, stream, fmt, config.text_field, config.id_field, prefix, delimiter)
                rows = 0
                ids = IdTally()
                for chunk in chunks(reader, config.chunk_size):
                    bad = next((row for row in chunk if row.reason is not None), None)
                    if bad is not None and config.on_error == "fail":
                        raise InputError(f"{name}, {reader.unit} {bad.line}: {bad.reason}; {bad.fix} ({SKIP_HINT})")
                    rows += len(chunk)
                    ids.add(row.id for row in chunk if row.reason is None)
                    table = _rows_table(chunk, name, id_type)
                    busy += time.perf_counter() - start
                    yield table
                    start = time.perf_counter()
            busy += time.perf_counter() - start
            ray.get(ledger.file_read.remote(name, rows, busy, ids.keys(), ids.nulls))

    def _rows_table(chunk, name, id_type):
        ids = [row.id for row in chunk]
        if pa.types.is_string(id_type):
            ids = [id_text(value) for value in ids]  # the one id encoder: JSON numbers keep their literal
        return pa.table(
            {
                "file": pa.array([name] * len(chunk), pa.string()),
                "line": pa.array([row.line for row in chunk], pa.int64()),
                "id": pa.array(ids, id_type),
                "text": pa.array([row.text for row in chunk], pa.string()),
                "reason": pa.array([row.reason for row in chunk], pa.string()),
                "fix": pa.array([row.fix for row in chunk], pa.string()),
            }
        )

    return ReviewRows([_ray_path(path) for path in files], **_read_filesystem(files))


class _Scorer:
    """One Predictor per Ray actor; scores the good rows of each batch and passes bad rows through."""

    def __init__(self, model, variant, threads, sizes, ledger, allow_unverified=False) -> None:

        import ray

        if isinstance(model, dict):  # shipped through the object store: {"files": ObjectRef, "scratch": ...}
            files = ray.get(model["files"])
            self._folder = model_folder(model)
            for name, data in files.items():  # names are paths inside the folder (onnx/model.onnx)
                Path(self._folder, name).parent.mkdir(parents=True, exist_ok=True)
                Path(self._folder, name).write_bytes(data)
            model = str(self._folder)
        # The actor checks the files it loads (a shipped copy, or the shared path) against the recorded checksums.
        self.predictor = Predictor(model, variant=variant, threads=threads, allow_unverified=allow_unverified, **sizes)
        self.ledger = ledger
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.where = here()

    def __call__(self, batch):
        import ray

        good = pc.is_null(batch.column("reason")).to_numpy(zero_copy_only=False)
        texts = batch.column("text").filter(pa.array(good)).to_pylist()
        start = time.perf_counter()
        encoded = self.predictor.encode(texts)
        tokenized = time.perf_counter()
        probs = softmax(self.predictor.logits_from_ids(encoded)).astype(np.float32)
        scored = time.perf_counter()
        full = np.zeros((len(good), probs.shape[1]), dtype=np.float32)
        full[good] = probs
        best = full.argmax(axis=1)
        missing = ~good
        names = np.array(self.predictor.label_names, dtype=object)
        out = batch.drop_columns(["text"])
        out = out.append_column("label", pa.array(names[best], pa.string(), mask=missing))
        out = out.append_column("score", pa.array(full[np.arange(len(best)), best], pa.float32(), mask=missing))
        for k, label in enumerate(self.predictor.label_names):
            out = out.append_column(f"prob_{label}", pa.array(full[:, k], pa.float32(), mask=missing))
        ray.get(
            self.ledger.batch_scored.remote(self.name, self.where, len(texts), tokenized - start, scored - tokenized)
        )
        return out


def _ledger_class():
    import ray

    @ray.remote(num_cpus=0)
    class Ledger:
        """Counts the job's operators report: rows read per file, rows scored, node and stage seconds per actor.
        Named (imdb-deploy-ledger-*), so a job's progress can be read from outside with ray.get_actor."""

        def __init__(self) -> None:
            self.files: dict[str, tuple[int, float]] = {}
            self.ids: dict[str, tuple[np.ndarray, int]] = {}
            self.actors: dict[str, dict] = {}

        def file_read(self, name: str, rows: int, seconds: float, keys: np.ndarray, nulls: int) -> None:
            self.files[name] = (rows, seconds)  # keyed: a retried read reports the same file once
            self.ids[name] = (keys, nulls)

        def batch_scored(self, actor: str, where: dict, rows: int, tokenize_s: float, infer_s: float) -> None:
            entry = self.actors.setdefault(actor, {**where, "rows": 0, "batches": 0, "tokenize_s": 0.0, "infer_s": 0.0})
            entry["rows"] += rows
            entry["batches"] += 1
            entry["tokenize_s"] += tokenize_s
            entry["infer_s"] += infer_s

        def report(self) -> tuple[dict, dict]:
            return self.files, self.actors

        def id_counts(self) -> tuple[int, int]:
            """(repeated ids, null ids) among the rows read without a reason (the rows scored)."""
            tally = IdTally()
            for keys, nulls in self.ids.values():
                tally.add_keys(keys, nulls)
            return tally.repeats(), tally.nulls

    return Ledger


def _shard_sink(folder: str, prob_columns: list[str], output: str):
    from ray.data.datasource import Datasink

    class ShardSink(Datasink):
        """Each write task writes its rows as one predictions shard and (if any) one errors shard."""

        def __init__(self) -> None:
            self.returns: list[dict] = []

        def write(self, blocks, ctx) -> dict:

            start = time.perf_counter()
            fs, root = fsspec.core.url_to_fs(folder)
            name = f"part-{ctx.task_idx:05d}.parquet"
            writers: dict[str, pq.ParquetWriter] = {}
            handles: list = []
            counts = {"shard": name, "scored": 0, "errors": 0}
            try:
                for block in blocks:
                    table = block if isinstance(block, pa.Table) else pa.Table.from_pandas(block)
                    good = pc.is_null(table.column("reason"))
                    parts = {
                        "scored": table.filter(good).select(["id", "label", "score", *prob_columns]),
                        "errors": table.filter(pc.invert(good)).select(list(ERROR_COLUMNS)),
                    }
                    if parts["errors"].num_rows:
                        # the one id encoder: a struct, binary or date id has no cast to string in Arrow
                        ids = pa.array([id_text(v) for v in parts["errors"].column("id").to_pylist()], pa.string())
                        parts["errors"] = parts["errors"].set_column(2, "id", ids)
                    for kind, part in parts.items():
                        if not part.num_rows:
                            continue
                        if kind not in writers:
                            path = f"{root}/{name}" if kind == "scored" else f"{root}/{ERRORS_FOLDER}/{name}"
                            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                            handles.append(fs.open(path, "wb"))
                            writers[kind] = pq.ParquetWriter(handles[-1], part.schema)
                        writers[kind].write_table(part)
                        counts[kind] += part.num_rows
                for writer in writers.values():
                    writer.close()
                for handle in handles:  # ParquetWriter leaves a file object it was given open: its last
                    handle.close()  # bytes (and a full disk's ENOSPC) come with this close
            except OSError as exc:  # the store refused the upload, the disk is full: one line, through unwrap_error
                raise url_error(exc, folder, OutputError) or output_error(exc, output) or exc from exc
            finally:
                for closable in [*writers.values(), *handles]:
                    with contextlib.suppress(OSError):  # a second close is a no-op; a failed one may fail again
                        closable.close()
            counts["seconds"] = time.perf_counter() - start
            return counts

        def on_write_complete(self, write_result) -> None:
            self.returns = list(write_result.write_returns)

    return ShardSink()


def _write_empty_shard(folder: str, id_type, prob_columns: list[str]) -> None:

    fields = [("id", id_type), ("label", pa.string()), ("score", pa.float32())]
    schema = pa.schema(fields + [(name, pa.float32()) for name in prob_columns])
    fs, root = fsspec.core.url_to_fs(folder)
    fs.makedirs(root, exist_ok=True)
    with fs.open(f"{root}/part-00000.parquet", "wb") as f:
        pq.write_table(schema.empty_table(), f)


def _commit(tmp: str, output: str, summary: RayPredictSummary, overwrite: bool, declared: Output | None) -> None:
    """Move the finished folder into place with its _SUCCESS marker: on a local disk through the one output
    mechanism (`declared`: one rename, never over a folder that appeared or changed during the run); on object
    stores (no rename) the shards are moved first and the marker written last."""

    marker = json.dumps(  # nodes stay: what each node scored is the record of a multi-node run
        {k: v for k, v in summary.to_dict().items() if k not in ("ray_stats", "actors")} | {"engine": "ray"}
    )
    fs, out_path = fsspec.core.url_to_fs(output)
    _, tmp_path = fsspec.core.url_to_fs(tmp)
    if declared is not None:
        Path(tmp_path, SUCCESS_MARKER).write_text(marker + "\n")
        declared.commit(tmp_path)
        return
    if overwrite and fs.exists(out_path):
        fs.rm(out_path, recursive=True)
    fs.invalidate_cache()  # the write tasks wrote the shards from other processes: list them afresh
    shards = fs.find(tmp_path)  # objects only: a recursive mv would also try to copy "folder" keys
    fs.copy(shards, [out_path + shard[len(tmp_path) :] for shard in shards])
    fs.rm(shards)
    with fs.open(f"{out_path}/{SUCCESS_MARKER}", "w") as f:
        f.write(marker + "\n")


def _job_id() -> str:
    """A short id for this job's temporary folder and ledger name."""
    return uuid.uuid4().hex[:8]


def _pool(config: RayPredictConfig) -> tuple[int, int]:
    """(min, max) actors: as asked, or a fixed pool of the cluster's CPUs / cpus_per_actor."""
    import ray

    if config.actors is not None:
        return config.actors
    size = max(1, int(ray.cluster_resources().get("CPU", 1)) // config.cpus_per_actor)
    return size, size


def _score(rows, config: RayPredictConfig, model_arg, variant: str, ledger):
    """The scoring operator: batches of chunk_size rows through an actor pool of Predictors."""
    from ray.data import ActorPoolStrategy

    low, high = _pool(config)
    # Ray Data grows a pool while its utilisation (tasks in flight per actor) is >= 1.75: an autoscaling
    # pool must let each actor hold a second batch, or it can never grow. A fixed pool keeps one, so no
    # batch waits behind a busy actor while another is idle.
    in_flight = 1 if low == high else 2
    sizes = {k: v for k, v in (("batch_size", config.batch_size), ("max_tokens", config.max_tokens)) if v}
    return rows.map_batches(
        _Scorer,
        batch_size=config.chunk_size,  # Ray merges a read task's chunks into one block: cut it again
        batch_format="pyarrow",
        compute=ActorPoolStrategy(min_size=low, max_size=high, max_tasks_in_flight_per_actor=in_flight),
        num_cpus=config.cpus_per_actor,
        fn_constructor_kwargs={
            "model": model_arg,
            "variant": variant,
            "threads": config.cpus_per_actor,
            "sizes": sizes,
            "ledger": ledger,
            "allow_unverified": config.allow_unverified,
        },
    )


def _read_filesystem(files: Sequence[str]) -> dict:
    """Ray's read through fsspec (s3fs for s3://) when every input is a URL of one protocol, so both engines
    read an object store with the same library, credentials and endpoint (AWS_ENDPOINT_URL); else Ray's own."""

    protocols = {protocol(path) for path in files}
    if len(protocols) != 1 or "" in protocols or "file" in protocols:
        return {}
    fs, _ = fsspec.core.url_to_fs(files[0])
    return {"filesystem": PyFileSystem(FSSpecHandler(fs))}


def _count(summary: RayPredictSummary, report: tuple[dict, dict], written: list[dict]) -> None:
    """The summary's counts from the ledger's report (rows read per file, per actor) and the write tasks'."""
    read, actors = report
    summary.input_rows = sum(rows for rows, _ in read.values())
    summary.read_seconds = sum(seconds for _, seconds in read.values())
    summary.scored = sum(r["scored"] for r in written)
    summary.errors = sum(r["errors"] for r in written)
    summary.write_seconds = sum(r["seconds"] for r in written)
    summary.shards = sum(1 for r in written if r["scored"])
    summary.actors = actors
    summary.nodes = per_node(actors)


def _open_model(model_dir: str | os.PathLike, config: RayPredictConfig) -> tuple[ExportFolder, str, FileCheck]:
    """The opened folder, the variant the actors run, and the check of its files (raises on a changed file
    unless config.allow_unverified)."""
    folder = ExportFolder(model_dir)
    variant, graph = folder.resolve_variant(config.variant)
    return folder, variant, folder.check_files(graph, config.allow_unverified)


def _checked_paths(model_dir, inputs, output: str, overwrite: bool) -> tuple[list[str], str, Output | None]:
    """The input files and the output as the job will use them, after every check that needs no Ray: inputs
    that exist, not stdin; a local output declared to the one output mechanism (outputs.Output, returned), an
    object store's bucket."""
    files = expand_inputs(inputs)
    if files == ["-"]:
        raise InputError("stdin: --engine ray reads files, folders or URLs; save the input or use --engine local")
    problem = bucket_problem(output, OutputError)  # a wrong bucket fails here, not in every write task
    if problem is not None:
        raise problem
    declared = None
    if local_path(output) is not None:  # "out/..", "./out": one spelling for the renames in _commit
        inputs = {"the input": [*files, *map(str, inputs)], "the model folder": model_dir}
        declared = Output(output, inputs, folder=True, overwrite=overwrite)
        output = os.path.abspath(local_path(output))
    fs, out_path = fsspec.core.url_to_fs(output)
    if fs.exists(out_path) and not overwrite:
        raise OutputError(f"{output} already exists; choose another output or pass --overwrite")
    return files, output, declared


@contextlib.contextmanager
def _ray_logging(verbose: bool, progress: bool):
    """Ray Data's logging for one job: our own errors (said once, as one line, by the driver) and, unless
    verbose, the tracebacks Ray logs for a failed task (several for one bad row) kept off the console (its log
    files keep them); below ERROR silenced when no progress is drawn. Restored on the way out."""
    import ray.data  # sets up the "ray.data" logger's handlers, which the filters go on

    ray_logger = logging.getLogger("ray.data")
    ray_level = ray_logger.level
    drop = DropOurErrors()
    handlers = [] if verbose else [*ray_logger.handlers, *logging.getLogger().handlers]
    quiet_errors = [
        handler
        for handler in {*ray_logger.handlers, *logging.getLogger("ray").handlers}
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
    ]
    quiet_errors = [] if verbose else quiet_errors
    for handler in handlers:
        handler.addFilter(drop)
    for handler in quiet_errors:
        handler.addFilter(DROP_RAY_ERRORS)
    if not progress:
        ray_logger.setLevel(logging.ERROR)
    try:
        yield ray.data
    finally:
        for handler in handlers:
            handler.removeFilter(drop)
        for handler in quiet_errors:
            handler.removeFilter(DROP_RAY_ERRORS)
        ray_logger.setLevel(ray_level)


def _finish(summary, ledger, sink, scored, tmp, output, id_type, prob_columns, config, declared, started) -> None:
    """Counts from the ledger and the sink, the row check, then the commit of `tmp` to `output`."""
    import ray

    _count(summary, ray.get(ledger.report.remote()), sink.returns)
    summary.repeated_ids, summary.null_ids = ray.get(ledger.id_counts.remote())
    summary.id_note = check_ids(summary.repeated_ids, summary.null_ids, config.on_duplicate_id)
    summary.ray_stats = scored.stats()
    if summary.input_rows != summary.scored + summary.errors:
        raise RuntimeError(
            f"row count mismatch: {summary.input_rows:,} rows read but {summary.scored:,} scored + "
            f"{summary.errors:,} errors written; the output was not created"
        )
    try:
        if not summary.shards:
            _write_empty_shard(tmp, id_type, prob_columns)
            summary.shards = 1
        summary.seconds = time.perf_counter() - started
        _commit(tmp, output, summary, config.overwrite, declared)
    except OSError as exc:
        error = output_error(exc, output)
        if error is None:
            raise
        raise error from exc


def _remove_work(tmp: str) -> None:
    """The job's sibling work folder, local or in an object store, if it is still there."""
    tmp_fs, tmp_path = fsspec.core.url_to_fs(tmp)
    if tmp_fs.exists(tmp_path):
        if is_url(tmp) and not tmp.startswith("file://"):
            tmp_fs.rm(tmp_path, recursive=True)
        else:
            shutil.rmtree(tmp_path, ignore_errors=True)


def predict_ray(
    model_dir: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    config: RayPredictConfig | None = None,
) -> RayPredictSummary:
    """Score every row of the inputs on Ray Data into a folder of Parquet shards.

    Args:
        model_dir: folder written by `imdb-deploy export`.
        inputs: files, folders, globs or fsspec URLs of JSONL, CSV, text or Parquet (not stdin).
        output: the output folder (local path or URL): `part-*.parquet` (id, label, score, prob_<label>...,
            in no particular row order: join on id), `_errors/part-*.parquet` for rows set aside, and
            `_SUCCESS` (the counts, as JSON); it appears complete or not at all.
        config: cluster, pool, fields, error policy.

    Returns:
        The counts, seconds (Ray start-up included, and apart) and what each actor scored.

    Raises:
        InputError: a bad row with on_error="fail" (naming file and line), an unreadable input, a glob that
            matches nothing; no output folder is left behind.
        OutputError: the output exists and overwrite is False; the output (a local path or file:// URL) is,
            holds or sits inside an input or the model folder, is the working or home folder or a parent of
            one, or is a FIFO or device (writers.guard_output); checked before Ray starts, so --overwrite can
            never replace the reviews it reads. A full disk while the shards are written.
    """

    config = config or RayPredictConfig()
    start = time.perf_counter()
    files, output, declared = _checked_paths(model_dir, inputs, str(output), config.overwrite)
    folder, variant, checked = _open_model(model_dir, config)  # a changed file is refused before Ray starts
    prefixes = id_prefixes(files)
    id_type = output_id_type(files, config.input_format, config.id_field)
    parent, _, name = output.rstrip("/").rpartition("/")
    job = _job_id()
    scratch = work_dir_name(Path(tempfile.gettempdir()) / f"imdb-deploy-job-{job}")  # actors' model copies
    # A sibling (same filesystem), named with this host and process like the scratch folder, so that a driver
    # killed outright (SIGKILL) leaves nothing the next run cannot name: it removes both once that process is gone.
    tmp = f"{parent + '/' if parent else ''}{work_dir_name(name, job).name}"
    remove_leftovers(tempfile.gettempdir())
    if local_path(output) is not None:
        remove_leftovers(Path(local_path(output)).parent)
    model = folder.path
    labels = list(folder.label_names)

    progress = sys.stderr.isatty() if config.progress is None else config.progress
    connecting = time.perf_counter()
    started = connect(config.address, quiet=not (progress or config.verbose), lean=config.lean_start)
    summary = RayPredictSummary(output=output, files=len(files), startup_seconds=time.perf_counter() - connecting)
    summary.unverified = None if checked.verified else checked.reason

    import ray

    try:
        with _ray_logging(config.verbose, progress) as ray_data:
            context = ray_data.DataContext.get_current()
            context.enable_progress_bars = progress
            context.print_on_execution_start = progress
            context.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S
            # The ledger lives on the driver's node: a lost worker node never takes the counts with it.
            ledger = _ledger_class().options(name=f"imdb-deploy-ledger-{job}", **on_this_node()).remote()
            if config.ship_model:
                scratch.mkdir(mode=0o700)
                shipped = ray.put(pack_model(model, variant))
                model_arg = {"files": shipped, "scratch": str(scratch), "host": socket.gethostname()}
            else:
                model_arg = str(model.resolve())
            prob_columns = [f"prob_{label}" for label in labels]
            rows = ray_data.read_datasource(_rows_datasource(files, prefixes, config, id_type, ledger), num_cpus=0)
            scored = _score(rows, config, model_arg, variant, ledger)
            sink = _shard_sink(tmp, prob_columns, output)
            try:
                scored.write_datasink(sink, ray_remote_args={"num_cpus": 0})
            except Exception as exc:
                error = unwrap_error(exc)
                if error is exc:
                    error = lost_work(exc, output)
                    if error is None:
                        raise
                raise error from None
            _finish(summary, ledger, sink, scored, tmp, output, id_type, prob_columns, config, declared, start)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        _remove_work(tmp)
        if started:
            ray.shutdown()
    return summary
