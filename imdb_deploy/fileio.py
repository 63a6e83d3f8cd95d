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

import _thread
import atexit
import ctypes
import errno
import functools
import hashlib
import json
import math
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imdb_deploy.errors import OutputError
from imdb_deploy.machine import current_umask

# Errors that mean "this place cannot take the output", not "the input is wrong".
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

NOT_WRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})

_LEFTOVER = re.compile(r"^\..+\.imdb-([A-Za-z0-9]*)-(\d+)-[^.]*\.(?:tmp|partial|old|swap)$")


def _host_tag() -> str:
    """This machine's name, letters and digits only: a process id means nothing on another host (or in
    another container sharing the folder), so only our own host's leftovers are judged by pid."""

    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:16]


_TEMP_TAG = f"imdb-{_host_tag()}-"


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


def temp_prefix(path: Path) -> str:
    """The start of every temporary name this process uses beside `path` (see remove_leftovers)."""
    return f".{path.name}.{_TEMP_TAG}{os.getpid()}-"


def pid_alive(pid: int) -> bool:
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
        if pid == os.getpid() or pid_alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def make_parent(path: Path) -> None:
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
    make_parent(path)
    try:
        fd, name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
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


# renameat2(2) flags (Linux 3.15+, glibc 2.28+): fail instead of replacing; swap two names atomically.
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


@functools.cache
def _renameat2():
    """glibc's renameat2, or None where the C library has none (not Linux, musl, old glibc)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return function


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2(src, dst, flags); False where the system cannot do it (no renameat2, or a filesystem without
    the flag: EINVAL), so the caller falls back. Raises the OSError of a real failure (EEXIST, ENOENT...)."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(dst))


def rename_noreplace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename `src` to `dst` only if nothing is at `dst`; FileExistsError otherwise, and `src` stays where it is.

    Atomic where the system has renameat2's RENAME_NOREPLACE (Linux); a file elsewhere goes by a hard link (which
    fails on an existing name) and an unlink; a folder elsewhere by a check and a rename, which a run starting in
    the same instant can race.
    """
    src, dst = Path(src), Path(dst)
    if _rename2(src, dst, _RENAME_NOREPLACE):
        return
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    if src.is_dir() and not src.is_symlink():
        os.rename(src, dst)
        return
    os.link(src, dst, follow_symlinks=False)
    os.unlink(src)


def exchange(first: str | os.PathLike, second: str | os.PathLike) -> None:
    """Swap two existing names in one step (renameat2's RENAME_EXCHANGE); where the system cannot, by three
    renames through a temporary name (not atomic: a crash in between leaves `second` under that name)."""
    first, second = Path(first), Path(second)
    if _rename2(first, second, _RENAME_EXCHANGE):
        return
    parked = second.with_name(f".{second.name}.{_TEMP_TAG}{os.getpid()}-.swap")
    os.rename(second, parked)
    os.rename(first, second)
    os.rename(parked, first)


def remove_path(path: str | os.PathLike) -> None:
    """Delete a file, a link or a folder tree; nothing if it is gone."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def temp_sibling(path: str | os.PathLike, folder: bool) -> Path:
    """Create a temporary file or folder beside `path`, named so that remove_leftovers recognises it once this
    process is gone, with the mode a new file or folder gets (`0666` / `0777` & ~umask).

    Raises:
        OutputError: the place cannot be written (a parent is a file, read-only, no permission, disk full).
    """
    path = Path(path)
    make_parent(path)
    try:
        if folder:
            tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path), suffix=".partial", dir=path.parent))
            os.chmod(tmp, 0o777 & ~current_umask())
        else:
            fd, name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
            os.close(fd)
            tmp = Path(name)
            os.chmod(tmp, 0o666 & ~current_umask())
    except OSError as exc:
        raise output_error(exc, path) or exc from exc
    return tmp


def work_dir_name(path: str | os.PathLike, tag: str = "work") -> Path:
    """The temporary sibling in which this process builds a replacement for the folder `path`.

    Named so that remove_leftovers recognises it once this process is gone; the caller creates it. `tag`
    (letters and digits) tells apart several of one process, e.g. a job id.
    """
    path = Path(path)
    return path.with_name(f".{path.name}.{_TEMP_TAG}{os.getpid()}-{tag}.partial")


def remove_at_exit(path: str | os.PathLike) -> None:
    """Remove the folder `path` when the process exits, if it is still there (an interrupted run's work)."""

    atexit.register(shutil.rmtree, Path(path), True)


def _interrupt(signum, frame) -> None:
    # Python ignores an exception that leaves a finalizer (__del__, run by the garbage collector at any
    # allocation): raised there, the interrupt would be lost and the run go on. Deliver it again just after.
    caller = frame
    while caller is not None:
        if caller.f_code.co_name == "__del__":
            threading.Timer(0.05, _thread.interrupt_main, args=(signum,)).start()
            return
        caller = caller.f_back
    raise KeyboardInterrupt(f"signal {signum}")


def terminate_like_interrupt() -> None:
    """Make SIGTERM (sent by `timeout`, `docker stop`, Kubernetes) raise KeyboardInterrupt, like Ctrl-C.

    Every temporary output is removed by the `finally` blocks it then runs through; call once from the
    main thread of a command-line process. Ctrl-C (SIGINT) gets the same handler, which never loses a signal
    that arrives while a finalizer runs (Python ignores exceptions raised there).
    """

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # Ctrl-C too, unless ignored
            signal.signal(signal.SIGINT, _interrupt)


# --- checksums ---------------------------------------------------------------------------------------------

_HASH_BLOCK = 1 << 20

_digests: dict[tuple[str, int, int, int, int], str] = {}

_digests_lock = threading.Lock()


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, computed once per process while its inode, size and mtime stay the same."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _digests_lock:
        known = _digests.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    with _digests_lock:
        _digests[key] = digest.hexdigest()
    return _digests[key]
