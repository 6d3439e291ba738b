"""Writing files atomically: a finished file or none, never half of one. A file goes to a temporary name beside
its target and is renamed onto it when complete (``atomic_path``); files that belong together are renamed together
at the end (``atomic_group``), with Ctrl-C and kill held off while they are; a full disk is one clear error."""

import contextlib
import contextvars
import csv
import dataclasses
import errno
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from lib.errors import DiskFullError, UserError

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclasses.dataclass
class _Group:
    staged: list = dataclasses.field(default_factory=list)  # (temporary, target) to rename at the end
    created: list = dataclasses.field(default_factory=list)  # folders made for the files, removed on failure


_GROUP: contextvars.ContextVar[_Group | None] = contextvars.ContextVar("atomic_group", default=None)


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or Ctrl-C leaves either the old file or the complete new one, never a partial file, nor a
    folder made for it. ``suffix`` keeps a required ending (Keras insists on ``.weights.h5``). Inside
    ``atomic_group`` the rename waits for the end of the group.
    """
    path = Path(path)
    missing = _missing_folders(path.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    except OSError as error:  # a parent is a regular file, no permission, read-only file system, ...
        raise _not_writable(path, error) from None
    os.close(handle)
    temp = Path(temp)
    os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the file the permissions open() would
    group = _GROUP.get()
    try:
        yield temp
        if group is None:
            _rename_all([(temp, path)])
        else:
            group.staged.append((temp, path))
            group.created += missing
    except OSError as error:
        if error.errno not in _DISK_FULL:
            raise
        raise DiskFullError(path, error.strerror or str(error)) from None
    finally:
        if group is None or (temp, path) not in group.staged:
            temp.unlink(missing_ok=True)
            _remove_empty(missing)


@contextlib.contextmanager
def atomic_group():
    """Files that belong together: every ``atomic_path`` in the block keeps its temporary file until the block
    succeeds, then all are renamed at once (Ctrl-C and kill held back meanwhile). A failure or interruption
    anywhere in the block leaves every one of the files as it was. Groups nest into the outermost one."""
    if _GROUP.get() is not None:
        yield
        return
    group = _Group()
    token = _GROUP.set(group)
    renamed = False
    try:
        yield
        _GROUP.reset(token)
        token = None
        _rename_all(group.staged)
        renamed = True
    finally:
        if token is not None:
            _GROUP.reset(token)
        for temp, _ in group.staged:
            temp.unlink(missing_ok=True)
        if not renamed:
            _remove_empty(group.created)


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its parents that do not exist yet, innermost first."""
    return [path for path in (folder, *folder.parents) if not path.exists()]


def _remove_empty(folders: list[Path]) -> None:
    """Remove those of ``folders`` (innermost first) that are empty."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _rename_all(staged: list[tuple[Path, Path]]) -> None:
    """Rename each temporary onto its target, none if a folder is in the way of any; signals wait for the end."""
    for _, path in staged:
        if path.is_dir():
            raise UserError(f"{path}: cannot replace it (a folder of that name is in the way); move it out of the way")
    with _signals_deferred():
        for temp, path in staged:
            try:
                os.replace(temp, path)
            except OSError as error:
                reason = error.strerror or error
                raise UserError(f"{path}: cannot replace it ({reason}); move it out of the way") from None


@contextlib.contextmanager
def _signals_deferred():
    """Hold Ctrl-C and kill back during the block (a few renames) and deliver them after it, in the main thread;
    Python runs signal handlers there only, so elsewhere there is nothing to hold back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {number: signal.signal(number, lambda n, _: received.append(n)) for number in _HELD_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)  # None: not set from Python
        for number in received:
            signal.raise_signal(number)


@contextlib.contextmanager
def folder_for(folder):
    """Create ``folder`` and its missing parents for the block, and remove the ones it created if the block leaves
    them empty: a run that fails leaves no empty folder behind. OSError when a folder cannot be created."""
    folder = Path(folder)
    missing = _missing_folders(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    finally:
        _remove_empty(missing)


def require_free_space(folder, needed: int, what: str) -> None:
    """Refuse, before writing, what would not fit: h5py crashes the process when the disk fills during a write."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DiskFullError(Path(folder), f"{_megabytes(free)} free, {what} need about {_megabytes(needed)}")


def _megabytes(count: int) -> str:
    return f"{count / 2**20:.1f} MB"


@contextlib.contextmanager
def atomic_folder(path, marker: str, contents: tuple[str, ...] = ()):
    """``atomic_path`` for a folder: yield a temporary folder beside ``path``, which takes its place only if the
    block succeeds.

    A folder cannot be renamed over a non-empty one, so an earlier result at ``path`` (recognised by the file
    ``marker`` in it, and holding nothing but ``marker`` and ``contents``) is moved aside and deleted once the new
    one is in place; any other file or folder there is left alone and reported.
    """
    path = Path(path)
    if path.exists() and not (path / marker).is_file():
        raise UserError(f"{path}: already exists and holds no {marker}; move it out of the way or choose another path")
    foreign = (
        sorted(entry.name for entry in path.iterdir() if entry.name not in (marker, *contents)) if path.exists() else []
    )
    if foreign:
        raise UserError(
            f"{path}: holds {foreign[0]}, which the export does not write, and the export replaces the whole folder; "
            "move it out of the folder or choose another path"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as error:
        raise _not_writable(path, error) from None
    os.chmod(temp, 0o777 & ~_umask())  # mkdtemp makes 0700 folders; give it the permissions mkdir would
    aside = temp.with_name(f"{temp.name}.earlier")
    try:
        yield temp
        if path.exists():
            os.replace(path, aside)
        try:
            os.replace(temp, path)
        except OSError:
            if aside.exists():
                os.replace(aside, path)
            raise
    except OSError as error:
        if error.errno not in _DISK_FULL:
            raise
        raise DiskFullError(path, error.strerror or str(error)) from None
    finally:
        for leftover in (temp, aside):
            shutil.rmtree(leftover, ignore_errors=True)


def _not_writable(path: Path, error: OSError) -> UserError:
    return UserError(
        f"{path.parent}: cannot write {path.name} there ({error.strerror or error}); "
        "choose a writable folder or fix the path"
    )


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_csv(path, rows: list[dict], columns: tuple[str, ...]) -> None:
    """A CSV with a header and one row per dict (keys outside ``columns`` left out), replaced atomically."""
    with atomic_path(path, suffix=".csv") as temp, open(temp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_text(path, text: str) -> None:
    with atomic_path(path) as temp:
        temp.write_text(text)
