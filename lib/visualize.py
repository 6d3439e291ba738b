"""Pictures: the published ones (patch grids, comparison strips, ROC and PR curves), training curves, per-image."""

import numpy as np

from lib.atomic import atomic_path
from lib.imageio import write_png


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


def _pyplot():
    """matplotlib's pyplot drawing to files only (no display needed, also on servers); imported when first
    drawn: 0.7 s that the scripts' --help and the image tiling do not need."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(figure, path) -> None:
    with atomic_path(path, suffix=".png") as temp:
        figure.savefig(temp, format="png", dpi=100)
    _pyplot().close(figure)


def save_curve(
    path, x: np.ndarray, y: np.ndarray, title: str, xlabel: str, ylabel: str, label: str, diagonal: bool = False
) -> None:
    """Save one curve (ROC or precision-recall) as a PNG, as the published plots."""
    figure, axes = _pyplot().subplots(figsize=(6, 6))
    axes.plot(x, y, "-", label=label)
    if diagonal:
        axes.plot([0, 1], [0, 1], "--", color="gray", linewidth=0.8)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.01))
    axes.legend(loc="lower right" if diagonal else "lower left")
    _save_figure(figure, path)


def save_per_image_chart(path, rows: list[dict], weakest: int = 3) -> None:
    """AUC ROC and F1 of each image (rows with ``id``, ``auc_roc``, ``f1``), each panel sorted with the weakest
    image on top and the ``weakest`` few (at most a quarter) in red, the mean dashed: where the model fails."""
    weakest = min(weakest, max(len(rows) // 4, 1))
    figure, panels = _pyplot().subplots(1, 2, figsize=(9, 1.5 + 0.25 * len(rows)), squeeze=False)
    for axes, (key, title) in zip(panels[0], (("auc_roc", "AUC ROC"), ("f1", "F1 (threshold 0.5)")), strict=True):
        ordered = sorted(rows, key=lambda row: row[key], reverse=True)  # drawn bottom up: the weakest lands on top
        values = [row[key] for row in ordered]
        mean = sum(values) / len(values)
        colors = ["tab:blue"] * (len(rows) - weakest) + ["tab:red"] * weakest
        axes.scatter(values, range(len(rows)), color=colors, zorder=2)
        axes.axvline(mean, color="gray", linestyle="--", linewidth=0.8)
        axes.grid(axis="x", color="lightgray", linewidth=0.6)
        axes.set(title=f"{title}, mean {mean:.4f} (dashed)", ylabel="image")
        axes.set(yticks=range(len(rows)), yticklabels=[row["id"] for row in ordered], ylim=(-0.7, len(rows) - 0.3))
        axes.margins(x=0.08)
    figure.tight_layout()
    _save_figure(figure, path)


def save_training_curves(path, history: dict[str, list[float]]) -> None:
    """Training and validation loss and accuracy against the epoch (columns of the history CSV, epochs counted
    from 1), the best epoch (lowest validation loss, whose weights are kept as best) marked."""
    epochs = np.asarray(history["epoch"], dtype=int) + 1
    val_loss = np.asarray(history["val_loss"], dtype=np.float64)
    figure, panels = _pyplot().subplots(1, 2, figsize=(11, 4.5))
    from matplotlib.ticker import MaxNLocator  # matplotlib is loaded by now

    for axes, metric in zip(panels, ("loss", "accuracy"), strict=True):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        for prefix, label in (("", "training"), ("val_", "validation")):
            if prefix + metric in history:
                axes.plot(epochs, history[prefix + metric], "o-", markersize=3, label=label)
        axes.set(title=metric, xlabel="epoch")
        axes.grid(color="lightgray", linewidth=0.6)
    if not np.isnan(val_loss).all():
        best = int(np.nanargmin(val_loss))  # the first lowest, as the best weights are kept
        for axes in panels:
            axes.axvline(epochs[best], color="gray", linestyle=":", label=f"best: epoch {epochs[best]}")
        panels[0].plot(epochs[best], val_loss[best], "*", color="tab:red", markersize=12)
    for axes in panels:
        axes.legend()
    figure.tight_layout()
    _save_figure(figure, path)
