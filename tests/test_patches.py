"""Patch sampling, overlapping extraction and reassembly against the published extract_patches.py."""

import math

import numpy as np
import pytest

from lib import patches as p
from lib.published import extract_ordered_overlap, paint_border, paint_border_overlap, recompone_overlap


def coordinate_images(count, height, width):
    """int64 images whose every pixel encodes (image, row, column) as image * 1e6 + row * 1000 + column."""
    index, rows, cols = np.meshgrid(np.arange(count), np.arange(height), np.arange(width), indexing="ij")
    return (index * 1_000_000 + rows * 1000 + cols)[:, None].astype(np.int64)


# ------------------------------------------------------------------ random training patches


def centres_of(candidates, width):
    return np.stack(np.divmod(candidates, width), axis=1)


def test_allowed_centres_are_the_published_inclusive_range():
    height, width, (ph, pw) = 30, 25, (8, 6)
    centres = centres_of(p.allowed_centres((height, width), (ph, pw)), width)
    # published: random.randint(0 + int(p/2), size - int(p/2)), both ends included
    expected = {(y, x) for y in range(ph // 2, height - ph // 2 + 1) for x in range(pw // 2, width - pw // 2 + 1)}
    assert set(map(tuple, centres.tolist())) == expected
    assert len(centres) == len(expected)


def test_random_centres_are_uniform_and_reach_both_ends():
    height, width, (ph, pw) = 30, 25, (8, 6)
    candidates = p.allowed_centres((height, width), (ph, pw))
    centres = p.sample_centres(np.random.default_rng(0), candidates, 20000, width)
    assert centres.shape == (20000, 2) and centres.dtype.kind == "i"
    ys, xs = centres[:, 0], centres[:, 1]
    assert (ys.min(), ys.max()) == (4, 26)
    assert (xs.min(), xs.max()) == (3, 22)
    counts = np.bincount(ys)[4:]
    assert len(counts) == 23 and counts.min() > 0.7 * counts.mean()  # uniform, not biased to the middle


def test_patches_larger_than_the_image_are_rejected():
    with pytest.raises(ValueError, match="larger than the image"):
        p.allowed_centres((10, 10), (12, 4))


def test_inside_fov_radius_is_fov_minus_half_the_diagonal():
    assert p.DRIVE_FOV_RADIUS == 270
    assert p.fov_radius_for_patch((48, 48)) == pytest.approx(270 - math.hypot(48, 48) / 2)
    assert p.fov_radius_for_patch((16, 32)) == pytest.approx(270 - math.hypot(16, 32) / 2)
    # within a pixel of the published 270 - int(patch_h * sqrt(2) / 2) for square patches
    assert abs(p.fov_radius_for_patch((48, 48)) - (270 - int(48 * math.sqrt(2) / 2))) < 1


def test_inside_fov_radius_keeps_the_whole_patch_in_the_disc():
    size, patch = (565, 565), (48, 48)
    radius = p.fov_radius_for_patch(patch)
    centres = centres_of(p.allowed_centres(size, patch, radius), size[1])
    distances = np.hypot(centres[:, 1] - 282, centres[:, 0] - 282)
    assert distances.max() < radius
    # exactly the published is_patch_inside_FOV test, with the exact radius
    grid_y, grid_x = np.mgrid[24:542, 24:542]
    expected = np.hypot(grid_x - 282, grid_y - 282) < radius
    assert len(centres) == expected.sum()
    for dy in (-24, 23):  # every corner of every patch lies inside the 270 px FOV
        for dx in (-24, 23):
            assert np.hypot(centres[:, 1] + dx - 282, centres[:, 0] + dy - 282).max() < 270


def test_inside_fov_mask_allows_exactly_the_patches_inside_the_mask():
    rng = np.random.default_rng(4)
    fov = rng.random((20, 23)) < 0.93
    fov[5:15, 4:16] = True
    patch = (4, 6)
    ours = set(p.allowed_centres(fov.shape, patch, fov).tolist())
    brute = {
        y * fov.shape[1] + x
        for y in range(2, 20 - 2 + 1)
        for x in range(3, 23 - 3 + 1)
        if fov[y - 2 : y + 2, x - 3 : x + 3].all()
    }
    assert ours == brute and ours


def test_a_patch_that_fits_nowhere_is_an_error():
    with pytest.raises(ValueError, match="field of view"):
        p.allowed_centres((40, 40), (8, 8), np.zeros((40, 40), dtype=bool))


def test_extract_random_patches_are_image_slices_in_image_order():
    count, height, width, (ph, pw) = 3, 40, 36, (8, 12)
    images = coordinate_images(count, height, width)
    labels = images + 7
    out, out_labels = p.extract_random(images, labels, 30, (ph, pw), np.random.default_rng(5))
    assert out.shape == (30, 1, ph, pw) and out_labels.shape == (30, 1, ph, pw)
    assert out.dtype == images.dtype
    np.testing.assert_array_equal(out_labels, out + 7)
    for k, patch in enumerate(out):
        top_left = patch[0, 0, 0]
        image, y0, x0 = top_left // 1_000_000, top_left // 1000 % 1000, top_left % 1000
        assert image == k // 10  # 10 patches per image, image by image
        np.testing.assert_array_equal(patch, images[image, :, y0 : y0 + ph, x0 : x0 + pw])
        # the centre lies in the published range [p/2, size - p/2]
        assert ph // 2 <= y0 + ph // 2 <= height - ph // 2
        assert pw // 2 <= x0 + pw // 2 <= width - pw // 2


def test_extract_random_crops_around_the_sampled_centres_image_by_image():
    images = coordinate_images(2, 30, 30)
    out, _ = p.extract_random(images, images, 8, (6, 6), np.random.default_rng(9))
    rng = np.random.default_rng(9)
    candidates = p.allowed_centres((30, 30), (6, 6))
    for index in range(2):
        for k, (y, x) in enumerate(p.sample_centres(rng, candidates, 4, 30)):
            np.testing.assert_array_equal(out[index * 4 + k], images[index, :, y - 3 : y + 3, x - 3 : x + 3])


def test_extract_random_reaches_both_ends():
    images = coordinate_images(1, 20, 20)
    out, _ = p.extract_random(images, images, 4000, (4, 4), np.random.default_rng(1))
    tops = out[:, 0, 0, 0] // 1000 % 1000
    assert tops.min() == 0 and tops.max() == 16  # the last patch touches the bottom row


def test_extract_random_inside_fov_on_drive_sized_images():
    images = coordinate_images(1, 565, 565)
    radius = p.fov_radius_for_patch((48, 48))
    out, _ = p.extract_random(images, images, 500, (48, 48), np.random.default_rng(3), radius)
    centres_y = out[:, 0, 24, 24] // 1000 % 1000
    centres_x = out[:, 0, 24, 24] % 1000
    assert np.hypot(centres_x - 282, centres_y - 282).max() < radius


def test_extract_random_inside_fov_masks_stays_in_each_images_mask():
    images = coordinate_images(2, 40, 40)
    masks = np.zeros((2, 1, 40, 40), dtype=bool)
    masks[0, 0, :20] = True  # top half
    masks[1, 0, 20:] = True  # bottom half
    out, _ = p.extract_random(images, images, 200, (8, 8), np.random.default_rng(0), masks)
    rows = out[:, 0] // 1000 % 1000
    assert rows[:100].max() < 20 and rows[100:].min() >= 20


def test_extract_random_needs_a_multiple_of_the_image_count():
    images = np.zeros((3, 1, 20, 20))
    with pytest.raises(ValueError, match="multiple"):
        p.extract_random(images, images, 10, (4, 4), np.random.default_rng(0))


def test_extract_random_is_reproducible_with_a_seed():
    rng = np.random.default_rng(0)
    images = rng.random((2, 1, 30, 30))
    labels = (images > 0.5).astype(np.uint8)
    first = p.extract_random(images, labels, 20, (8, 8), np.random.default_rng(42))
    second = p.extract_random(images, labels, 20, (8, 8), np.random.default_rng(42))
    other = p.extract_random(images, labels, 20, (8, 8), np.random.default_rng(43))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other[0])


# ------------------------------------------------------------------ overlapping patches (test time)


def test_overlap_padding_of_drive_equals_paint_border_overlap():
    assert p.overlap_padding((584, 565), (48, 48), (5, 5)) == (4, 3)
    image = np.random.default_rng(0).random((1, 584, 565))
    padded = p.pad_bottom_right(image, p.overlap_padding((584, 565), (48, 48), (5, 5)))
    published = paint_border_overlap(image[None], 48, 48, 5, 5)[0]
    assert padded.shape == published.shape == (1, 588, 568)
    np.testing.assert_array_equal(padded, published)


def test_stride_equal_to_patch_is_the_published_paint_border():
    pad = p.overlap_padding((584, 565), (48, 48), (48, 48))
    assert (584 + pad[0], 565 + pad[1]) == (624, 576)
    image = np.random.default_rng(0).random((1, 584, 565))
    np.testing.assert_array_equal(p.pad_bottom_right(image, pad), paint_border(image[None], 48, 48)[0])


@pytest.mark.parametrize(
    "size, patch, stride",
    [
        ((50, 47), (16, 16), (5, 5)),
        ((32, 32), (16, 16), (16, 16)),
        ((33, 40), (8, 12), (3, 7)),
        ((16, 16), (16, 16), (4, 4)),
    ],
)
def test_overlap_padding_equals_paint_border_overlap(size, patch, stride):
    image = np.random.default_rng(0).random((1, *size))
    padded = p.pad_bottom_right(image, p.overlap_padding(size, patch, stride))
    np.testing.assert_array_equal(padded, paint_border_overlap(image[None], *patch, *stride)[0])


@pytest.mark.parametrize(
    "channels, size, patch, stride", [(1, (28, 33), (8, 8), (5, 5)), (3, (24, 20), (8, 4), (4, 2))]
)
def test_extract_overlapping_order_equals_the_published_loop(channels, size, patch, stride):
    image = np.random.default_rng(1).random((channels, *size))
    padded = p.pad_bottom_right(image, p.overlap_padding(size, patch, stride))
    ours = p.extract_overlapping(padded, patch, stride)
    published = extract_ordered_overlap(padded[None], *patch, *stride)
    assert ours.shape == published.shape
    np.testing.assert_array_equal(ours, published)
    assert ours.flags["C_CONTIGUOUS"]


def test_recompose_of_the_patches_of_an_image_is_the_image():
    size, patch, stride = (37, 45), (16, 16), (5, 5)
    image = np.random.default_rng(2).integers(0, 256, (1, *size)).astype(np.float64)
    padded = p.pad_bottom_right(image, p.overlap_padding(size, patch, stride))
    patches = p.extract_overlapping(padded, patch, stride)
    recomposed = p.recompose_overlapping(patches[:, 0], padded.shape[1:], stride)
    np.testing.assert_array_equal(recomposed, padded[0])
    np.testing.assert_array_equal(recomposed[: size[0], : size[1]], image[0])


@pytest.mark.parametrize(
    "padded_hw, patch, stride", [((28, 33), (8, 8), (5, 5)), ((48, 48), (16, 16), (16, 16)), ((20, 26), (8, 6), (3, 4))]
)
def test_recompose_equals_published_recompone_overlap(padded_hw, patch, stride):
    rows, cols = p.grid_shape(padded_hw, patch, stride)
    predictions = np.random.default_rng(3).random((rows * cols, *patch)).astype(np.float32)
    published, full_sum = recompone_overlap(predictions[:, None], *padded_hw, *stride)
    ours = p.recompose_overlapping(predictions, padded_hw, stride)
    assert ours.shape == padded_hw and ours.dtype == np.float64
    np.testing.assert_allclose(ours, published[0, 0], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(p.overlap_counts(padded_hw, patch, stride), full_sum[0, 0])


def test_drive_patch_count_at_stride_5():
    padded_hw = (588, 568)
    assert p.grid_shape(padded_hw, (48, 48), (5, 5)) == (109, 105)
    patches = p.extract_overlapping(np.zeros((1, *padded_hw), dtype=np.uint8), (48, 48), (5, 5))
    assert patches.shape == (109 * 105, 1, 48, 48) == (11445, 1, 48, 48)


# ------------------------------------------------------------------ skipping patches outside the FOV


def disc(height, width, radius):
    rows, cols = np.ogrid[:height, :width]
    return ((rows - height / 2) ** 2 + (cols - width / 2) ** 2 <= radius**2).astype(np.uint8)


@pytest.mark.parametrize("padded_hw, patch, stride", [((63, 58), (12, 8), (5, 5)), ((588, 568), (48, 48), (5, 5))])
def test_patches_touching_a_mask_are_those_holding_a_mask_pixel(padded_hw, patch, stride):
    mask = disc(*padded_hw, radius=min(padded_hw) / 3)
    rows, cols = p.grid_shape(padded_hw, patch, stride)
    expected = [
        mask[r * stride[0] : r * stride[0] + patch[0], c * stride[1] : c * stride[1] + patch[1]].any()
        for r in range(rows)
        for c in range(cols)
    ]
    np.testing.assert_array_equal(p.patches_touching(mask, patch, stride), expected)


def test_kept_counts_of_every_patch_are_the_published_full_sum():
    padded_hw, patch, stride = (28, 33), (8, 8), (5, 5)
    rows, cols = p.grid_shape(padded_hw, patch, stride)
    _, full_sum = recompone_overlap(np.ones((rows * cols, 1, *patch)), *padded_hw, *stride)
    kept = np.ones((rows, cols), dtype=bool)
    np.testing.assert_array_equal(p.kept_counts(kept, padded_hw, patch, stride), full_sum[0, 0])


def test_skipping_patches_outside_the_fov_leaves_every_fov_pixel_exactly_as_published():
    """Every patch that covers a FOV pixel holds that pixel, so it is kept: FOV pixels average the same patches."""
    padded_hw, patch, stride = (62, 58), (12, 8), (5, 5)  # tiled exactly, as overlap_padding pads
    fov = disc(*padded_hw, radius=20)
    rows, cols = p.grid_shape(padded_hw, patch, stride)
    predictions = np.random.default_rng(5).random((rows * cols, *patch)).astype(np.float32)
    kept = p.patches_touching(fov, patch, stride)
    assert 0 < kept.sum() < kept.size
    every = p.recompose_overlapping(predictions, padded_hw, stride)
    skipped = p.recompose_overlapping(predictions[kept], padded_hw, stride, kept)
    np.testing.assert_array_equal(skipped[fov > 0], every[fov > 0])
    uncovered = p.kept_counts(kept.reshape(rows, cols), padded_hw, patch, stride) == 0
    assert uncovered.any() and (skipped[uncovered] == 0).all()


def test_drive_fov_skips_a_tenth_of_the_stride_5_patches():
    fov = np.pad(disc(584, 565, radius=270), ((0, 4), (0, 3)))
    kept = p.patches_touching(fov, (48, 48), (5, 5))
    assert kept.size == 11445 and 0.85 < kept.mean() < 0.95
