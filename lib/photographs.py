"""One photograph of any camera, size and format, for the U-Net and back: read it upright, find its field of view
(a given mask, or ``lib.fov.detect_fov``), rescale it so the FOV diameter matches the training data's (the U-Net
learned vessels at DRIVE's scale), preprocess it as published; and afterwards map the probabilities back to its
resolution, measure the vessels, score them against a label and write the chosen files. Without TensorFlow:
training from photographs (``run_finetune.py``) reads them the same way, so training and prediction see one
geometry.
"""

import contextlib
import dataclasses
import time
from pathlib import Path

import cv2
import numpy as np

from lib.errors import UserError
from lib.files import file_id
from lib.fov import detect_fov, fov_warning
from lib.imageio import read_binary, read_rgb
from lib.inference import PUBLISHED_PATCH_HW, Inference
from lib.measurements import COLUMNS as MEASUREMENTS
from lib.measurements import as_text, measure_vessels
from lib.metrics import THRESHOLD, evaluate_fov
from lib.preprocessing import preprocess
from lib.quality import COLUMNS as QUALITY
from lib.quality import assess
from lib.rendering import write_outputs, write_thumbnail
from lib.rescale import DRIVE_FOV_DIAMETER, network_scale, resize
from lib.run_folder import OUTPUTS, STAMP, file_stamp, output_path, thumbnail_path

MIN_SIDE = PUBLISHED_PATCH_HW[0]  # smaller photographs (or network inputs) cannot hold one training patch
DARK_LEVEL = 10  # a photograph with no pixel brighter than this (of 255) shows no retina
METRICS = ("auc_roc", "f1", "accuracy", "sensitivity", "specificity")
COLUMNS = ("image", "width", "height", "fov_pixels", "fov_diameter", "scale", *MEASUREMENTS, *QUALITY, "warning",
           "seconds")  # fmt: skip
COLUMNS += STAMP  # the photograph's size and time: one replaced under the same name is done again on a rerun


@dataclasses.dataclass(frozen=True)
class Options:
    inference: Inference = Inference(mode="whole")
    fov_diameter: float | None = DRIVE_FOV_DIAMETER  # None: predict at the photograph's own scale
    threshold: float = THRESHOLD
    outputs: tuple[str, ...] = OUTPUTS


@dataclasses.dataclass
class Photograph:
    """A photograph ready for the network, with everything its results need."""

    path: Path
    rgb: np.ndarray  # (H, W, 3) uint8, upright
    fov: np.ndarray  # (H, W) bool
    network_input: np.ndarray  # (1, h, w) preprocessed, at the network's scale
    network_fov: np.ndarray  # (h, w) bool: the network's pixels that the FOV's probabilities are resized from
    label: np.ndarray | None  # (H, W) bool manual vessels, with --labels
    row: dict
    seconds: float  # spent on it so far


@contextlib.contextmanager
def about(path: Path):
    """Name ``path`` in a UserError raised by code that does not know which file it works on."""
    try:
        yield
    except UserError as error:
        raise UserError(f"{path}: {error}") from None


def check_size(path: Path, array: np.ndarray, image: Path, shape: tuple[int, int], what: str) -> None:
    if array.shape[:2] != shape:
        raise UserError(
            f"{path}: the {what} is {array.shape[1]}x{array.shape[0]} px but {image} is {shape[1]}x{shape[0]}; "
            f"use the {what} made for this image"
        )


