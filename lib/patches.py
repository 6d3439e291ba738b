"""Training-patch sampling, overlapping patch extraction and the averaging reassembly.

Images are channels-first (C, H, W) or batches (N, C, H, W), as in the published code.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lib.errors import UserError

DRIVE_FOV_RADIUS = 270  # DRIVE's field of view is a disc of about 540 px (DRIVE documentation)


def allowed_centres(image_hw: tuple[int, int], patch_hw: tuple[int, int], inside=None) -> np.ndarray:
    """Flat indices of the pixels that may be a patch centre, as published: centre in [p/2, size - p/2].

    ``inside`` restricts them so the whole patch lies in the field of view: a radius about the image
    centre (DRIVE, the published ``is_patch_inside_FOV``) or a boolean FOV mask (H, W).
    """
    (height, width), (patch_h, patch_w) = image_hw, patch_hw
    if patch_h > height or patch_w > width:
        raise ValueError(f"patch {patch_h}x{patch_w} is larger than the image {height}x{width}")
    ys, xs = np.ogrid[:height, :width]
    allowed = (ys >= patch_h // 2) & (ys <= height - patch_h // 2) & (xs >= patch_w // 2) & (xs <= width - patch_w // 2)
    if isinstance(inside, np.ndarray):
        allowed &= _patch_inside_mask(inside.astype(bool), patch_hw)
    elif inside is not None:
        allowed &= np.hypot(xs - width // 2, ys - height // 2) < inside
    candidates = np.flatnonzero(allowed)
    if candidates.size == 0:
        raise ValueError(f"no {patch_h}x{patch_w} patch fits inside the field of view")
    return candidates


def window_sums(array: np.ndarray, patch_hw: tuple[int, int]) -> np.ndarray:
    """Sum of every ph x pw window of a 2-D array, by its top-left corner (a summed-area table, no loops)."""
    patch_h, patch_w = patch_hw
    table = np.pad(np.cumsum(np.cumsum(array, axis=0, dtype=np.int64), axis=1), ((1, 0), (1, 0)))
    return (
        table[patch_h:, patch_w:]
        - table[:-patch_h, patch_w:]
        - table[patch_h:, :-patch_w]
        + table[:-patch_h, :-patch_w]
    )


def _patch_inside_mask(fov: np.ndarray, patch_hw: tuple[int, int]) -> np.ndarray:
    """Centres whose patch [c - p/2, c + p/2) lies entirely in ``fov``."""
    patch_h, patch_w = patch_hw
    inside = np.zeros(fov.shape, dtype=bool)
    sums = window_sums(fov, patch_hw)
    inside[patch_h // 2 : patch_h // 2 + sums.shape[0], patch_w // 2 : patch_w // 2 + sums.shape[1]] = (
        sums == patch_h * patch_w
    )
    return inside


def sample_centres(rng: np.random.Generator, candidates: np.ndarray, count: int, width: int) -> np.ndarray:
    """``count`` centres (y, x) drawn uniformly, with replacement, from the allowed flat indices."""
    flat = candidates[rng.integers(0, candidates.size, size=count)]
    return np.stack(np.divmod(flat, width), axis=1)


def fov_radius_for_patch(patch_hw: tuple[int, int], fov_radius: float = DRIVE_FOV_RADIUS) -> float:
    """The largest centre distance at which the whole patch stays inside the FOV disc.

    The published code used ``270 - int(patch_h * sqrt(2) / 2)``; the exact bound is the FOV radius
    minus half the patch diagonal, which also holds for non-square patches.
    """
    return fov_radius - np.hypot(*patch_hw) / 2


def crop_patches(image: np.ndarray, centres: np.ndarray, patch_hw: tuple[int, int]) -> np.ndarray:
    """The (n, C, ph, pw) patches of a (C, H, W) image around (y, x) centres, by fancy indexing."""
    rows = centres[:, 0, None, None] + (np.arange(patch_hw[0]) - patch_hw[0] // 2)[None, :, None]
    cols = centres[:, 1, None, None] + (np.arange(patch_hw[1]) - patch_hw[1] // 2)[None, None, :]
    return image[:, rows, cols].transpose(1, 0, 2, 3)


def extract_random(
    images: np.ndarray,
    labels: np.ndarray,
    n_patches: int,
    patch_hw: tuple[int, int],
    rng: np.random.Generator,
    inside=None,
) -> tuple[np.ndarray, np.ndarray]:
    """The published ``extract_random``: equally many random patches from each image, image by image.

    ``inside`` is None (anywhere), a FOV radius (DRIVE, as published) or FOV masks (N, 1, H, W).
    Returns patches (n, C, ph, pw) in the images' dtype and label patches (n, 1, ph, pw).
    """
    n_images, _, height, width = images.shape
    if n_patches % n_images:
        raise ValueError(f"N_subimgs = {n_patches} is not a multiple of the {n_images} training images")
    per_image = n_patches // n_images
    out_images = np.empty((n_patches, images.shape[1], *patch_hw), dtype=images.dtype)
    out_labels = np.empty((n_patches, labels.shape[1], *patch_hw), dtype=labels.dtype)
    for index in range(n_images):
        fov = inside[index, 0] if isinstance(inside, np.ndarray) else inside
        centres = sample_centres(rng, allowed_centres((height, width), patch_hw, fov), per_image, width)
        target = slice(index * per_image, (index + 1) * per_image)
        out_images[target] = crop_patches(images[index], centres, patch_hw)
        out_labels[target] = crop_patches(labels[index], centres, patch_hw)
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


def patches_touching(mask: np.ndarray, patch_hw: tuple[int, int], stride_hw: tuple[int, int]) -> np.ndarray:
    """Which patches of an overlapping extraction hold at least one nonzero pixel of a padded (H, W) mask,
    in extraction order."""
    return (window_sums(mask != 0, patch_hw)[:: stride_hw[0], :: stride_hw[1]] > 0).ravel()


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


def recompose_overlapping(
    patches: np.ndarray, padded_hw: tuple[int, int], stride_hw: tuple[int, int], kept: np.ndarray | None = None
) -> np.ndarray:
    """Average overlapping (n, ph, pw) patch predictions back into one (H, W) image (published ``recompone_overlap``).

    ``kept`` (one flag per patch of the full extraction) says which patches ``patches`` holds, in order;
    each pixel averages the kept patches covering it, and pixels no kept patch covers are 0.
    Sums by patch offset rather than by patch: ph*pw strided additions instead of n Python steps.
    """
    patch_h, patch_w = patches.shape[1:]
    rows, cols = grid_shape(padded_hw, (patch_h, patch_w), stride_hw)
    grid = np.zeros((patch_h, patch_w, rows * cols), dtype=patches.dtype)  # skipped patches stay 0
    grid[..., slice(None) if kept is None else kept] = patches.transpose(1, 2, 0)
    grid = grid.reshape(patch_h, patch_w, rows, cols)
    total = np.zeros(padded_hw, dtype=np.float64)  # float64 sums, as published
    row_end, col_end = (rows - 1) * stride_hw[0] + 1, (cols - 1) * stride_hw[1] + 1
    for dy in range(patch_h):
        for dx in range(patch_w):
            total[dy : dy + row_end : stride_hw[0], dx : dx + col_end : stride_hw[1]] += grid[dy, dx]
    if kept is None:
        return total / overlap_counts(padded_hw, (patch_h, patch_w), stride_hw)
    counts = kept_counts(kept.reshape(rows, cols), padded_hw, (patch_h, patch_w), stride_hw)
    return np.divide(total, counts, out=np.zeros_like(total), where=counts > 0)


def kept_counts(
    kept: np.ndarray, padded_hw: tuple[int, int], patch_hw: tuple[int, int], stride_hw: tuple[int, int]
) -> np.ndarray:
    """How many kept patches, a (rows, cols) grid of flags, cover each pixel: pixel (y, x) is covered by
    the patches whose corner lies in [y - ph + 1, y] x [x - pw + 1, x], a window of the corner map."""
    corners = np.zeros(padded_hw, dtype=np.int64)
    rows, cols = kept.shape
    corners[: rows * stride_hw[0] : stride_hw[0], : cols * stride_hw[1] : stride_hw[1]] = kept
    return window_sums(np.pad(corners, ((patch_hw[0] - 1, 0), (patch_hw[1] - 1, 0))), patch_hw)


def check_validation_labels(labels: np.ndarray, where: str) -> None:
    """Refuse validation patches whose labels hold a single class: their F1, and the threshold chosen on them after
    the first epoch, are undefined (patches from images without vessels, or too few of them)."""
    vessel = int(np.count_nonzero(labels))
    if labels.size and vessel in (0, labels.size):
        what = "no vessel pixel" if vessel == 0 else "vessel pixels only"
        raise UserError(
            f"{where} the {len(labels)} validation patches hold {what}, so their F1 and the threshold chosen on them "
            "are undefined; raise validation_split or N_subimgs, or check that the training labels mark the vessels"
        )
