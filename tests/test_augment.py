"""Camera augmentation (lib/augment.py): each change does what it says, labels stay aligned, values stay in
range, and an epoch's photographs depend only on the seed and the epoch (a resumed training sees the same)."""

import dataclasses

import cv2
import numpy as np
import pytest

from lib.augment import (
    LIMITS,
    CameraAugmentation,
    Draw,
    augment,
    augment_training_images,
    draw,
    image_rng,
    photometric,
    warp,
)
from lib.synthetic import synthetic_fundus

EVERYTHING = CameraAugmentation(
    scale=0.15, rotation=180, brightness=0.2, color=0.1, contrast=0.2, gamma=0.3, blur=1.0, noise=5
)


def photograph(seed=0, size=96):
    """A synthetic fundus photograph (H, W, 3) uint8, its vessel label and FOV mask (H, W) uint8 0/1."""
    rgb, label, fov = synthetic_fundus(np.random.default_rng(seed), size, size)[:3]
    return rgb, (label > 0).astype(np.uint8), (fov > 0).astype(np.uint8)


def test_a_rotation_of_90_degrees_turns_the_image_a_quarter_counter_clockwise():
    image = np.zeros((7, 7), dtype=np.uint8)
    image[1, 5] = 200  # near the top-right corner
    turned = warp(image, 1.0, 90, cv2.INTER_NEAREST)
    assert turned[1, 1] == 200 and np.count_nonzero(turned) == 1  # now near the top-left corner
    ramp = np.arange(81, dtype=np.uint8).reshape(9, 9)
    np.testing.assert_array_equal(warp(ramp, 1.0, 90, cv2.INTER_NEAREST), np.rot90(ramp))
    np.testing.assert_array_equal(warp(ramp, 1.0, 90, cv2.INTER_CUBIC), np.rot90(ramp))


def test_scaling_moves_pixels_away_from_the_centre_and_fills_with_black():
    columns = np.tile(np.arange(9, dtype=np.float32) * 10, (9, 1))  # each pixel holds 10 x its column
    doubled = warp(columns, 2.0, 0, cv2.INTER_LINEAR)  # about the centre, column 4
    np.testing.assert_allclose(doubled[4, [0, 2, 4, 6, 8]], [20, 30, 40, 50, 60], atol=1e-3)  # column 6 went to 8
    shrunk = warp(np.full((9, 9), 100, dtype=np.uint8), 0.5, 0, cv2.INTER_NEAREST)
    assert shrunk[4, 4] == 100 and shrunk[0, 0] == 0  # what comes in from outside the photograph is black


def test_the_label_and_mask_follow_the_image():
    """The label drawn into the image: after any scale and rotation, image and label still coincide."""
    rng = np.random.default_rng(1)
    label = np.kron(rng.integers(0, 2, (12, 12)), np.ones((8, 8))).astype(np.uint8)
    rgb = np.repeat(label[..., None] * 255, 3, axis=2).astype(np.uint8)
    for scale, angle in ((1.13, 37.0), (0.87, -150.0)):
        out_rgb, out_label, out_fov = augment(rgb, label, np.ones_like(label), Draw(scale=scale, angle=angle), rng)
        assert set(np.unique(out_label)) <= {0, 1} and set(np.unique(out_fov)) <= {0, 1}
        agree = ((out_rgb[..., 1] > 127) == (out_label > 0)).mean()
        assert agree > 0.97, (scale, angle, agree)  # only the edges of the 8x8 blocks may differ


def test_an_identity_draw_changes_nothing():
    rgb, label, fov = photograph()
    out = augment(rgb, label, fov, Draw(), np.random.default_rng(0))
    for before, after in zip((rgb, label, fov), out, strict=True):
        np.testing.assert_array_equal(before, after)
        assert after.dtype == np.uint8


def flat(value, channels=(1.0, 1.0, 1.0)):
    return (np.ones((20, 20, 3)) * np.array(channels) * value).astype(np.uint8)


def test_brightness_and_colour_are_gains_that_clip_at_255():
    fov = np.ones((20, 20), dtype=np.uint8)
    out = photometric(flat(100), fov, Draw(gains=(1.2, 0.5, 3.0)), np.random.default_rng(0))
    np.testing.assert_array_equal(out[0, 0], [120, 50, 255])


def test_contrast_scales_the_deviations_from_the_fov_mean_and_leaves_the_outside_alone():
    rgb = np.zeros((20, 20, 3), dtype=np.uint8)
    rgb[:10] = 100
    rgb[10:] = 140
    fov = np.zeros((20, 20), dtype=np.uint8)
    fov[:, :15] = 1
    rgb[:, 15:] = 7  # outside the FOV
    out = photometric(rgb, fov, Draw(contrast=0.5), np.random.default_rng(0))
    assert out[0, 0, 0] == 110 and out[19, 0, 0] == 130  # mean 120, deviations halved
    assert (out[:, 15:] == 7).all()


def test_gamma_is_the_tone_curve_it_says():
    out = photometric(flat(64), np.ones((20, 20), np.uint8), Draw(gamma=2.0), np.random.default_rng(0))
    assert out[5, 5, 0] == round(255 * (64 / 255) ** 2)


def test_blur_smooths_and_noise_has_the_standard_deviation_asked():
    fov = np.ones((64, 64), dtype=np.uint8)
    rough = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    blurred = photometric(rough, fov, Draw(blur=2.0), np.random.default_rng(0))
    assert blurred.std() < rough.std() / 3
    gray = np.full((64, 64, 3), 128, dtype=np.uint8)
    noisy = photometric(gray, fov, Draw(noise=10.0), np.random.default_rng(0)).astype(float)
    assert abs(noisy.mean() - 128) < 0.5 and 9.5 < noisy.std() < 10.5


