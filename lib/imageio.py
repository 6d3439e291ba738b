"""Reading images as the datasets ship them (.tif, .gif, .ppm, .ppm.gz, ...), and the PNGs this project writes
(through ``lib.atomic``)."""

import contextlib
import gzip
import io
import os
import re
import struct
import sys
import threading
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lib.atomic import atomic_path
from lib.decoding import check_pixels, gray_values, too_large
from lib.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".ppm.gz", ".pgm.gz")


# What Pillow and zlib raise on a damaged file, depending on the format and where the damage is
# (a header claiming billions of pixels is a DecompressionBombError).
_DECODING_ERRORS = (OSError, EOFError, ValueError, SyntaxError, struct.error, zlib.error, Image.DecompressionBombError)
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")


# File descriptor 2 points to /dev/null while libtiff decodes (see _native_stderr_silenced): a thread that prints
# to stderr while another one reads images holds this lock, or its line could be lost.
STDERR_LOCK = threading.Lock()


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


# zlib's default level (Pillow's too) for files written once; for thousands of full-size photographs, level 1
# with run-length matching on each row's difference from the row above: 5-8x faster, files at most 20 % larger.
_PNG_COMPACT = (cv2.IMWRITE_PNG_COMPRESSION, 6)


_PNG_FAST = (
    cv2.IMWRITE_PNG_COMPRESSION, 1,
    cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
    cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP,
)  # fmt: skip


def as_bgr(rgb: np.ndarray) -> np.ndarray:
    """The channel order OpenCV encodes: converted in one vectorised pass (an encoder handed the reversed view
    ``rgb[..., ::-1]`` copies it pixel by pixel, as long as encoding a 3504x2336 JPEG itself)."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def write_png(path, image: np.ndarray, fast: bool = False) -> None:
    """Write a uint8 (H, W) or RGB (H, W, 3), or a uint16 (H, W) array as PNG, atomically (``fast``: see _PNG_FAST)."""
    pixels = as_bgr(image) if image.ndim == 3 else image
    ok, encoded = cv2.imencode(".png", pixels, _PNG_FAST if fast else _PNG_COMPACT)
    if not ok:
        raise ValueError(f"cannot encode a {image.dtype} array of shape {image.shape} as PNG")
    with atomic_path(path, suffix=".png") as temp:
        temp.write_bytes(encoded)


def write_jpeg(path, rgb: np.ndarray, quality: int) -> None:
    """Write an RGB (H, W, 3) uint8 array as a JPEG of ``quality`` (1-100) with full-resolution colour (4:4:4: the
    tint of a 1-px vessel keeps its colour), atomically."""
    full_colour = (cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444)
    ok, encoded = cv2.imencode(".jpg", as_bgr(rgb), (cv2.IMWRITE_JPEG_QUALITY, quality, *full_colour))
    if not ok:
        raise ValueError(f"cannot encode a {rgb.dtype} array of shape {rgb.shape} as JPEG")
    with atomic_path(path, suffix=".jpg") as temp:
        temp.write_bytes(encoded)


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
