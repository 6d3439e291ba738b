"""What the own-photograph segmentation writes: the maps as PNGs, the overlay and the report's thumbnail as JPEGs
(where they go and under which names is the run folder's business, ``lib.run_folder``)."""

from pathlib import Path

import cv2
import numpy as np

from lib.imageio import write_jpeg, write_png

OVERLAY_COLOUR = (0, 255, 0)  # green stands out on the red-orange retina
OVERLAY_ALPHA = 0.6
THUMBNAIL_SIDE = 160  # px: the longer side of the report's thumbnails
OVERLAY_QUALITY = 90  # JPEG quality of the full-size overlay: about 1 MB for 3504x2336 px
THUMBNAIL_QUALITY = 80  # JPEG quality of the thumbnails: a few kB each


def overlay(rgb: np.ndarray, vessels: np.ndarray) -> np.ndarray:
    """The photograph with the vessel pixels (a bool map) tinted. The tint of a channel depends on that channel's
    value alone, so it is a table of 256 values per channel (the same rounding as blending whole images, at a
    tenth of the memory traffic)."""
    levels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)[None]  # (1, 256, 3)
    tint = cv2.addWeighted(levels, 1 - OVERLAY_ALPHA, np.full_like(levels, OVERLAY_COLOUR), OVERLAY_ALPHA, 0)
    return cv2.copyTo(cv2.LUT(rgb, tint), vessels.view(np.uint8), rgb.copy())


def write_outputs(
    paths: dict[str, Path],
    rgb: np.ndarray,
    probability: np.ndarray,
    vessels: np.ndarray,
    fov: np.ndarray,
) -> None:
    """The outputs ``paths`` names (kind → file, kinds of lib.run_folder.OUTPUTS): the probability map (8-bit),
    the binary vessels (bool) and the FOV mask used (bool) as PNGs, the overlay as a JPEG; only those are drawn."""
    draw = {
        "probability": lambda path: write_png(path, cv2.convertScaleAbs(probability, alpha=255), fast=True),
        "vessels": lambda path: write_png(path, vessels.view(np.uint8) * np.uint8(255), fast=True),
        "overlay": lambda path: write_jpeg(path, overlay(rgb, vessels), OVERLAY_QUALITY),
        "fov": lambda path: write_png(path, fov.view(np.uint8) * np.uint8(255), fast=True),
    }
    for kind, path in paths.items():
        draw[kind](path)


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
    write_jpeg(path, thumbnail(rgb, vessels), THUMBNAIL_QUALITY)
