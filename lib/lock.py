"""A lock file that marks a folder in use by one process, so that a second process is refused instead of mixing
its files with the first one's.

The lock is an ``flock`` on the file, which the kernel releases when its process ends, however it ends (kill -9,
a crash, a power cut): a lock file left behind never blocks anyone, the next process takes it over. The file
holds the owner's pid, host and start time, for the message that refuses a second process.
"""

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from lib.errors import UserError


class InUseError(UserError):
    """Another process holds the lock; ``owner`` says which, as well as the lock file tells."""

    def __init__(self, path: Path, owner: str):
        super().__init__(f"{path}: held by {owner}")
        self.owner = owner


@contextlib.contextmanager
def held(path):
    """Hold the lock file ``path`` for the block, or raise InUseError. Yields the previous owner's description
    when a stale lock file (its process gone) was taken over, else None."""
    path = Path(path)
    handle = _locked_handle(path)
    try:
        stale = _owner(os.read(handle, 4096).decode("utf-8", "replace"))
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        with contextlib.suppress(OSError):  # a full disk: the lock holds all the same, only the message is vaguer
            os.ftruncate(handle, 0)
            os.pwrite(handle, json.dumps(owner).encode(), 0)
        yield stale
    finally:
        path.unlink(missing_ok=True)  # before the lock is released, so a waiting process cannot lock the old file
        os.close(handle)


def _locked_handle(path: Path) -> int:
    """An open handle of ``path``, locked; retried when the owner removed the file between our open and lock."""
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise InUseError(path, _owner(_read(path)) or "another process") from None
        if _same_file(handle, path):
            return handle
        os.close(handle)


def _same_file(handle: int, path: Path) -> bool:
    try:
        return os.fstat(handle).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _owner(text: str) -> str | None:
    """'process 1234 on host since 2026-01-31 12:00:00' from a lock file's text; None when it holds none."""
    try:
        owner = json.loads(text)
        return f"process {int(owner['pid'])} on {owner['host']} since {owner['since']}"
    except (ValueError, KeyError, TypeError):
        return None
