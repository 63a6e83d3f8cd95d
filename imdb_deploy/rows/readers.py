"""Streaming readers for `imdb-deploy predict`: JSONL, CSV, plain text and Parquet (gzip and stdin via sources).

Rows are read lazily (line by line; Parquet by record batch); a bad row comes back as an `InputRow` with
its reason and fix, so the caller decides whether to stop or set it aside. Ids: the `id` field or column
when a row has one (or the one `--id-field` names), else "NAME:N" with the file's name and the line the
row starts on (1-based row for Parquet), unique across files; stdin keeps plain line numbers.

Every limit on one row (MAX_REVIEW_BYTES, MAX_LINE_BYTES, MAX_JSON_DEPTH) makes that row a bad row, never
the run's end and never a silent loss; `review_problem`/`validate_review` and `sources.loads_checked` are the same
checks for callers outside a file (a server's request bodies).
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import pickle
import tempfile
import zlib
from collections import deque

import pyarrow as pa
import pyarrow.parquet as pq

from imdb_deploy.errors import InputError
from imdb_deploy.jsonlimits import json_kind, parse_json
from imdb_deploy.outputs import is_url
from imdb_deploy.reviews import DEFAULT_ID_FIELD, InputRow, _finite, _has_surrogate, review_problem
from imdb_deploy.rows.config import MAX_CHUNK_CHARS, MAX_LINE_BYTES
from imdb_deploy.rows.lines import (
    BROKEN,
    END,
    FIELD,
    QUOTED,
    LineTooLong,
    TooLong,
    csv_scan,
    decode_line,
    skip_newlines,
    too_long_reason,
)
from imdb_deploy.rows.sources import (
    _delimiter_hint,
    guess_format,
    gunzip_if_needed,
    name_excerpt,
    open_binary,
    open_seekable,
    open_url,
    sniff_delimiter,
    source_name,
)


def open_reader(
    source: str,
    stack,
    input_format: str = "auto",
    text_field: str = "text",
    id_field: str | None = None,
    id_prefix: str | None = None,
    delimiter: str | None = None,
):
    """An InputReader or ParquetReader over one source (path, URL or "-"), its file closed by `stack`."""
    fmt = guess_format(source) if input_format == "auto" else input_format
    if fmt == "parquet":
        if str(source) == "-":
            raise InputError("stdin: Parquet cannot be read from a stream; save it to a file and pass its path")
        return ParquetReader(source, open_seekable(source, stack), text_field, id_field, id_prefix)
    if is_url(source):
        stream = open_url(source, stack)
        if not hasattr(stream, "peek"):
            stream = io.BufferedReader(stream)
        stream = gunzip_if_needed(stream, stack)
    else:
        stream = open_binary(source, stack)
    return InputReader(source, stream, input_format, text_field, id_field, id_prefix, delimiter)


_UTF8_FIX = "re-save the file as UTF-8"


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
        delimiter: str | None = None,
    ) -> None:
        self.source = source
        self.name = source_name(source)
        self.text_field = text_field
        self.delimiter = delimiter  # CSV: None sniffs the header line (sniff_delimiter)
        # An id field the user named must be there; the default one is used where present.
        self.id_field, self.id_required = (id_field, True) if id_field else (DEFAULT_ID_FIELD, False)
        self.id_prefix = id_prefix
        self.unit = "line"
        self.blank_lines = 0
        # Runs of empty lines are skipped in bulk (counted, never held) where they cannot be part of a row:
        # everywhere but inside CSV (a quoted field may hold them), and before the first line of any format.
        self._squeeze = hasattr(stream, "peek")
        self._lines = self._numbered(stream)
        self._peeked: list[tuple[int, bytes]] = []
        first = None
        for line, raw in self._lines:
            if raw.strip():  # only the first real line is kept: memory flat in the blank lines before it
                self._peeked.append((line, raw))
                first = decode_line(raw, line)[0]
                break
            self.blank_lines += 1
        self.format = guess_format(source, first) if input_format == "auto" else input_format
        self._squeeze = self._squeeze and self.format != "csv"

    def fallback_id(self, line: int):
        """The id of a row without one: "PREFIX:LINE", or the line number for stdin."""
        return f"{self.id_prefix}:{line}" if self.id_prefix else line

    def _numbered(self, stream):
        """(line number, bytes) per line; a line over MAX_LINE_BYTES comes as TooLong, read in pieces."""

        number = 0
        try:
            while True:
                raw = stream.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    return
                number += 1
                if raw == b"\n" and self._squeeze:
                    run = skip_newlines(stream)
                    self.blank_lines += 1 + run
                    number += run
                    continue
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    size, head = len(raw), raw[:256]
                    # CSV: where the line leaves the quoting, from a record's start and from inside a quoted
                    # field, so a record that goes on past it can be skipped whole (_csv_record_end)
                    csv_file = getattr(self, "format", None) == "csv" and self.delimiter
                    delimiter = self.delimiter.encode() if csv_file else None
                    ends = [FIELD, QUOTED]
                    while True:
                        if delimiter:
                            ends = [csv_scan(state, raw, delimiter) for state in ends]
                        if raw.endswith(b"\n"):
                            break
                        raw = stream.readline(1 << 20)
                        if not raw:
                            break
                        size += len(raw)
                    yield number, TooLong(size, head, tuple(ends))
                    continue
                yield number, raw
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise InputError(f"{self.name}: cannot read it ({exc}); check or re-create the file") from exc

    def _raw_lines(self):
        yield from self._peeked
        self._peeked = []
        yield from self._lines

    def __iter__(self):
        return {"jsonl": self._jsonl, "csv": self._csv, "text": self._text}[self.format]()

    def _decoded_lines(self):
        """(line, text) of every non-blank line, text with its line ending; a line over the cap or not UTF-8
        comes as (line, InputRow) with the reason, and blank lines are counted, not yielded."""
        for line, raw in self._raw_lines():
            if isinstance(raw, TooLong):
                reason, fix = too_long_reason(raw, MAX_LINE_BYTES)
                yield line, InputRow(line, self.fallback_id(line), reason=reason, fix=fix)
                continue
            text, bad = decode_line(raw, line)
            if bad:
                yield line, InputRow(line, self.fallback_id(line), reason=bad, fix=_UTF8_FIX)
            elif not text.strip():
                self.blank_lines += 1
            else:
                yield line, text

    def _text(self):
        for line, text in self._decoded_lines():
            if isinstance(text, InputRow):
                yield text
            else:
                yield self._checked(line, self.fallback_id(line), text.rstrip("\r\n"), [], "line")

    def _jsonl(self):
        field, id_field = self.text_field, self.id_field
        for line, text in self._decoded_lines():
            if isinstance(text, InputRow):
                yield text
                continue
            record, reason, fix = parse_json(text.rstrip("\r\n"), exact_numbers=True)
            if reason:
                yield InputRow(line, self.fallback_id(line), reason=reason, fix=fix)
                continue
            if not isinstance(record, dict):
                kind = json_kind(record)
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
            elif not _finite(row_id):
                # NaN, Infinity and 1e999 parse as floats that JSON output cannot hold: a bad row, so the
                # output stays valid JSON and no id is silently rewritten.
                yield InputRow(
                    line,
                    self.fallback_id(line),
                    reason=f"field {id_field!r} is {row_id!r}, which is not a valid JSON number",
                    fix=f'quote the id, e.g. "{id_field}": "{row_id!r}"',
                )
                continue
            elif _has_surrogate(row_id):  # no UTF-8 output (nor Arrow) can hold it
                yield InputRow(
                    line,
                    self.fallback_id(line),
                    reason=f"field {id_field!r} holds a lone surrogate, which is not valid Unicode",
                    fix="write the character as a valid pair (or UTF-8), or remove it",
                )
                continue
            yield self._checked(line, row_id, record.get(field, _MISSING), sorted(record), "field")

    def _checked(self, line: int, row_id, value, present: list[str], what: str) -> InputRow:
        field = self.text_field
        if value is _MISSING:
            shown = name_excerpt(present)
            return InputRow(
                line,
                row_id,
                reason=f"{what} {field!r} missing ({what}s here: {shown})",
                fix=f"use --text-field to name another {what}",
            )
        problem = review_problem(value)
        if problem:
            reason = problem[0] if what == "line" else problem[0].replace("the review", f"{what} {field!r}", 1)
            return InputRow(line, row_id, reason=reason, fix=problem[1])
        return InputRow(line, row_id, text=value)

    def _csv(self):
        """CSV rows. A row whose quoting is broken (a quote never closed, text after a closing quote) is a bad
        row on the line it starts, and reading goes on from the next line: one stray quote cannot swallow the
        rest of the file. A well-formed record with a field over MAX_LINE_BYTES is one bad row, and reading
        goes on at the next record (_csv_record_end)."""

        csv.field_size_limit(MAX_LINE_BYTES)
        lines = self._raw_lines()
        pending: list[tuple[int, object]] = []  # lines of the record being parsed
        replay: deque = deque()  # iterators of lines to parse again after a broken record, first first
        bad_lines: dict[int, str] = {}

        def pull():
            while replay:
                item = next(replay[0], None)
                if item is not None:
                    return item
                replay.popleft()
            return next(lines, None)

        def feed():
            while True:
                item = pull()
                if item is None:
                    return
                pending.append(item)
                line, raw = item
                if isinstance(raw, TooLong):
                    raise LineTooLong(line, raw)
                text, bad = decode_line(raw, line)
                if bad:
                    bad_lines[line] = bad
                yield text

        field, id_field = self.text_field, self.id_field
        header: list[str] | None = None
        text_col = id_col = None
        if self.delimiter is None:
            self.delimiter = sniff_delimiter(decode_line(self._peeked[0][1], 1)[0] if self._peeked else "")
        while True:
            reader = csv.reader(feed(), strict=True, delimiter=self.delimiter)
            try:
                for record in reader:
                    start, end = pending[0][0], pending[-1][0]
                    pending.clear()
                    if header is None:
                        header = self._csv_header(record, bad_lines, start)
                        text_col = header.index(field)
                        id_col = header.index(id_field) if id_field in header else None
                        continue
                    if not record or (len(record) == 1 and not record[0].strip()):
                        self.blank_lines += end - start + 1
                        continue
                    yield self._csv_row(record, start, end, header, text_col, id_col, bad_lines)
                return
            except (csv.Error, LineTooLong) as exc:
                start = pending[0][0]
                again = iter(pending[1:])  # the lines after the bad row's first: parsed again
                if header is not None and (isinstance(exc, LineTooLong) or "field limit" in str(exc)):
                    end, again = self._csv_record_end(pending, pull)
                    if end is not None:  # well-formed, only too big: one bad row, the next record follows
                        for n in range(start, end + 1):
                            bad_lines.pop(n, None)
                        if end == start and isinstance(exc, LineTooLong):
                            reason, fix = too_long_reason(exc.args[1], MAX_LINE_BYTES)
                        else:
                            here = f"lines {start:,} to {end:,}" if end > start else f"line {start:,}"
                            reason = f"a field of this record ({here}) is over the limit of {MAX_LINE_BYTES:,} bytes"
                            fix = "shorten the review (only the first and last 512 tokens are read anyway)"
                        yield InputRow(start, self.fallback_id(start), reason=reason, fix=fix)
                        replay.appendleft(again)
                        pending.clear()
                        continue
                if isinstance(exc, LineTooLong):
                    line, raw = exc.args
                    reason, fix = too_long_reason(raw, MAX_LINE_BYTES)
                    if line != start:
                        reason = (
                            f"the quoted field opened here is still open at line {line:,}, which is "
                            f"{raw.size:,} bytes, over the limit of {MAX_LINE_BYTES:,} bytes per line"
                        )
                        fix = 'close the quote, or double a quote inside a field ("")'
                elif "field limit" in str(exc):
                    reason = f"a field is over the limit of {MAX_LINE_BYTES:,} bytes (a quote never closed?)"
                    fix = "close the quote, or shorten the review"
                elif "unexpected end of data" in str(exc):
                    reason = "a quote opened in this row is never closed (the field runs to the end of the input)"
                    fix = 'close the quote, or double a quote inside a field ("")'
                elif len(pending) > 1:
                    last = pending[-1][0]
                    reason = f"a quote opened in this row runs on to line {last:,}, where the CSV breaks ({exc})"
                    fix = 'close the quote, or double a quote inside a field ("")'
                else:
                    reason = f"broken CSV quoting ({exc})"
                    fix = 'quote the whole field and double a quote inside it ("")'
                if header is None:
                    raise InputError(f"{self.name}, line {start}: the CSV header is broken: {reason}; {fix}") from exc
                yield InputRow(start, self.fallback_id(start), reason=reason, fix=fix)
                replay.appendleft(again)
                pending.clear()

    def _csv_record_end(self, pending: list[tuple[int, object]], pull) -> tuple[int | None, object]:
        """Where a CSV record with a field over the cap ends, scanning its quotes as csv would parse them.

        Args:
            pending: the record's lines read so far, from its first.
            pull: gives the next line (number, bytes or TooLong), None at the end of the input.

        Returns:
            (its last line, an iterator of `pending`'s lines after it) when the record's quoting is well-formed;
            else (None, an iterator of the lines after its first, to parse again). Lines read past `pending` are
            not held: they are spooled to a temporary file, so memory stays flat however far the record runs.
        """
        delimiter = self.delimiter.encode()
        state, end = FIELD, None
        spool = tempfile.TemporaryFile()  # noqa: SIM115 (read back later, by the caller's replay)
        read_past = 0
        for index in range(len(pending)):
            line, raw = pending[index]
            if isinstance(raw, TooLong):  # a line starts a record (FIELD) or inside a quoted field
                state = raw.ends[0 if state == FIELD else 1]
            else:
                state = csv_scan(state, raw, delimiter)
            if state >= END:
                end = line
                break
        else:
            while True:
                item = pull()
                if item is None:  # the input ends: the record with it, unless a quote is still open
                    end = None if state == QUOTED else line
                    break
                pickle.dump(item, spool)
                read_past += 1
                line, raw = item
                state = raw.ends[1] if isinstance(raw, TooLong) else csv_scan(state, raw, delimiter)
                if state >= END:
                    end = line
                    break
        if state == BROKEN:
            end = None
        if end is not None:
            spool.close()
            return end, iter([item for item in pending if item[0] > end])

        def spooled():
            with spool:
                spool.seek(0)
                for _ in range(read_past):
                    yield pickle.load(spool)

        return None, itertools.chain(pending[1:], spooled())

    def _csv_header(self, record: list[str], bad_lines: dict[int, str], line: int = 1) -> list[str]:
        field, id_field = self.text_field, self.id_field if self.id_required else None
        if bad_lines:
            line, bad = next(iter(bad_lines.items()))
            raise InputError(f"{self.name}, line {line}: the CSV header has {bad}; {_UTF8_FIX}")
        header = [name.strip() for name in record]
        where = f"{self.name}, line {line}"
        for wanted, option in ((field, "--text-field"), (id_field, "--id-field")):
            if wanted is not None and wanted not in header:
                raise InputError(
                    f"{where}: no column {wanted!r} in the CSV header (columns: {name_excerpt(header)}); "
                    f"use {option} to name the column{_delimiter_hint(header, self.delimiter)}"
                )
        for used in dict.fromkeys((field, self.id_field)):  # the default "id" column too, where present
            places = [str(i + 1) for i, name in enumerate(header) if name == used]
            if len(places) > 1:
                raise InputError(
                    f"{where}: the CSV header names column {used!r} {len(places)} times (columns "
                    f"{', '.join(places[:8])}); rename all but one, so the right column is read"
                )
        return header

    def _csv_row(self, record, start, end, header, text_col, id_col, bad_lines) -> InputRow:
        field, id_field = self.text_field, self.id_field
        bad = next((bad_lines.pop(n) for n in range(start, end + 1) if n in bad_lines), None)
        if bad:
            return InputRow(start, self.fallback_id(start), reason=bad, fix=_UTF8_FIX)
        if id_col is not None and id_col >= len(record):
            return InputRow(
                start,
                self.fallback_id(start),
                reason=f"column {id_field!r} missing (the row has {len(record)} of {len(header)} columns)",
                fix="quote values that contain commas",
            )
        row_id = record[id_col] if id_col is not None else self.fallback_id(start)
        if text_col >= len(record):
            return InputRow(
                start,
                row_id,
                reason=f"column {field!r} missing (the row has {len(record)} of {len(header)} columns)",
                fix="quote values that contain commas",
            )
        return self._checked(start, row_id, record[text_col], header, "column")


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

        self.source, self.name = source, source_name(source)
        self.text_field, self.id_prefix, self.batch_rows = text_field, id_prefix, batch_rows
        try:
            self._file = pq.ParquetFile(stream)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.name}: not a readable Parquet file ({exc}); check or re-create it") from exc
        schema = self._file.schema_arrow
        columns = name_excerpt(list(schema.names))
        if text_field not in schema.names:
            raise InputError(
                f"{self.name}: no column {text_field!r} (columns: {columns}); use --text-field to name the column"
            )
        text_type = schema.field(text_field).type
        # text in any Arrow string-like type: string, large_string, string_view, or a dictionary of one (a
        # dictionary-encoded column, a pandas categorical); each reads back as Python str
        values = text_type.value_type if pa.types.is_dictionary(text_type) else text_type
        if not (pa.types.is_string(values) or pa.types.is_large_string(values) or pa.types.is_string_view(values)):
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
        for batch in self._batches(columns):
            texts = batch.column(self.text_field).to_pylist()
            ids = batch.column(self.id_column).to_pylist() if self.id_column else None
            for i, text in enumerate(texts):
                row += 1
                if ids is not None and not _finite(ids[i]):
                    # A float id column's NaN or infinity: JSON output cannot hold it, so the row is bad (its
                    # id left null: a "FILE:ROW" string would not fit the column's type in Ray's shards).
                    yield InputRow(
                        row,
                        None,
                        reason=f"column {self.id_column!r} is {ids[i]!r}, which is not a valid JSON number",
                        fix="give the row a finite id, or cast the id column to string",
                    )
                    continue
                yield self._checked(row, ids[i] if ids is not None else self.fallback_id(row), text, present, "column")

    def _batches(self, columns: list[str]):
        """The file's record batches; a page that cannot be read (corrupt compressed data, a bad encoding)
        is an InputError naming the file and the rows read before it, not pyarrow's OSError."""
        batches = self._file.iter_batches(batch_size=self.batch_rows, columns=columns)
        rows_read = 0
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as exc:
                raise InputError(
                    f"{self.name}: cannot read it after row {rows_read:,} ({str(exc).splitlines()[0]}); the file "
                    "is damaged: re-create or re-download it"
                ) from exc
            if batch is None:
                return
            rows_read += batch.num_rows
            yield batch


def chunks(rows, size: int, max_chars: int = MAX_CHUNK_CHARS):
    """Lists of at most `size` rows and (past the first row) at most `max_chars` characters of text."""
    chunk: list[InputRow] = []
    chars = 0
    for row in rows:
        length = len(row.text) if row.text is not None else 0
        if chunk and chars + length > max_chars:
            yield chunk
            chunk, chars = [], 0
        chunk.append(row)
        chars += length
        if len(chunk) >= size:
            yield chunk
            chunk, chars = [], 0
    if chunk:
        yield chunk
