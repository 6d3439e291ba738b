"""What the own-photograph segmentation writes: the maps as PNGs and the overlay."""

from pathlib import Path

import cv2
import numpy as np

from lib.imageio import write_png
from lib.run_folder import output_path

OVERLAY_COLOUR = (0, 255, 0)  # green stands out on the red-orange retina
OVERLAY_ALPHA = 0.6


def overlay(rgb: np.ndarray, vessels: np.ndarray) -> np.ndarray:
    """The photograph with the vessel pixels (a bool map) tinted."""
    tinted = cv2.addWeighted(rgb, 1 - OVERLAY_ALPHA, np.full_like(rgb, OVERLAY_COLOUR), OVERLAY_ALPHA, 0)
    return cv2.copyTo(tinted, vessels.view(np.uint8), rgb.copy())


def write_outputs(
    out_dir: Path,
    name: str,
    outputs: tuple[str, ...],
    rgb: np.ndarray,
    probability: np.ndarray,
    vessels: np.ndarray,
    fov: np.ndarray,
) -> None:
    """The chosen ``outputs`` (lib.run_folder.OUTPUTS) as PNGs: the probability map (8-bit), the binary vessels
    (bool), the overlay and the FOV mask used (bool); only the chosen ones are drawn."""
    draw = {
        "probability": lambda: cv2.convertScaleAbs(probability, alpha=255),  # rounded to nearest, in one pass
        "vessels": lambda: vessels.view(np.uint8) * np.uint8(255),
        "overlay": lambda: overlay(rgb, vessels),
        "fov": lambda: fov.view(np.uint8) * np.uint8(255),
    }
    for kind in outputs:
        write_png(output_path(out_dir, name, kind), draw[kind](), fast=True)
