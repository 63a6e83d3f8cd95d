"""Fast predictions through onnxruntime: the `Predictor` class and `imdb-deploy predict`.

Speed comes from padding little: the reviews of a chunk are tokenized together, sorted by length and
grouped so that a batch pads only to its own longest review and holds at most `max_tokens` padded tokens
(short reviews travel in big batches, long ones in small); results are put back in input order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imdb_deploy.artifacts import load_settings, load_tokenizer, open_onnx_session, resolve_onnx_variant
from imdb_deploy.errors import ConfigError, InputError, ModelLoadError
from imdb_deploy.evaluation import softmax
from imdb_deploy.tokenization import encode, length_sorted_batches

# Most reviews in one onnxruntime call, and most padded tokens (reviews x longest) in one call. Small
# calls keep each layer's activations in the CPU caches: on a quiet 2-core AVX2 CPU, INT8, 256 IMDb test
# reviews, 1,024 tokens ran 25% faster than 16,384 (MiniLM-L6 at 256 tokens: 31.8 vs 25.4 reviews/s) and
# distilbert-base at 512 tokens likewise (scripts/bench_token_budget.py, scripts/bench_int8_research.py).
DEFAULT_BATCH_SIZE = 64
DEFAULT_MAX_TOKENS = 1024


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
        model_dir: folder written by `imdb-deploy export` (ONNX files, tokenizer, train_config.json).
        variant: "auto" (INT8 on CPU when present), or one of artifacts.ONNX_VARIANTS.
        provider: "cpu", or "cuda" with onnxruntime-gpu installed.
        threads: onnxruntime intra-op threads; None uses all physical cores.
        batch_size: most reviews in one onnxruntime call.
        max_tokens: most padded tokens (reviews x longest review) in one call; None for no cap.

    Raises:
        ModelLoadError: the folder, the variant, onnxruntime or the CUDA provider is missing.
        ConfigError: batch_size, max_tokens or threads is out of range.

    Example:
        >>> Predictor("runs/minilm-2k-onnx").predict(["A wonderful film."])[0].label
        'positive'
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        variant: str = "auto",
        provider: str = "cpu",
        threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        io_binding: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r}: use 1 or more")
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError(f"max_tokens={max_tokens!r}: use 1 or more (or None for no cap)")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads={threads!r}: use 1 or more (or None for all physical cores)")
        self.model_dir = Path(str(model_dir))
        self.variant, self.model_path = resolve_onnx_variant(self.model_dir, variant, gpu=provider == "cuda")
        self.provider = provider
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.session = open_onnx_session(self.model_path, provider=provider, threads=threads)
        self.io_binding = provider == "cuda" if io_binding is None else io_binding
        self.tokenizer = load_tokenizer(self.model_dir)
        self.settings = load_settings(self.model_dir, self.tokenizer)
        self.label_names = tuple(self.settings.label_names)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self._input_names = [node.name for node in self.session.get_inputs()]
        unknown = set(self._input_names) - {"input_ids", "attention_mask", "token_type_ids"}
        if "input_ids" not in self._input_names or unknown:
            raise ModelLoadError(
                f"{self.model_path}: unexpected ONNX inputs {self._input_names} (expected input_ids and "
                "attention_mask); re-create the folder with `imdb-deploy export`"
            )
        outputs = self.session.get_outputs()
        self._output_name = "logits" if any(out.name == "logits" for out in outputs) else outputs[0].name
        width = next(out for out in outputs if out.name == self._output_name).shape[-1]
        if isinstance(width, int) and width != len(self.label_names):
            raise ModelLoadError(
                f"{self.model_path}: the model has {width} outputs but train_config.json names "
                f"{len(self.label_names)} labels ({', '.join(self.label_names)}); re-export the trained folder"
            )
        # One flat buffer per input, reshaped to (batch, longest) for each call: no allocation per batch.
        self._buffer_rows = batch_size
        self._buffers = self._allocate(batch_size)

    def __repr__(self) -> str:
        return (
            f"Predictor({str(self.model_dir)!r}, variant={self.variant!r}, provider={self.provider!r}, "
            f"batch_size={self.batch_size}, max_tokens={self.max_tokens}, io_binding={self.io_binding})"
        )

    def _allocate(self, rows: int) -> dict[str, np.ndarray]:
        size = rows * self.settings.max_length
        return {name: np.empty(size, dtype=np.int64) for name in ("input_ids", "attention_mask")}

    def _fill(self, batch: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """Pad a batch into the preallocated buffers; same arrays as tokenization.pad."""
        width = max(len(ids) for ids in batch)
        if len(batch) > self._buffer_rows:  # only when max_tokens allows more rows than batch_size
            self._buffer_rows = len(batch)
            self._buffers = self._allocate(len(batch))
        n = len(batch) * width
        input_ids = self._buffers["input_ids"][:n].reshape(len(batch), width)
        mask = self._buffers["attention_mask"][:n].reshape(len(batch), width)
        input_ids.fill(self.pad_id)
        mask.fill(0)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        return {name: feed[name] for name in self._input_names}

    def run_batch(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits for one batch of token id lists (unpadded); the one place onnxruntime runs."""
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

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, cut exactly as in training (tokenization.encode with the folder's settings)."""
        texts = _check_texts(texts)
        return encode(self.tokenizer, texts, self.settings)

    def logits_from_ids(self, encoded: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits for already tokenized reviews, in input order (batched by length, then restored)."""
        out = np.empty((len(encoded), len(self.label_names)), dtype=np.float32)
        lengths = [len(ids) for ids in encoded]
        for batch in length_sorted_batches(lengths, self.batch_size, self.max_tokens):
            out[batch] = self.run_batch([encoded[i] for i in batch])
        return out

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
    return texts


# --- streaming files ------------------------------------------------------------------------------------

INPUT_FORMATS = ("auto", "jsonl", "csv", "text")
OUTPUT_FORMATS = ("jsonl", "csv")
ON_ERROR = ("fail", "skip")
_SKIP_HINT = "or pass --on-error skip --errors FILE to score the other rows and set bad ones aside"
_JSON_TYPES = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    list: "an array",
    dict: "an object",
}


@dataclass(frozen=True)
class PredictFileConfig:
    """How `predict_file` reads, scores and writes a file of reviews.

    Attributes:
        input_format: "auto" picks by suffix (.jsonl/.ndjson/.json, .csv, .txt; .gz stripped first) and
            otherwise by the first line ("{" means JSONL, anything else plain text, one review per line).
        output_format: "jsonl" or "csv"; one row per scored input row, in input order.
        text_field: JSONL field or CSV column holding the review.
        id_field: JSONL field or CSV column copied to the output as `id`; None numbers rows by input line.
        on_error: "fail" stops at the first bad row (exit 1, no output file); "skip" sets bad rows aside.
        chunk_size: rows read, sorted by length and scored together. 1024 gives a batch of 64 plenty of
            similar-length neighbours while memory stays flat for any file size.
        progress: progress bar on stderr; None shows it only when stderr is a terminal.
    """

    input_format: str = "auto"
    output_format: str = "jsonl"
    text_field: str = "text"
    id_field: str | None = None
    on_error: str = "fail"
    chunk_size: int = 1024
    progress: bool | None = None

    def __post_init__(self) -> None:
        for name, allowed in (
            ("input_format", INPUT_FORMATS),
            ("output_format", OUTPUT_FORMATS),
            ("on_error", ON_ERROR),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{name}={value!r}: use one of {', '.join(allowed)}")
        if self.chunk_size < 1:
            raise ConfigError(f"chunk_size={self.chunk_size!r}: use 1 or more")
        if not self.text_field:
            raise ConfigError("text_field='': name the field or column holding the review")


@dataclass(frozen=True)
class InputRow:
    """One input row: its line number, id and text, or the reason it cannot be scored."""

    line: int
    id: object
    text: str | None = None
    reason: str | None = None
    fix: str | None = None


@dataclass
class PredictSummary:
    """What `predict_file` did. input_rows == scored + errors, always; blank lines are not rows."""

    input_rows: int = 0
    scored: int = 0
    errors: int = 0
    blank_lines: int = 0
    seconds: float = 0.0
    input_format: str = ""

    @property
    def rows_per_second(self) -> float:
        return self.input_rows / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """One line for people, e.g. `1,000 input rows = 998 scored + 2 errors; 310.5 rows/s (3.2 s)`."""
        text = (
            f"{_count(self.input_rows, 'input row')} = {self.scored:,} scored + {_count(self.errors, 'error')}; "
            f"{self.rows_per_second:,.1f} rows/s ({self.seconds:.1f} s)"
        )
        if self.blank_lines:
            text += f"; {_count(self.blank_lines, 'blank line')} ignored"
        return text


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _source_name(source: str | os.PathLike) -> str:
    return "stdin" if str(source) == "-" else str(source)


def _open_binary(source: str | os.PathLike, stack):
    """The input as a binary stream; gzip is recognised by its magic bytes, whatever the name."""
    import gzip
    import io
    import sys

    if str(source) == "-":
        raw = sys.stdin.buffer
    else:
        try:
            raw = stack.enter_context(open(source, "rb"))  # noqa: SIM115 (closed by the caller's ExitStack)
        except OSError as exc:
            raise InputError(f"{source}: cannot read it ({exc.strerror or exc})") from exc
    if not hasattr(raw, "peek"):
        raw = io.BufferedReader(raw)
    if raw.peek(2)[:2] == b"\x1f\x8b":
        return stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    return raw


def _decode(raw: bytes, line: int) -> tuple[str, str | None]:
    """A line's text (line ending kept) and, if its bytes are not UTF-8, the reason."""
    if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return raw.decode("utf-8", "replace"), f"invalid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1})"


_UTF8_FIX = "re-save the file as UTF-8"


def _guess_format(source: str | os.PathLike, first_line: str | None) -> str:
    name = "" if str(source) == "-" else Path(str(source)).name.lower()
    name = name.removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".txt", ".text")):
        return "text"
    return "jsonl" if (first_line or "").lstrip().startswith("{") else "text"