def load_photograph(path: Path, mask_path: Path | None, label_path: Path | None, options: Options) -> Photograph:
    """Read a photograph, its FOV and label, and prepare the network's input; UserError on bad input."""
    start = time.perf_counter()
    stamp = file_stamp(path)  # before the reading: a file replaced meanwhile is done again on the rerun
    rgb = read_rgb(path)
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise UserError(
            f"{path}: the image is {width}x{height} px, too small (at least {MIN_SIDE}x{MIN_SIDE}); "
            "use the full-size photograph"
        )
    if rgb.max() <= DARK_LEVEL:
        raise UserError(f"{path}: the photograph is black (no pixel above {DARK_LEVEL} of 255); check the file")
    if mask_path is None:
        with about(path):
            fov = detect_fov(rgb)
    else:
        fov = read_binary(mask_path)
        check_size(mask_path, fov, path, (height, width), "mask")
        if not fov.any():
            raise UserError(f"{mask_path}: the mask is all black; white must mark the field of view")
    with about(path):
        scale, diameter = network_scale(fov, options.fov_diameter)
    net_hw = max(1, round(height * scale)), max(1, round(width * scale))
    if min(net_hw) < MIN_SIDE:
        raise UserError(
            f"{path}: rescaled to {net_hw[1]}x{net_hw[0]} px, too small for the U-Net; raise --fov-diameter"
        )
    network_rgb = resize(rgb, *net_hw) if net_hw != (height, width) else rgb
    label = None if label_path is None else read_label(label_path, path, fov > 0)
    row = {
        "image": str(path),
        "width": width,
        "height": height,
        "fov_pixels": int(np.count_nonzero(fov)),
        "fov_diameter": "" if diameter is None else f"{diameter:.1f}",
        "scale": f"{scale:.4f}",
        "warning": fov_warning(fov),
        **stamp,
    }
    network_input = preprocess(network_rgb.transpose(2, 0, 1)[None])[0]
    return Photograph(path, rgb, fov > 0, network_input, fov_at(fov, net_hw), label, row, time.perf_counter() - start)


def fov_at(fov: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """The pixels of an (h, w) rescaling of the photograph that the pixels of its FOV (uint8 0/255) take their
    values from when the rescaled probabilities are brought back (``finish_photograph``): every one the FOV
    covers at all, and their neighbours, which bilinear enlarging reads."""
    covered = fov if fov.shape == hw else resize(fov, *hw)
    return cv2.dilate(covered, np.ones((3, 3), np.uint8)) > 0


def read_label(label_path: Path, image: Path, inside: np.ndarray) -> np.ndarray:
    """A manual vessel label as bool; one with a single class inside the FOV cannot be scored (UserError)."""
    label = read_binary(label_path) > 0
    check_size(label_path, label, image, inside.shape, "label")
    truth = label[inside]
    if truth.all() or not truth.any():
        raise UserError(
            f"{label_path}: the label has only one class inside the field of view; "
            "check that it is the vessel label of this image"
        )
    return label


def finish_photograph(photo: Photograph, probability: np.ndarray, options: Options, out_dir: Path) -> dict:
    """The network's probabilities at the photograph's resolution → measurements, metrics and files; its row."""
    start = time.perf_counter()
    height, width = photo.rgb.shape[:2]
    probability = resize(probability, height, width) if probability.shape != (height, width) else probability.copy()
    np.multiply(probability, photo.fov, out=probability)  # 0 outside the FOV, in place: no second 33 MB map
    vessels = photo.fov & (probability >= options.threshold)
    row = photo.row | as_text(measure_vessels(vessels, photo.fov)) | assess(probability, photo.fov, options.threshold)
    if photo.label is not None:
        results = evaluate_fov(photo.label, probability, photo.fov, options.threshold).metrics
        row |= {name: f"{results[name]:.4f}" for name in METRICS}
    name = file_id(photo.path)
    paths = {kind: output_path(out_dir, name, kind) for kind in options.outputs}
    write_outputs(paths, photo.rgb, probability, vessels, photo.fov)
    write_thumbnail(thumbnail_path(out_dir, name), photo.rgb, vessels)
    return row | {"seconds": f"{photo.seconds + time.perf_counter() - start:.2f}"}


def describe_scale(options: Options) -> str:
    return f"FOV rescaled to {options.fov_diameter:g} px" if options.fov_diameter else "no rescaling"


def describe(options: Options) -> str:
    return f"{options.inference.describe()}, {describe_scale(options)}, threshold {options.threshold:g}"
