"""Each preprocessing step against hand-computed values, and the whole chain against the published my_PreProc."""

import cv2
import numpy as np
import pytest

from lib import preprocessing as pre
from lib.published import my_PreProc


def test_gray_weights_are_the_published_luma():
    images = np.zeros((2, 3, 1, 3), dtype=np.uint8)
    images[0, 0, 0, 0] = 100  # pure red
    images[0, 1, 0, 1] = 100  # pure green
    images[0, 2, 0, 2] = 100  # pure blue
    images[1, :, 0, 0] = (10, 20, 30)
    gray = pre.rgb_to_gray(images)
    assert gray.shape == (2, 1, 1, 3)
    assert gray.dtype == np.float64
    np.testing.assert_allclose(gray[0, 0, 0], [29.9, 58.7, 11.4], rtol=1e-12)
    assert gray[1, 0, 0, 0] == pytest.approx(10 * 0.299 + 20 * 0.587 + 30 * 0.114, rel=1e-12)
    assert pre.GRAY_WEIGHTS == (0.299, 0.587, 0.114)


def test_gray_does_not_overflow_uint8():
    images = np.full((1, 3, 2, 2), 255, dtype=np.uint8)
    np.testing.assert_allclose(pre.rgb_to_gray(images), 255.0, rtol=1e-12)


def test_standardize_uses_dataset_statistics_then_per_image_min_max():
    images = np.array([[[[0.0, 1.0, 2.0]]], [[[4.0, 6.0, 8.0]]]])  # (2, 1, 1, 3)
    result = pre.standardize(images)
    # Min-max after the shared standardisation is an affine map per image, so each image spans 0..255
    np.testing.assert_allclose(result[0, 0, 0], [0.0, 127.5, 255.0], rtol=1e-12)
    np.testing.assert_allclose(result[1, 0, 0], [0.0, 127.5, 255.0], rtol=1e-12)
    # ... and by hand, with the dataset's mean (3.5) and std
    data = images.ravel()
    z = (data - data.mean()) / data.std()
    first = (z[:3] - z[:3].min()) / (z[:3].max() - z[:3].min()) * 255
    np.testing.assert_array_equal(result[0, 0, 0], first)


def test_standardize_is_not_per_image_standardisation():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (3, 1, 5, 7))
    expected = (images - images.mean()) / images.std()
    expected = np.stack([(e - e.min()) / (e.max() - e.min()) * 255 for e in expected])
    np.testing.assert_array_equal(pre.standardize(images), expected)


@pytest.mark.parametrize("i", [0, 1, 64, 128, 200, 254, 255])
def test_gamma_table_by_hand(i):
    table = pre.gamma_table(1.2)
    assert table.dtype == np.uint8 and table.shape == (256,)
    assert table[i] == int(((i / 255) ** (1 / 1.2)) * 255)


def test_gamma_table_known_values():
    table = pre.gamma_table(1.2)
    # ((128/255) ** (1/1.2)) * 255 = 143.49..., truncated
    assert (table[0], table[128], table[255]) == (0, 143, 255)
    np.testing.assert_array_equal(pre.gamma_table(1.0), np.arange(256))


def test_adjust_gamma_truncates_floats():
    table = pre.gamma_table(1.2)
    images = np.array([[[[100.9, 100.0, 0.99, 254.999, 255.0]]]])
    result = pre.adjust_gamma(images, 1.2)
    assert result.dtype == np.float64
    np.testing.assert_array_equal(result[0, 0, 0], [table[100], table[100], table[0], table[254], table[255]])


def test_clahe_equals_opencv_on_the_uint8_truncation():
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255.99, (2, 1, 40, 52))
    result = pre.clahe(images)
    equalizer = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    for image, out in zip(images, result, strict=True):
        np.testing.assert_array_equal(out[0], equalizer.apply(image[0].astype(np.uint8)))
    assert result.dtype == np.float64 and result.shape == images.shape


@pytest.mark.parametrize("shape", [(2, 3, 33, 41), (3, 3, 64, 64)])
def test_preprocess_equals_published_my_preproc(shape):
    rng = np.random.default_rng(sum(shape))
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    ours = pre.preprocess(images)
    published = my_PreProc(images)
    assert ours.dtype == np.float32 and ours.shape == (shape[0], 1, *shape[2:])
    np.testing.assert_array_equal(ours, published.astype(np.float32))
    assert 0.0 <= ours.min() and ours.max() <= 1.0


def test_preprocess_on_float64_input_as_the_published_hdf5_stored_it():
    """The published prepare script stored float64 arrays; the result is the same as from uint8."""
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (2, 3, 20, 24), dtype=np.uint8)
    np.testing.assert_array_equal(pre.preprocess(images.astype(np.float64)), pre.preprocess(images))


@pytest.mark.parametrize(
    "step, shape",
    [(pre.rgb_to_gray, (1, 1, 4, 4)), (pre.standardize, (1, 3, 4, 4)), (pre.clahe, (4, 4)), (pre.adjust_gamma, (1, 2))],
)
def test_steps_reject_wrong_shapes(step, shape):
    with pytest.raises(ValueError, match="expected a batch"):
        step(np.zeros(shape))
