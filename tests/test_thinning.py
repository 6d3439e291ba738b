"""lib.thinning gives skimage.morphology.skeletonize's skeleton: every small pattern, random maps, vessel maps."""

import cv2
import numpy as np
import pytest
from skimage.morphology import skeletonize as reference

from lib.imageio import read_binary
from lib.synthetic import synthetic_fundus
from lib.thinning import skeletonize


def tiled(patterns: np.ndarray, gap: int = 1) -> np.ndarray:
    """Patterns side by side in one map, ``gap`` px of background apart: thinning looks at 3x3 neighbourhoods,
    so each is thinned as if alone, and one call covers them all."""
    count, height, width = patterns.shape
    per_row = int(np.ceil(np.sqrt(count)))
    cells = np.zeros((per_row * per_row, height + gap, width + gap), dtype=bool)
    cells[:count, :height, :width] = patterns
    rows = cells.reshape(per_row, per_row, height + gap, width + gap).transpose(0, 2, 1, 3)
    return rows.reshape(per_row * (height + gap), per_row * (width + gap))


def test_every_4x4_pattern_thins_as_skimage_thins_it():
    codes = np.arange(2**16)
    patterns = ((codes[:, None] >> np.arange(16)) & 1).astype(bool).reshape(-1, 4, 4)
    image = tiled(patterns)
    assert np.array_equal(skeletonize(image), reference(image))


@pytest.mark.parametrize("density", [0.3, 0.6, 0.9])
def test_random_maps_thin_as_skimage_thins_them(density):
    patterns = np.random.default_rng(round(density * 10)).random((400, 23, 31)) < density
    image = tiled(patterns, gap=2)
    assert np.array_equal(skeletonize(image), reference(image))


def test_thick_and_touching_shapes_at_the_map_edges():
    """Discs, bars and a frame that touch the map's edges (its pixels have background beyond them)."""
    image = np.zeros((120, 150), dtype=np.uint8)
    cv2.circle(image, (40, 60), 35, 255, -1)
    cv2.rectangle(image, (90, 0), (149, 25), 255, -1)
    cv2.line(image, (0, 119), (149, 70), 255, 9)
    image[:, :3] = 255
    assert np.array_equal(skeletonize(image), reference(image > 0))
    assert skeletonize(image).dtype == bool and skeletonize(image).shape == image.shape


def test_empty_and_full_maps():
    assert not skeletonize(np.zeros((5, 7), dtype=bool)).any()
    full = np.ones((9, 11), dtype=bool)
    assert np.array_equal(skeletonize(full), reference(full))


def test_a_synthetic_vessel_map_thins_as_skimage_thins_it():
    _, vessels, _ = synthetic_fundus(np.random.default_rng(4), 584, 565)
    enlarged = cv2.resize(vessels, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR) >= 128  # vessels ~10 px wide
    assert np.array_equal(skeletonize(enlarged), reference(enlarged))


def test_drive_manual_labels_thin_as_skimage_thins_them(drive_root):
    for path in sorted((drive_root / "test" / "1st_manual").glob("*.gif"))[:5]:
        label = read_binary(path) > 0
        assert np.array_equal(skeletonize(label), reference(label)), path.name
