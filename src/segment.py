"""Segment your own fundus photographs: any camera, size and format, with a trained U-Net.

Per photograph: read it upright → the field of view (a given mask, or ``lib.fov.detect_fov``) → rescale so
the FOV diameter matches the training data's (the U-Net learned vessels at DRIVE's scale) → the published
preprocessing → the U-Net (``predict_image``) → probabilities mapped back to the photograph's resolution →
vessel measurements, the chosen PNGs and a summary row.

The network never waits for files: one thread reads and prepares the next photographs and a pool of writers
finishes the previous ones while the network runs (decoding, OpenCV, PNG encoding and the measurements release
the GIL). At most PREFETCH photographs wait for the network and MAX_FINISHING for the writers, so memory stays
bounded whatever their number. Resuming, shards and settings: ``lib.run_folder``. A bad file is one ``error:``
line and the others are still processed.
"""

import collections
import contextlib
import dataclasses
import functools
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lib.errors import UserError
from lib.files import companion, expand, file_id, index_files, unique_files
from lib.fov import detect_fov, fov_warning
from lib.imageio import STDERR_LOCK, read_binary, read_rgb
from lib.inference import PUBLISHED_PATCH_HW, Inference
from lib.measurements import COLUMNS as MEASUREMENTS
from lib.measurements import as_text, measure_vessels
from lib.metrics import THRESHOLD, evaluate_fov
from lib.preprocessing import preprocess
from lib.progress import progress
from lib.rendering import write_outputs
from lib.rescale import DRIVE_FOV_DIAMETER, network_scale, resize
from lib.run_folder import (
    OUTPUTS,
    WEIGHTS_DIGEST,
    WEIGHTS_PATH,
    Shard,
    Summary,
    is_done,
    same_file,
    settings_difference,
    summary_files,
    summary_path,
    weights_digest,
    write_settings,
)
from src.prediction import predict_image

MIN_SIDE = PUBLISHED_PATCH_HW[0]  # smaller photographs (or network inputs) cannot hold one training patch
DARK_LEVEL = 10  # a photograph with no pixel brighter than this (of 255) shows no retina
METRICS = ("auc_roc", "f1", "accuracy", "sensitivity", "specificity")
COLUMNS = ("image", "width", "height", "fov_pixels", "fov_diameter", "scale", *MEASUREMENTS, "warning", "seconds")
PREFETCH = 2  # photographs read ahead of the network
WRITERS = 2  # threads finishing photographs (maps, measurements, PNGs)
MAX_FINISHING = 3  # photographs handed to the writers and not yet written; beyond it the network waits
SUMMARY_INTERVAL = 10.0  # s between rewrites of the summary during a run (and once at its end or interruption)


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
    }
    network_input = preprocess(network_rgb.transpose(2, 0, 1)[None])[0]
    return Photograph(path, rgb, fov > 0, network_input, label, row, time.perf_counter() - start)


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
    if probability.shape != (height, width):
        probability = resize(probability, height, width)
    probability = np.where(photo.fov, probability, np.float32(0))
    vessels = photo.fov & (probability >= options.threshold)
    row = photo.row | as_text(measure_vessels(vessels, photo.fov))
    if photo.label is not None:
        results = evaluate_fov(photo.label, probability, photo.fov, options.threshold).metrics
        row |= {name: f"{results[name]:.4f}" for name in METRICS}
    write_outputs(out_dir, file_id(photo.path), options.outputs, photo.rgb, probability, vessels, photo.fov)
    return row | {"seconds": f"{photo.seconds + time.perf_counter() - start:.2f}"}


def describe_scale(options: Options) -> str:
    return f"FOV rescaled to {options.fov_diameter:g} px" if options.fov_diameter else "no rescaling"


def describe(options: Options) -> str:
    return f"{options.inference.describe()}, {describe_scale(options)}, threshold {options.threshold:g}"


def settings_of(weights: Path, options: Options, masks: str | None, labels: str | None) -> dict:
    """What the results depend on, as recorded in the output folder's settings.json."""
    try:
        digest = weights_digest(weights)
    except OSError:  # missing or unreadable: the model loader says so in the project's words
        load_model(weights, options.inference.precision)
        raise
    return {
        WEIGHTS_PATH: str(weights),
        WEIGHTS_DIGEST: digest,
        "prediction": options.inference.describe(),
        "scale": describe_scale(options),
        "threshold": options.threshold,
        "fov": "detected" if masks is None else "given masks",
        "labels": "given" if labels else "none",
        "outputs": ",".join(options.outputs),
    }


@functools.lru_cache(maxsize=1)
def load_model(weights: Path, precision: str):
    """The U-Net with ``weights``, loaded once per process (a process segmenting several folders reuses it)."""
    from src.model import load_trained_model  # TensorFlow loads only when there is something to segment

    return load_trained_model(weights, precision)


def report(message) -> None:
    with STDERR_LOCK:  # the reading thread may have sent stderr to /dev/null for a moment
        print(f"error: {message}", file=sys.stderr, flush=True)


def find_images(specs: list[str]) -> tuple[list[Path], int]:
    """The photographs named by ``specs``, each file once, sorted by path; and how many specs named none."""
    failures, images = 0, []
    for spec in specs:
        try:
            images += expand(spec)
        except UserError as error:
            report(error)
            failures += 1
    return sorted(unique_files(images), key=str), failures


def name_owners(images: list[Path]) -> dict[str, Path]:
    """The photograph each output name belongs to: the first in sorted order of those with that name."""
    owners = {}
    for path in images:
        owners.setdefault(file_id(path), path)
    return owners


