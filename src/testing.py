"""The published test of an experiment: predict the test images, evaluate FOV pixels, save the pictures."""

import tempfile
import time
from pathlib import Path

import numpy as np

from lib import metrics as m
from lib.datasets import load_hdf5
from lib.errors import UserError
from lib.imageio import write_png, write_text
from lib.preprocessing import preprocess
from lib.progress import progress
from lib.visualize import group_images, save_curve, save_grid, to_uint8
from src.model import load_trained_model
from src.prediction import predict_by_patches, predict_whole


def load_test_set(config) -> dict[str, np.ndarray]:
    """Test images preprocessed as one set (as published), ground truth 0/1 and FOV masks, first N images."""
    images = load_hdf5(config.data_file("test_imgs_original"), channels=3)
    truths = load_hdf5(config.data_file("test_groundTruth"), channels=1)
    masks = load_hdf5(config.data_file("test_border_masks"), channels=1)
    for name, array in (("test_groundTruth", truths), ("test_border_masks", masks)):
        if array.shape[0] != images.shape[0] or array.shape[2:] != images.shape[2:]:
            raise UserError(
                f"{config.data_file(name)}: shape {array.shape} does not match the test images "
                f"{images.shape}; re-run the prepare script"
            )
    count = config.full_images_to_test
    if count > images.shape[0]:
        raise UserError(
            f"{config.source}: [testing settings] full_images_to_test = {count} but the test set holds "
            f"{images.shape[0]} images; lower it"
        )
    patch_hw = (config.patch_height, config.patch_width)
    if patch_hw[0] > images.shape[2] or patch_hw[1] > images.shape[3]:
        raise UserError(
            f"{config.source}: [data attributes] patch {patch_hw} is larger than the test images "
            f"{images.shape[2:]}; use smaller patches"
        )
    test_set = {
        "images": preprocess(images)[:count],
        "truths": (truths[:count, 0] > 0).astype(np.uint8),
        "masks": (masks[:count, 0] > 0).astype(np.uint8),
    }
    second = config.data_file("test_groundTruth_2nd")
    if second.is_file():
        observer = load_hdf5(second, channels=1)
        if observer.shape[0] != images.shape[0] or observer.shape[2:] != images.shape[2:]:
            raise UserError(
                f"{second}: shape {observer.shape} does not match the test images {images.shape}; "
                "re-run the prepare script"
            )
        test_set["second_observer"] = (observer[:count, 0] > 0).astype(np.uint8)
    return test_set


