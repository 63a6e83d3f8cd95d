"""Where `imdb-deploy predict` reads from: inputs expanded to files, and each file's format guessed once.

Inputs are files, folders and globs (local, or any fsspec URL such as s3:// where it is configured),
expanded by `expand_inputs`; `guess_format` is the one format guesser (by suffix, else by the first
line); `open_binary` opens a file or stdin as a binary stream, gunzipped when its bytes say gzip.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import os
import posixpath
import sys
from collections.abc import Sequence

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from imdb_deploy.errors import InputError
from imdb_deploy.outputs import is_url
from imdb_deploy.reviews import DEFAULT_ID_FIELD
from imdb_deploy.rows.config import CSV_DELIMITERS
from imdb_deploy.rows.objectstore import bucket_problem, url_error

# What a folder contributes: files with these endings (gzip allowed for the text formats). Names that start
# with "_" or "." are skipped, as Spark, pyarrow and Ray do (_SUCCESS markers, .crc files, hidden temp files).
PARQUET_SUFFIXES = (".parquet", ".pq")

TEXT_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".txt", ".text")

READABLE_SUFFIXES = PARQUET_SUFFIXES + TEXT_SUFFIXES + tuple(f"{suffix}.gz" for suffix in TEXT_SUFFIXES)


def source_name(source: str | os.PathLike) -> str:
    return "stdin" if str(source) == "-" else str(source)


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[str]:
    """The files behind the inputs, in order: each file as given, each folder's readable files (recursive,
    sorted, skipping names that start with "_" or "."), each glob's matching files (sorted); "-" is stdin.
    Neither a folder nor a glob's "**" enters a symlinked folder, and a file reached by several names (a link,
    a hard link, two inputs) is read once, under the first.

    Raises:
        InputError: no inputs, stdin mixed with files, a path that does not exist, a glob that matches
            nothing, or a folder with no readable file.
    """

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
            matches = sorted(path for path in set(_glob_local(item)) if os.path.isfile(path))
            if not matches:
                raise InputError(f"{item}: the pattern matches no file; check it (and quote it so the shell leaves it)")
            files += matches
        elif os.path.isdir(item):
            files += _folder_files(item, _walk_local(item), os.sep)
        elif os.path.exists(item):
            files.append(item)
        else:
            raise InputError(f"{item}: no such file or folder")
    unique: dict[object, str] = {}  # each file read once, however many names reach it (links, "a" and "./a")
    for path in files:
        try:
            local = path.removeprefix("file://") if path.startswith("file://") else None if is_url(path) else path
            info = os.stat(local) if local else None
        except OSError:  # a dangling link: kept, so opening it gives its one-line error
            info = None
        unique.setdefault((info.st_dev, info.st_ino) if info else path, path)
    return list(unique.values())


def _glob_local(pattern: str) -> list[str]:
    """`glob.glob(pattern, recursive=True)`, but "**" does not descend into symlinked folders, as a folder input
    does not (os.walk): a link such as `again -> .` can neither repeat files nor make the expansion endless."""
    parts = pattern.split(os.sep)
    if "**" not in parts:
        return glob.glob(pattern)
    at = parts.index("**")
    base, rest = os.sep.join(parts[:at]), os.sep.join(parts[at + 1 :])
    if at and not base:  # the pattern starts at the root folder
        base = os.sep
    bases = [path for path in glob.glob(base) if os.path.isdir(path)] if base else [""]
    matches: list[str] = []
    for top in bases:
        for root, folders, names in os.walk(top or os.curdir):  # followlinks=False: links are not entered
            folders[:] = [name for name in folders if not name.startswith(".")]  # as glob's "**": no hidden folders
            if not top:
                root = os.path.relpath(root)
                root = "" if root == os.curdir else root
            if rest:
                matches += _glob_local(os.path.join(glob.escape(root), rest) if root else rest)
            else:
                matches += [os.path.join(root, name) for name in names if not name.startswith(".")]
    return matches


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

    try:
        fs, path = fsspec.core.url_to_fs(url)
        if glob.has_magic(path):
            hidden_ok = path.rsplit("/", 1)[-1].startswith(".")  # as Python's glob: "*" skips dot files
            matches = sorted(
                p for p in fs.glob(path) if (hidden_ok or not p.rsplit("/", 1)[-1].startswith(".")) and fs.isfile(p)
            )
            if not matches:
                raise InputError(f"{url}: the pattern matches no file; check it")
            return [fs.unstrip_protocol(p) for p in matches]
        if fs.isdir(path):
            return [fs.unstrip_protocol(p) for p in _folder_files(path.rstrip("/"), fs.find(path), "/")]
        if fs.isfile(path):
            return [url]
    except (ImportError, ValueError, OSError) as exc:
        error = url_error(exc, url, InputError)
        raise error or InputError(
            f"{url}: cannot list it ({exc}); check the URL and that its filesystem is configured"
        ) from exc
    raise bucket_problem(url, InputError) or InputError(f"{url}: no such file or folder")


def id_prefixes(files: Sequence[str]) -> dict[str, str]:
    """A short unique name per file for fallback ids: its path below the folder all files share
    (a single file: its name), e.g. "train-00001.parquet" or "year=2024/part-0.parquet"."""

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
    name = name.removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".txt", ".text")):
        return "text"
    return "jsonl" if (first_line or "").lstrip().startswith("{") else "text"


def open_url(source: str, stack):

    try:
        return stack.enter_context(fsspec.open(source, "rb"))
    except (ImportError, ValueError, OSError) as exc:
        raise url_error(exc, source, InputError) or InputError(f"{source}: cannot read it ({exc})") from exc


def open_seekable(source: str, stack):
    if is_url(source):
        return open_url(source, stack)
    try:
        return stack.enter_context(open(source, "rb"))  # noqa: SIM115 (closed by the caller's ExitStack)
    except OSError as exc:
        raise InputError(f"{source}: cannot read it ({exc.strerror or exc})") from exc


def gunzip_if_needed(raw, stack):
    """`raw` (a buffered binary stream), decompressed when its first bytes are gzip's magic number."""

    if raw.peek(2)[:2] == b"\x1f\x8b":
        return stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    return raw


