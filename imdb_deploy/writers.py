"""Where `imdb-deploy predict` writes: prediction rows as JSONL or CSV, complete or not at all.

Outputs are written under a temporary name and renamed (or their upload completed) only when the run
completes. `guard_output` is the one check both engines (local and Ray) make on an output path before any
work: no FIFO, device or socket (renaming over one would replace it), no folder where a file is written,
an existing folder only with --overwrite, and never the working folder, the home folder, one of their
parents, an input or the model folder.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from imdb_deploy.errors import OutputError
from imdb_deploy.fileio import atomic_file, refuse_overlap, refuse_replacing
from imdb_deploy.objectstore import url_output
from imdb_deploy.readers import InputRow
from imdb_deploy.sources import is_url, local_path

OUTPUT_FORMATS = ("jsonl", "csv")
_SPECIAL = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def guard_output(
    target: str | os.PathLike | None,
    option: str,
    inputs: Sequence[str | os.PathLike] = (),
    others: Mapping[str, str | os.PathLike | None] | None = None,
    *,
    folder: bool = False,
    overwrite: bool = False,
) -> None:
    """Refuse an output path that the run could not write without harm; called before any work.

    Object-store URLs and stdout ("-" or None) pass (their own checks apply). A local path (or file:// URL)
    is refused when it is a FIFO, device or socket (symlinks followed: /dev/stdout too), a folder where a
    file is written, an existing folder without `overwrite`, the working or home folder or a parent of
    one, or when it is, holds or sits inside an input or one of `others` (the model folder, the other output).

    Args:
        target: the output as the user named it.
        option: how the user named it, e.g. "--output".
        inputs: the run's inputs (as given and as expanded); URLs and globs are skipped.
        others: what else must survive -> its path, e.g. {"the model folder": model_dir}.
        folder: the output is a folder (the Ray engine's shards), else a file.
        overwrite: an existing output folder may be replaced.

    Raises:
        OutputError: naming the path, what it is and the fix.
    """
    path = None if target is None or str(target) == "-" else local_path(target)
    if path is None:
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:  # missing (or a dangling link): nothing there to harm
        mode = None
    if mode is not None:
        kind = next((name for test, name in _SPECIAL if test(mode)), None)
        if kind:
            instead = " (or leave the option out to write to stdout, and redirect it)" if option == "--output" else ""
            raise OutputError(
                f"{option} {str(target)!r} is {kind}; the output is written under a temporary name and renamed "
                f"into place, which would replace it. Name a regular file{instead}"
            )
        if stat.S_ISDIR(mode) and not folder:
            raise OutputError(
                f"{option} {str(target)!r} is a folder; name a file for the output, e.g. "
                f"{os.path.join(str(target), 'predictions.jsonl')}"
            )
        if folder and not overwrite:
            raise OutputError(f"{target} already exists; choose another output or pass --overwrite")
        refuse_replacing(path, option)
    for source in dict.fromkeys(local_path(item) for item in inputs):
        if source is not None:
            refuse_overlap(path, {"the input": source}, option)
    refuse_overlap(path, {what: where for what, where in (others or {}).items() if where is not None}, option)


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
