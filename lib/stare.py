"""STARE as distributed and its detected FOV masks (the ``[leave-one-out]`` settings are part of ``lib.config``).

STARE's vessel page ships the 20 photographs (``stare-images/imXXXX.ppm.gz``) and two observers' labels:
``labels-ah`` (A. Hoover, the ground truth) and ``labels-vk`` (V. Kouznetsova, the human reference).
It ships no FOV masks: as published, the FOV is found from the image colour (``lib.fov.detect_fov``:
red-channel threshold from the image's own levels, largest component, holes filled, rim eroded).
"""

import json
import re
from pathlib import Path

import cv2
import numpy as np

from lib.atomic import atomic_group, write_text
from lib.config import STARE_ID, DataPaths, LeaveOneOut
from lib.datasets import write_hdf5
from lib.errors import UserError
from lib.folders import check_download_apart, in_use
from lib.fov import detect_fov, fov_stats
from lib.imageio import read_binary, read_rgb, write_png
from lib.reports import PER_IMAGE_METRICS, RATES
from lib.test_set import ImageSet, load_test_set
from lib.textfiles import read_json, read_text
from lib.visualize import group_images

CONFIG_FILE = "configurations/STARE.txt"
PUBLISHED_COUNT = 20  # the labelled STARE images of the published leave-one-out
STARE_HELP = (
    "download stare-images.tar, labels-ah.tar and labels-vk.tar from https://cecas.clemson.edu/~ahoover/stare/ "
    "(vessel segmentation) and unpack them into one folder"
)
# HDF5 key: (folder, file name with the id as group 1); the files may be gzipped or plain.
LAYOUT = {
    "imgs": ("stare-images", r"(im\d{4})\.ppm(?:\.gz)?"),
    "groundTruth": ("labels-ah", r"(im\d{4})\.ah\.ppm(?:\.gz)?"),
    "groundTruth2nd": ("labels-vk", r"(im\d{4})\.vk\.ppm(?:\.gz)?"),
}
# STARE has no train/test split: every array goes to the test_* file the leave-one-out reads.
OUTPUTS = {
    "imgs": "test_imgs_original",
    "groundTruth": "test_groundTruth",
    "groundTruth2nd": "test_groundTruth_2nd",
    "borderMasks": "test_border_masks",
}
IDS_FILE = "STARE_dataset_ids.txt"  # in path_local: the image ids, in the order of the HDF5 files
PREVIEW_FILE = "STARE_FOV_masks.png"  # in path_local: every image with its detected FOV outlined


RESULT_KEYS = ("id", "mode", *PER_IMAGE_METRICS)  # what a fold's <id>_result.json must hold for the tables


def read_fold_result(path: Path, image_id: str) -> dict:
    """A fold's ``<id>_result.json``; ValueError saying what is wrong when it is none (null, a list, a key missing,
    a metric that is no number, another fold's id): the fold is then run again."""
    result = json.loads(read_text(path))
    if not isinstance(result, dict):
        raise ValueError(f"holds {type(result).__name__}, not a result")
    missing = [key for key in RESULT_KEYS if key not in result]
    if missing:
        raise ValueError(f"{missing[0]} missing")
    if result["id"] != image_id:
        raise ValueError(f"it is the result of {result['id']!r}")
    for key in PER_IMAGE_METRICS:
        if not _is_number(result[key]):
            raise ValueError(f"{key} is {result[key]!r}, not a number")
    return result


def read_variant_summary(path: Path, config) -> dict:
    """A results folder's ``summary.json`` for --compare; UserError when it is not one (cut short, edited)."""
    fix = f"run python run_stare_leave_one_out.py --config {config} again to rewrite it"
    summary = read_json(path, fix)
    problem = _summary_problem(summary)
    if problem:
        raise UserError(f"{path}: not a leave-one-out summary ({problem}); {fix}")
    return summary


def _summary_problem(summary) -> str | None:
    """What keeps ``summary`` from the --compare table (None: nothing)."""
    if not isinstance(summary, dict):
        return f"holds {type(summary).__name__}"
    kinds = {"folds": int, "images": int, "auc_roc_per_image": dict, "second_observer": dict, "pooled": dict}
    for key, kind in kinds.items():
        if not isinstance(summary.get(key, {}), kind) or key not in summary and key != "pooled":
            return f"{key} is {summary.get(key)!r}"
    numbers = {**summary["auc_roc_per_image"], **{key: summary["second_observer"].get(key) for key in RATES}}
    shown = {key: summary.get(key) for key in ("auc_roc_mean", "auc_roc_std", "training_minutes_mean")}
    shown |= {f"pooled {key}": summary.get("pooled", {}).get(key) for key in ("auc_roc", *RATES)}
    wrong = [key for key, value in numbers.items() if not _is_number(value)]
    wrong += [key for key, value in shown.items() if value is not None and not _is_number(value)]
    return f"{wrong[0]} is {({**numbers, **shown})[wrong[0]]!r}, not a number" if wrong else None


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def results_in_use(settings: LeaveOneOut):
    """Hold the results folder for a run: a second run writing the same tables is refused while the first runs."""
    return in_use(
        settings.results_folder,
        "run_stare_leave_one_out.lock",
        "another run_stare_leave_one_out.py run",
        "give this configuration its own [leave-one-out] results_folder",
    )


def _listing(root: Path, folder: str, pattern: str) -> dict[str, Path]:
    """The files of ``root/folder`` named like ``pattern``, by id; other files are ignored."""
    directory = root / folder
    if not directory.is_dir():
        raise UserError(f"{directory}: folder not found; {STARE_HELP}")
    found = {}
    for path in sorted(directory.iterdir()):
        if match := re.fullmatch(pattern, path.name):
            if match.group(1) in found:
                raise UserError(f"{path}: {found[match.group(1)].name} holds the same image; keep one of the two")
            found[match.group(1)] = path
    return found