class InputReader:
    """Rows of a JSONL, CSV or plain text input, read lazily line by line.

    Bad rows come back as InputRow with `reason` set, so the caller decides to stop or set them aside.
    Blank lines are not rows; they are counted in `blank_lines`.

    Raises:
        InputError: the input cannot be read at all (missing file, CSV header without the named column).
    """

    def __init__(self, source: str | os.PathLike, stream, config: PredictFileConfig) -> None:
        self.source = source
        self.name = _source_name(source)
        self.config = config
        self.blank_lines = 0
        self._lines = self._numbered(stream)
        self._peeked: list[tuple[int, bytes]] = []
        self.format = config.input_format
        if self.format == "auto":
            first = None
            for line, raw in self._lines:
                self._peeked.append((line, raw))
                if raw.strip():
                    first = _decode(raw, line)[0]
                    break
            self.format = _guess_format(source, first)

    def _numbered(self, stream):
        import zlib

        try:
            yield from enumerate(stream, start=1)
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise InputError(f"{self.name}: cannot read it ({exc}); check or re-create the file") from exc

    def _raw_lines(self):
        yield from self._peeked
        self._peeked = []
        yield from self._lines

    def __iter__(self):
        return {"jsonl": self._jsonl, "csv": self._csv, "text": self._text}[self.format]()

    def _text(self):
        for line, raw in self._raw_lines():
            text, bad = _decode(raw, line)
            if bad:
                yield InputRow(line, line, reason=bad, fix=_UTF8_FIX)
            elif not text.strip():
                self.blank_lines += 1
            else:
                yield InputRow(line, line, text=text.rstrip("\r\n"))

    def _jsonl(self):
        import json

        field, id_field = self.config.text_field, self.config.id_field
        for line, raw in self._raw_lines():
            text, bad = _decode(raw, line)
            if bad:
                yield InputRow(line, line, reason=bad, fix=_UTF8_FIX)
                continue
            if not text.strip():
                self.blank_lines += 1
                continue
            try:
                record = json.loads(text.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                yield InputRow(
                    line,
                    line,
                    reason=f"not valid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})",
                    fix="fix or remove the line",
                )
                continue
            if not isinstance(record, dict):
                kind = _JSON_TYPES.get(type(record), type(record).__name__)
                yield InputRow(
                    line,
                    line,
                    reason=f"expected a JSON object, got {kind}",
                    fix='write one object per line, e.g. {"text": "..."}',
                )
                continue
            row_id = line
            if id_field is not None:
                if id_field not in record:
                    yield InputRow(
                        line,
                        line,
                        reason=f"field {id_field!r} missing",
                        fix="use --id-field to name another field, or leave it out to number rows by line",
                    )
                    continue
                row_id = record[id_field]
            yield self._checked(line, row_id, record.get(field, _MISSING), sorted(record), "field")

    def _checked(self, line: int, row_id, value, present: list[str], what: str) -> InputRow:
        field = self.config.text_field
        if value is _MISSING:
            shown = ", ".join(map(repr, present[:8])) or "none"
            return InputRow(
                line,
                row_id,
                reason=f"{what} {field!r} missing ({what}s here: {shown})",
                fix=f"use --text-field to name another {what}",
            )
        if not isinstance(value, str):
            kind = _JSON_TYPES.get(type(value), type(value).__name__)
            return InputRow(
                line, row_id, reason=f"{what} {field!r} is {kind}, not a string", fix="give the review as text"
            )
        if not value.strip():
            return InputRow(line, row_id, reason=f"{what} {field!r} is empty", fix="remove the row or give it a review")
        return InputRow(line, row_id, text=value)

    def _csv(self):
        import csv

        bad_lines: dict[int, str] = {}

        def decoded():
            for line, raw in self._raw_lines():
                text, bad = _decode(raw, line)
                if bad:
                    bad_lines[line] = bad
                yield text

        reader = csv.reader(decoded())
        field, id_field = self.config.text_field, self.config.id_field
        try:
            header = next(reader, None)
            if header is None:
                return
            if 1 in bad_lines:
                raise InputError(f"{self.name}, line 1: the CSV header has {bad_lines[1]}; {_UTF8_FIX}")
            header = [name.strip() for name in header]
            for wanted, option in ((field, "--text-field"), (id_field, "--id-field")):
                if wanted is not None and wanted not in header:
                    raise InputError(
                        f"{self.name}, line 1: no column {wanted!r} in the CSV header "
                        f"(columns: {', '.join(map(repr, header))}); use {option} to name the column"
                    )
            text_col = header.index(field)
            id_col = header.index(id_field) if id_field is not None else None
            end = reader.line_num
            for record in reader:
                start, end = end + 1, reader.line_num
                if not record or (len(record) == 1 and not record[0].strip()):
                    self.blank_lines += end - start + 1
                    continue
                bad = next((bad_lines.pop(n) for n in range(start, end + 1) if n in bad_lines), None)
                if bad:
                    yield InputRow(start, start, reason=bad, fix=_UTF8_FIX)
                    continue
                if id_col is not None and id_col >= len(record):
                    yield InputRow(
                        start,
                        start,
                        reason=f"column {id_field!r} missing (the row has {len(record)} of {len(header)} columns)",
                        fix="quote values that contain commas",
                    )
                    continue
                row_id = record[id_col] if id_col is not None else start
                if text_col >= len(record):
                    yield InputRow(
                        start,
                        row_id,
                        reason=f"column {field!r} missing (the row has {len(record)} of {len(header)} columns)",
                        fix="quote values that contain commas",
                    )
                    continue
                yield self._checked(start, row_id, record[text_col], header, "column")
        except csv.Error as exc:
            raise InputError(f"{self.name}, line {reader.line_num}: broken CSV ({exc}); fix the quoting there") from exc


_MISSING = object()


def _chunks(rows, size: int):
    chunk: list[InputRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _open_text_output(path: Path | None, stack, fallback):
    """A text stream for `path`, written under a temporary name and renamed only if the run completes."""
    import gzip

    from imdb_deploy.fileio import atomic_file

    if path is None:
        return fallback
    tmp = stack.enter_context(atomic_file(path))
    if str(path).endswith(".gz"):
        return stack.enter_context(gzip.open(tmp, "wt", encoding="utf-8", newline=""))
    return stack.enter_context(open(tmp, "w", encoding="utf-8", newline=""))


class _RowWriter:
    """Prediction rows as JSONL or CSV: id, label, score of that label, probability of every label."""

    def __init__(self, stream, fmt: str, label_names: Sequence[str]) -> None:
        import csv
        import json

        self._dumps = json.dumps
        self.stream = stream
        self.label_names = list(label_names)
        self.columns = ["id", "label", "score", *(f"prob_{name}" for name in self.label_names)]
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        if self._csv is not None:
            self._csv.writerow(self.columns)

    def write(self, rows: Sequence[InputRow], probabilities: np.ndarray) -> None:
        best = probabilities.argmax(axis=1)
        rounded = np.round(probabilities.astype(np.float64), 6).tolist()
        lines = []
        for row, k, probs in zip(rows, best.tolist(), rounded, strict=True):
            values = [row.id, self.label_names[k], probs[k], *probs]
            if self._csv is not None:
                self._csv.writerow(values)
            else:
                lines.append(self._dumps(dict(zip(self.columns, values, strict=True)), ensure_ascii=False) + "\n")
        if lines:
            self.stream.write("".join(lines))


def predict_file(
    predictor: Predictor,
    source: str | os.PathLike,
    output: str | os.PathLike | None = None,
    errors: str | os.PathLike | None = None,
    config: PredictFileConfig | None = None,
    stdout=None,
    stderr=None,
) -> PredictSummary:
    """Score every row of a file (or stdin) in chunks, writing one output row per input row in order.

    Args:
        predictor: the model.
        source: a JSONL, CSV or text file (gzip recognised by content), or "-" for stdin.
        output: where predictions go, written completely or not at all; None writes to `stdout`.
        errors: with on_error="skip", a JSONL file (line, id, reason) for the rows set aside, written
            completely or not at all; None reports them on `stderr`.
        config: formats, fields, error policy, chunk size, progress bar.
        stdout: stream for predictions when `output` is None (default sys.stdout).
        stderr: stream for the progress bar and skipped rows (default sys.stderr).

    Returns:
        The counts: input rows = scored + errors.

    Raises:
        InputError: a bad row with on_error="fail" (naming the line and the fix), or an unreadable input;
            no output or errors file is left behind.
    """
    import json
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
    start = time.perf_counter()
    with ExitStack() as stack:
        reader = InputReader(source, _open_binary(source, stack), config)
        summary.input_format = reader.format
        writer = _RowWriter(_open_text_output(output, stack, stdout), config.output_format, predictor.label_names)
        error_stream = _open_text_output(errors, stack, None) if errors is not None else None
        bar = stack.enter_context(
            tqdm(
                desc="predict",
                unit=" rows",
                file=stderr,
                disable=None if config.progress is None else not config.progress,
            )
        )
        for chunk in _chunks(reader, config.chunk_size):
            good = [row for row in chunk if row.reason is None]
            bad = [row for row in chunk if row.reason is not None]
            if bad and config.on_error == "fail":
                row = bad[0]
                raise InputError(f"{reader.name}, line {row.line}: {row.reason}; {row.fix} ({_SKIP_HINT})")
            if good:
                writer.write(good, predictor.predict_proba([row.text for row in good]))
            for row in bad:
                record = {"line": row.line, "id": row.id, "reason": row.reason, "fix": row.fix}
                if error_stream is not None:
                    error_stream.write(json.dumps(record, ensure_ascii=False) + "\n")
                else:
                    stderr.write(f"skipped {reader.name}, line {row.line}: {row.reason}\n")
            summary.input_rows += len(chunk)
            summary.scored += len(good)
            summary.errors += len(bad)
            bar.update(len(chunk))
        summary.blank_lines = reader.blank_lines
        if summary.input_rows != summary.scored + summary.errors:  # the promise of this function; never expected
            raise AssertionError(f"row count mismatch: {summary}")
    if output is None:
        stdout.flush()
    summary.seconds = time.perf_counter() - start
    return summary
