"""Writing outputs so that nothing is ever half-written, nothing is lost, and nothing is left behind.

- Outputs go to a temporary sibling first (`.NAME.imdb-HOST-PID-XXXX.tmp` for a file, `.partial` for a folder)
  and are renamed into place only when complete; an existing output is replaced only at that moment.
- Temporary names carry the writer's host and process id: a run that completes removes the leftovers of
  runs on this host that were killed (SIGKILL, power loss), and only those whose process is gone.
- Files are created `0666 & ~umask` and folders `0777 & ~umask`, like any other tool's output.
- `refuse_overlap` stops an output that is, holds or sits inside one of the run's inputs.
- `terminate_like_interrupt` makes SIGTERM clean up like Ctrl-C.
- Disk full, read-only and permission errors become `OutputError`s naming the path.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from imdb_deploy.errors import OutputError

# Errors that mean "this place cannot take the output", not "the input is wrong".
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
NOT_WRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_LEFTOVER = re.compile(r"^\..+\.imdb-([A-Za-z0-9]*)-(\d+)-[^.]*\.(?:tmp|partial|old)$")


def _host_tag() -> str:
    """This machine's name, letters and digits only: a process id means nothing on another host (or in
    another container sharing the folder), so only our own host's leftovers are judged by pid."""
    import socket

    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:16]


_TEMP_TAG = f"imdb-{_host_tag()}-"


def current_umask() -> int:
    """The process umask, read without changing it (Linux's /proc; os.umask twice elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_error(exc: OSError, path: str | os.PathLike) -> OutputError | None:
    """An OutputError naming `path` for a full disk or an unwritable place; None for other errors."""
    reason = exc.strerror or str(exc)
    if exc.errno in DISK_FULL:
        return OutputError(
            f"{path}: cannot write it: {reason} (the disk or your quota is full); free some space or write "
            "the output elsewhere. Nothing was replaced."
        )
    if exc.errno in NOT_WRITABLE:
        where = exc.filename or path
        return OutputError(f"{path}: cannot write it: {reason} ({where}); choose a writable output location")
    return None


def disk_nearly_full(path: str | os.PathLike, margin: int = 1 << 20) -> bool:
    """True when the filesystem holding `path` (or its nearest existing parent) has under `margin` bytes free.

    For libraries that report a full disk as something other than ENOSPC (torch.onnx raises RuntimeError).
    """
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False


# How libraries that do not raise OSError word a full disk: tokenizers and safetensors (Rust) append
# "(os error N)" to their message; torch.save's RuntimeError says nothing of the cause (disk_nearly_full then).
_OUT_OF_SPACE_WORDS = (
    *(f"os error {code})" for code in sorted(DISK_FULL)),
    "No space left on device",
    "quota exceeded",
)


def out_of_space(exc: BaseException, path: str | os.PathLike) -> bool:
    """True when `exc` (from any library) means the disk or quota holding `path` is full."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return True
    text = str(exc)
    return any(words in text for words in _OUT_OF_SPACE_WORDS) or disk_nearly_full(path)


def honour_umask(folder: str | os.PathLike) -> None:
    """Give every file under `folder` the mode `0666 & ~umask`: safetensors writes its files 0600 whatever
    the umask, and a model folder is an output like any other."""
    mode = 0o666 & ~current_umask()
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


def _temp_name(path: Path) -> str:
    return f".{path.name}.{_TEMP_TAG}{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary files and folders that killed imdb-deploy runs left in `folder`.

    Only names this module writes (`.NAME.imdb-HOST-PID-XXXX.tmp|.partial|.old`) from this host whose
    process is gone are removed; a run still in progress keeps its own.

    Returns:
        The paths removed.
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _LEFTOVER.match(entry.name)
        if not match or match.group(1) != _host_tag():
            continue
        pid = int(match.group(2))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise OutputError(f"{path}: a parent of it is a file, not a folder; choose another output") from exc
    except OSError as exc:
        raise output_error(exc, path) or exc from exc


def finite_json(payload):
    """`payload` with every NaN or infinite float replaced by None (JSON has no such numbers)."""
    if isinstance(payload, float):
        return payload if math.isfinite(payload) else None
    if isinstance(payload, dict):
        return {key: finite_json(value) for key, value in payload.items()}
    if isinstance(payload, (list, tuple)):
        return [finite_json(value) for value in payload]
    return payload


def json_text(payload, indent: int | None = 2) -> str:
    """Strict JSON text: NaN and infinities become null, and `allow_nan=False` guards the rest."""
    return json.dumps(finite_json(payload), indent=indent, allow_nan=False)


