"""Segment your own fundus photographs: any camera, size and format, with a trained U-Net.

Per photograph: the field of view (a given mask, or ``lib.fov.detect_fov``) → rescale so the FOV
diameter matches the training data's (the U-Net learned vessels at DRIVE's scale) → the published
preprocessing → the U-Net (whole image, or averaged patches; in tiles when one pass would need too
much memory) → probabilities mapped back to the photograph's resolution → PNGs and a CSV row.
A bad file is one ``error:`` line on stderr and the others are still processed.
"""

import contextlib
import csv
import dataclasses
import glob
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from lib.errors import UserError
from lib.fov import detect_fov, fov_diameter
from lib.imageio import IMAGE_SUFFIXES, atomic_path, read_binary, read_rgb, write_png
from lib.metrics import THRESHOLD, evaluate, fov_pixels
from lib.patches import DRIVE_FOV_RADIUS
from lib.preprocessing import preprocess
from lib.progress import progress
from src.model import load_trained_model
from src.prediction import predict_by_patches, predict_whole

DRIVE_FOV_DIAMETER = 2 * DRIVE_FOV_RADIUS  # the scale the U-Net was trained at (px)
PATCH_HW = (48, 48)  # the training patch size, for --stride
MIN_SIDE = PATCH_HW[0]  # smaller photographs (or network inputs) cannot hold one training patch
# Nearer than 5 % to the target scale a photograph is left alone: resampling blurs 1-px vessels (DRIVE's
# mean AUC drops from 0.9783 to 0.9754 when its images are resampled by 1 %).
RESCALE_TOLERANCE = 0.05
# A whole-image pass costs about 1.2 kB per pixel and view (measured on CPU) on top of TensorFlow's own
# 0.7 GB: 1 M pixel-views per pass keeps a 3504x2336 photograph at full resolution under 2.5 GB.
MAX_PASS_PIXELS = 1_048_576
# Patches cost ~21 B per patch pixel (the patches, the outputs, the float64 average; measured) on top of
# ~0.7 GB of activations for a batch of PREDICT_BATCH: 15 000 patches (≈ 0.7 GB) keep patch mode as bounded.
MAX_PASS_PATCHES = 15_000
PREDICT_BATCH = 256  # patches per forward pass, as run_testing.py's default predict_batch_size
# Context around each tile, discarded after prediction: beyond the U-Net's receptive radius (26 px)
# and the patch size, and a multiple of 4 so the pooling grid stays aligned with the whole image's.
TILE_MARGIN = 48
OVERLAY_COLOUR = (0, 255, 0)  # green stands out on the red-orange retina
OVERLAY_ALPHA = 0.6
METRICS = ("auc_roc", "f1", "accuracy", "sensitivity", "specificity")
COLUMNS = ("image", "width", "height", "fov_pixels", "fov_diameter", "scale", "vessel_fraction", "seconds")
SUMMARY = "summary.csv"


@dataclasses.dataclass(frozen=True)
class Options:
    fov_diameter: float | None = DRIVE_FOV_DIAMETER  # None: predict at the photograph's own scale
    stride: int | None = None  # None: whole image; else averaged 48x48 patches at this stride
    flips: bool = False  # average the whole-image predictions of the 4 flips
    threshold: float = THRESHOLD


def file_id(path: Path) -> str:
    """The name before the first dot: ties im0001.ppm.gz to its label im0001.ah.ppm.gz."""
    return path.name.split(".")[0]


def mask_id(path: Path) -> str:
    """A mask's id, a trailing ``_mask`` ignored (DRIVE's 01_test_mask.gif is the mask of 01_test.tif)."""
    return file_id(path).removesuffix("_mask")


def expand(spec: str) -> list[Path]:
    """The image files named by a file, a folder (its image files) or a glob pattern (its image matches).

    A file named explicitly is always returned, whatever its suffix, so a wrong file gets a clear error
    from the reader instead of being skipped in silence.
    """
    path = Path(spec)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))
        if not found:
            raise UserError(
                f"{spec}: no images in this folder (looked for {' '.join(IMAGE_SUFFIXES)}); check the folder"
            )
        return found
    if path.is_file():
        return [path]
    if glob.escape(spec) == spec:
        raise UserError(f"{spec}: file or folder not found; check the path")
    matches = glob.glob(spec, recursive=True)
    found = sorted(Path(p) for p in matches if p.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(p))
    if not found:
        raise UserError(f"{spec}: no image files match this pattern; check the pattern (quote it in the shell)")
    return found


def index_files(spec: str, key) -> dict[str, list[Path]]:
    """The files of a --masks or --labels folder/pattern, grouped by ``key`` (their id)."""
    index = {}
    for path in expand(spec):
        index.setdefault(key(path), []).append(path)
    return index


def companion(index: dict[str, list[Path]] | None, image: Path, what: str, option: str) -> Path | None:
    """The one file of ``index`` with the image's id (None without an index)."""
    if index is None:
        return None
    found = index.get(file_id(image), [])
    if len(found) != 1:
        problem = f"several {what}s: {', '.join(map(str, found))}" if found else f"no {what} named {file_id(image)}.*"
        raise UserError(f"{image}: {problem} in {option}; give each image exactly one {what} with its name")
    return found[0]


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


def resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an image or probability map: area-averaging when shrinking (no aliasing), bilinear when enlarging."""
    shrinking = height * width < array.shape[0] * array.shape[1]
    return cv2.resize(array, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def network_scale(fov: np.ndarray, target: float | None) -> tuple[float, float | None]:
    """The factor that brings the FOV diameter to ``target`` px (1 when already near), and that diameter."""
    if target is None:
        return 1.0, None
    diameter = fov_diameter(fov)
    scale = target / diameter
    return (1.0 if abs(scale - 1) < RESCALE_TOLERANCE else scale), diameter


def predict_tiled(run, image: np.ndarray, core: int, margin: int) -> np.ndarray:
    """Predict a (1, H, W) image in tiles of ``core`` px, each with ``margin`` px of discarded context.

    With ``core`` and ``margin`` multiples of 4 and a margin beyond the U-Net's receptive radius, the
    whole-image result equals one pass over the whole image, with memory bounded by the tile size.
    """
    height, width = image.shape[1:]
    result = np.empty((height, width), dtype=np.float32)
    for top in range(0, height, core):
        for left in range(0, width, core):
            y0, x0 = max(top - margin, 0), max(left - margin, 0)
            tile = run(image[:, y0 : top + core + margin, x0 : left + core + margin])
            dy, dx = top - y0, left - x0
            result[top : top + core, left : left + core] = tile[dy : dy + core, dx : dx + core]
    return result


def predict(model, image: np.ndarray, options: Options) -> np.ndarray:
    """Vessel probabilities (H, W) of a preprocessed (1, H, W) image, tiled when one pass would exceed memory."""
    if options.stride:
        stride_hw = (options.stride, options.stride)

        def run(tile):
            return predict_by_patches(model, tile, PATCH_HW, stride_hw, PREDICT_BATCH)

        max_pixels = MAX_PASS_PATCHES * options.stride**2
    else:

        def run(tile):
            return predict_whole(model, tile, options.flips)

        max_pixels = MAX_PASS_PIXELS // (4 if options.flips else 1)
    if image.shape[1] * image.shape[2] <= max_pixels:
        return run(image)
    return predict_tiled(run, image, int(np.sqrt(max_pixels)) // 4 * 4 - 2 * TILE_MARGIN, TILE_MARGIN)


def overlay(rgb: np.ndarray, vessels: np.ndarray) -> np.ndarray:
    """The photograph with the vessel pixels tinted."""
    tinted = cv2.addWeighted(rgb, 1 - OVERLAY_ALPHA, np.full_like(rgb, OVERLAY_COLOUR), OVERLAY_ALPHA, 0)
    return np.where(vessels[..., None], tinted, rgb)


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
    probability = predict(model, preprocess(network_rgb.transpose(2, 0, 1)[None])[0], options)
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
    truth = fov_pixels(label > 0, inside)
    if truth.all() or not truth.any():
        raise UserError(
            f"{label_path}: the label has only one class inside the field of view; "
            "check that it is the vessel label of this image"
        )
    results = evaluate(truth, fov_pixels(probability, inside), threshold)
    return {name: f"{results[name]:.4f}" for name in METRICS}


def write_outputs(out_dir: Path, name: str, result: dict) -> None:
    """The probability map (8-bit), the binary vessels, the overlay and the FOV mask used, as PNGs."""
    write_png(out_dir / f"{name}_probability.png", np.rint(result["probability"] * 255).astype(np.uint8))
    write_png(out_dir / f"{name}_vessels.png", result["vessels"].astype(np.uint8) * 255)
    write_png(out_dir / f"{name}_overlay.png", overlay(result["rgb"], result["vessels"]))
    write_png(out_dir / f"{name}_fov.png", result["fov"].astype(np.uint8) * 255)


def write_summary(path: Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    with atomic_path(path, suffix=".csv") as temp, open(temp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def weights_of(model_dir: Path) -> Path:
    """An experiment folder's best weights: <name>/<name>_best.weights.h5."""
    return model_dir / f"{model_dir.resolve().name}_best.weights.h5"


def describe(options: Options) -> str:
    mode = f"{PATCH_HW[0]}x{PATCH_HW[1]} patches, stride {options.stride}" if options.stride else "whole image"
    mode += " + flips" if options.flips else ""
    scale = f"FOV rescaled to {options.fov_diameter:g} px" if options.fov_diameter else "no rescaling"
    return f"{mode}, {scale}, threshold {options.threshold:g}"


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
    mask_index = None if masks is None else index_files(masks, mask_id)
    label_index = None if labels is None else index_files(labels, file_id)
    if not images:
        return failures
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{out_dir}: cannot create the output folder ({error.strerror}); choose another") from None
    model = load_trained_model(weights)
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
        write_summary(out_dir / SUMMARY, rows, columns)

    print(f"{len(rows)} of {len(images)} images segmented; summary in {out_dir / SUMMARY}")
    if labels and rows:
        means = {name: np.mean([float(row[name]) for row in rows]) for name in METRICS}
        print(f"mean over {len(rows)} images: " + "  ".join(f"{name} {value:.4f}" for name, value in means.items()))
    return failures
