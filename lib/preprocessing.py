"""The published preprocessing: gray → dataset standardisation → CLAHE → gamma → [0, 1].

Each step is a small function on channels-first batches (N, C, H, W) so they compose like
transforms; the arithmetic (float64, truncating casts to uint8) is the published one, exactly.
"""

import cv2
import numpy as np

GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def rgb_to_gray(images: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) RGB → (N, 1, H, W) float64 luma, 0.299 R + 0.587 G + 0.114 B."""
    _check_batch(images, 3)
    red, green, blue = (images[:, c].astype(np.float64) for c in range(3))
    return (red * GRAY_WEIGHTS[0] + green * GRAY_WEIGHTS[1] + blue * GRAY_WEIGHTS[2])[:, None]


def standardize(images: np.ndarray) -> np.ndarray:
    """Standardise with the whole set's mean and std, then min-max each image to 0..255."""
    _check_batch(images, 1)
    data = (images - np.mean(images)) / np.std(images)
    low = data.min(axis=(1, 2, 3), keepdims=True)
    high = data.max(axis=(1, 2, 3), keepdims=True)
    return (data - low) / (high - low) * 255


def clahe(images: np.ndarray, clip_limit: float = 2.0, tile_grid: tuple[int, int] = (8, 8)) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of each image, on its uint8 truncation."""
    _check_batch(images, 1)
    equalizer = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=tile_grid)
    return np.stack([equalizer.apply(image[0].astype(np.uint8))[None] for image in images]).astype(np.float64)


def gamma_table(gamma: float) -> np.ndarray:
    """The published lookup table: ((i / 255) ** (1 / gamma)) * 255, truncated to uint8."""
    return (((np.arange(256) / 255.0) ** (1.0 / gamma)) * 255).astype(np.uint8)


def adjust_gamma(images: np.ndarray, gamma: float = 1.2) -> np.ndarray:
    """Gamma correction through the lookup table, applied to the uint8 truncation of the images."""
    _check_batch(images, 1)
    return gamma_table(gamma)[images.astype(np.uint8)].astype(np.float64)


def preprocess(images: np.ndarray) -> np.ndarray:
    """The published ``my_PreProc``: RGB uint8 (N, 3, H, W) → gray float32 (N, 1, H, W) in [0, 1].

    The standardisation uses the statistics of the whole batch, so pass the whole dataset split
    (as published), not single images, to reproduce the published numbers.
    """
    gray = adjust_gamma(clahe(standardize(rgb_to_gray(images))), 1.2)
    return (gray / 255.0).astype(np.float32)


def _check_batch(images: np.ndarray, channels: int) -> None:
    if images.ndim != 4 or images.shape[1] != channels:
        raise ValueError(f"expected a batch of shape (N, {channels}, H, W), got {images.shape}")
