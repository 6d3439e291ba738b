"""Pictures the published project saves: patch grids, comparison strips, ROC and PR curves."""

import numpy as np

from lib.imageio import atomic_path, write_png


def group_images(images: np.ndarray, per_row: int) -> np.ndarray:
    """Tile (N, C, H, W) images in rows of ``per_row`` (published ``group_images``) → (rows*H, per_row*W, C)."""
    count, channels, height, width = images.shape
    if count % per_row:
        raise ValueError(f"{count} images cannot fill rows of {per_row}")
    grid = images.reshape(count // per_row, per_row, channels, height, width)
    return grid.transpose(0, 3, 1, 4, 2).reshape(count // per_row * height, per_row * width, channels)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A [0, 1] float image (or one already in 0..255) as displayable uint8, gray squeezed to 2-D."""
    scale = 255.0 if image.max(initial=0) <= 1.0 else 1.0
    pixels = np.clip(np.rint(image * scale), 0, 255).astype(np.uint8)
    return pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels


def save_grid(path, images: np.ndarray, per_row: int) -> None:
    """Save (N, C, H, W) images as one tiled PNG."""
    write_png(path, to_uint8(group_images(images, per_row)))


def save_curve(
    path, x: np.ndarray, y: np.ndarray, title: str, xlabel: str, ylabel: str, label: str, diagonal: bool = False
) -> None:
    """Save one curve (ROC or precision-recall) as a PNG, as the published plots."""
    import matplotlib  # imported here: 0.7 s that the scripts' --help and the image tiling do not need

    matplotlib.use("Agg")  # files only: no display needed, also on servers
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 6))
    axes.plot(x, y, "-", label=label)
    if diagonal:
        axes.plot([0, 1], [0, 1], "--", color="gray", linewidth=0.8)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.01))
    axes.legend(loc="lower right" if diagonal else "lower left")
    with atomic_path(path, suffix=".png") as temp:
        figure.savefig(temp, format="png", dpi=100)
    plt.close(figure)
