"""Streaming readers and writers for `imdb-deploy predict`: JSONL, CSV, plain text and Parquet, gzip, stdin.

Inputs are files, folders and globs (local, or any fsspec URL such as s3:// where it is configured),
expanded by `expand_inputs`. Rows are read lazily (line by line; Parquet by record batch); a bad row comes
back as an `InputRow` with its reason and fix, so the caller decides whether to stop or set it aside.
Ids: the `id` field or column when a row has one (or the one `--id-field` names), else "NAME:N" with the
file's name and the line the row starts on (1-based row for Parquet), unique across files; stdin keeps
plain line numbers. Outputs are written under a temporary name and renamed only when the run completes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imdb_deploy.errors import InputError

INPUT_FORMATS = ("auto", "jsonl", "csv", "text", "parquet")
OUTPUT_FORMATS = ("jsonl", "csv")
ON_ERROR = ("fail", "skip")
SKIP_HINT = "or pass --on-error skip --errors FILE to score the other rows and set bad ones aside"
DEFAULT_ID_FIELD = "id"  # carried to the output when rows have it, so results join back to their source
# What a folder contributes: files with these endings (gzip allowed for the text formats). Names that start
# with "_" or "." are skipped, as Spark, pyarrow and Ray do (_SUCCESS markers, .crc files, hidden temp files).
PARQUET_SUFFIXES = (".parquet", ".pq")
TEXT_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".txt", ".text")
READABLE_SUFFIXES = PARQUET_SUFFIXES + TEXT_SUFFIXES + tuple(f"{suffix}.gz" for suffix in TEXT_SUFFIXES)
_JSON_TYPES = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    list: "an array",
    dict: "an object",
}


@dataclass(frozen=True)
class InputRow:
    """One input row: its line number, id and text, or the reason it cannot be scored."""

    line: int
    id: object
    text: str | None = None
    reason: str | None = None
    fix: str | None = None


def count_noun(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def source_name(source: str | os.PathLike) -> str:
    return "stdin" if str(source) == "-" else str(source)


def is_url(source: str | os.PathLike) -> bool:
    """True for "scheme://..." inputs, opened through fsspec (s3://, gs://, file://, ...)."""
    return "://" in str(source)


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[str]:
    """The files behind the inputs, in order: each file as given, each folder's readable files (recursive,
    sorted, skipping names that start with "_" or "."), each glob's matching files (sorted); "-" is stdin.

    Raises:
        InputError: no inputs, stdin mixed with files, a path that does not exist, a glob that matches
            nothing, or a folder with no readable file.
    """
    import glob

    inputs = [str(item) for item in inputs]
    if not inputs:
        raise InputError("no input: name files, folders or globs (or - for stdin)")
    if "-" in inputs:
        if len(inputs) > 1:
            raise InputError("- (stdin) cannot be combined with other inputs; pass files, folders or globs instead")
        return ["-"]
    files: list[str] = []
    for item in inputs:
        if is_url(item):
            files += _expand_url(item)
        elif glob.has_magic(item):
            matches = sorted(path for path in glob.glob(item, recursive=True) if os.path.isfile(path))
            if not matches:
                raise InputError(f"{item}: the pattern matches no file; check it (and quote it so the shell leaves it)")
            files += matches
        elif os.path.isdir(item):
            files += _folder_files(item, _walk_local(item), os.sep)
        elif os.path.exists(item):
            files.append(item)
        else:
            raise InputError(f"{item}: no such file or folder")
    return list(dict.fromkeys(files))


def _walk_local(folder: str) -> list[str]:
    return [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names]


def _folder_files(folder: str, paths: list[str], sep: str) -> list[str]:
    def wanted(path: str) -> bool:
        parts = path[len(folder) :].strip(sep).split(sep)
        return not any(part.startswith(("_", ".")) for part in parts) and path.lower().endswith(READABLE_SUFFIXES)

    found = sorted(path for path in paths if wanted(path))
    if not found:
        raise InputError(
            f"{folder}: no readable file in this folder (looked for {', '.join(READABLE_SUFFIXES[:8])}, "
            "also .gz); name the files or pass a glob"
        )
    return found


def _expand_url(url: str) -> list[str]:
    import glob

    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
        if glob.has_magic(path):
            matches = sorted(p for p in fs.glob(path) if fs.isfile(p))
            if not matches:
                raise InputError(f"{url}: the pattern matches no file; check it")
            return [fs.unstrip_protocol(p) for p in matches]
        if fs.isdir(path):
            return [fs.unstrip_protocol(p) for p in _folder_files(path.rstrip("/"), fs.find(path), "/")]
        if fs.isfile(path):
            return [url]
    except (ImportError, ValueError, OSError) as exc:
        raise InputError(f"{url}: cannot list it ({exc}); check the URL and that its filesystem is configured") from exc
    raise InputError(f"{url}: no such file or folder")


def id_prefixes(files: Sequence[str]) -> dict[str, str]:
    """A short unique name per file for fallback ids: its path below the folder all files share
    (a single file: its name), e.g. "train-00001.parquet" or "year=2024/part-0.parquet"."""
    import posixpath

    if list(files) == ["-"]:
        return {}
    keys = {
        path: path.split("://", 1)[1] if is_url(path) else os.path.abspath(path).replace(os.sep, "/") for path in files
    }
    try:
        common = posixpath.commonpath([posixpath.dirname(key) for key in keys.values()])
    except ValueError:  # URLs on different buckets or hosts, or no files: keep the whole path
        common = ""
    return {path: posixpath.relpath(key, common) if common else key for path, key in keys.items()}


def guess_format(source: str | os.PathLike, first_line: str | None = None) -> str:
    """Input format by suffix (.parquet/.pq, .jsonl/.ndjson/.json, .csv, .txt; .gz stripped), else by the
    first line ("{" means JSONL, anything else plain text)."""
    name = "" if str(source) == "-" else str(source).rsplit("/", 1)[-1].lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return _guess_format(source, first_line)


def open_reader(
    source: str,
    stack,
    input_format: str = "auto",
    text_field: str = "text",
    id_field: str | None = None,
    id_prefix: str | None = None,
):
    """An InputReader or ParquetReader over one source (path, URL or "-"), its file closed by `stack`."""
    fmt = guess_format(source) if input_format == "auto" else input_format
    if fmt == "parquet":
        if str(source) == "-":
            raise InputError("stdin: Parquet cannot be read from a stream; save it to a file and pass its path")
        return ParquetReader(source, _open_seekable(source, stack), text_field, id_field, id_prefix)
    if is_url(source):
        stream = _open_url(source, stack)
        if not hasattr(stream, "peek"):
            import io

            stream = io.BufferedReader(stream)
        stream = gunzip_if_needed(stream, stack)
    else:
        stream = open_binary(source, stack)
    return InputReader(source, stream, input_format, text_field, id_field, id_prefix)


def _open_url(source: str, stack):
    import fsspec

    try:
        return stack.enter_context(fsspec.open(source, "rb"))
    except (ImportError, ValueError, OSError) as exc:
        raise InputError(f"{source}: cannot read it ({exc})") from exc


def _open_seekable(source: str, stack):
    if is_url(source):
        return _open_url(source, stack)
    try:
        return stack.enter_context(open(source, "rb"))  # noqa: SIM115 (closed by the caller's ExitStack)
    except OSError as exc:
        raise InputError(f"{source}: cannot read it ({exc.strerror or exc})") from exc


def gunzip_if_needed(raw, stack):
    """`raw` (a buffered binary stream), decompressed when its first bytes are gzip's magic number."""
    import gzip

    if raw.peek(2)[:2] == b"\x1f\x8b":
        return stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    return raw


def open_binary(source: str | os.PathLike, stack):
    """The input as a binary stream; gzip is recognised by its magic bytes, whatever the name."""
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
    return gunzip_if_needed(raw, stack)


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
    Blank lines are not rows; they are counted in `blank_lines`. Ids: `id_field` when named (a row without
    it is bad); else the row's "id" field or column when present; else "ID_PREFIX:LINE", or the line
    number when there is no prefix (stdin).

    Raises:
        InputError: the input cannot be read at all (missing file, CSV header without the named column).
    """

    def __init__(
        self,
        source: str | os.PathLike,
        stream,
        input_format: str = "auto",
        text_field: str = "text",
        id_field: str | None = None,
        id_prefix: str | None = None,
    ) -> None:
        self.source = source
        self.name = source_name(source)
        self.text_field = text_field
        # An id field the user named must be there; the default one is used where present.
        self.id_field, self.id_required = (id_field, True) if id_field else (DEFAULT_ID_FIELD, False)
        self.id_prefix = id_prefix
        self.unit = "line"
        self.blank_lines = 0
        self._lines = self._numbered(stream)
        self._peeked: list[tuple[int, bytes]] = []
        self.format = input_format
        if self.format == "auto":
            first = None
            for line, raw in self._lines:
                self._peeked.append((line, raw))
                if raw.strip():
                    first = _decode(raw, line)[0]
                    break
            self.format = _guess_format(source, first)

    def fallback_id(self, line: int):
        """The id of a row without one: "PREFIX:LINE", or the line number for stdin."""
        return f"{self.id_prefix}:{line}" if self.id_prefix else line

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
                yield InputRow(line, self.fallback_id(line), reason=bad, fix=_UTF8_FIX)
            elif not text.strip():
                self.blank_lines += 1
            else:
                yield InputRow(line, self.fallback_id(line), text=text.rstrip("\r\n"))

    def _jsonl(self):
        import json

        field, id_field = self.text_field, self.id_field
        for line, raw in self._raw_lines():
            text, bad = _decode(raw, line)
            if bad:
                yield InputRow(line, self.fallback_id(line), reason=bad, fix=_UTF8_FIX)
                continue
            if not text.strip():
                self.blank_lines += 1
                continue
            try:
                record = json.loads(text.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                yield InputRow(
                    line,
                    self.fallback_id(line),
                    reason=f"not valid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})",
                    fix="fix or remove the line",
                )
                continue
            if not isinstance(record, dict):
                kind = _JSON_TYPES.get(type(record), type(record).__name__)
                yield InputRow(
                    line,
                    self.fallback_id(line),
                    reason=f"expected a JSON object, got {kind}",
                    fix='write one object per line, e.g. {"text": "..."}',
                )
                continue
            row_id = record.get(id_field, _MISSING)
            if row_id is _MISSING:
                if self.id_required:
                    yield InputRow(
                        line,
                        self.fallback_id(line),
                        reason=f"field {id_field!r} missing",
                        fix="use --id-field to name another field, or leave it out to use file:line ids",
                    )
                    continue
                row_id = self.fallback_id(line)
            yield self._checked(line, row_id, record.get(field, _MISSING), sorted(record), "field")

    def _checked(self, line: int, row_id, value, present: list[str], what: str) -> InputRow:
        field = self.text_field
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
        field, id_field = self.text_field, self.id_field
        try:
            header = next(reader, None)
            if header is None:
                return
            if 1 in bad_lines:
                raise InputError(f"{self.name}, line 1: the CSV header has {bad_lines[1]}; {_UTF8_FIX}")
            header = [name.strip() for name in header]
            if not self.id_required and id_field not in header:
                id_field = None
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
                    yield InputRow(start, self.fallback_id(start), reason=bad, fix=_UTF8_FIX)
                    continue
                if id_col is not None and id_col >= len(record):
                    yield InputRow(
                        start,
                        self.fallback_id(start),
                        reason=f"column {id_field!r} missing (the row has {len(record)} of {len(header)} columns)",
                        fix="quote values that contain commas",
                    )
                    continue
                row_id = record[id_col] if id_col is not None else self.fallback_id(start)
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


class ParquetReader:
    """Rows of a Parquet file, streamed by record batch (never the whole file), checked like InputReader's.

    Rows are numbered from 1 in file order; ids follow InputReader's rules, "PREFIX:ROW" by default.

    Raises:
        InputError: not a Parquet file, the text column (or a named id column) missing, or the text column
            not a string column.
    """

    format = "parquet"
    unit = "row"
    blank_lines = 0

    def __init__(
        self,
        source: str | os.PathLike,
        stream,
        text_field: str = "text",
        id_field: str | None = None,
        id_prefix: str | None = None,
        batch_rows: int = 1024,
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.source, self.name = source, source_name(source)
        self.text_field, self.id_prefix, self.batch_rows = text_field, id_prefix, batch_rows
        try:
            self._file = pq.ParquetFile(stream)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.name}: not a readable Parquet file ({exc}); check or re-create it") from exc
        schema = self._file.schema_arrow
        columns = ", ".join(map(repr, schema.names))
        if text_field not in schema.names:
            raise InputError(
                f"{self.name}: no column {text_field!r} (columns: {columns}); use --text-field to name the column"
            )
        text_type = schema.field(text_field).type
        if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
            raise InputError(
                f"{self.name}: column {text_field!r} holds {text_type}, not text; use --text-field to name the "
                "column with the reviews"
            )
        if id_field and id_field not in schema.names:
            raise InputError(f"{self.name}: no column {id_field!r} (columns: {columns}); use --id-field to name it")
        self.id_column = id_field or (DEFAULT_ID_FIELD if DEFAULT_ID_FIELD in schema.names else None)
        self.id_type = schema.field(self.id_column).type if self.id_column else None

    def fallback_id(self, row: int):
        return f"{self.id_prefix}:{row}" if self.id_prefix else row

    _checked = InputReader._checked  # the same text checks as JSONL and CSV (uses only self.text_field)

    def __iter__(self):
        columns = [self.text_field] + ([self.id_column] if self.id_column and self.id_column != self.text_field else [])
        present = list(self._file.schema_arrow.names)
        row = 0
        for batch in self._file.iter_batches(batch_size=self.batch_rows, columns=columns):
            texts = batch.column(self.text_field).to_pylist()
            ids = batch.column(self.id_column).to_pylist() if self.id_column else None
            for i, text in enumerate(texts):
                row += 1
                yield self._checked(row, ids[i] if ids is not None else self.fallback_id(row), text, present, "column")


def chunks(rows, size: int):
    chunk: list[InputRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def open_text_output(path: Path | None, stack, fallback):
    """A text stream for `path`, written under a temporary name and renamed only if the run completes."""
    import gzip

    from imdb_deploy.fileio import atomic_file

    if path is None:
        return fallback
    tmp = stack.enter_context(atomic_file(path))
    if str(path).endswith(".gz"):
        return stack.enter_context(gzip.open(tmp, "wt", encoding="utf-8", newline=""))
    return stack.enter_context(open(tmp, "w", encoding="utf-8", newline=""))


class RowWriter:
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
