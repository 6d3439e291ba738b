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
