"""The pictures: tiling as the published group_images, PNG writing, curves."""

import numpy as np
import pytest
from PIL import Image

from lib import visualize
from lib.published import group_images


@pytest.mark.parametrize("shape, per_row", [((6, 1, 4, 5), 3), ((4, 3, 2, 3), 2), ((5, 1, 3, 3), 5), ((3, 1, 2, 2), 1)])
def test_group_images_equals_the_published_tiling(shape, per_row):
    images = np.random.default_rng(0).random(shape)
    np.testing.assert_array_equal(visualize.group_images(images, per_row), group_images(images, per_row))


def test_group_images_needs_whole_rows():
    with pytest.raises(ValueError, match="rows"):
        visualize.group_images(np.zeros((5, 1, 2, 2)), 2)


def test_to_uint8_scales_probabilities_and_keeps_gray_levels():
    np.testing.assert_array_equal(visualize.to_uint8(np.array([[[0.0], [0.5], [1.0]]])), [[0, 128, 255]])
    np.testing.assert_array_equal(visualize.to_uint8(np.array([[0.0, 2.0, 255.0]])), [[0, 2, 255]])
    assert visualize.to_uint8(np.zeros((2, 2, 3))).shape == (2, 2, 3)


def test_save_grid_writes_a_png(tmp_path):
    images = np.random.default_rng(1).random((4, 1, 6, 7))
    path = tmp_path / "grid.png"
    visualize.save_grid(path, images, 2)
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.size == (14, 12) and picture.mode == "L"
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_save_curve_writes_a_png(tmp_path):
    path = tmp_path / "ROC.png"
    visualize.save_curve(path, np.linspace(0, 1, 5), np.linspace(0, 1, 5) ** 0.5, "ROC", "FPR", "TPR", "AUC", True)
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.size == (600, 600)


def test_training_curves_from_a_history_with_a_resume_and_a_missing_value(tmp_path):
    """The history as CSVLogger writes it (epochs 0.., "NA" where Keras lacked a value) becomes one picture."""
    from lib.experiment import Experiment

    experiment = Experiment(tmp_path, "exp")
    experiment.history.write_text(
        "epoch,accuracy,loss,minutes,val_accuracy,val_loss\n"
        "0,0.90,0.30,1.0,0.92,0.25\n1,0.93,0.20,NA,0.94,0.18\n2,0.94,0.18,0.5,0.95,0.19\n"
    )
    history = experiment.read_history()
    assert history["val_loss"] == [0.25, 0.18, 0.19] and np.isnan(history["minutes"][1])
    assert experiment.training_minutes() == 1.5  # 1.0 before the resume, 0.5 after
    visualize.save_training_curves(experiment.training_curves, history)
    with Image.open(tmp_path / "training_curves.png") as picture:
        assert picture.format == "PNG" and picture.size == (1100, 450)


def test_per_image_chart(tmp_path):
    rows = [{"id": f"{i:02d}", "auc_roc": 0.95 + i / 1000, "f1": 0.8 - i / 100} for i in range(1, 21)]
    visualize.save_per_image_chart(tmp_path / "per_image.png", rows)
    with Image.open(tmp_path / "per_image.png") as picture:
        assert picture.format == "PNG" and picture.size == (900, 650)
    assert [p.name for p in tmp_path.iterdir()] == ["per_image.png"]
