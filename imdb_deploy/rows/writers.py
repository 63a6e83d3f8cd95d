"""Where `imdb-deploy predict` writes: prediction rows as JSONL or CSV, complete or not at all.

Outputs are written under a temporary name and renamed (or their upload completed) only when the run
completes. A local output is declared with the run's inputs to the one output mechanism (outputs.Output) before
any work (`row_output`), so it is never an input, the model folder or the other output, and its commit never
replaces what it did not see at the start.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import gzip
import hashlib
import io
import json
import os
from collections.abc import Sequence

import numpy as np

from imdb_deploy.errors import OutputError
from imdb_deploy.jsonlimits import JsonNumber
from imdb_deploy.outputs import Inputs, Output, is_url, local_path
from imdb_deploy.reviews import InputRow
from imdb_deploy.rows.objectstore import url_output


def row_output(target: str | os.PathLike | None, option: str, inputs: Inputs) -> Output | str | None:
    """Where a stream of rows goes, declared before any work: None for stdout (None or "-"), the URL of an
    object store (checked when it is opened: objectstore.url_output), or a local outputs.Output declared with
    everything the run reads.

    Raises:
        OutputError: the local output is an input, the model folder, the other output, a device... (Output).
    """
    if target is None or str(target) == "-":
        return None
    if is_url(target) and local_path(target) is None:
        return str(target)
    return Output(target, inputs, option=option)


def open_text_output(target: Output | str | None, stack, fallback):
    """A text stream for `target` (row_output's answer), written under a temporary name and committed (or its
    upload completed) only if the run completes; None writes to `fallback` (stdout)."""
    if target is None:
        return _full_writes(fallback, stack)
    if isinstance(target, str):  # an object store: the object appears once complete
        text = {"encoding": "utf-8", "newline": ""}
        if target.endswith(".gz"):
            return stack.enter_context(url_output(target, lambda raw: gzip.open(raw, "wt", **text)))
        return stack.enter_context(url_output(target, lambda raw: io.TextIOWrapper(raw, **text)))
    tmp = stack.enter_context(target.writing())
    path = target.path
    if str(path).endswith(".gz"):
        return stack.enter_context(gzip.open(tmp, "wt", encoding="utf-8", newline=""))
    return stack.enter_context(open(tmp, "w", encoding="utf-8", newline=""))


def _plain(value):
    """An id as a JSON-ready value: bytes as lowercase hex, dates and times in ISO 8601, a duration as ISO 8601
    seconds (PT1.5S), a decimal as its literal (JsonNumber); structs and lists item by item."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return f"PT{value.total_seconds():g}S"
    if isinstance(value, decimal.Decimal):
        return JsonNumber(str(value))
    if isinstance(value, np.generic):  # a NumPy scalar from a pandas-built table
        return value.item()
    return value