def open_binary(source: str | os.PathLike, stack):
    """The input as a binary stream; gzip is recognised by its magic bytes, whatever the name."""

    if str(source) == "-":
        if sys.stdin is None or sys.stdin.closed:
            raise InputError("stdin is closed: pipe the reviews in (`... | imdb-deploy predict -`) or name a file")
        raw = sys.stdin.buffer
    else:
        try:
            raw = stack.enter_context(open(source, "rb"))  # noqa: SIM115 (closed by the caller's ExitStack)
        except OSError as exc:
            raise InputError(f"{source}: cannot read it ({exc.strerror or exc})") from exc
    if not hasattr(raw, "peek"):
        raw = io.BufferedReader(raw)
    return gunzip_if_needed(raw, stack)


def sniff_delimiter(header: str) -> str:
    """The CSV delimiter a header line uses, among CSV_DELIMITERS (csv.Sniffer); "," when it names one column."""
    try:
        return csv.Sniffer().sniff(header, delimiters=CSV_DELIMITERS).delimiter
    except csv.Error:
        return ","


def _delimiter_hint(header: list[str], delimiter: str) -> str:
    """A hint when a one-column header holds another delimiter (a ;- or tab-separated file read with ",")."""
    if len(header) != 1:
        return ""
    for other, spelled in ((";", "';'"), ("\t", "tab"), ("|", "'|'"), (",", "','")):
        if other != delimiter and other in header[0]:
            return f" (the header looks {spelled}-separated: pass --delimiter {spelled})"
    return ""


def name_excerpt(names: list[str], shown: int = 8) -> str:
    """Column or field names for a message: the first `shown` (each cut to 40 characters) and how many in all."""
    parts = [repr(name if len(name) <= 40 else name[:40] + "...") for name in names[:shown]]
    more = f", ... ({len(names):,} in all)" if len(names) > shown else ""
    return (", ".join(parts) or "none") + more


def output_id_type(files: Sequence[str], input_format: str, id_field: str | None) -> pa.DataType:
    """The Arrow type of the Ray engine's output id column, fixed before the job so every shard agrees: the id
    column's type when every input is Parquet with that column in one type; else strings ("FILE:LINE" ids,
    CSV values, and JSON values as their JSON text).

    Raises:
        InputError: an input that should be Parquet is not readable as Parquet.
    """
    column = id_field or DEFAULT_ID_FIELD
    types = set()
    for path in files:
        fmt = guess_format(path) if input_format == "auto" else input_format
        if fmt != "parquet":
            return pa.string()
        try:
            with fsspec.open(path, "rb") as f:
                schema = pq.read_schema(f)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{path}: not a readable Parquet file ({exc}); check or re-create it") from exc
        if column not in schema.names:
            return pa.string()
        types.add(schema.field(column).type)
    return types.pop() if len(types) == 1 else pa.string()
