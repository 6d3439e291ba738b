"""The reference experiment shipped in test/: its files, its recorded result, and its weights on real DRIVE."""

import json
from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(__file__).resolve().parents[1] / "test"
PUBLISHED_AUC = 0.9790


def test_the_reference_experiment_is_complete():
    for name in (
        "configuration.txt",
        "test_architecture.json",
        "test_best.weights.h5",
        "test_last.weights.h5",
        "training.log",
        "training_history.csv",
        "training_curves.png",
        "performances.txt",
        "performances.json",
        "ROC.png",
        "Precision_recall.png",
        "comparison.md",
        "per_image.csv",
        "per_image.png",
        "test_threshold.json",
    ):
        assert (REFERENCE / name).is_file(), name
    for weights in REFERENCE.glob("*.weights.h5"):
        assert weights.stat().st_size < 3_000_000, "weights only, no optimizer state"


def test_the_recorded_result_reaches_the_published_auc_and_matches_the_readme():
    results = json.loads((REFERENCE / "performances.json").read_text())
    assert results["auc_roc"] >= PUBLISHED_AUC
    assert results["images"] == 20 and results["mode"] == {
        "mode": "patches", "patch": [48, 48], "stride": [5, 5], "precision": "float32"}  # averaged overlapping patches
    readme = (REFERENCE.parent / "README.md").read_text()
    assert f"{results['auc_roc']:.11f}" in (REFERENCE / "performances.txt").read_text()
    assert f"**{results['auc_roc']:.4f}**" in readme
    assert f"{results['f1']:.4f}" in readme and f"{results['sensitivity']:.4f}" in readme
    # the per-image mean ± std beside the pooled figures, and the table it comes from
    mean, std = results["per_image_mean"], results["per_image_std"]
    assert f"| {mean['auc_roc']:.4f} ± {std['auc_roc']:.4f} |" in readme
    table = (REFERENCE / "per_image.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in table[1:]] == [f"{i:02d}" for i in range(1, 21)] + ["mean", "std"]
    assert table[-2].split(",")[1] == f"{mean['auc_roc']:.6f}"


def test_the_stored_threshold_was_chosen_on_the_validation_patches_and_is_in_the_readme():
    stored = json.loads((REFERENCE / "test_threshold.json").read_text())
    assert 0 < stored["threshold"] < 1 and stored["f1"] >= stored["f1_at_published_threshold"]
    assert stored["validation_patches"] == 2000 and "validation patches" in stored["chosen_on"]
    assert stored["weights_epoch"] == 15  # the epoch of test_best.weights.h5: the lowest validation loss
    assert f"{stored['threshold']:.4f}" in (REFERENCE.parent / "README.md").read_text()


@pytest.mark.slow  # the 20 real DRIVE test images
def test_the_shipped_weights_segment_real_drive(drive_root):
    """Whole-image prediction of the 20 DRIVE test images with the shipped weights (fast) is at the published level."""
    from lib.datasets import read_drive_split
    from lib.metrics import evaluate_fov
    from lib.preprocessing import preprocess
    from src.model import load_trained_model
    from src.prediction import predict_whole

    test = read_drive_split(drive_root, "test")
    images = preprocess(test["imgs"])
    model = load_trained_model(REFERENCE / "test_best.weights.h5")
    predictions = np.stack([predict_whole(model, image) for image in images])
    masks = test["borderMasks"][:, 0]
    results = evaluate_fov(test["groundTruth"][:, 0] > 0, predictions, masks).metrics
    assert results["auc_roc"] > 0.978  # measured 0.9803 (whole image); 0.9803 at stride 5
    assert results["accuracy"] > 0.95 and results["f1"] > 0.8
