"""`imdb-deploy predict` on the local engine: files of reviews streamed through a Predictor, in order, nothing lost."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack

import numpy as np
from tqdm.auto import tqdm

from imdb_deploy.engines.config import PredictFileConfig, PredictSummary
from imdb_deploy.errors import ConfigError, InputError, ModelLoadError, OutputError
from imdb_deploy.fileio import DISK_FULL
from imdb_deploy.reviews import SKIP_HINT
from imdb_deploy.rows.config import parse_delimiter
from imdb_deploy.rows.readers import chunks, open_reader
from imdb_deploy.rows.sources import expand_inputs, id_prefixes
from imdb_deploy.rows.writers import IdTally, RowWriter, check_ids, error_line, open_text_output, row_output
from imdb_deploy.runtimes.predictor import Predictor


def _score_chunk(predictor, reader, chunk, config, writer, error_stream, stderr, ids) -> None:
    """Score one chunk's good rows into `writer` and set its bad rows aside (or stop at the first one)."""
    good = [row for row in chunk if row.reason is None]
    bad = [row for row in chunk if row.reason is not None]
    if bad and config.on_error == "fail":
        row = bad[0]
        raise InputError(f"{reader.name}, {reader.unit} {row.line}: {row.reason}; {row.fix} ({SKIP_HINT})")
    if good:
        probabilities = predictor.predict_proba([row.text for row in good])
        if not np.isfinite(probabilities).all():
            raise ModelLoadError(
                f"{predictor.model_path}: the model returned NaN or infinite scores (near {reader.name}, "
                f"{reader.unit} {good[0].line}); its weights are broken: re-export it from the trained folder"
            )
        writer.write(good, probabilities)
        ids.add(row.id for row in good)
    for row in bad:
        if error_stream is not None:
            error_stream.write(error_line(reader.name, row.line, row.id, row.reason, row.fix))
        else:
            stderr.write(f"skipped {reader.name}, {reader.unit} {row.line}: {row.reason}\n")


def predict_file(
    predictor: Predictor,
    source: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike | None = None,
    errors: str | os.PathLike | None = None,
    config: PredictFileConfig | None = None,
    stdout=None,
    stderr=None,
) -> PredictSummary:
    """Score every row of the inputs in chunks, writing one output row per input row in order.

    Args:
        predictor: the model.
        source: one input or several: JSONL, CSV, text or Parquet files (gzip recognised by content),
            folders and globs of them, fsspec URLs (s3://..., file://...), or "-" for stdin; read in the
            order `sources.expand_inputs` gives, one file after the other, streamed.
        output: where predictions go, written completely or not at all; None writes to `stdout`.
        errors: with on_error="skip", a JSONL file (file, line, id, reason, fix) for the rows set aside,
            written completely or not at all; None reports them on `stderr`.
        config: formats, fields, error policy, chunk size, progress bar.
        stdout: stream for predictions when `output` is None (default sys.stdout).
        stderr: stream for the progress bar and skipped rows (default sys.stderr).

    Returns:
        The counts: input rows = scored + errors.

    Raises:
        InputError: a bad row with on_error="fail" (naming the line and the fix), or an unreadable input;
            no output or errors file is left behind.
        OutputError: `output` or `errors` is the input, the other output, or inside the model folder
            (resolved paths), a FIFO, device or folder (writers.guard_output); or it cannot be written
            (read-only, disk full). Checked before any work.
        ModelLoadError: the model returned NaN or infinite scores.
    """

    config = config or PredictFileConfig()
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    if errors is not None and config.on_error != "skip":
        raise ConfigError("an errors file only applies with on_error='skip' (--on-error skip)")
    summary = PredictSummary()
    checked = getattr(predictor, "files", None)  # a stand-in without a file check has nothing to say
    summary.unverified = checked.reason if checked is not None and not checked.verified else None
    start = time.perf_counter()
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    files = expand_inputs(sources)
    # An output must never replace the reviews it is reading, the other output, or the model's files: each
    # file the inputs expand to, then each input as given (a folder), local paths or file:// URLs.
    inputs = {"the input": [*files, *sources], "the model folder": predictor.model_dir}
    output = row_output(output, "--output", inputs)
    errors = row_output(errors, "--errors", {**inputs, "the --output file": getattr(output, "path", output)})
    prefixes = id_prefixes(files)
    summary.files = len(files)
    writer = None
    try:
        with ExitStack() as stack:
            writer = RowWriter(open_text_output(output, stack, stdout), config.output_format, predictor.label_names)
            error_stream = open_text_output(errors, stack, None) if errors is not None else None
            disable = None if config.progress is None else not config.progress
            bar = stack.enter_context(tqdm(desc="predict", unit=" rows", file=stderr, disable=disable))
            formats = []
            ids = IdTally()
            for path in files:
                with ExitStack() as file_stack:  # one open file at a time
                    reader = open_reader(
                        path,
                        file_stack,
                        config.input_format,
                        config.text_field,
                        config.id_field,
                        prefixes.get(path),
                        parse_delimiter(config.delimiter),
                    )
                    formats.append(reader.format)
                    for chunk in chunks(reader, config.chunk_size):
                        _score_chunk(predictor, reader, chunk, config, writer, error_stream, stderr, ids)
                        summary.input_rows += len(chunk)
                        summary.scored += sum(row.reason is None for row in chunk)
                        summary.errors += sum(row.reason is not None for row in chunk)
                        bar.update(len(chunk))
                    summary.blank_lines += reader.blank_lines
            summary.input_format = ",".join(dict.fromkeys(formats))
            summary.repeated_ids, summary.null_ids = ids.repeats(), ids.nulls
            summary.id_note = check_ids(summary.repeated_ids, summary.null_ids, config.on_duplicate_id)
            if summary.input_rows != summary.scored + summary.errors:  # the promise of this function
                raise AssertionError(f"row count mismatch: {summary}")
        if output is None:
            stdout.flush()
    except OSError as exc:
        if output is not None or exc.errno not in DISK_FULL:
            raise
        # stdout cannot be replaced atomically: the rows before the failure are already where it leads
        rows = writer.rows_written if writer else 0
        raise OutputError(
            f"stdout: cannot write it: {exc.strerror or exc} (the disk or your quota is full) after {rows:,} rows "
            "were passed to it, so what stdout leads to holds only part of the output: free some space and run "
            "again, or write with --output (complete or not at all)"
        ) from exc
    summary.seconds = time.perf_counter() - start
    return summary
