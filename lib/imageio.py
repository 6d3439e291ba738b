"""Reading images as the datasets ship them (.tif, .gif, .ppm, .ppm.gz, ...) and writing files atomically."""

import contextlib
import contextvars
import csv
import dataclasses
import errno
import gzip
import io
import os
import re
import shutil
import signal
import struct
import sys
import tempfile
import threading
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lib.decoding import check_pixels, gray_values, too_large
from lib.errors import DiskFullError, UserError
from lib.textfiles import delimiter, read_text

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".ppm.gz", ".pgm.gz")


# What Pillow and zlib raise on a damaged file, depending on the format and where the damage is
# (a header claiming billions of pixels is a DecompressionBombError).
_DECODING_ERRORS = (OSError, EOFError, ValueError, SyntaxError, struct.error, zlib.error, Image.DecompressionBombError)
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# File descriptor 2 points to /dev/null while libtiff decodes (see _native_stderr_silenced): a thread that prints
# to stderr while another one reads images holds this lock, or its line could be lost.
STDERR_LOCK = threading.Lock()
_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _open(path: Path) -> Image.Image:
    try:
        with _source(path) as source:
            # Pillow warns about damaged metadata and libtiff prints its complaints on the process's stderr:
            # neither is for the user, who gets one error line if the image cannot be decoded.
            with warnings.catch_warnings(), _native_stderr_silenced(source.peek(4)[:4] in _TIFF_SIGNATURES):
                warnings.simplefilter("ignore")
                image = Image.open(source)
                check_pixels(path, image.width, image.height)  # from the header, before anything is decoded
                image.load()
                ImageOps.exif_transpose(image, in_place=True)  # upright, as viewers show it (cameras store it sideways)
        return image
    except Image.DecompressionBombError as error:  # a header beyond Pillow's own limit (twice MAX_IMAGE_PIXELS)
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        raise too_large(path, f"{int(pixels.group(1)) / 1e6:.0f} megapixels" if pixels else "its header") from None
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, not an image file") from None
    except UnidentifiedImageError:
        raise UserError(
            f"{path}: not a readable image (no known image format); re-download or replace the file"
        ) from None
    except _DECODING_ERRORS as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: not a readable image ({reason}); re-download or replace the file") from None


@contextlib.contextmanager
def _source(path: Path):
    """The file's bytes to decode, as a buffered stream: a .gz file is decompressed as Pillow reads it, so only
    what the image's header announces is ever held in memory (a small file may decompress to gigabytes)."""
    if path.name.lower().endswith(".gz"):
        with gzip.open(path, "rb") as stream, io.BufferedReader(stream) as source:
            yield source
    else:
        with io.BufferedReader(io.BytesIO(path.read_bytes())) as source:
            yield source


@contextlib.contextmanager
def _native_stderr_silenced(active: bool):
    """Send file descriptor 2 to /dev/null for the block (libtiff writes there, not to sys.stderr)."""
    if not active:
        yield
        return
    with STDERR_LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 2)
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def read_rgb(path) -> np.ndarray:
    """An RGB photograph as uint8 (H, W, 3); grayscale or RGBA input is an error, not a guess."""
    path = Path(path)
    image = _open(path)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode != "RGB":
        raise UserError(f"{path}: expected an RGB colour image, got mode {image.mode}; convert it to RGB")
    return np.asarray(image, dtype=np.uint8)


def read_binary(path, what: str = "a label/mask", fix: str = "use the dataset's original label files") -> np.ndarray:
    """A label or mask as uint8 (H, W) with values 0/255.

    Any two gray levels are accepted, the brighter one meaning vessel / inside: 0/255 files, palette
    GIFs (DRIVE's 2nd_manual reads as 3/253) and 0/1 files alike. A single level is all-inside when
    it is above mid-gray. More than two levels is an error naming ``what`` the file should be and the ``fix``.
    """
    path = Path(path)
    gray, full = gray_values(path, _open(path))
    levels = np.unique(gray)
    if levels.size > 2:
        raise UserError(f"{path}: {what} must be binary (two gray levels), found {levels.size} levels; {fix}")
    foreground = gray == levels.max() if levels.size == 2 else gray > full / 2
    return np.where(foreground, 255, 0).astype(np.uint8)


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


# zlib's default level (Pillow's too) for files written once; for thousands of full-size photographs, level 1
# with run-length matching on each row's difference from the row above: 5-8x faster, files at most 20 % larger.
_PNG_COMPACT = (cv2.IMWRITE_PNG_COMPRESSION, 6)
_PNG_FAST = (
    cv2.IMWRITE_PNG_COMPRESSION, 1,
    cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
    cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP,
)  # fmt: skip


def write_png(path, image: np.ndarray, fast: bool = False) -> None:
    """Write a uint8 (H, W) or RGB (H, W, 3), or a uint16 (H, W) array as PNG, atomically (``fast``: see _PNG_FAST)."""
    pixels = image[..., ::-1] if image.ndim == 3 else image  # OpenCV stores colour as BGR
    ok, encoded = cv2.imencode(".png", pixels, _PNG_FAST if fast else _PNG_COMPACT)
    if not ok:
        raise ValueError(f"cannot encode a {image.dtype} array of shape {image.shape} as PNG")
    with atomic_path(path, suffix=".png") as temp:
        temp.write_bytes(encoded)


def write_csv(path, rows: list[dict], columns: tuple[str, ...]) -> None:
    """A CSV with a header and one row per dict (keys outside ``columns`` left out), replaced atomically."""
    with atomic_path(path, suffix=".csv") as temp, open(temp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path) -> list[dict]:
    """The rows of a CSV written by ``write_csv``, as dicts of strings, also once a spreadsheet saved it again
    (``lib.textfiles``); [] when the file does not exist. A file that is no CSV is a UserError."""
    try:
        text = read_text(path)
        return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter(text)))
    except FileNotFoundError:
        return []
    except (csv.Error, IsADirectoryError, PermissionError) as error:
        raise UserError(f"{path}: not a readable CSV ({error}); restore it, or move it away") from None


def write_text(path, text: str) -> None:
    with atomic_path(path) as temp:
        temp.write_text(text)


PROBABILITY_LEVELS = 65535  # probability maps as 16-bit PNGs: steps of 1.5e-5, far below any metric's resolution


def write_probability_png(path, probability: np.ndarray) -> np.ndarray:
    """Write a [0, 1] probability map as a 16-bit gray PNG (0..65535), atomically; returns the values it holds."""
    levels = np.rint(np.clip(probability, 0, 1) * PROBABILITY_LEVELS).astype(np.uint16)
    write_png(path, levels)
    return levels.astype(np.float64) / PROBABILITY_LEVELS


def read_probability_png(path) -> np.ndarray:
    """A probability map written by ``write_probability_png``, as float64 in [0, 1]."""
    path = Path(path)
    image = _open(path)
    if image.mode not in ("I;16", "I"):
        raise UserError(f"{path}: not a 16-bit probability map (mode {image.mode}); use a *_probability.png of a run")
    return np.asarray(image, dtype=np.float64) / PROBABILITY_LEVELS
