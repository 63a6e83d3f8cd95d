"""The one output mechanism: every command that writes declares its inputs and its output here.

`Output(path, inputs=...)` is made before any work. It resolves the output and every declared input (symlinks,
`..`, `~`, hard links) and refuses, with one line naming both and the fix:
- an output that is, holds or sits inside an input (the data in every spelling, the model, a teacher, the
  models a report names: whatever the command reads);
- a FIFO, device or socket, a path under /dev, /proc or /sys, the working or home folder or a parent of one;
- a folder where a file is written, a file where a folder is written, an existing folder without `overwrite`.
It records what is at the path (nothing, or one file or folder and its identity: device and inode).

The command then writes under a temporary sibling (`Output.writing()`), and the commit puts it in place only
if the path still holds what the run saw at the start:
- nothing there at the start: a rename that fails if anything appeared meanwhile (renameat2 RENAME_NOREPLACE),
  so of two runs racing for one output one succeeds and the other fails with one line;
- an existing file (a file output is replaced, as any `-o` replaces it), or an existing folder with
  `overwrite`: swapped in one step (RENAME_EXCHANGE) and the old one deleted, only if it is the very file or
  folder seen at the start; anything else there is put back and the run fails.
A run that fails or is interrupted leaves nothing (the temporary sibling is removed; a killed run's is removed by
the next run beside it: fileio.remove_leftovers). Commands that write in place as they go (train's resumable
checkpoints) `claim()` the folder instead: created by this run, or empty, and marked as theirs.

`guard_output` is the same check for a stream written elsewhere (stdout, an object store: their own rules).
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imdb_deploy.errors import OutputError
from imdb_deploy.fileio import (
    exchange,
    make_parent,
    output_error,
    pid_alive,
    remove_leftovers,
    remove_path,
    rename_noreplace,
    temp_sibling,
)

# What a command reads, by what it is for people ("the --data test file") -> its path(s); None is skipped.
Inputs = Mapping[str, "str | os.PathLike | Iterable[str | os.PathLike] | None"]
_SYSTEM_ROOTS = ("/dev/", "/proc/", "/sys/")  # /dev/shm/ (a tmpfs for files) stays allowed
_SPECIAL = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
# Marks a folder a command writes in place (claim()), so a second run cannot take it too.
CLAIM_FILE = ".imdb-deploy-claim"


def is_url(source: str | os.PathLike) -> bool:
    """True for "scheme://..." paths, opened through fsspec (s3://, gs://, file://, ...)."""
    return "://" in str(source)


def local_path(source: str | os.PathLike) -> str | None:
    """The local path an input or output names (a file:// URL's path), or None for stdin ("-"), other URLs and
    globs: what the overlap checks compare."""
    text = str(source)
    if text.startswith("file://"):
        return text.removeprefix("file://")
    if text == "-" or is_url(text) or glob.has_magic(text):
        return None
    return text


def _resolved(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve()


def _declared(inputs: Inputs) -> Iterator[tuple[str, str]]:
    """(what, local path) for every declared input that names a local path."""
    for what, value in inputs.items():
        values = [value] if value is None or isinstance(value, (str, os.PathLike)) else list(value)
        for item in values:
            path = None if item is None else local_path(item)
            if path:
                yield what, path


def _same(first: Path, second: Path) -> bool:
    if first == second:
        return True
    try:
        return os.path.samefile(first, second)  # hard links, bind mounts
    except OSError:
        return False


def refuse_overlap(output: str | os.PathLike, inputs: Inputs, option: str = "--output") -> None:
    """Refuse an output that is, holds, or sits inside one of the inputs (resolved paths, symlinks followed,
    hard links compared by inode).

    Args:
        output: the output file or folder.
        inputs: what each input is -> its path or paths (URLs, globs, "-" and None are skipped).
        option: how the user named the output, e.g. "--output".

    Raises:
        OutputError: naming both paths and the fix.
    """
    out = _resolved(output)
    for what, source in _declared(inputs):
        src = _resolved(source)
        if _same(out, src):
            relation = "is"
        elif out in src.parents:
            relation = "holds"
        elif src in out.parents or any(_same(parent, src) for parent in out.parents if parent.exists()):
            relation = "is inside"
        else:
            continue
        raise OutputError(
            f"{option} {str(output)!r} {relation} {what} {str(source)!r}; writing there could destroy the "
            "input. Choose an output outside it"
        )


def _protected(path: Path) -> str | None:
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
    resolved = _resolved(path)
    why = _protected(resolved)
    if why:
        raise OutputError(
            f"{option} {str(path)!r} is {why} ({resolved}); replacing it would delete everything in it. "
            "Choose a new folder for the output"
        )


def _refuse_system_path(path: str, target, option: str) -> None:
    places = {os.path.abspath(path), os.path.realpath(path)}
    for root in _SYSTEM_ROOTS:
        if any(place.startswith(root) and not place.startswith("/dev/shm/") for place in places):
            instead = " (leave the option out to write to stdout)" if option == "--output" else ""
            raise OutputError(
                f"{option} {str(target)!r} is under {root}, where a file is renamed over a device or link; "
                f"name a regular file{instead}"
            )


def guard_output(
    target: str | os.PathLike | None,
    option: str = "--output",
    inputs: Inputs | None = None,
    *,
    folder: bool = False,
    overwrite: bool = False,
    reuse: bool = False,
) -> None:
    """Refuse an output path the run could not write without harm (see the module docstring); before any work.

    stdout ("-" or None) and object-store URLs pass (their own checks apply: objectstore.url_output).

    Args:
        target: the output as the user named it (a path or a file:// URL).
        option: how the user named it, e.g. "--output".
        inputs: what the run reads (see Inputs) and what else must survive (the other output).
        folder: the output is a folder, else a file.
        overwrite: an existing output folder may be replaced.
        reuse: an existing folder is written in place (Output.claim), nothing replaced.

    Raises:
        OutputError: naming the path, what it is and the fix.
    """
    path = None if target is None or str(target) == "-" else local_path(target)
    if path is None:
        return
    _refuse_system_path(path, target, option)
    refuse_overlap(path, inputs or {}, option)  # first: an output over an input is named as such
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
                f"{os.path.join(str(target), 'output.json')}"
            )
        if folder and not stat.S_ISDIR(mode):
            raise OutputError(f"{option} {str(target)!r} is a file; name a folder for the output")
        if folder and not (overwrite or reuse):
            raise OutputError(f"{target} already exists; choose another output or pass --overwrite")
        if not reuse:
            refuse_replacing(path, option)


@dataclass(frozen=True)
class Identity:
    """What was at an output path: a file or folder (not followed if a link), by device and inode."""

    dev: int
    ino: int
    is_dir: bool

    @classmethod
    def of(cls, path: str | os.PathLike) -> Identity | None:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return None
        return cls(info.st_dev, info.st_ino, stat.S_ISDIR(info.st_mode))


class Output:
    """One file or folder a command writes, declared with everything the command reads (module docstring).

    Args:
        path: the output (a local path, or a file:// URL).
        inputs: what the command reads (see Inputs); checked before any work.
        option: how the user named it, for messages ("--output", "--errors").
        folder: the output is a folder (else a file).
        overwrite: an existing folder may be replaced (files are replaced as any -o replaces them).
        reuse: an existing folder is written in place (claim), not replaced.

    Attributes:
        path: the output as a Path.
        start: what was at the path when the run began (None: nothing).

    Raises:
        OutputError: the output cannot be written without harm (guard_output).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        inputs: Inputs | None = None,
        *,
        option: str = "--output",
        folder: bool = False,
        overwrite: bool = False,
        reuse: bool = False,
    ) -> None:
        local = local_path(path)
        if local is None:
            raise OutputError(f"{option} {str(path)!r}: name a local path for this output")
        guard_output(local, option, inputs, folder=folder, overwrite=overwrite, reuse=reuse)
        self.path = Path(local).expanduser()
        self.option = option
        self.folder = folder
        self.start = Identity.of(self.path)

    def __repr__(self) -> str:
        return f"Output({str(self.path)!r}, folder={self.folder})"

    @property
    def replaces(self) -> bool:
        """Whether the commit replaces something that was there at the start."""
        return self.start is not None

    @contextmanager
    def writing(self) -> Iterator[Path]:
        """A temporary file or folder beside the output; committed (see `commit`) only if the block completes,
        removed otherwise.

        Raises:
            OutputError: the place cannot be written, or the output changed while the run was writing.
        """
        tmp = temp_sibling(self.path, self.folder)
        try:
            yield tmp
            self.commit(tmp)
        except OSError as exc:
            raise output_error(exc, self.path) or exc from exc
        finally:
            if os.path.lexists(tmp):
                remove_path(tmp)
        remove_leftovers(self.path.parent)

    def commit(self, tmp: str | os.PathLike) -> None:
        """Put the complete `tmp` at the output's path: only where nothing was and nothing is, or in place of the
        very file or folder that was there at the start (then deleted).

        Raises:
            OutputError: something appeared at the path, or what was there changed, while the run was writing;
                `tmp` is removed and whatever is at the path is left as it is.
        """
        tmp = Path(tmp)
        changed = (
            f"{self.option} {str(self.path)!r} changed while this run was writing it (another run, or someone "
            "else, wrote there); it was left as it is and this run's output was discarded. Run again"
        )
        if self.start is None:
            try:
                rename_noreplace(tmp, self.path)
            except FileExistsError as exc:
                raise OutputError(changed.replace("changed", "appeared", 1)) from exc
            return
        try:
            exchange(tmp, self.path)
        except FileNotFoundError as exc:  # what was there is gone: nothing to swap with
            raise OutputError(changed) from exc
        if Identity.of(tmp) != self.start:  # not what the run saw at the start: put it back
            exchange(tmp, self.path)
            raise OutputError(changed)
        remove_path(tmp)

    def claim(self) -> Path:
        """Take the output folder for writing in place (a resumable run's checkpoints): create it, or take it
        empty, and mark it with CLAIM_FILE so that no second run takes it meanwhile.

        Returns:
            The folder.

        Raises:
            OutputError: it holds files already, or another run claimed it.
        """
        make_parent(self.path)
        mark = self.path / CLAIM_FILE
        try:
            self.path.mkdir(exist_ok=True)
            if _claimed_by_dead_run(mark):  # a killed run's mark (a resumed run takes its folder over)
                mark.unlink(missing_ok=True)
            fd = os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError as exc:
            raise OutputError(
                f"{self.option} {str(self.path)!r} is being written by another run; choose another output"
            ) from exc
        except OSError as exc:
            raise output_error(exc, self.path) or exc from exc
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return self.path

    def release(self) -> None:
        """Drop the mark `claim` left (the folder is complete, or the run stopped)."""
        (self.path / CLAIM_FILE).unlink(missing_ok=True)


def _claimed_by_dead_run(mark: Path) -> bool:
    """True when `mark` (CLAIM_FILE) names a process of this host that is gone."""
    try:
        pid = int(mark.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return pid != os.getpid() and not pid_alive(pid)