def id_json(value) -> str:
    """The one id encoder, as JSON text: a JsonNumber as its literal, strings and numbers as JSON, the rest
    through _plain (bytes as hex, ISO 8601 dates, decimals as their literal; structs as objects).

    Raises:
        ValueError: a non-finite float (the readers make such a row a bad row first).
    """
    value = _plain(value)
    if isinstance(value, JsonNumber):
        return str.__str__(value)
    if isinstance(value, dict):
        items = (f"{json.dumps(str(key), ensure_ascii=False)}: {id_json(item)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(id_json(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def id_text(value) -> str | None:
    """An id as one text cell (CSV output, a string id column): a string as it is, anything else as its
    id_json text (hex for bytes, ISO 8601 dates, a JsonNumber's literal); None stays None."""
    if value is None:
        return None
    value = _plain(value)
    if isinstance(value, str):
        return str.__str__(value)
    return id_json(value)


def error_line(file: str, line: int, row_id, reason: str | None, fix: str | None) -> str:
    """One JSONL record (file, line, id, reason, fix) for a row set aside, its id through id_json."""
    head = json.dumps({"file": file, "line": line}, ensure_ascii=False)[:-1]
    tail = json.dumps({"reason": reason, "fix": fix}, ensure_ascii=False)[1:]
    return f'{head}, "id": {id_json(row_id)}, {tail}\n'


def _full_writes(stream, stack):
    """`stream`, or, for a text stream straight over an unbuffered file (python -u, PYTHONUNBUFFERED=1, as
    many container images set), a buffered one over the same file: TextIOWrapper drops what a short write
    leaves (a full disk) without a word, where BufferedWriter writes the rest and so raises the error."""
    raw = getattr(stream, "buffer", None)
    if not isinstance(raw, io.RawIOBase):
        return stream
    stream.flush()
    wrapper = io.TextIOWrapper(io.BufferedWriter(raw), encoding=stream.encoding, errors=stream.errors)

    def release() -> None:
        try:
            wrapper.flush()
        finally:
            wrapper.detach().detach()  # leave the file (stdout) open for the rest of the process

    stack.callback(release)
    return wrapper


class RowWriter:
    """Prediction rows as JSONL or CSV: id, label, score of that label, probability of every label.

    Ids go through the one id encoder (id_json for JSONL, id_text for CSV): a JSON number keeps its literal.
    """

    def __init__(self, stream, fmt: str, label_names: Sequence[str]) -> None:
        self.stream = stream
        self.label_names = list(label_names)
        self.columns = ["id", "label", "score", *(f"prob_{name}" for name in self.label_names)]
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        if self._csv is not None:
            self._csv.writerow(self.columns)
        self.rows_written = 0

    def write(self, rows: Sequence[InputRow], probabilities: np.ndarray) -> None:
        best = probabilities.argmax(axis=1)
        rounded = np.round(probabilities.astype(np.float64), 6).tolist()
        lines = []
        for row, k, probs in zip(rows, best.tolist(), rounded, strict=True):
            values = [self.label_names[k], probs[k], *probs]
            if self._csv is not None:
                self._csv.writerow([id_text(row.id), *values])
            else:
                rest = json.dumps(dict(zip(self.columns[1:], values, strict=True)), ensure_ascii=False)
                lines.append(f'{{"id": {id_json(row.id)}, {rest[1:]}\n')
        if lines:
            self.stream.write("".join(lines))
        self.rows_written += len(rows)


def id_key(value) -> int:
    """A 64-bit fingerprint of an id as it is written (1 and "1" differ; 1.0 and 1.00 differ, as written)."""
    text = id_json(value).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


class IdTally:
    """Repeated and null ids among the rows scored, in 8 bytes per row (a 64-bit fingerprint each; two
    distinct ids share one with a chance of about n^2 / 2^65, under 1 in 3,000 for 100 million rows).

    Attributes:
        nulls: rows whose id is null (JSON null, an empty Parquet cell).
    """

    def __init__(self) -> None:
        self.nulls = 0
        self._parts: list[np.ndarray] = []
        self._pending: list[int] = []

    def add(self, ids) -> None:
        """Count the ids of one batch of rows."""
        for value in ids:
            if value is None:
                self.nulls += 1
            else:
                self._pending.append(id_key(value))
        if len(self._pending) >= 1 << 16:
            self._flush()

    def add_keys(self, keys: np.ndarray, nulls: int) -> None:
        """Merge fingerprints counted elsewhere (a Ray read task's `keys()`)."""
        self._parts.append(np.asarray(keys, dtype=np.uint64))
        self.nulls += nulls

    def _flush(self) -> None:
        if self._pending:
            self._parts.append(np.array(self._pending, dtype=np.uint64))
            self._pending = []

    def keys(self) -> np.ndarray:
        self._flush()
        return np.concatenate(self._parts) if self._parts else np.zeros(0, dtype=np.uint64)

    def repeats(self) -> int:
        """Rows whose id an earlier row already had."""
        keys = self.keys()
        return int(len(keys) - len(np.unique(keys)))


def id_problems(repeats: int, nulls: int) -> str:
    """The summary's words for repeated and null ids ("" when there are none)."""
    parts = [f"{repeats:,} repeated id{'' if repeats == 1 else 's'}"] if repeats else []
    parts += [f"{nulls:,} null id{'' if nulls == 1 else 's'}"] if nulls else []
    return " and ".join(parts)


def check_ids(repeats: int, nulls: int, policy: str) -> str:
    """The summary's note on repeated and null ids; with policy "fail" an OutputError instead.

    Raises:
        OutputError: policy "fail" and some id repeats or is null (the output is then not written).
    """
    problems = id_problems(repeats, nulls)
    if not problems:
        return ""
    if policy == "fail":
        raise OutputError(
            f"{problems} among the rows scored (--on-duplicate-id fail): each output row must join back to one "
            "input row; give every row a unique id (or leave --id-field out for FILE:LINE ids). Nothing was written"
        )
    return f"; {problems} (the output cannot be joined back by id; --on-duplicate-id fail refuses this)"
