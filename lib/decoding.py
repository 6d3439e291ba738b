"""What a decoded image may be: no larger than MAX_PIXELS, checked from its header before decoding, and read
by value at its own bit depth (a 16-bit label is not cut to 8 bits)."""

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from lib.errors import UserError

MAX_PIXELS = 100_000_000  # larger images are refused from their header: a photograph has a few megapixels


def check_pixels(path: Path, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise too_large(path, f"{width}x{height} px, {width * height / 1e6:.0f} megapixels")


def too_large(path: Path, size: str) -> UserError:
    return UserError(
        f"{path}: {size}, more than the {MAX_PIXELS // 10**6} megapixels this project reads (a fundus photograph has "
        "a few); check that it is the photograph, or reduce it"
    )


_WIDE_MODES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}


def gray_values(path: Path, image: Image.Image) -> tuple[np.ndarray, float]:
    """A label's or map's gray values at its own bit depth, and that depth's white: a 16-bit file is read as it is,
    not cut to 8 bits (where 20000 and 65535 would both be 255)."""
    if image.mode in _WIDE_MODES:
        return np.asarray(image), _WIDE_MODES[image.mode]
    if image.mode in ("RGB", "RGBA") and (wide := _png_rgb16(path)) is not None:
        return wide, 65535
    return np.asarray(image.convert("L"), dtype=np.uint8), 255


def _png_rgb16(path: Path) -> np.ndarray | None:
    """A 16-bit colour PNG's gray values at 16 bits (Pillow keeps 8 of them), None for any other file."""
    with open(path, "rb") as handle:
        header = handle.read(26)
    if not (header.startswith(b"\x89PNG") and header[24] == 16 and header[25] in (2, 6)):
        return None
    pixels = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint16:
        return None
    return cv2.cvtColor(pixels, cv2.COLOR_BGRA2GRAY if pixels.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
