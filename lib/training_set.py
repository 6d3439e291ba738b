"""The training images and what their patches need, before TensorFlow: DRIVE's prepared training set, the
photographs camera augmentation changes, and the checks of patch settings and memory made before anything
is trained."""

import dataclasses
from pathlib import Path

import numpy as np

from lib.config import DataPaths, TrainingSettings
from lib.datasets import load_hdf5, load_planes_of
from lib.errors import UserError
from lib.patches import fov_radius_for_patch
from lib.preprocessing import preprocess

DRIVE_SIZE = (584, 565)
DRIVE_TRAIN_ROWS = slice(9, 574)  # published: cut top and bottom so the training images are 565x565


def load_training_set(data: DataPaths) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed training images (N, 1, H, W) float32 and labels (N, 1, H, W) uint8 0/1."""
    images = load_hdf5(data.file("train_imgs_original"), channels=3)
    labels = load_planes_of(data.file("train_groundTruth"), images)
    return training_rows(preprocess(images)), training_rows((labels > 0).astype(np.uint8))


def training_rows(array: np.ndarray) -> np.ndarray:
    """DRIVE's training images cut to 565x565 (published); other sizes as they are."""
    return array[:, :, DRIVE_TRAIN_ROWS] if array.shape[2:] == DRIVE_SIZE else array


@dataclasses.dataclass(frozen=True)
class Photographs:
    """The training images before preprocessing, (N, 3, H, W) uint8, and their FOV masks (N, 1, H, W) 0/1:
    what camera augmentation changes each epoch."""

    rgb: np.ndarray
    fovs: np.ndarray


def load_training_photographs(data: DataPaths) -> Photographs:
    """The training set's photographs and FOV masks, cut as ``load_training_set`` cuts its images."""
    rgb = load_hdf5(data.file("train_imgs_original"), channels=3)
    fovs = load_planes_of(data.file("train_border_masks"), rgb)
    return Photographs(training_rows(rgb), training_rows((fovs > 0).astype(np.uint8)))


def check_patch_settings(settings: TrainingSettings, shape: tuple[int, ...]) -> None:
    """Reject patch settings that cannot work on these images, before anything is trained."""
    count, _, height, width = shape
    where = settings.where
    patch_h, patch_w = settings.patch_hw
    if patch_h > height or patch_w > width:
        raise UserError(
            f"{settings.source}: [data attributes] patch {patch_h}x{patch_w} is "
            f"larger than the training images ({height}x{width}); use smaller patches"
        )
    if settings.N_subimgs % count:
        lower = settings.N_subimgs // count * count
        raise UserError(
            f"{where} N_subimgs = {settings.N_subimgs} is not a multiple of the {count} training images; "
            f"use e.g. {max(lower, count)}"
        )
    n_train, n_validation = split_counts(settings)
    if n_validation < 1 or n_train < settings.batch_size:
        raise UserError(
            f"{where} N_subimgs = {settings.N_subimgs} leaves {n_train} training and {n_validation} validation "
            f"patches for batches of {settings.batch_size}; raise N_subimgs"
        )


def split_counts(settings: TrainingSettings) -> tuple[int, int]:
    """Training and validation patch counts (validation = the last share, as Keras' validation_split)."""
    validation = round(settings.N_subimgs * settings.validation_split)
    return settings.N_subimgs - validation, validation


def patch_memory(settings: TrainingSettings) -> int:
    """Bytes the patches take in memory (float32 images, uint8 labels): every patch with ``in_memory``, three
    times over (Keras copies the arrays it is given); with ``streaming`` the validation patches and the patch
    indices."""
    patch_bytes = settings.patch_hw[0] * settings.patch_hw[1] * 5
    if settings.patch_source == "in_memory":
        return 3 * settings.N_subimgs * patch_bytes
    _, n_validation = split_counts(settings)
    return n_validation * patch_bytes + 16 * settings.N_subimgs


def available_memory() -> int | None:
    """Bytes this process may still allocate: Linux's MemAvailable, within a container's limit; None elsewhere."""
    try:
        meminfo = Path("/proc/meminfo").read_text()
        available = int(meminfo.split("MemAvailable:")[1].split()[0]) * 1024
    except (OSError, IndexError, ValueError):
        return None
    try:
        cgroup = Path("/sys/fs/cgroup")
        limit = int((cgroup / "memory.max").read_text()) - int((cgroup / "memory.current").read_text())
        return min(available, limit)
    except (OSError, ValueError):  # no cgroup v2, or "max": no limit
        return available


def check_memory(settings: TrainingSettings) -> int:
    """Refuse, before allocating, patches that do not fit in memory; the bytes they take."""
    needed, available = patch_memory(settings), available_memory()
    if available is not None and needed > available:
        streaming = "" if settings.patch_source == "streaming" else ", or set patch_source = streaming"
        raise UserError(
            f"{settings.where} N_subimgs = {settings.N_subimgs}: its {settings.patch_hw[0]}x{settings.patch_hw[1]} "
            f"patches need about {describe_bytes(needed)} of memory ({settings.patch_source}) and "
            f"{describe_bytes(available)} are available; lower N_subimgs{streaming}"
        )
    return needed


def describe_bytes(count: int) -> str:
    """``1.5 GiB`` or ``300 MiB``."""
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


def fov_constraint(settings: TrainingSettings, fov_masks: np.ndarray | None):
    """Where patches may lie: anywhere, inside DRIVE's FOV disc (published), or inside given FOV masks."""
    if not settings.inside_FOV:
        return None
    if fov_masks is not None:
        return fov_masks > 0
    radius = fov_radius_for_patch(settings.patch_hw)
    if radius <= 0:
        raise UserError(f"{settings.where} inside_FOV = True but these patches cannot fit in the FOV")
    return radius