def segment(
    specs: list[str],
    out_dir: Path,
    weights: Path,
    options: Options,
    masks: str | None = None,
    labels: str | None = None,
    shard: Shard | None = None,
    overwrite: bool = False,
) -> int:
    """Segment the images named by ``specs`` (the ``shard``'s part of them) into ``out_dir``; returns how many
    inputs failed.

    A missing weights file, an empty --masks/--labels source, an output folder that cannot be written or holds
    results of other settings (unless ``overwrite``) stop everything before any prediction (UserError); a bad
    image is reported on one line and skipped. Photographs done by an earlier run are skipped unless ``overwrite``.
    """
    images, failures = find_images(specs)
    mask_index = None if masks is None else index_files(masks)
    label_index = None if labels is None else index_files(labels)
    if not images:
        return failures
    owners = name_owners(images)  # over every shard's images, so that all shards agree
    mine = images if shard is None else shard.select(images)
    part = "" if shard is None else f" (part {shard.index} of {shard.count} of {len(images)})"
    if not mine:
        print(f"no images to segment{part}")
        return failures
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{out_dir}: cannot create the output folder ({error.strerror}); choose another") from None

    settings = settings_of(weights, options, masks, labels)
    difference = settings_difference(out_dir, settings)
    if difference and not overwrite:
        raise UserError(
            f"{out_dir}: holds results made with other settings ({difference}); choose another output folder "
            "(-o), or add --overwrite to redo its images with these settings"
        )
    if difference:  # the old rows would mix two settings in one summary
        for path in summary_files(out_dir):
            path.unlink()
    summary = Summary(summary_path(out_dir, shard), COLUMNS + (METRICS if labels else ()), SUMMARY_INTERVAL)
    todo, done_before = [], 0
    for path in mine:
        name = file_id(path)
        earlier = summary.rows.get(name)
        if owners[name] != path:
            report(f"{path}: same name as {owners[name]}, the outputs would collide; rename one")
            failures += 1
        elif not overwrite and earlier is not None and not same_file(earlier["image"], path):
            report(
                f"{path}: same name as {earlier['image']}, segmented into {out_dir} before; rename one, "
                "or add --overwrite to replace its results"
            )
            failures += 1
        elif not overwrite and is_done(earlier, path, out_dir, options.outputs):
            done_before += 1
        else:
            todo.append(path)
            summary.rows.pop(name, None)  # its row comes back once its new files are written
    if not todo:
        print(f"all {done_before} images{part} were segmented into {out_dir}/ before; --overwrite redoes them")
        return failures
    write_settings(out_dir, settings)  # also refuses an unwritable folder before any prediction
    model = load_model(weights, options.inference.precision)
    skipped = f"; {done_before} done before are skipped" if done_before else ""
    print(
        f"segmenting {len(todo)} images{part} with {weights}: {describe(options)}; results in {out_dir}/{skipped}",
        flush=True,
    )
    segmented = []

    def record(row: dict) -> None:
        summary.add(row)
        segmented.append(row)

    def load(path: Path) -> Photograph:
        return load_photograph(
            path, companion(mask_index, path, "mask", masks), companion(label_index, path, "label", labels), options
        )

    def finish(photo: Photograph, probability: np.ndarray) -> dict:
        return finish_photograph(photo, probability, options, out_dir)

    try:
        failures += run_pipeline(model, todo, load, finish, options.inference, record)
    finally:
        if summary.rows:
            summary.write()
    where = f"summary in {summary.path}" if summary.rows else "no summary written"
    print(f"{len(segmented)} of {len(todo)} images segmented{part}; {where}")
    scored = [row for row in summary.rows.values() if row.get(METRICS[0])]
    if labels and scored:
        means = {name: np.mean([float(row[name]) for row in scored]) for name in METRICS}
        print(f"mean over {len(scored)} images: " + "  ".join(f"{name} {value:.4f}" for name, value in means.items()))
    return failures


def run_pipeline(model, images: list[Path], load, finish, inference: Inference, record) -> int:
    """Read ahead, predict and finish ``images``, calling ``record(row)`` for each one done; returns how many
    failed (each reported on one line).

    ``load(path)`` runs on the reading thread, the network on this one, ``finish(photo, probability)`` on the
    writers. On an interruption nothing more is read, the photographs the network has done are finished
    (a second or two) and recorded, and the interruption goes on.
    """
    failures = 0

    def collect(path: Path, future) -> None:
        nonlocal failures
        try:
            record(future.result())
        except UserError as error:
            report(error)
            failures += 1
        except OSError as error:
            report(f"{path}: cannot write the results ({error.strerror or error}); check the output folder")
            failures += 1

    with ThreadPoolExecutor(1, "read") as reader, ThreadPoolExecutor(WRITERS, "write") as writers:
        waiting = iter(images[PREFETCH:])
        reading = collections.deque((path, reader.submit(load, path)) for path in images[:PREFETCH])
        finishing = collections.deque()
        try:
            for _ in progress(images, "segmented"):
                path, future = reading.popleft()
                if (following := next(waiting, None)) is not None:
                    reading.append((following, reader.submit(load, following)))
                try:
                    photo = future.result()
                except UserError as error:
                    report(error)
                    failures += 1
                    continue
                start = time.perf_counter()
                probability = predict_image(model, photo.network_input, inference)
                photo.seconds += time.perf_counter() - start
                finishing.append((path, writers.submit(finish, photo, probability)))
                while finishing and (finishing[0][1].done() or len(finishing) > MAX_FINISHING):
                    collect(*finishing.popleft())
            while finishing:
                collect(*finishing.popleft())
        finally:  # interrupted: read no more, and let the writers finish what the network has done
            for _, future in reading:
                future.cancel()
            writers.shutdown(wait=True)
            while finishing:
                collect(*finishing.popleft())
    return failures