def read_stare(root) -> dict[str, np.ndarray]:
    """Images (N,3,H,W), ah and vk labels and detected FOV masks (N,1,H,W), uint8 0/255, and ids.

    Every image needs both labels, and every label its image; all of one size.
    """
    root = Path(root)
    files = {key: _listing(root, folder, pattern) for key, (folder, pattern) in LAYOUT.items()}
    ids = sorted(files["imgs"])
    if len(ids) < 2:
        raise UserError(
            f"{root / 'stare-images'}: {len(ids)} images named like im0001.ppm.gz; "
            f"the leave-one-out needs at least 2; {STARE_HELP}"
        )
    for key in ("groundTruth", "groundTruth2nd"):
        folder = root / LAYOUT[key][0]
        missing, orphans = sorted(set(ids) - set(files[key])), sorted(set(files[key]) - set(ids))
        if missing or orphans:
            problem = f"no label for {', '.join(missing[:3])}" if missing else f"no image for {', '.join(orphans[:3])}"
            raise UserError(
                f"{folder}: {len(files[key])} labels for the {len(ids)} images of stare-images/ ({problem}"
                f"{' ...' if len(missing or orphans) > 3 else ''}); every image needs its label: {STARE_HELP}"
            )
    arrays = {"imgs": [], "groundTruth": [], "groundTruth2nd": [], "borderMasks": []}
    for image_id in ids:
        path = files["imgs"][image_id]
        image = read_rgb(path)
        if arrays["imgs"] and image.shape[:2] != arrays["imgs"][0].shape[1:]:
            raise UserError(
                f"{path}: size {image.shape[1::-1]} differs from the first image's "
                f"{arrays['imgs'][0].shape[:0:-1]}; all images must have one size"
            )
        for key in ("groundTruth", "groundTruth2nd"):
            plane = read_binary(files[key][image_id])
            if plane.shape != image.shape[:2]:
                raise UserError(
                    f"{files[key][image_id]}: size {plane.shape[::-1]} differs from its image's {image.shape[1::-1]}"
                )
            arrays[key].append(plane[None])
        try:
            mask = detect_fov(image)
        except UserError as error:
            raise UserError(f"{path}: {error}") from None
        arrays["imgs"].append(image.transpose(2, 0, 1))
        arrays["borderMasks"].append(mask[None])
    return {key: np.stack(planes) for key, planes in arrays.items()} | {"ids": np.array(ids)}


def fov_preview(images: np.ndarray, masks: np.ndarray, ids, per_row: int = 5, tile_width: int = 350) -> np.ndarray:
    """One RGB picture: every image (N,3,H,W) scaled to ``tile_width``, its FOV mask (N,1,H,W) outlined in
    green, with its id and FOV share."""
    tiles = []
    for image, mask, image_id in zip(images, masks, ids, strict=True):
        scale = tile_width / image.shape[2]
        tile = cv2.resize(image.transpose(1, 2, 0), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        outline = cv2.resize(mask[0], tile.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(tile, contours, -1, (0, 255, 0), thickness=2)
        label = f"{image_id}  FOV {np.count_nonzero(mask) / mask.size:.1%}"
        for color, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(tile, label, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, color, thickness, cv2.LINE_AA)
        tiles.append(tile.transpose(2, 0, 1))
    per_row = min(per_row, len(tiles))
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % per_row)
    return group_images(np.stack(tiles), per_row)


def prepare(data: DataPaths, root) -> dict:
    """Read STARE from ``root`` and write the HDF5 files, the ids and the FOV preview into path_local.

    Returns the arrays (as ``read_stare``), ``written`` (the paths) and ``fov`` (lib.fov.fov_stats per image).
    """
    check_download_apart(data.path_local, root, "STARE")
    arrays = read_stare(root)
    written = [data.file(config_key) for config_key in OUTPUTS.values()]
    written += [data.path_local / IDS_FILE, data.path_local / PREVIEW_FILE]
    with atomic_group():  # every file or none: the ids must describe the HDF5 files beside them
        for key, config_key in OUTPUTS.items():
            write_hdf5(data.file(config_key), arrays[key])
        write_text(data.path_local / IDS_FILE, "".join(f"{image_id}\n" for image_id in arrays["ids"]))
        write_png(data.path_local / PREVIEW_FILE, fov_preview(arrays["imgs"], arrays["borderMasks"], arrays["ids"]))
    return arrays | {"written": written, "fov": [fov_stats(mask[0]) for mask in arrays["borderMasks"]]}


def prepared_ids(data: DataPaths) -> list[str]:
    """The ids prepare_datasets_STARE.py wrote, in the order of the HDF5 files."""
    path = data.path_local / IDS_FILE
    if not path.is_file():
        raise UserError(f"{path}: not found; run prepare_datasets_STARE.py first")
    ids = path.read_text().split()
    if not ids or not all(STARE_ID.fullmatch(image_id) for image_id in ids):
        raise UserError(f"{path}: not a list of STARE ids; re-run prepare_datasets_STARE.py")
    return ids


def load_stare(config) -> ImageSet:
    """The prepared STARE images preprocessed together (as published), with ground truth, second observer, FOV
    masks and their ids: what the leave-one-out and the cross-dataset test score."""
    data = load_test_set(config.data, config.testing, prepared_ids(config.data))
    if len(data.ids) < len(data.images) or data.second_observer is None:
        raise UserError(f"{config.data.path_local}: the STARE files are incomplete; re-run prepare_datasets_STARE.py")
    if len(data) < 2:
        raise UserError(f"{config.source}: [testing settings] full_images_to_test = 1; the leave-one-out needs 2")
    return data
