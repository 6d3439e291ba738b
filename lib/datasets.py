"""DRIVE reading and the HDF5 files the pipeline exchanges (dataset key ``image``, channels first)."""

import errno
import io
import re
from pathlib import Path

import h5py
import numpy as np

from lib.atomic import atomic_path
from lib.errors import UserError
from lib.imageio import read_binary, read_rgb

DRIVE_SPLITS = {
    # split: (image pattern, label name, mask name)
    "training": (r"(\d+)_training\.tif", "{id}_manual1.gif", "{id}_training_mask.gif"),
    "test": (r"(\d+)_test\.tif", "{id}_manual1.gif", "{id}_test_mask.gif"),
}
DRIVE_HELP = "download DRIVE (see the README) and pass the folder that holds training/ and test/"


def drive_ids(root, split: str) -> list[str]:
    """The image ids of a DRIVE split, in sorted order (the published script used directory order)."""
    folder = Path(root) / split / "images"
    if not folder.is_dir():
        raise UserError(f"{folder}: folder not found; {DRIVE_HELP}")
    pattern = re.compile(DRIVE_SPLITS[split][0])
    ids = sorted(match.group(1) for name in (p.name for p in folder.iterdir()) if (match := pattern.fullmatch(name)))
    if not ids:
        raise UserError(f"{folder}: no images named like '{pattern.pattern}'; {DRIVE_HELP}")
    return ids


def read_drive_split(root, split: str, second_observer: bool = False) -> dict[str, np.ndarray]:
    """Images (N,3,H,W), ground truth (N,1,H,W) and FOV masks (N,1,H,W) of a DRIVE split, uint8.

    Every image needs its label and mask, all of one size; labels and masks must be binary (0/255).
    With ``second_observer`` the test split's 2nd_manual labels come as ``groundTruth2nd``.
    """
    root = Path(root)
    _, label_name, mask_name = DRIVE_SPLITS[split]
    ids = drive_ids(root, split)
    arrays = {"imgs": [], "groundTruth": [], "borderMasks": []}
    if second_observer:
        arrays["groundTruth2nd"] = []
    for image_id in ids:
        image_path = root / split / "images" / f"{image_id}_{split}.tif"
        image = read_rgb(image_path)
        if arrays["imgs"] and image.shape[:2] != arrays["imgs"][0].shape[1:]:
            raise UserError(
                f"{image_path}: size {_size(image.shape[:2])} differs from the first image's "
                f"{_size(arrays['imgs'][0].shape[1:])}; all images of a split must have one size"
            )
        sources = {
            "groundTruth": root / split / "1st_manual" / label_name.format(id=image_id),
            "borderMasks": root / split / "mask" / mask_name.format(id=image_id),
        }
        if second_observer:
            sources["groundTruth2nd"] = root / split / "2nd_manual" / f"{image_id}_manual2.gif"
        arrays["imgs"].append(image.transpose(2, 0, 1))
        for key, path in sources.items():
            if not path.is_file():
                raise UserError(f"{path}: missing for image {image_id}; {DRIVE_HELP}")
            plane = read_binary(path)
            if plane.shape != image.shape[:2]:
                raise UserError(
                    f"{path}: size {_size(plane.shape)} differs from its image's {_size(image.shape[:2])}; "
                    "use the label or mask that belongs to this image"
                )
            arrays[key].append(plane[None])
    return {key: np.stack(planes) for key, planes in arrays.items()} | {"ids": np.array(ids)}


def _size(shape) -> str:
    """(height, width) as a user reads it: "584x565 (height x width)"."""
    return f"{shape[0]}x{shape[1]} (height x width)"


def write_hdf5(path, array: np.ndarray) -> None:
    """Write ``array`` under the dataset key ``image``, atomically (temp file, then rename).

    The file is built in memory and written by Python: HDF5 writing to a disk that fills up
    leaves its library in a state that crashes the process on exit, Python just raises ENOSPC.
    """
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle.create_dataset("image", data=array)
    with atomic_path(path, suffix=".hdf5.tmp") as temp:
        temp.write_bytes(buffer.getbuffer())


def load_hdf5(path, channels: int | None = None) -> np.ndarray:
    """Read the ``image`` dataset of an HDF5 file written by a prepare script, checking its shape."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: HDF5 file not found; run prepare_datasets_DRIVE.py (or _STARE.py) first")
    try:
        with h5py.File(path, "r") as handle:
            if not isinstance(handle.get("image"), h5py.Dataset):
                raise UserError(f"{path}: no dataset 'image' inside; re-run the prepare script")
            array = handle["image"][()]
    # A corrupt file fails inside HDF5's C library, which h5py reports as OSError, KeyError,
    # RuntimeError or ValueError depending on where the damage is.
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as error:
        if getattr(error, "errno", None) in (errno.EACCES, errno.EPERM) or "Permission denied" in str(error):
            # the data is fine: nothing to delete or prepare again
            raise UserError(f"{path}: cannot read it (permission denied); fix its permissions (chmod u+r)") from None
        reason = str(error).strip("'\"").splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: unreadable HDF5 ({reason}); delete it and re-run the prepare script") from None
    if array.ndim != 4 or (channels is not None and array.shape[1] != channels):
        expected = f"(N, {channels}, H, W)" if channels else "(N, C, H, W)"
        raise UserError(f"{path}: shape {array.shape} is not {expected}; delete it and re-run the prepare script")
    if array.shape[0] == 0:
        raise UserError(f"{path}: holds no images (shape {array.shape}); re-run the prepare script on the dataset")
    if array.dtype.kind not in "uif" or (array.dtype.kind == "f" and not np.isfinite(array).all()):
        what = "NaN or infinite values" if array.dtype.kind == "f" else f"values of type {array.dtype}"
        raise UserError(f"{path}: holds {what}, not pixel values; delete it and re-run the prepare script")
    if array.dtype.kind == "i" and array.min() < 0:
        raise UserError(
            f"{path}: holds negative values (type {array.dtype}, down to {array.min()}), not pixel values; "
            "re-run the prepare script"
        )
    return array


def load_planes_of(path, images: np.ndarray) -> np.ndarray:
    """The one-channel HDF5 file (labels, masks) that belongs to ``images`` (N, C, H, W): one plane per image,
    of the images' size, else an error naming both shapes."""
    planes = load_hdf5(path, channels=1)
    if planes.shape[0] != images.shape[0] or planes.shape[2:] != images.shape[2:]:
        raise UserError(
            f"{path}: shape {planes.shape} does not match the images {images.shape}; re-run the prepare script"
        )
    return planes
