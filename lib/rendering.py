"""What the own-photograph segmentation writes: the maps as PNGs and the overlay."""

from pathlib import Path

import cv2
import numpy as np

from lib.imageio import write_png

OVERLAY_COLOUR = (0, 255, 0)  # green stands out on the red-orange retina
OVERLAY_ALPHA = 0.6
SUMMARY = "summary.csv"


def overlay(rgb: np.ndarray, vessels: np.ndarray) -> np.ndarray:
    """The photograph with the vessel pixels tinted."""
    tinted = cv2.addWeighted(rgb, 1 - OVERLAY_ALPHA, np.full_like(rgb, OVERLAY_COLOUR), OVERLAY_ALPHA, 0)
    return np.where(vessels[..., None], tinted, rgb)


def write_outputs(out_dir: Path, name: str, result: dict) -> None:
    """The probability map (8-bit), the binary vessels, the overlay and the FOV mask used, as PNGs."""
    write_png(out_dir / f"{name}_probability.png", np.rint(result["probability"] * 255).astype(np.uint8))
    write_png(out_dir / f"{name}_vessels.png", result["vessels"].astype(np.uint8) * 255)
    write_png(out_dir / f"{name}_overlay.png", overlay(result["rgb"], result["vessels"]))
    write_png(out_dir / f"{name}_fov.png", result["fov"].astype(np.uint8) * 255)