def write_json_atomic(path: str | os.PathLike, payload) -> Path:
    """Write strict JSON (see json_text) to a temporary name beside `path`, then rename it into place."""
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(json_text(payload) + "\n")
    return path


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block completes.

    The file is created with the mode `0666 & ~umask`. When the block completes, leftovers of killed
    runs in the same folder are removed (remove_leftovers).

    Raises:
        OutputError: the folder cannot be written (read-only, no permission) or the disk is full.
    """
    path = Path(path)
    _make_parent(path)
    try:
        fd, name = tempfile.mkstemp(prefix=_temp_name(path), suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise output_error(exc, path) or exc from exc
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        error = output_error(exc, path)
        if error is None:
            raise
        raise error from exc
    finally:
        tmp.unlink(missing_ok=True)
    remove_leftovers(path.parent)


def _is_protected(path: Path) -> str | None:
    """Why replacing `path` would be destructive (the working folder, home, or one of their parents)."""
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    if path == cwd or path in cwd.parents:
        return "the current working folder" if path == cwd else "a parent of the current working folder"
    if path == home or path in home.parents:
        return "your home folder" if path == home else "a parent of your home folder"
    return None


def refuse_replacing(path: str | os.PathLike, option: str = "--output") -> None:
    """Refuse to replace the working folder, the home folder or one of their parents.

    Raises:
        OutputError: naming the folder and the fix.
    """
    resolved = Path(path).expanduser().resolve()
    why = _is_protected(resolved)
    if why:
        raise OutputError(
            f"{option} {str(path)!r} is {why} ({resolved}); replacing it would delete everything in it. "
            "Choose a new folder for the output"
        )


def _resolved(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve()


def refuse_overlap(output: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None], option: str) -> None:
    """Refuse an output that is, holds, or sits inside one of the inputs (resolved paths, symlinks followed).

    Args:
        output: the output file or folder.
        inputs: what each input is ("the input file", "the model folder") -> its path; None and "-" skip.
        option: how the user named the output, e.g. "--output".

    Raises:
        OutputError: naming both paths and the fix.
    """
    out = _resolved(output)
    for what, source in inputs.items():
        if source is None or str(source) == "-":
            continue
        src = _resolved(source)
        same = out == src
        if not same and out.exists() and src.exists():
            try:
                same = os.path.samefile(out, src)  # hard links
            except OSError:
                same = False
        if same:
            relation = "is"
        elif out in src.parents:
            relation = "holds"
        elif src in out.parents:
            relation = "is inside"
        else:
            continue
        raise OutputError(
            f"{option} {str(output)!r} {relation} {what} {str(source)!r}; writing there could destroy the "
            "input. Choose an output outside it"
        )


@contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it becomes `path` only if the block completes.

    The folder is created with the mode `0777 & ~umask`. An existing `path` is replaced only at the end,
    by two renames; when the block completes, leftovers of killed runs beside it are removed.

    Args:
        path: the final folder.
        overwrite: replace an existing folder at `path` (else OutputError before any work).

    Raises:
        OutputError: `path` exists and `overwrite` is False; `path` is the working or home folder (or a
            parent of one); the place is not writable or the disk is full.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise OutputError(f"{path} already exists; choose another output or pass --overwrite")
        refuse_replacing(path)
    _make_parent(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_temp_name(path), suffix=".partial", dir=path.parent))
    except OSError as exc:
        raise output_error(exc, path) or exc from exc
    try:
        os.chmod(tmp, 0o777 & ~current_umask())
        yield tmp
        replace_dir(tmp, path)
    except OSError as exc:
        error = output_error(exc, path)
        if error is None:
            raise
        raise error from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    remove_leftovers(path.parent)


def replace_dir(new: Path, path: Path) -> None:
    """Put the complete folder `new` at `path`, replacing what is there by two renames, then delete the old."""
    if path.exists() or path.is_symlink():
        old = path.with_name(f".{path.name}.{_TEMP_TAG}{os.getpid()}-.old")
        os.replace(path, old)
        os.replace(new, path)
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    else:
        os.replace(new, path)


def work_dir_name(path: str | os.PathLike) -> Path:
    """The temporary sibling in which this process builds a replacement for the folder `path`.

    Named so that remove_leftovers recognises it once this process is gone; the caller creates it.
    """
    path = Path(path)
    return path.with_name(f".{path.name}.{_TEMP_TAG}{os.getpid()}-work.partial")


def remove_at_exit(path: str | os.PathLike) -> None:
    """Remove the folder `path` when the process exits, if it is still there (an interrupted run's work)."""
    import atexit

    atexit.register(shutil.rmtree, Path(path), True)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def terminate_like_interrupt() -> None:
    """Make SIGTERM (sent by `timeout`, `docker stop`, Kubernetes) raise KeyboardInterrupt, like Ctrl-C.

    Every temporary output is removed by the `finally` blocks it then runs through; call once from the
    main thread of a command-line process.
    """
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
