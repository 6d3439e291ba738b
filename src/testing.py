"""The published test of an experiment: predict the test images, evaluate FOV pixels, save the pictures."""

import tempfile
import time
from pathlib import Path

import numpy as np

from lib import metrics as m
from lib.atomic import folder_for, write_text
from lib.errors import UserError
from lib.experiment import TestResults
from lib.imageio import write_png
from lib.inference import Inference
from lib.progress import progress
from lib.reports import drive_comparison, per_image_csv, per_image_summary
from lib.test_set import ImageSet, load_test_set
from lib.visualize import group_images, save_curve, save_grid, save_per_image_chart, to_uint8
from src.engines import load_engine
from src.prediction import predict_image


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


def save_pictures(results: TestResults, per_row: int, test_set: ImageSet, predictions: np.ndarray) -> None:
    """The published pictures: all originals/predictions/ground truths and the per-group comparison strips."""
    per_row = min(per_row, len(predictions))
    shown = predictions * test_set.masks  # outside the FOV set to zero, for display only (published kill_border)
    groups = {"originals": test_set.images[:, 0], "groundTruths": test_set.truths, "predictions": shown}
    for label, stack in groups.items():
        save_grid(results.grid(label), _filled(stack, per_row)[:, None], per_row)
    for index in range(0, len(predictions), per_row):
        write_png(results.comparison_strip(index // per_row), comparison_picture(test_set, predictions, index, per_row))


def comparison_picture(test_set: ImageSet, predictions: np.ndarray, start: int = 0, per_row: int = 1) -> np.ndarray:
    """Images ``start`` .. ``start + per_row - 1`` side by side, as published: pre-processed originals above
    ground truths above predictions (zero outside the FOV, for display only), as one uint8 picture."""
    chosen = slice(start, start + per_row)
    stacks = (
        test_set.images[chosen, 0],
        test_set.truths[chosen],
        predictions[chosen] * test_set.masks[chosen],
    )
    stripes = [group_images(_filled(stack, per_row)[:, None], per_row) for stack in stacks]
    return to_uint8(np.concatenate(stripes, axis=0).astype(np.float64))


def _filled(stack: np.ndarray, per_row: int) -> np.ndarray:
    """Pad a stack of images with black ones so it fills whole rows."""
    missing = -len(stack) % per_row
    return np.concatenate([stack.astype(np.float64), np.zeros((missing, *stack.shape[1:]))]) if missing else stack


def evaluate_test_set(test_set: ImageSet, predictions: np.ndarray) -> m.Evaluation:
    """The published metrics and curves on FOV pixels, with the second observer's figures as the human reference."""
    evaluation = m.evaluate_fov(test_set.truths, predictions, test_set.masks)
    if test_set.second_observer is not None:
        evaluation.metrics["second_observer"] = human_reference(test_set)
    return evaluation


def at_stored_threshold(test_set: ImageSet, predictions: np.ndarray, stored: dict) -> dict:
    """The confusion-matrix figures at the threshold chosen on the validation patches, beside the published 0.5."""
    y_true = m.fov_pixels(test_set.truths, test_set.masks)
    chosen = m.binary_metrics(y_true, m.fov_pixels(predictions, test_set.masks) >= stored["threshold"])
    return {"threshold": stored["threshold"], "chosen_on": stored["chosen_on"]} | chosen


def human_reference(test_set: ImageSet) -> dict:
    """The second observer against the ground truth on the FOV pixels: what a human scores."""
    y_true = m.fov_pixels(test_set.truths, test_set.masks)
    human = m.binary_metrics(y_true, m.fov_pixels(test_set.second_observer, test_set.masks))
    return {key: human[key] for key in ("accuracy", "sensitivity", "specificity", "f1")}


def run_test(config, weights_path: Path | None = None, out_dir: Path | None = None) -> dict:
    """Test the experiment's best or last weights (or ``weights_path``) and write every result into ``out_dir``."""
    testing, experiment = config.testing, config.experiment
    weights_path = weights_path or experiment.weights(testing.best_last)
    results_folder = TestResults(out_dir or experiment.folder, experiment.name)
    test_set = load_test_set(config.data, testing)
    check_writable(results_folder.folder)  # before the engine, which may build its model beside the weights
    model = load_engine(weights_path, testing.inference)
    print(f"testing {weights_path} on {len(test_set)} images; results in {results_folder.folder}/", flush=True)

    predictions, seconds_per_image = predict_images(model, test_set.images, testing.inference, test_set.masks)
    evaluation = evaluate_test_set(test_set, predictions)
    per_image = m.evaluate_each_image(test_set.truths, predictions, test_set.masks, test_set.ids)
    results = (
        evaluation.metrics
        | per_image_summary(per_image)
        | {
            "weights": str(weights_path),
            "images": len(predictions),
            "seconds_per_image": seconds_per_image,
            "mode": testing.inference.record(),
        }
    )
    stored = experiment.read_threshold() if weights_path.resolve() == experiment.weights("best").resolve() else None
    if stored is not None:
        results["stored_threshold"] = at_stored_threshold(test_set, predictions, stored)
    save_curve(
        results_folder.roc,
        *evaluation.roc,
        "ROC curve",
        "FPR (False Positive Rate)",
        "TPR (True Positive Rate)",
        f"Area Under the Curve (AUC = {results['auc_roc']:.4f})",
        diagonal=True,
    )
    save_curve(
        results_folder.precision_recall,
        *evaluation.pr,
        "Precision - Recall curve",
        "Recall",
        "Precision",
        f"Area Under the Curve (AUC = {results['auc_pr']:.4f})",
    )
    save_pictures(results_folder, testing.N_group_visual, test_set, predictions)
    write_text(results_folder.per_image_table, per_image_csv(per_image))
    save_per_image_chart(results_folder.per_image_chart, per_image)
    write_text(results_folder.performances, m.performances_text(results))
    timing = {"seconds_per_image"}  # varies run to run: printed, not written, so a rerun rewrites identical files
    write_text(results_folder.performances_json, m.metrics_json({k: v for k, v in results.items() if k not in timing}))
    write_text(results_folder.comparison, drive_comparison(results, f"this run ({weights_path.name})"))
    return results


def check_writable(folder: Path) -> None:
    """Fail before the long prediction, not after it, when results cannot be written; the folders made to find
    out are removed again (the results' writers make them), so that a run failing later leaves none behind."""
    try:
        with folder_for(folder), tempfile.TemporaryFile(dir=folder):  # removed on close
            pass
    except OSError as error:
        raise UserError(
            f"{folder}: results folder not writable ({error.strerror}); choose another folder (--output DIR) "
            "or fix its permissions"
        ) from None
