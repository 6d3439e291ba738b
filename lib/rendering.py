"""What the own-photograph segmentation writes: the maps as PNGs, the overlay, and the report's thumbnail (where
they go is the run folder's business, ``lib.run_folder``)."""

from pathlib import Path

import cv2
import numpy as np

from lib.atomic import atomic_path
from lib.imageio import write_png

OVERLAY_COLOUR = (0, 255, 0)  # green stands out on the red-orange retina
OVERLAY_ALPHA = 0.6
THUMBNAIL_SIDE = 160  # px: the longer side of the report's thumbnails
THUMBNAIL_QUALITY = 80  # JPEG quality of the thumbnails: a few kB each


def overlay(rgb: np.ndarray, vessels: np.ndarray) -> np.ndarray:
    """The photograph with the vessel pixels (a bool map) tinted."""
    tinted = cv2.addWeighted(rgb, 1 - OVERLAY_ALPHA, np.full_like(rgb, OVERLAY_COLOUR), OVERLAY_ALPHA, 0)
    return cv2.copyTo(tinted, vessels.view(np.uint8), rgb.copy())


def write_outputs(
    paths: dict[str, Path],
    rgb: np.ndarray,
    probability: np.ndarray,
    vessels: np.ndarray,
    fov: np.ndarray,
) -> None:
    """The outputs ``paths`` names (kind → file, kinds of lib.run_folder.OUTPUTS) as PNGs: the probability map
    (8-bit), the binary vessels (bool), the overlay and the FOV mask used (bool); only those are drawn."""
    draw = {
        "probability": lambda: cv2.convertScaleAbs(probability, alpha=255),  # rounded to nearest, in one pass
        "vessels": lambda: vessels.view(np.uint8) * np.uint8(255),
        "overlay": lambda: overlay(rgb, vessels),
        "fov": lambda: fov.view(np.uint8) * np.uint8(255),
    }
    for kind, path in paths.items():
        write_png(path, draw[kind](), fast=True)


def thumbnail(rgb: np.ndarray, vessels: np.ndarray) -> np.ndarray:
    """The overlay at THUMBNAIL_SIDE px: photograph and vessel map are sampled every few pixels down to about four
    times the thumbnail, then reduced by area averaging, so that a 3504x2336 photograph costs a few milliseconds;
    a thumbnail pixel is vessel when half of what it covers is."""
    height, width = rgb.shape[:2]
    scale = min(1.0, THUMBNAIL_SIDE / max(height, width))
    size = max(1, round(width * scale)), max(1, round(height * scale))
    step = max(1, max(height, width) // (4 * THUMBNAIL_SIDE))
    small = cv2.resize(np.ascontiguousarray(rgb[::step, ::step]), size, interpolation=cv2.INTER_AREA)
    sampled = np.ascontiguousarray(vessels[::step, ::step]).view(np.uint8) * np.uint8(255)
    covered = cv2.resize(sampled, size, interpolation=cv2.INTER_AREA)
    return overlay(small, covered >= 128)


def write_thumbnail(path: Path, rgb: np.ndarray, vessels: np.ndarray) -> None:
    """The report's thumbnail of a photograph as a small JPEG, written atomically."""
    ok, encoded = cv2.imencode(
        ".jpg", thumbnail(rgb, vessels)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_QUALITY]
    )
    if not ok:
        raise ValueError(f"cannot encode the thumbnail {path} as JPEG")
    with atomic_path(path, suffix=".jpg") as temp:
        temp.write_bytes(encoded)
