"""Output folders met by real use: one writer at a time, and outputs kept apart from the inputs they are made of.

``in_use`` holds a lock file (``lib.lock``: a killed run leaves nothing stuck) in an output folder for as long
as a command writes there, so that a second command writing the same files is refused at once with one line
naming the first. ``refuse_overlap`` refuses, before any work, an output that is, is inside or contains one of
the command's inputs: a result written over its own weights or map, or read back as a photograph on the rerun.
"""

import contextlib
import os
from pathlib import Path

from lib.atomic import folder_for
from lib.errors import UserError
from lib.lock import InUseError, held
from lib.textfiles import read_csv


@contextlib.contextmanager
def in_use(folder, lock_name: str, what: str, fix: str):
    """Create ``folder`` if need be (removed again if the block leaves it empty) and hold its lock file
    ``lock_name`` for the block. Another process holding it is one UserError naming that process: ``what`` says
    what it does there ("a run_prediction.py run"), ``fix`` what to do instead ("choose another output folder")."""
    folder = Path(folder)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(folder_for(folder))
        except OSError as error:  # a regular file of that name in the way, ...
            raise UserError(f"{folder}/: cannot create the output folder ({error.strerror or error}); {fix}") from None
        try:
            stack.enter_context(held(folder / lock_name))
        except InUseError as error:
            raise UserError(f"{folder}/ is in use by {what} ({error.owner}); wait for it to finish, or {fix}") from None
        except OSError as error:  # a read-only folder, ...
            raise UserError(f"{folder}/: cannot write there ({error.strerror or error}); {fix}") from None
        yield folder


def holder(folder, lock_name: str) -> str | None:
    """Who holds the lock file ``lock_name`` of ``folder`` now (None: nobody), leaving it as it was."""
    path = Path(folder) / lock_name
    if not path.exists():
        return None
    try:
        with held(path):
            return None
    except InUseError as error:
        return error.owner
    except OSError:  # a read-only folder: nobody writes there either
        return None


class _Resolved(type(Path())):
    """A path made absolute with its links followed, once."""


def _resolved(path) -> Path:
    return _Resolved(Path(os.path.abspath(Path(path).expanduser())).resolve())


def overlap(output, given) -> str | None:
    """How ``output`` and ``given`` overlap: "is", "is inside" or "contains" (the output the other); None apart.
    Links are followed, so a folder reached by two routes is one folder."""
    out, other = (path if isinstance(path, _Resolved) else _resolved(path) for path in (output, given))
    if out == other or (out.exists() and other.exists() and os.path.samefile(out, other)):
        return "is"
    if other in out.parents:
        return "is inside"
    if out in other.parents:
        return "contains"
    return None


def refuse_overlap(output, inputs, option: str, fix: str) -> None:
    """UserError when ``output`` is, is inside or contains one of ``inputs`` (pairs (what, path), e.g.
    ("the weights", path)); ``option`` names the output's option, ``fix`` what to give instead."""
    resolved = _resolved(output)
    for what, path in inputs:
        if path is None:
            continue
        relation = overlap(resolved, path)
        if relation is not None:
            raise UserError(f"{option} {output} {relation} {what} {path}; {fix}")


def check_download_apart(path_local, download, what: str) -> None:
    """Refuse, before reading it, a ``path_local`` (where the prepare scripts write) that is, is inside or contains
    the ``download`` folder they read (``what``: DRIVE, STARE): the prepared files would mix with the dataset."""
    refuse_overlap(
        path_local,
        [(f"the {what} folder", download)],
        "[data paths] path_local",
        "prepare into a folder of its own (e.g. ./DRIVE_datasets_training_testing/)",
    )


def check_data_apart(path_local, folder) -> None:
    """Refuse to start a training over (--overwrite, which moves the experiment folder's files aside) in a folder
    that is also ``path_local``: the prepared HDF5 files would move away with the earlier training's files."""
    if overlap(folder, path_local) == "is":
        raise UserError(
            f"{folder}/ is also [data paths] path_local, and --overwrite moves the files of the experiment folder "
            "aside, the prepared HDF5 files with them; set path_local to a folder of its own and move the .hdf5 "
            "files there (or re-run the prepare script)"
        )


def check_own_csv(path, columns: tuple[str, ...], option: str, script: str) -> None:
    """Refuse, before any work, an output CSV ``path`` that exists and is not one that ``script`` writes (its
    ``columns``): another file of the user's would be written over."""
    path = Path(path)
    if not path.is_file():
        return
    rows = read_csv(path)  # a file that is no CSV is a UserError naming it
    if rows and set(rows[0]) != set(columns):
        raise UserError(
            f"{option} {path} is a CSV that {script} did not write (columns {', '.join(map(str, rows[0]))[:60]}); "
            "write to a new file, or move that one away"
        )
