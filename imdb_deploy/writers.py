"""Where `imdb-deploy predict` writes: prediction rows as JSONL or CSV, complete or not at all.

Outputs are written under a temporary name and renamed (or their upload completed) only when the run
completes.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imdb_deploy.fileio import atomic_file
from imdb_deploy.objectstore import url_output
from imdb_deploy.readers import InputRow
from imdb_deploy.sources import is_url

OUTPUT_FORMATS = ("jsonl", "csv")


def open_text_output(path: Path | str | None, stack, fallback):
    """A text stream for `path` (or an object-store URL), written under a temporary name and renamed (or
    its upload completed) only if the run completes."""

    if path is None:
        return fallback
    if str(path).startswith("file://"):
        path = Path(str(path).removeprefix("file://"))
    elif is_url(path):  # an object store: the object appears once complete
        text = {"encoding": "utf-8", "newline": ""}
        if str(path).endswith(".gz"):
            return stack.enter_context(url_output(str(path), lambda raw: gzip.open(raw, "wt", **text)))
        return stack.enter_context(url_output(str(path), lambda raw: io.TextIOWrapper(raw, **text)))
    tmp = stack.enter_context(atomic_file(path))
    if str(path).endswith(".gz"):
        return stack.enter_context(gzip.open(tmp, "wt", encoding="utf-8", newline=""))
    return stack.enter_context(open(tmp, "w", encoding="utf-8", newline=""))


class RowWriter:
    """Prediction rows as JSONL or CSV: id, label, score of that label, probability of every label."""

    def __init__(self, stream, fmt: str, label_names: Sequence[str]) -> None:

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
                record = dict(zip(self.columns, values, strict=True))
                # allow_nan=False: the reader refuses non-finite ids, so this only guards the promise
                lines.append(self._dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
        if lines:
            self.stream.write("".join(lines))
