"""Fast predictions through onnxruntime: the `Predictor` class and `imdb-deploy predict`.

Speed comes from padding little: the reviews of a chunk are tokenized together, sorted by length and
grouped so that a batch pads only to its own longest review and holds at most `max_tokens` padded tokens
(short reviews travel in big batches, long ones in small); results are put back in input order.

A variant whose answers would depend on the batch (dynamic INT8, which picks its activation scales per
call) runs one review per onnxruntime call instead (artifacts.VARIANT_BATCHING): the same review gets the
same probabilities whatever else is scored with it. `Predictor.batching` says which a variant does.

The openvino-* variants run on OpenVINO instead (openvino_runtime.PerReviewRunner, one review per infer
request), and "auto" runs the default that export chose by measurement on this CPU (runtime_choice).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imdb_deploy.artifacts import ONNX_VARIANTS, VARIANT_BATCHING, open_onnx_session
from imdb_deploy.errors import ConfigError, InputError, ModelLoadError, OutputError
from imdb_deploy.evaluation import softmax
from imdb_deploy.fileio import DISK_FULL
from imdb_deploy.machine import physical_cores
from imdb_deploy.model_folder import ExportFolder, open_folder
from imdb_deploy.openvino_runtime import OPENVINO_BATCHING, OPENVINO_VARIANTS, PerReviewRunner
from imdb_deploy.readers import (
    ON_ERROR,
    SKIP_HINT,
    chunks,
    count_noun,
    is_blank,
    open_reader,
    review_problem,
)
from imdb_deploy.sources import INPUT_FORMATS, expand_inputs, id_prefixes, parse_delimiter
from imdb_deploy.tokenization import encode, length_sorted_batches, pad
from imdb_deploy.writers import (
    ON_DUPLICATE_ID,
    OUTPUT_FORMATS,
    IdTally,
    RowWriter,
    check_ids,
    error_line,
    guard_output,
    open_text_output,
)

# Most reviews in one onnxruntime call, and most padded tokens (reviews x longest) in one call. Small
# calls keep each layer's activations in the CPU caches: on a quiet 2-core AVX2 CPU, INT8, 256 IMDb test
# reviews, 1,024 tokens ran 25% faster than 16,384 (MiniLM-L6 at 256 tokens: 31.8 vs 25.4 reviews/s) and
# distilbert-base at 512 tokens likewise (research/bench_token_budget.py, research/bench_int8_research.py).
DEFAULT_BATCH_SIZE = 64
DEFAULT_MAX_TOKENS = 1024
# `predict --engine`: local streams in this process (predict_file); ray runs predict_ray.predict_ray.
ENGINES = ("local", "ray")
# Every variant a Predictor runs: onnxruntime's, then OpenVINO's.
VARIANTS = (*ONNX_VARIANTS, *OPENVINO_VARIANTS)


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one review.

    Attributes:
        label: name of the most probable class ("negative" or "positive" for IMDb).
        score: probability of that class.
        probabilities: probability of every class, by name.
    """

    label: str
    score: float
    probabilities: dict[str, float]