def predict_test_set(config, model, images: np.ndarray, masks: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """(N, H, W) vessel probabilities by the configured mode, one image at a time; seconds per image.

    With the (N, H, W) FOV ``masks``, patch modes skip the patches that hold no FOV pixel.
    """
    patch_hw = (config.patch_height, config.patch_width)
    if config.whole_image:
        mode = "whole image" + (" + flips" if config.flip_tta else "")
    elif config.average_mode:
        mode = f"patches {patch_hw[0]}x{patch_hw[1]}, stride {config.stride_height}x{config.stride_width}, averaged"
    else:
        mode = f"patches {patch_hw[0]}x{patch_hw[1]}, no overlap"
    print(f"predicting {len(images)} test images: {mode}", flush=True)
    stride_hw = (config.stride_height, config.stride_width) if config.average_mode else patch_hw
    start = time.perf_counter()
    predictions = []
    for index, image in enumerate(progress(images, "predicted")):
        if config.whole_image:
            predictions.append(predict_whole(model, image, config.flip_tta))
        else:
            fov = None if masks is None else masks[index]
            predictions.append(predict_by_patches(model, image, patch_hw, stride_hw, config.predict_batch_size, fov))
    return np.stack(predictions), (time.perf_counter() - start) / len(images)


def save_pictures(config, out_dir: Path, test_set: dict, predictions: np.ndarray) -> None:
    """The published pictures: all originals/predictions/ground truths and the per-group comparison strips."""
    per_row = min(config.N_group_visual, len(predictions))
    shown = predictions * test_set["masks"]  # outside the FOV set to zero, for display only (published kill_border)
    groups = {"originals": test_set["images"][:, 0], "groundTruths": test_set["truths"], "predictions": shown}
    for label, stack in groups.items():
        save_grid(out_dir / f"all_{label}.png", _filled(stack, per_row)[:, None], per_row)
    for index in range(0, len(predictions), per_row):
        write_png(
            out_dir / f"{config.name}_Original_GroundTruth_Prediction{index // per_row}.png",
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


def evaluate_predictions(test_set: dict, predictions: np.ndarray) -> dict:
    """The published metrics on FOV pixels, with the second observer's figures as the human reference."""
    results = m.evaluate(
        m.fov_pixels(test_set["truths"], test_set["masks"]), m.fov_pixels(predictions, test_set["masks"])
    )
    if "second_observer" in test_set:
        results["second_observer"] = human_reference(test_set)
    return results


def human_reference(test_set: dict) -> dict:
    """The second observer against the ground truth on the FOV pixels: what a human scores."""
    y_true = m.fov_pixels(test_set["truths"], test_set["masks"])
    human = m.binary_metrics(y_true, m.fov_pixels(test_set["second_observer"], test_set["masks"]))
    return {key: human[key] for key in ("accuracy", "sensitivity", "specificity", "f1")}


PUBLISHED_DRIVE_AUC = (  # the published README's DRIVE comparison (AUC ROC)
    ("Soares et al.", 0.9614),
    ("Azzopardi et al.", 0.9614),
    ("Osareh et al.", 0.9650),
    ("Roychowdhury et al.", 0.9670),
    ("Fraz et al.", 0.9747),
    ("Qiaoliang et al.", 0.9738),
    ("Melinscak et al.", 0.9749),
    ("Liskowski et al.", 0.9790),
    ("published retina-unet", 0.9790),
)


def comparison_markdown(results: dict, label: str) -> str:
    """The published DRIVE table with this run inserted, and the second observer as the human reference."""
    rows = [(name, f"{auc:.4f}", "", "", "") for name, auc in PUBLISHED_DRIVE_AUC]
    rows.append(
        (
            f"**{label}**",
            f"**{results['auc_roc']:.4f}**",
            f"{results['accuracy']:.4f}",
            f"{results['sensitivity']:.4f}",
            f"{results['specificity']:.4f}",
        )
    )
    rows.sort(key=lambda row: float(row[1].strip("*")))
    if "second_observer" in results:
        human = results["second_observer"]
        rows.append(
            (
                "2nd human observer (reference)",
                "",
                f"{human['accuracy']:.4f}",
                f"{human['sensitivity']:.4f}",
                f"{human['specificity']:.4f}",
            )
        )
    lines = ["| Method | AUC ROC | Accuracy | Sensitivity | Specificity |", "|---|---|---|---|---|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def run_test(config, weights_path: Path | None = None, out_dir: Path | None = None) -> dict:
    """Test the experiment's best or last weights (or ``weights_path``) and write every result into ``out_dir``."""
    experiment = config.experiment_dir
    if weights_path is None:
        weights_path = experiment / f"{config.name}_{config.best_last}.weights.h5"
    out_dir = out_dir or experiment
    test_set = load_test_set(config)
    model = load_trained_model(weights_path, config.test_precision)
    check_writable(out_dir)
    print(f"testing {weights_path} on {len(test_set['images'])} images; results in {out_dir}/", flush=True)

    predictions, seconds_per_image = predict_test_set(config, model, test_set["images"], test_set["masks"])
    results = evaluate_predictions(test_set, predictions)
    results |= {
        "weights": str(weights_path),
        "images": len(predictions),
        "seconds_per_image": seconds_per_image,
        "mode": prediction_mode(config),
    }

    y_true = m.fov_pixels(test_set["truths"], test_set["masks"])
    y_score = m.fov_pixels(predictions, test_set["masks"])
    save_curve(
        out_dir / "ROC.png",
        *m.roc_points(y_true, y_score),
        "ROC curve",
        "FPR (False Positive Rate)",
        "TPR (True Positive Rate)",
        f"Area Under the Curve (AUC = {results['auc_roc']:.4f})",
        diagonal=True,
    )
    save_curve(
        out_dir / "Precision_recall.png",
        *m.pr_points(y_true, y_score),
        "Precision - Recall curve",
        "Recall",
        "Precision",
        f"Area Under the Curve (AUC = {results['auc_pr']:.4f})",
    )
    save_pictures(config, out_dir, test_set, predictions)
    write_text(out_dir / "performances.txt", m.performances_text(results))
    write_text(out_dir / "performances.json", m.metrics_json(results))
    write_text(out_dir / "comparison.md", comparison_markdown(results, f"this run ({weights_path.name})"))
    return results


def prediction_mode(config) -> dict:
    """The [testing settings] that decide how predictions were made, for the results files."""
    return {
        "whole_image": config.whole_image,
        "flip_tta": config.flip_tta,
        "average_mode": config.average_mode,
        "stride": [config.stride_height, config.stride_width],
        "precision": config.test_precision,
    }


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
