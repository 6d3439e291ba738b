"""A run's log file: this process's output (Python's and TensorFlow's native streams) sent to a file, as the
published ``nohup = True`` did. Used by the scripts and by the STARE driver for each fold's training log."""

import contextlib
import os
import sys
from pathlib import Path

from lib.atomic import folder_for
from lib.errors import UserError


@contextlib.contextmanager
def log_to(path: Path | None):
    """With a path, send this process's output (Python's and TensorFlow's) to that file, as ``nohup`` did.
    A new log left empty (the run failed before saying anything) is removed, and so is a folder made for it."""
    if path is None:
        yield
        return
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(folder_for(path.parent))
            if not path.exists():
                stack.callback(_remove_if_empty, path)
            log = stack.enter_context(open(path, "a", buffering=1))
        except OSError as error:
            reason = error.strerror or error
            raise UserError(f"{path}: cannot write the log ({reason}); fix the path or set nohup = False") from None
        print(f"logging to {path}", flush=True)
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):  # a full disk: the streams must come back all the same
                sys.stdout.flush()
                sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for handle in saved:
                os.close(handle)


def _remove_if_empty(path: Path) -> None:
    if path.is_file() and path.stat().st_size == 0:
        path.unlink()