class Predictor:
    """An exported ONNX model, its tokenizer and tokenization settings, ready to score reviews.

    Args:
        model_dir: folder written by `imdb-deploy export` (ONNX files, tokenizer, train_config.json), or that
            folder already opened (model_folder.ExportFolder: several Predictors then share one tokenizer).
        variant: "auto" (on the CPU the folder's measured default_variant, else INT8 when present, one review
            per call: batch-invariant), or one of VARIANTS ("int8-batched" is faster on short reviews but
            batch-dependent; "openvino-int8" and "openvino-fp32" run on OpenVINO, one review per request).
        provider: "cpu", or "cuda" with onnxruntime-gpu installed.
        threads: cores to use; None uses all physical cores. A batched variant gives them to onnxruntime's
            intra-op pool; a per-review variant (the default INT8) runs that many reviews at once, each on
            one core: one review is too small a call to split well (on 2 cores, 1.16x at distilbert-base/512
            and 1.17x at MiniLM/256 over one 2-thread call at a time, research/invariance_speed.py), and a
            review's answer is still computed the same way whatever runs beside it.
        batch_size: most reviews in one onnxruntime call (variants that run one review per call ignore it).
        max_tokens: most padded tokens (reviews x longest review) in one call; None for no cap.
        allow_unverified: load files that differ from the checksums export_report.json recorded (or a
            report that cannot be read) instead of refusing them; `files` then says so.
        precision: openvino-* variants: INFERENCE_PRECISION_HINT, None for the CPU plugin's choice (bf16 on
            CPUs with AVX512-BF16 or AMX, f32 elsewhere), "f32" to force full precision; onnxruntime ignores it.

    Attributes:
        folder: the opened model_folder.ExportFolder.
        files: the model_folder.FileCheck of the files loaded: `files.verified` is True only when each is the
            file the export recorded (status "unrecorded" for a folder exported before checksums were).
        batching: the variant's artifacts.VariantBatching: one review per call or batched, and whether it
            is batch-invariant (what `verify` checks and a server shows in /info).

    Raises:
        ModelLoadError: the folder, the variant, onnxruntime or the CUDA provider is missing; a file changed
            since export (without allow_unverified).
        ConfigError: batch_size, max_tokens or threads is out of range.

    Example:
        >>> Predictor("runs/minilm-2k-onnx").predict(["A wonderful film."])[0].label
        'positive'
    """

    def __init__(
        self,
        model_dir: str | os.PathLike | ExportFolder,
        variant: str = "auto",
        provider: str = "cpu",
        threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        io_binding: bool | None = None,
        allow_unverified: bool = False,
        precision: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r}: use 1 or more")
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError(f"max_tokens={max_tokens!r}: use 1 or more (or None for no cap)")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads={threads!r}: use 1 or more (or None for all physical cores)")
        self.folder = open_folder(model_dir)
        self.model_dir = self.folder.path
        self.variant, self.model_path = self.folder.resolve_variant(variant, gpu=provider == "cuda")
        self.files = self.folder.check_files(self.model_path, allow_unverified)
        self.batching = OPENVINO_BATCHING.get(self.variant) or VARIANT_BATCHING[self.variant]
        self.provider = provider
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.io_binding = provider == "cuda" if io_binding is None else io_binding
        # Per-review variants on the CPU: `workers` single-threaded calls at once (see `threads` above).
        self.workers = 1
        if self.batching.per_review and provider == "cpu" and not self.io_binding:
            self.workers = threads or physical_cores()
        self._openvino = None
        if self.variant in OPENVINO_VARIANTS:
            self._openvino = PerReviewRunner(self.model_path, self.workers, precision)
            self.session = None
            self.runtime = self._openvino.describe()
        else:
            session_threads = 1 if self.workers > 1 else threads
            self.session = open_onnx_session(self.model_path, provider=provider, threads=session_threads)
            self.runtime = {"runtime": "onnxruntime"}
        self._pool = None
        self.tokenizer = self.folder.tokenizer
        self.settings = self.folder.settings
        self.label_names = tuple(self.settings.label_names)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        if self._openvino is not None:
            self._input_names, self._output_name = self._openvino.input_names, "logits"
            self._check_width(self._openvino.outputs)
            return
        self._input_names = [node.name for node in self.session.get_inputs()]
        unknown = set(self._input_names) - {"input_ids", "attention_mask", "token_type_ids"}
        if "input_ids" not in self._input_names or unknown:
            raise ModelLoadError(
                f"{self.model_path}: unexpected ONNX inputs {self._input_names} (expected input_ids and "
                "attention_mask); re-create the folder with `imdb-deploy export`"
            )
        outputs = self.session.get_outputs()
        self._output_name = "logits" if any(out.name == "logits" for out in outputs) else outputs[0].name
        self._check_width(next(out for out in outputs if out.name == self._output_name).shape[-1])
        # One flat buffer per input, reshaped to (batch, longest) for each call: no allocation per batch.
        self._buffer_rows = batch_size
        self._buffers = self._allocate(batch_size)

    def _check_width(self, width) -> None:
        if isinstance(width, int) and width != len(self.label_names):
            raise ModelLoadError(
                f"{self.model_path}: the model has {width} outputs but train_config.json names "
                f"{len(self.label_names)} labels ({', '.join(self.label_names)}); re-export the trained folder"
            )

    def __repr__(self) -> str:
        return (
            f"Predictor({str(self.model_dir)!r}, variant={self.variant!r}, provider={self.provider!r}, "
            f"batch_size={self.batch_size}, max_tokens={self.max_tokens}, io_binding={self.io_binding})"
        )

    def _allocate(self, rows: int) -> dict[str, np.ndarray]:
        size = rows * self.settings.max_length
        return {name: np.empty(size, dtype=np.int64) for name in ("input_ids", "attention_mask")}

    def _fill(self, batch: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """Pad a batch into the preallocated buffers (tokenization.pad), with the inputs the graph takes."""
        if len(batch) > self._buffer_rows:  # only when max_tokens allows more rows than batch_size
            self._buffer_rows = len(batch)
            self._buffers = self._allocate(len(batch))
        feed = pad(batch, self.pad_id, self._buffers)
        if "token_type_ids" in self._input_names:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        return {name: feed[name] for name in self._input_names}

    def run_batch(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits for one batch of token id lists (unpadded), in order; the one place onnxruntime runs.

        A per-review variant runs each review in a call of its own here too, so no entry point can make
        its answers depend on the batch.
        """
        if self.batching.per_review:
            return self._run_reviews(batch)
        feed = self._fill(batch)
        if not self.io_binding:
            return self.session.run([self._output_name], feed)[0]
        from onnxruntime import OrtValue

        device = "cuda" if self.provider == "cuda" else "cpu"
        binding = self.session.io_binding()
        for name, array in feed.items():
            binding.bind_ortvalue_input(name, OrtValue.ortvalue_from_numpy(array, device, 0))
        binding.bind_output(self._output_name, device)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def _run_reviews(self, reviews: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits of a per-review variant: each review alone in its own call, `workers` calls at once.

        Thread-safe: each call pads into arrays of its own (not the shared buffers), so several threads may
        score at once (serve runs `workers` batches in flight on one Predictor).
        """
        if self._openvino is not None:  # OpenVINO's own queue keeps `workers` requests in flight
            return self._openvino.run(reviews)
        if self.workers == 1 or len(reviews) == 1:
            return np.concatenate([self._run_review(ids) for ids in reviews])
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="imdb-deploy-review")
        return np.concatenate(list(self._pool.map(self._run_review, reviews)))

    def _run_review(self, ids: Sequence[int]) -> np.ndarray:
        feed = pad([ids], self.pad_id)
        if "token_type_ids" in self._input_names:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        return self.session.run([self._output_name], {name: feed[name] for name in self._input_names})[0]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, cut exactly as in training (tokenization.encode with the folder's settings)."""
        texts = _check_texts(texts)
        return encode(self.tokenizer, texts, self.settings)

    def plan(self, lengths: Sequence[int]) -> list[list[int]]:
        """The onnxruntime calls for reviews of these token counts: lists of indices, each index once.

        One review per call for a per-review variant, else length-sorted batches capped by batch_size
        and max_tokens (tokenization.length_sorted_batches).
        """
        if self.batching.per_review:
            return [[i] for i in range(len(lengths))]
        return length_sorted_batches(lengths, self.batch_size, self.max_tokens)

    def logits_from_ids(self, encoded: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits for already tokenized reviews, in input order (run as `plan` groups them, then restored)."""
        out = np.empty((len(encoded), len(self.label_names)), dtype=np.float32)
        if self.batching.per_review and encoded:
            out[:] = self._run_reviews(encoded)
            return out
        for batch in self.plan([len(ids) for ids in encoded]):
            out[batch] = self.run_batch([encoded[i] for i in batch])
        return out

    def describe(self) -> dict:
        """What this predictor runs, for reports and a server's /info: variant, file, batching, limits."""
        return {
            "variant": self.variant,
            "file": self.model_path.name,
            "provider": self.provider,
            "workers": self.workers,
            **self.batching.to_dict(),
            "batch_size": None if self.batching.per_review else self.batch_size,
            "max_tokens": None if self.batching.per_review else self.max_tokens,
            "max_length": self.settings.max_length,
            **self.runtime,
        }

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits, shape (len(texts), num_labels), float32, in input order.

        Raises:
            InputError: `texts` is a single string or holds a non-string.
        """
        return self.logits_from_ids(self.encode(texts))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, shape (len(texts), num_labels), float32, in input order.

        Raises:
            InputError: `texts` is a single string or holds a non-string.
        """
        return softmax(self.logits(texts)).astype(np.float32)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """One Prediction (label, its score, all probabilities) per text, in input order.

        Raises:
            InputError: `texts` is a single string or holds a non-string.
        """
        return self.to_predictions(self.predict_proba(texts))

    def to_predictions(self, probabilities: np.ndarray) -> list[Prediction]:
        """Predictions from rows of class probabilities."""
        best = probabilities.argmax(axis=1)
        return [
            Prediction(
                label=self.label_names[k],
                score=float(row[k]),
                probabilities={name: float(p) for name, p in zip(self.label_names, row, strict=True)},
            )
            for row, k in zip(probabilities, best, strict=True)
        ]


def _check_texts(texts) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise InputError("texts: pass a list of reviews, e.g. predict([text]), not a single string")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"texts[{i}]: expected a string, got {type(text).__name__}")
        problem = None if is_blank(text) else review_problem(text)  # blank texts are scored as they are
        if problem:
            raise InputError(f"texts[{i}]: {problem[0]}; {problem[1]}")
    return texts


# --- streaming files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadOptions:
    """How reviews are read and bad rows handled: the options both engines share (predict_file and
    predict_ray.predict_ray), checked here once for either.

    Attributes:
        input_format: "auto" picks per file by suffix (.parquet/.pq, .jsonl/.ndjson/.json, .csv, .txt; .gz
            stripped first) and otherwise by the first line ("{" means JSONL, anything else plain text, one
            review per line).
        text_field: JSONL field or CSV column holding the review.
        delimiter: CSV field separator: "auto" sniffs the header line among , ; tab and |; "tab" or one
            character.
        id_field: JSONL field, CSV or Parquet column copied to the output as `id` (a row without it is bad);
            None takes the `id` field or column where rows have one, else "FILE:LINE" (stdin: the line).
        on_error: "fail" stops at the first bad row (exit 1, no output); "skip" sets bad rows aside.
        on_duplicate_id: "warn" counts repeated and null ids of the rows scored in the summary; "fail"
            refuses the run when there are any (exit 1, no output).
        chunk_size: rows read, sorted by length and scored together (on Ray: a map batch, the unit of work an
            actor takes and of a lost node's redone work). 1024 gives a batch of 64 plenty of similar-length
            neighbours while memory stays flat for any file size.
        progress: progress bars on stderr; None shows them only when stderr is a terminal.
    """

    input_format: str = "auto"
    text_field: str = "text"
    delimiter: str = "auto"
    id_field: str | None = None
    on_error: str = "fail"
    on_duplicate_id: str = "warn"
    chunk_size: int = 1024
    progress: bool | None = None

    def __post_init__(self) -> None:
        for name, allowed in (
            ("input_format", INPUT_FORMATS),
            ("on_error", ON_ERROR),
            ("on_duplicate_id", ON_DUPLICATE_ID),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{name}={value!r}: use one of {', '.join(allowed)}")
        if self.chunk_size < 1:
            raise ConfigError(f"chunk_size={self.chunk_size!r}: use 1 or more")
        if not self.text_field:
            raise ConfigError("text_field='': name the field or column holding the review")
        parse_delimiter(self.delimiter)


@dataclass(frozen=True)
class PredictFileConfig(ReadOptions):
    """How `predict_file` reads, scores and writes a file of reviews: the shared ReadOptions, and

    Attributes:
        output_format: "jsonl" or "csv"; one row per scored input row, in input order.
    """

    output_format: str = "jsonl"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.output_format not in OUTPUT_FORMATS:
            raise ConfigError(f"output_format={self.output_format!r}: use one of {', '.join(OUTPUT_FORMATS)}")


@dataclass
class PredictSummary:
    """What `predict_file` did. input_rows == scored + errors, always; blank lines are not rows.

    `unverified` is why the model's files are not tied to the gate's verdict (Predictor.files), None when
    they are.
    """

    files: int = 0
    input_rows: int = 0
    scored: int = 0
    errors: int = 0
    blank_lines: int = 0
    seconds: float = 0.0
    input_format: str = ""
    unverified: str | None = None
    repeated_ids: int = 0
    null_ids: int = 0
    id_note: str = ""

    @property
    def rows_per_second(self) -> float:
        return self.input_rows / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """One line for people, e.g. `1,000 input rows = 998 scored + 2 errors; 310.5 rows/s (3.2 s)`."""
        files = f"{count_noun(self.files, 'file')}: " if self.files > 1 else ""
        text = (
            f"{files}{count_noun(self.input_rows, 'input row')} = {self.scored:,} scored + "
            f"{count_noun(self.errors, 'error')}; "
            f"{self.rows_per_second:,.1f} rows/s ({self.seconds:.1f} s)"
        )
        if self.blank_lines:
            text += f"; {count_noun(self.blank_lines, 'blank line')} ignored"
        if self.unverified:
            text += f"; model UNVERIFIED: {self.unverified}"
        return text + self.id_note


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
    import sys
    import time
    from contextlib import ExitStack

    from tqdm.auto import tqdm

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
    every_input = [*files, *sources]
    model = {"the model folder": predictor.model_dir}
    guard_output(output, "--output", every_input, model)
    guard_output(errors, "--errors", every_input, {"the --output file": output, **model})
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
