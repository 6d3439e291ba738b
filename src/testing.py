"""The published test of an experiment: predict the test images, evaluate FOV pixels, save the pictures."""

import tempfile
import time
from pathlib import Path

import numpy as np

from lib import metrics as m
from lib.config import DataPaths, TestingSettings
from lib.datasets import load_hdf5, load_planes_of
from lib.errors import UserError
from lib.imageio import write_png, write_text
from lib.inference import Inference
from lib.preprocessing import preprocess
from lib.progress import progress
from lib.reports import drive_comparison, per_image_csv, per_image_summary
from lib.visualize import group_images, save_curve, save_grid, save_per_image_chart, to_uint8
from src.model import load_trained_model
from src.prediction import predict_image


def load_test_set(data: DataPaths, testing: TestingSettings) -> dict[str, np.ndarray]:
    """Test images preprocessed as one set (as published), ground truth 0/1 and FOV masks, first N images."""
    images = load_hdf5(data.file("test_imgs_original"), channels=3)
    truths = load_planes_of(data.file("test_groundTruth"), images)
    masks = load_planes_of(data.file("test_border_masks"), images)
    count = testing.full_images_to_test
    if count > images.shape[0]:
        raise UserError(
            f"{testing.source}: [testing settings] full_images_to_test = {count} but the test set holds "
            f"{images.shape[0]} images; lower it"
        )
    patch_hw = testing.inference.patch_hw
    if patch_hw[0] > images.shape[2] or patch_hw[1] > images.shape[3]:
        raise UserError(
            f"{testing.source}: [data attributes] patch {patch_hw} is larger than the test images "
            f"{images.shape[2:]}; use smaller patches"
        )
    test_set = {
        "images": preprocess(images)[:count],
        "truths": (truths[:count, 0] > 0).astype(np.uint8),
        "masks": (masks[:count, 0] > 0).astype(np.uint8),
    }
    check_evaluable(data, test_set)
    second = data.file("test_groundTruth_2nd")
    if second.is_file():
        observer = load_planes_of(second, images)
        test_set["second_observer"] = (observer[:count, 0] > 0).astype(np.uint8)
    return test_set


def check_evaluable(data: DataPaths, test_set: dict) -> None:
    """Each test image needs a field of view holding vessel and background pixels: its metrics (and the AUC of a
    STARE fold, tested on that image alone) are undefined otherwise. Checked before the long prediction."""
    for index, (truth, mask) in enumerate(zip(test_set["truths"], test_set["masks"], strict=True)):
        if not mask.any():
            raise UserError(
                f"{data.file('test_border_masks')}: the FOV mask of test image {index + 1} is all black (no pixel "
                "inside the field of view); re-run the prepare script with the dataset's masks"
            )
        if np.unique(truth[mask > 0]).size < 2:
            what = "vessel" if truth[mask > 0].any() else "background"
            raise UserError(
                f"{data.file('test_groundTruth')}: the ground truth of test image {index + 1} is all {what} inside "
                "its field of view, so no metric is defined for it; re-run the prepare script with the dataset's "
                "labels"
            )


