"""Reading images as the datasets ship them (.tif, .gif, .ppm, .ppm.gz, ...) and writing files atomically."""

import contextlib
import gzip
import io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lib.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".ppm.gz", ".pgm.gz")


def _open(path: Path) -> Image.Image:
    try:
        data = path.read_bytes()
        if path.name.lower().endswith(".gz"):
            data = gzip.decompress(data)
        image = Image.open(io.BytesIO(data))
        image.load()
        return image
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, EOFError, UnidentifiedImageError, gzip.BadGzipFile) as error:
        raise UserError(f"{path}: not a readable image ({error}); re-download or replace the file") from None


def read_rgb(path) -> np.ndarray:
    """An RGB photograph as uint8 (H, W, 3); grayscale or RGBA input is an error, not a guess."""
    path = Path(path)
    image = _open(path)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode != "RGB":
        raise UserError(f"{path}: expected an RGB colour image, got mode {image.mode}; convert it to RGB")
    return np.asarray(image, dtype=np.uint8)


def read_binary(path) -> np.ndarray:
    """A label or mask as uint8 (H, W) with values 0/255.

    Palette GIFs (DRIVE's 2nd_manual) map their two indices to gray levels such as 3/253, so the
    image is converted to gray and thresholded at mid-gray; more than two gray levels is an error.
    """
    path = Path(path)
    gray = np.asarray(_open(path).convert("L"), dtype=np.uint8)
    levels = np.unique(gray)
    if levels.size > 2:
        raise UserError(
            f"{path}: a label/mask must be binary (two gray levels), found {levels.size} levels; "
            "use the dataset's original label files"
        )
    return np.where(gray > 127, 255, 0).astype(np.uint8)


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or Ctrl-C leaves either the old file or the complete new one, never a partial file.
    ``suffix`` keeps a required ending (Keras insists on ``.weights.h5``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(handle)
    os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the file the permissions open() would
    try:
        yield Path(temp)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_png(path, image: np.ndarray) -> None:
    """Write a uint8 (H, W) or (H, W, 3) array as PNG, atomically."""
    with atomic_path(path, suffix=".png") as temp:
        Image.fromarray(image).save(temp, format="PNG")


def write_text(path, text: str) -> None:
    with atomic_path(path) as temp:
        temp.write_text(text)
