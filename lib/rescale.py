"""Bringing a photograph to the scale the U-Net learned: DRIVE's field of view, about 540 px across."""

import cv2
import numpy as np

from lib.errors import UserError
from lib.fov import fov_diameter
from lib.patches import DRIVE_FOV_RADIUS

DRIVE_FOV_DIAMETER = 2 * DRIVE_FOV_RADIUS  # the scale the U-Net was trained at (px)
# Nearer than 5 % to the target scale a photograph is left alone: resampling blurs 1-px vessels (DRIVE's
# mean AUC drops from 0.9783 to 0.9754 when its images are resampled by 1 %).
RESCALE_TOLERANCE = 0.05
# Enlarging more than this invents the vessels' detail instead of showing it, and costs memory and time as the
# square of the factor (a 20 px FOV brought to 540 px is 25x, 2.3 GB, and a meaningless map): refused.
MAX_UPSCALE = 4.0


def resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an image or probability map: area-averaging when shrinking (no aliasing), bilinear when enlarging."""
    shrinking = height * width < array.shape[0] * array.shape[1]
    return cv2.resize(array, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def network_scale(fov: np.ndarray, target: float | None) -> tuple[float, float | None]:
    """The factor that brings the FOV diameter to ``target`` px (1 when already near), and that diameter.

    A factor above MAX_UPSCALE is a UserError: the photograph is too small for the scale asked.
    """
    if target is None:
        return 1.0, None
    diameter = fov_diameter(fov)
    scale = target / diameter
    if scale > MAX_UPSCALE:
        raise UserError(
            f"the field of view is {diameter:.0f} px across: bringing it to {target:g} px would enlarge the image "
            f"{scale:.1f}x (at most {MAX_UPSCALE:g}x); use the full-size photograph, or predict at its own scale "
            "(--no-rescale)"
        )
    return (1.0 if abs(scale - 1) < RESCALE_TOLERANCE else scale), diameter
