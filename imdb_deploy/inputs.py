"""Streaming readers and writers for `imdb-deploy predict`: JSONL, CSV and plain text, gzip, stdin.

Rows are read lazily line by line; a bad row comes back as an `InputRow` with its reason and fix, so the
caller decides whether to stop or set it aside. Outputs are written under a temporary name and renamed
only when the run completes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imdb_deploy.errors import InputError

INPUT_FORMATS = ("auto", "jsonl", "csv", "text")
OUTPUT_FORMATS = ("jsonl", "csv")
ON_ERROR = ("fail", "skip")
SKIP_HINT = "or pass --on-error skip --errors FILE to score the other rows and set bad ones aside"
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


def open_binary(source: str | os.PathLike, stack):
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

    def __init__(
        self,
        source: str | os.PathLike,
        stream,
        input_format: str = "auto",
        text_field: str = "text",
        id_field: str | None = None,
    ) -> None:
        self.source = source
        self.name = source_name(source)
        self.text_field, self.id_field = text_field, id_field
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

        field, id_field = self.text_field, self.id_field
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