def test_draws_stay_in_their_ranges_and_off_means_exactly_unchanged():
    rng = np.random.default_rng(0)
    draws = [draw(EVERYTHING, rng) for _ in range(300)]
    assert all(0.85 <= d.scale <= 1.15 and -180 <= d.angle <= 180 for d in draws)
    assert all(0.8 * 0.9 <= g <= 1.2 * 1.1 for d in draws for g in d.gains)
    assert all(0.8 <= d.contrast <= 1.2 and 0.7 <= d.gamma <= 1.3 for d in draws)
    assert all(0 <= d.blur <= 1.0 and 0 <= d.noise <= 5 for d in draws)
    assert draw(CameraAugmentation(), rng) == Draw()
    assert not CameraAugmentation().active and EVERYTHING.active


def test_turning_one_change_off_leaves_the_others_drawn_alike():
    without_rotation = dataclasses.replace(EVERYTHING, rotation=0)
    a, b = draw(EVERYTHING, image_rng(42, 3, 5)), draw(without_rotation, image_rng(42, 3, 5))
    assert b.angle == 0 and dataclasses.replace(a, angle=0) == b


def training_set(count=3, size=96):
    parts = [photograph(seed, size) for seed in range(count)]
    rgb = np.stack([p[0].transpose(2, 0, 1) for p in parts])
    labels = np.stack([p[1][None] for p in parts])
    fovs = np.stack([p[2][None] for p in parts])
    return rgb, labels, fovs


def test_the_epochs_images_are_preprocessed_and_in_range():
    rgb, labels, fovs = training_set()
    images, new_labels, new_fovs = augment_training_images(rgb, labels, fovs, EVERYTHING, 42, 0, [0, 1, 2])
    assert images.shape == (3, 1, 96, 96) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    assert new_labels.shape == new_fovs.shape == (3, 1, 96, 96) and new_labels.dtype == np.uint8
    assert set(np.unique(new_labels)) <= {0, 1} and set(np.unique(new_fovs)) <= {0, 1}


def test_an_epoch_depends_only_on_the_seed_and_the_epoch():
    """Resuming at epoch 3 gives epoch 3's photographs, whatever ran before and whichever images are asked."""
    rgb, labels, fovs = training_set()

    def epoch(number, indices=(0, 1, 2), seed=42):
        return augment_training_images(rgb, labels, fovs, EVERYTHING, seed, number, list(indices))[0]

    third = epoch(3)
    epoch(2)
    np.testing.assert_array_equal(epoch(3), third)
    np.testing.assert_array_equal(epoch(3, indices=(2,))[0], third[2])
    assert not np.array_equal(epoch(4), third)
    assert not np.array_equal(epoch(3, seed=7), third)


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_every_change_alone_changes_the_photograph(name):
    rgb, labels, fovs = training_set(count=1)
    alone = CameraAugmentation(**{name: LIMITS[name] / 2})
    changed = augment_training_images(rgb, labels, fovs, alone, 42, 0, [0])[0]
    clean = augment_training_images(rgb, labels, fovs, CameraAugmentation(), 42, 0, [0])[0]
    assert not np.array_equal(changed, clean), name


def streaming_settings(write_config, **keys):
    from lib.config import load_config

    values = {"patch_source": "streaming", "N_subimgs": "120", "batch_size": "16", **keys}
    return load_config(write_config(tiny=True, overrides={"training settings": values})).training


def epochs_of(settings, rgb, labels, fovs, first_epoch, count):
    """The training patches of ``count`` epochs of a streaming pipeline started at ``first_epoch``."""
    from lib.preprocessing import preprocess
    from lib.training_set import Photographs
    from src.patch_sources import streaming_patches

    rng, photographs = np.random.default_rng(settings.seed), Photographs(rgb, fovs)
    data = streaming_patches(settings, preprocess(rgb), labels, None, rng, first_epoch, photographs)
    runs = [[(x.numpy(), y.numpy()) for x, y in data.train_x] for _ in range(count)]
    return runs, data.validation


@pytest.mark.slow  # five epochs through TensorFlow's tf.data pipeline
def test_streaming_draws_each_epoch_from_that_epochs_photographs_and_resumes_alike(write_config):
    rgb, labels, fovs = training_set(count=3)
    augmented = streaming_settings(write_config, augment_rotation="180", augment_gamma="0.3", augment_noise="5")
    straight, validation = epochs_of(augmented, rgb, labels, fovs, first_epoch=0, count=3)
    resumed, _ = epochs_of(augmented, rgb, labels, fovs, first_epoch=2, count=1)
    for (x, y), (x_again, y_again) in zip(straight[2], resumed[0], strict=True):  # resumed epoch 3 = epoch 3
        np.testing.assert_array_equal(x, x_again)
        np.testing.assert_array_equal(y, y_again)
    first = np.concatenate([x for x, _ in straight[0]])
    assert first.dtype == np.float32 and 0 <= first.min() and first.max() <= 1
    assert set(np.unique(np.concatenate([y for _, y in straight[0]]))) <= {0, 1}

    clean, clean_validation = epochs_of(streaming_settings(write_config), rgb, labels, fovs, first_epoch=0, count=1)
    assert not np.array_equal(first, np.concatenate([x for x, _ in clean[0]]))  # the photographs were changed
    for kept, original in zip(validation, clean_validation, strict=True):  # validation: the unchanged images
        np.testing.assert_array_equal(kept, original)
