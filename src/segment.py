"""Segment your own fundus photographs: any camera, size and format, with a trained U-Net.

Per photograph: the field of view (a given mask, or ``lib.fov.detect_fov``) → rescale so the FOV
diameter matches the training data's (the U-Net learned vessels at DRIVE's scale) → the published
preprocessing → the U-Net (whole image, or averaged patches; in tiles when one pass would need too
much memory) → probabilities mapped back to the photograph's resolution → PNGs and a CSV row.
A bad file is one ``error:`` line on stderr and the others are still processed.
"""

import contextlib
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from lib.errors import UserError
from lib.files import companion, expand, file_id, index_files
from lib.fov import detect_fov
from lib.imageio import read_binary, read_rgb, write_csv
from lib.inference import PUBLISHED_PATCH_HW, Inference
from lib.metrics import THRESHOLD, evaluate_fov
from lib.preprocessing import preprocess
from lib.progress import progress
from lib.rendering import SUMMARY, write_outputs
from lib.rescale import DRIVE_FOV_DIAMETER, network_scale, resize
from src.model import load_trained_model
from src.prediction import predict_image

MIN_SIDE = PUBLISHED_PATCH_HW[0]  # smaller photographs (or network inputs) cannot hold one training patch
METRICS = ("auc_roc", "f1", "accuracy", "sensitivity", "specificity")
COLUMNS = ("image", "width", "height", "fov_pixels", "fov_diameter", "scale", "vessel_fraction", "seconds")


@dataclasses.dataclass(frozen=True)
class Options:
    inference: Inference = Inference(mode="whole")
    fov_diameter: float | None = DRIVE_FOV_DIAMETER  # None: predict at the photograph's own scale
    threshold: float = THRESHOLD


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


def segment_image(model, path: Path, mask_path: Path | None, label_path: Path | None, options: Options) -> dict:
    """Everything about one photograph: its maps and its CSV row; raises UserError on bad input."""
    rgb = read_rgb(path)
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise UserError(
            f"{path}: the image is {width}x{height} px, too small (at least {MIN_SIDE}x{MIN_SIDE}); "
            "use the full-size photograph"
        )
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
    rescaled = net_hw != (height, width)
    network_rgb = resize(rgb, *net_hw) if rescaled else rgb
    probability = predict_image(model, preprocess(network_rgb.transpose(2, 0, 1)[None])[0], options.inference)
    inside = fov > 0
    probability = np.where(inside, resize(probability, height, width) if rescaled else probability, 0)
    vessels = inside & (probability >= options.threshold)
    fov_count = int(np.count_nonzero(inside))
    row = {
        "image": str(path),
        "width": width,
        "height": height,
        "fov_pixels": fov_count,
        "fov_diameter": "" if diameter is None else f"{diameter:.1f}",
        "scale": f"{scale:.4f}",
        "vessel_fraction": f"{np.count_nonzero(vessels) / fov_count:.4f}",
    }
    if label_path is not None:
        row |= label_metrics(label_path, path, probability, inside, options.threshold)
    return {"row": row, "rgb": rgb, "probability": probability, "vessels": vessels, "fov": inside}


def label_metrics(label_path: Path, image: Path, probability: np.ndarray, inside: np.ndarray, threshold: float):
    """AUC ROC, F1, accuracy, sensitivity and specificity on the FOV pixels against a manual label."""
    label = read_binary(label_path)
    check_size(label_path, label, image, inside.shape, "label")
    truth = (label > 0)[inside]
    if truth.all() or not truth.any():
        raise UserError(
            f"{label_path}: the label has only one class inside the field of view; "
            "check that it is the vessel label of this image"
        )
    results = evaluate_fov(label > 0, probability, inside, threshold).metrics
    return {name: f"{results[name]:.4f}" for name in METRICS}


def describe(options: Options) -> str:
    scale = f"FOV rescaled to {options.fov_diameter:g} px" if options.fov_diameter else "no rescaling"
    return f"{options.inference.describe()}, {scale}, threshold {options.threshold:g}"


def report(message) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def segment(
    specs: list[str],
    out_dir: Path,
    weights: Path,
    options: Options,
    masks: str | None = None,
    labels: str | None = None,
) -> int:
    """Segment every image named by ``specs`` into ``out_dir``; returns how many inputs failed.

    A missing weights file or an empty --masks/--labels source stops everything (UserError); a bad
    image is reported on one line and skipped. ``summary.csv`` is rewritten after each image, so an
    interrupted run keeps the rows of the finished ones.
    """
    failures, images = 0, []
    for spec in specs:
        try:
            images += expand(spec)
        except UserError as error:
            report(error)
            failures += 1
    images = list(dict.fromkeys(images))  # a file named twice (folder and pattern) is segmented once
    mask_index = None if masks is None else index_files(masks)
    label_index = None if labels is None else index_files(labels)
    if not images:
        return failures
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{out_dir}: cannot create the output folder ({error.strerror}); choose another") from None
    model = load_trained_model(weights, options.inference.precision)
    print(f"segmenting {len(images)} images with {weights}: {describe(options)}; results in {out_dir}/", flush=True)

    columns = COLUMNS + (METRICS if labels else ())
    rows, owners = [], {}
    for path in progress(images, "segmented"):
        start = time.perf_counter()
        try:
            name = file_id(path)
            if name in owners:
                raise UserError(f"{path}: same name as {owners[name]}, the outputs would collide; rename one")
            result = segment_image(
                model,
                path,
                companion(mask_index, path, "mask", masks),
                companion(label_index, path, "label", labels),
                options,
            )
            write_outputs(out_dir, name, result)
        except UserError as error:
            report(error)
            failures += 1
            continue
        except OSError as error:
            report(f"{path}: cannot write the results in {out_dir} ({error.strerror}); check the output folder")
            failures += 1
            continue
        owners[name] = path
        rows.append(result["row"] | {"seconds": f"{time.perf_counter() - start:.2f}"})
        write_csv(out_dir / SUMMARY, rows, columns)

    print(f"{len(rows)} of {len(images)} images segmented; summary in {out_dir / SUMMARY}")
    if labels and rows:
        means = {name: np.mean([float(row[name]) for row in rows]) for name in METRICS}
        print(f"mean over {len(rows)} images: " + "  ".join(f"{name} {value:.4f}" for name, value in means.items()))
    return failures