def predict_images(
    model, images: np.ndarray, inference: Inference, masks: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """(N, H, W) vessel probabilities of preprocessed (N, 1, H, W) images, one at a time; seconds per image.

    With the (N, H, W) FOV ``masks``, patch mode skips the patches that hold no FOV pixel.
    """
    print(f"predicting {len(images)} images: {inference.describe()}", flush=True)
    start = time.perf_counter()
    predictions = [
        predict_image(model, image, inference, None if masks is None else masks[index])
        for index, image in enumerate(progress(images, "predicted"))
    ]
    return np.stack(predictions), (time.perf_counter() - start) / len(images)


def save_pictures(out_dir: Path, name: str, per_row: int, test_set: dict, predictions: np.ndarray) -> None:
    """The published pictures: all originals/predictions/ground truths and the per-group comparison strips."""
    per_row = min(per_row, len(predictions))
    shown = predictions * test_set["masks"]  # outside the FOV set to zero, for display only (published kill_border)
    groups = {"originals": test_set["images"][:, 0], "groundTruths": test_set["truths"], "predictions": shown}
    for label, stack in groups.items():
        save_grid(out_dir / f"all_{label}.png", _filled(stack, per_row)[:, None], per_row)
    for index in range(0, len(predictions), per_row):
        write_png(
            out_dir / f"{name}_Original_GroundTruth_Prediction{index // per_row}.png",
            comparison_picture(test_set, predictions, index, per_row),
        )


def comparison_picture(test_set: dict, predictions: np.ndarray, start: int = 0, per_row: int = 1) -> np.ndarray:
    """Images ``start`` .. ``start + per_row - 1`` side by side, as published: pre-processed originals above
    ground truths above predictions (zero outside the FOV, for display only), as one uint8 picture."""
    chosen = slice(start, start + per_row)
    stacks = (
        test_set["images"][chosen, 0],
        test_set["truths"][chosen],
        predictions[chosen] * test_set["masks"][chosen],
    )
    stripes = [group_images(_filled(stack, per_row)[:, None], per_row) for stack in stacks]
    return to_uint8(np.concatenate(stripes, axis=0).astype(np.float64))


def _filled(stack: np.ndarray, per_row: int) -> np.ndarray:
    """Pad a stack of images with black ones so it fills whole rows."""
    missing = -len(stack) % per_row
    return np.concatenate([stack.astype(np.float64), np.zeros((missing, *stack.shape[1:]))]) if missing else stack


def evaluate_test_set(test_set: dict, predictions: np.ndarray) -> m.Evaluation:
    """The published metrics and curves on FOV pixels, with the second observer's figures as the human reference."""
    evaluation = m.evaluate_fov(test_set["truths"], predictions, test_set["masks"])
    if "second_observer" in test_set:
        evaluation.metrics["second_observer"] = human_reference(test_set)
    return evaluation


def ids_in_test_order(count: int) -> list[str]:
    """The ids of the first ``count`` test images. The HDF5 files hold no ids, so they are numbered in test-set
    order, 01, 02, ...: DRIVE's own test ids, which prepare_datasets_DRIVE.py writes in that order."""
    return [f"{number:02d}" for number in range(1, count + 1)]


def at_stored_threshold(test_set: dict, predictions: np.ndarray, stored: dict) -> dict:
    """The confusion-matrix figures at the threshold chosen on the validation patches, beside the published 0.5."""
    y_true = m.fov_pixels(test_set["truths"], test_set["masks"])
    chosen = m.binary_metrics(y_true, m.fov_pixels(predictions, test_set["masks"]) >= stored["threshold"])
    return {"threshold": stored["threshold"], "chosen_on": stored["chosen_on"]} | chosen


def human_reference(test_set: dict) -> dict:
    """The second observer against the ground truth on the FOV pixels: what a human scores."""
    y_true = m.fov_pixels(test_set["truths"], test_set["masks"])
    human = m.binary_metrics(y_true, m.fov_pixels(test_set["second_observer"], test_set["masks"]))
    return {key: human[key] for key in ("accuracy", "sensitivity", "specificity", "f1")}


def run_test(config, weights_path: Path | None = None, out_dir: Path | None = None) -> dict:
    """Test the experiment's best or last weights (or ``weights_path``) and write every result into ``out_dir``."""
    testing, experiment = config.testing, config.experiment
    weights_path = weights_path or experiment.weights(testing.best_last)
    out_dir = out_dir or experiment.folder
    test_set = load_test_set(config.data, testing)
    model = load_trained_model(weights_path, testing.inference.precision)
    check_writable(out_dir)
    print(f"testing {weights_path} on {len(test_set['images'])} images; results in {out_dir}/", flush=True)

    predictions, seconds_per_image = predict_images(model, test_set["images"], testing.inference, test_set["masks"])
    evaluation = evaluate_test_set(test_set, predictions)
    ids = ids_in_test_order(len(predictions))
    per_image = m.evaluate_each_image(test_set["truths"], predictions, test_set["masks"], ids)
    results = evaluation.metrics | per_image_summary(per_image) | {
        "weights": str(weights_path),
        "images": len(predictions),
        "seconds_per_image": seconds_per_image,
        "mode": testing.inference.record(),
    }
    stored = experiment.read_threshold() if weights_path.resolve() == experiment.weights("best").resolve() else None
    if stored is not None:
        results["stored_threshold"] = at_stored_threshold(test_set, predictions, stored)
    save_curve(
        out_dir / "ROC.png",
        *evaluation.roc,
        "ROC curve",
        "FPR (False Positive Rate)",
        "TPR (True Positive Rate)",
        f"Area Under the Curve (AUC = {results['auc_roc']:.4f})",
        diagonal=True,
    )
    save_curve(
        out_dir / "Precision_recall.png",
        *evaluation.pr,
        "Precision - Recall curve",
        "Recall",
        "Precision",
        f"Area Under the Curve (AUC = {results['auc_pr']:.4f})",
    )
    save_pictures(out_dir, config.name, testing.N_group_visual, test_set, predictions)
    write_text(out_dir / "per_image.csv", per_image_csv(per_image))
    save_per_image_chart(out_dir / "per_image.png", per_image)
    write_text(out_dir / "performances.txt", m.performances_text(results))
    timing = {"seconds_per_image"}  # varies run to run: printed, not written, so a rerun rewrites identical files
    write_text(out_dir / "performances.json", m.metrics_json({k: v for k, v in results.items() if k not in timing}))
    write_text(out_dir / "comparison.md", drive_comparison(results, f"this run ({weights_path.name})"))
    return results


def check_writable(folder: Path) -> None:
    """Fail before the long prediction, not after it, when results cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # removed on close
            pass
    except OSError as error:
        raise UserError(
            f"{folder}: results folder not writable ({error.strerror}); choose another folder (--output DIR) "
            "or fix its permissions"
        ) from None
