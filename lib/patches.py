"""Training-patch sampling, overlapping patch extraction and the averaging reassembly.

Images are channels-first (C, H, W) or batches (N, C, H, W), as in the published code.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

DRIVE_FOV_RADIUS = 270  # DRIVE's field of view is a disc of about 540 px (DRIVE documentation)


def patch_centres(
    rng: np.random.Generator,
    count: int,
    image_hw: tuple[int, int],
    patch_hw: tuple[int, int],
    inside_radius: float | None = None,
) -> np.ndarray:
    """``count`` random patch centres (y, x), uniform as published: centre in [p/2, size - p/2].

    With ``inside_radius`` only centres closer than it to the image centre are kept (rejection
    sampling, as the published ``is_patch_inside_FOV``).
    """
    (height, width), (patch_h, patch_w) = image_hw, patch_hw
    if patch_h > height or patch_w > width:
        raise ValueError(f"patch {patch_h}x{patch_w} is larger than the image {height}x{width}")
    if inside_radius is not None and inside_radius <= 0:
        raise ValueError(f"patches of {patch_h}x{patch_w} cannot fit inside a FOV radius of {DRIVE_FOV_RADIUS}")
    centres = np.empty((0, 2), dtype=np.int64)
    while len(centres) < count:
        batch = max(2 * (count - len(centres)), 64)
        ys = rng.integers(patch_h // 2, height - patch_h // 2, endpoint=True, size=batch)
        xs = rng.integers(patch_w // 2, width - patch_w // 2, endpoint=True, size=batch)
        if inside_radius is not None:
            keep = np.hypot(xs - width // 2, ys - height // 2) < inside_radius
            ys, xs = ys[keep], xs[keep]
        centres = np.concatenate([centres, np.stack([ys, xs], axis=1)])
    return centres[:count]


def fov_radius_for_patch(patch_hw: tuple[int, int], fov_radius: float = DRIVE_FOV_RADIUS) -> float:
    """The largest centre distance at which the whole patch stays inside the FOV disc.

    The published code used ``270 - int(patch_h * sqrt(2) / 2)``; the exact bound is the FOV radius
    minus half the patch diagonal, which also holds for non-square patches.
    """
    return fov_radius - np.hypot(*patch_hw) / 2


def extract_random(
    images: np.ndarray,
    labels: np.ndarray,
    n_patches: int,
    patch_hw: tuple[int, int],
    inside_fov: bool,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The published ``extract_random``: equally many random patches from each image, image by image.

    Returns patches (n, C, ph, pw) in the images' dtype and label patches (n, 1, ph, pw).
    """
    n_images = images.shape[0]
    if n_patches % n_images:
        raise ValueError(f"N_subimgs = {n_patches} is not a multiple of the {n_images} training images")
    per_image = n_patches // n_images
    radius = fov_radius_for_patch(patch_hw) if inside_fov else None
    patch_h, patch_w = patch_hw
    out_images = np.empty((n_patches, images.shape[1], patch_h, patch_w), dtype=images.dtype)
    out_labels = np.empty((n_patches, labels.shape[1], patch_h, patch_w), dtype=labels.dtype)
    rows, cols = np.arange(patch_h) - patch_h // 2, np.arange(patch_w) - patch_w // 2
    for index in range(n_images):
        centres = patch_centres(rng, per_image, images.shape[2:], patch_hw, radius)
        ys = centres[:, 0, None, None] + rows[None, :, None]
        xs = centres[:, 1, None, None] + cols[None, None, :]
        target = slice(index * per_image, (index + 1) * per_image)
        out_images[target] = images[index][:, ys, xs].transpose(1, 0, 2, 3)
        out_labels[target] = labels[index][:, ys, xs].transpose(1, 0, 2, 3)
    return out_images, out_labels


def overlap_padding(
    image_hw: tuple[int, int], patch_hw: tuple[int, int], stride_hw: tuple[int, int]
) -> tuple[int, int]:
    """Rows and columns of zeros the published ``paint_border_overlap`` adds at the bottom and right."""
    return tuple(
        (stride - (size - patch) % stride) % stride
        for size, patch, stride in zip(image_hw, patch_hw, stride_hw, strict=True)
    )


def pad_bottom_right(image: np.ndarray, pad_hw: tuple[int, int]) -> np.ndarray:
    """Zero-pad a (C, H, W) image at the bottom and right."""
    return np.pad(image, ((0, 0), (0, pad_hw[0]), (0, pad_hw[1])))


def grid_shape(padded_hw: tuple[int, int], patch_hw: tuple[int, int], stride_hw: tuple[int, int]) -> tuple[int, int]:
    """How many patch rows and columns an overlapping extraction takes from a padded image."""
    return tuple(
        (size - patch) // stride + 1 for size, patch, stride in zip(padded_hw, patch_hw, stride_hw, strict=True)
    )


def extract_overlapping(image: np.ndarray, patch_hw: tuple[int, int], stride_hw: tuple[int, int]) -> np.ndarray:
    """All patches of a padded (C, H, W) image, row by row as published: (n, C, ph, pw), a view-free copy."""
    windows = sliding_window_view(image, patch_hw, axis=(1, 2))[:, :: stride_hw[0], :: stride_hw[1]]
    channels, rows, cols = windows.shape[:3]
    return np.ascontiguousarray(windows.transpose(1, 2, 0, 3, 4)).reshape(rows * cols, channels, *patch_hw)


def overlap_counts(padded_hw: tuple[int, int], patch_hw: tuple[int, int], stride_hw: tuple[int, int]) -> np.ndarray:
    """How many patches cover each pixel of the padded image (the published ``full_sum``)."""
    rows, cols = grid_shape(padded_hw, patch_hw, stride_hw)
    return np.outer(
        _coverage(padded_hw[0], patch_hw[0], stride_hw[0], rows),
        _coverage(padded_hw[1], patch_hw[1], stride_hw[1], cols),
    )


def _coverage(size: int, patch: int, stride: int, count: int) -> np.ndarray:
    starts = np.zeros(size + 1, dtype=np.int64)
    np.add.at(starts, np.arange(count) * stride, 1)
    np.add.at(starts, np.arange(count) * stride + patch, -1)
    return np.cumsum(starts)[:size]


def recompose_overlapping(patches: np.ndarray, padded_hw: tuple[int, int], stride_hw: tuple[int, int]) -> np.ndarray:
    """Average overlapping (n, ph, pw) patch predictions back into one (H, W) image (published ``recompone_overlap``).

    Sums by patch offset rather than by patch: ph*pw strided additions instead of n Python steps.
    """
    patch_h, patch_w = patches.shape[1:]
    rows, cols = grid_shape(padded_hw, (patch_h, patch_w), stride_hw)
    grid = np.ascontiguousarray(patches.reshape(rows, cols, patch_h, patch_w).transpose(2, 3, 0, 1), dtype=np.float64)
    total = np.zeros(padded_hw, dtype=np.float64)
    row_end, col_end = (rows - 1) * stride_hw[0] + 1, (cols - 1) * stride_hw[1] + 1
    for dy in range(patch_h):
        for dx in range(patch_w):
            total[dy : dy + row_end : stride_hw[0], dx : dx + col_end : stride_hw[1]] += grid[dy, dx]
    return total / overlap_counts(padded_hw, (patch_h, patch_w), stride_hw)
