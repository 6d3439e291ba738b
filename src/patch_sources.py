"""The patch sources of a training: where its training, validation and sample patches come from.

Two sources give the same patch distribution (equally many uniform random patches per image; the last
``validation_split`` of them, i.e. of the last images, for validation): ``in_memory`` samples every patch up
front as published; ``streaming`` samples the training patches afresh each epoch with tf.data and never holds
them all, and can draw them from photographs changed anew each epoch (camera augmentation, ``lib.augment``).
"""

import dataclasses
import itertools
import math

import numpy as np

from lib.augment import augment_training_images
from lib.config import TrainingSettings
from lib.patches import allowed_centres, check_validation_labels, crop_patches, extract_random, sample_centres
from lib.training_set import Photographs, fov_constraint, split_counts
from src.backend import tf


@dataclasses.dataclass(frozen=True)
class PatchData:
    """A training's patches. ``train_x`` with ``train_y`` are arrays (``in_memory``); with ``train_y`` None,
    ``train_x`` is a tf.data.Dataset of shuffled (patches, labels) batches (``streaming``). ``validation``
    (patches (n, h, w, 1), labels (n, h, w)) is the same for both; ``samples`` the first patches, channels first,
    for the sample pictures."""

    train_x: object
    train_y: np.ndarray | None
    validation: tuple[np.ndarray, np.ndarray]
    samples: tuple[np.ndarray, np.ndarray]

    def fit_arguments(self, batch_size: int) -> dict:
        """The training patches as ``model.fit`` takes them."""
        if self.train_y is None:  # batched and shuffled already
            return {"x": self.train_x, "y": None, "batch_size": None, "shuffle": False}
        return {"x": self.train_x, "y": self.train_y, "batch_size": batch_size, "shuffle": True}


def in_memory_patches(settings: TrainingSettings, images, labels, inside, rng) -> PatchData:
    """The published patch set: all N_subimgs patches sampled image by image, the last share for validation."""
    patch_hw = settings.patch_hw
    patches, patch_labels = extract_random(images, labels, settings.N_subimgs, patch_hw, rng, inside)
    n_train, _ = split_counts(settings)
    x, y = patches.transpose(0, 2, 3, 1), patch_labels[:, 0]
    return PatchData(x[:n_train], y[:n_train], (x[n_train:], y[n_train:]), (patches[:40], patch_labels[:40]))


def streaming_patches(
    settings: TrainingSettings,
    images,
    labels,
    inside,
    rng,
    first_epoch: int = 0,
    photographs: Photographs | None = None,
) -> PatchData:
    """The same distribution, the training patches sampled afresh every epoch by a tf.data generator.

    Patch k of the published ordering belongs to image k // per_image; the validation patches (the
    last ones) are sampled once and kept, the training patches are drawn anew each epoch. With
    ``augment`` each training patch is flipped at random horizontally and vertically. With
    ``photographs`` and camera augmentation, each epoch first changes every training photograph once
    (``lib.augment``) and draws that epoch's patches from the changed, preprocessed photographs.
    """
    patch_hw = settings.patch_hw
    n_images, _, height, width = images.shape
    image_of = np.arange(settings.N_subimgs) // (settings.N_subimgs // n_images)
    n_train, _ = split_counts(settings)
    fovs = [inside[index, 0] if isinstance(inside, np.ndarray) else inside for index in range(n_images)]
    clean = (images, labels, [allowed_centres((height, width), patch_hw, fov) for fov in fovs])

    def gather(source, image_indices: np.ndarray, rng: np.random.Generator, augment: bool = False):
        source_images, source_labels, candidates = source
        x = np.empty((len(image_indices), 1, *patch_hw), dtype=np.float32)
        y = np.empty((len(image_indices), 1, *patch_hw), dtype=np.uint8)
        for index in np.unique(image_indices):
            chosen = np.flatnonzero(image_indices == index)
            centres = sample_centres(rng, candidates[index], len(chosen), width)
            x[chosen], y[chosen] = (
                crop_patches(source_images[index], centres, patch_hw),
                crop_patches(source_labels[index], centres, patch_hw),
            )
        if augment:
            for axis in (2, 3):
                flip = rng.random(len(x)) < 0.5
                x[flip], y[flip] = np.flip(x[flip], axis), np.flip(y[flip], axis)
        return x.transpose(0, 2, 3, 1), y[:, 0]

    def epoch_source(epoch: int):
        """The images, labels and patch centres the training patches of ``epoch`` come from."""
        if photographs is None or not settings.camera_augmentation.active:
            return clean
        changed = np.unique(image_of[:n_train])
        new_images, new_labels, new_fovs = augment_training_images(
            photographs.rgb, labels, photographs.fovs, settings.camera_augmentation, settings.seed, epoch, changed
        )
        epoch_images, epoch_labels, candidates = images.copy(), labels.copy(), list(clean[2])
        epoch_images[changed], epoch_labels[changed] = new_images, new_labels
        if inside is not None:  # inside_FOV: inside each changed photograph's changed FOV mask
            for index, fov in zip(changed, new_fovs, strict=True):
                candidates[index] = allowed_centres((height, width), patch_hw, fov[0])
        return epoch_images, epoch_labels, candidates

    epochs = itertools.count(first_epoch)

    def epoch_batches():
        epoch = next(epochs)
        epoch_rng = np.random.default_rng([settings.seed, epoch])  # resumable: epoch e always draws the same
        source = epoch_source(epoch)
        order = epoch_rng.permutation(image_of[:n_train])
        for start in range(0, len(order), settings.batch_size):
            yield gather(source, order[start : start + settings.batch_size], epoch_rng, settings.augment)

    sample_x, sample_y = gather(clean, image_of[:40], rng)
    return PatchData(
        epoch_dataset(epoch_batches, math.ceil(n_train / settings.batch_size), patch_hw),
        None,
        gather(clean, image_of[n_train:], rng),
        (sample_x.transpose(0, 3, 1, 2), sample_y[:, None]),
    )


def epoch_dataset(epoch_batches, steps: int, patch_hw: tuple[int, int]):
    """A tf.data.Dataset of the ``steps`` (patches, labels) batches that ``epoch_batches()`` yields, called anew each
    time Keras iterates the dataset (once per epoch, in order). The batches pass through a numpy function mapped on
    the steps: through tf.data's from_generator the same batches trained at half the speed, most of the time spent
    in the kernel (docs/benchmarks.md#training)."""
    batches = None

    def next_batch(step):
        nonlocal batches
        if step == 0:  # the epoch's first batch starts its batches
            batches = epoch_batches()
        return next(batches)

    def batch_of_step(step):
        x, y = tf.numpy_function(next_batch, [step], (tf.float32, tf.uint8), stateful=True)
        return tf.ensure_shape(x, (None, *patch_hw, 1)), tf.ensure_shape(y, (None, *patch_hw))

    return tf.data.Dataset.range(steps).map(batch_of_step).prefetch(4)


def patch_data(
    settings: TrainingSettings, images, labels, fov_masks, rng, first_epoch: int = 0, photographs=None
) -> PatchData:
    """The training, validation and sample patches of ``settings.patch_source``: the one sampling, for training
    and for choosing the threshold again (``store_threshold``)."""
    inside = fov_constraint(settings, fov_masks)
    if settings.patch_source == "in_memory":
        data = in_memory_patches(settings, images, labels, inside, rng)
    else:
        data = streaming_patches(settings, images, labels, inside, rng, first_epoch, photographs)
    check_validation_labels(data.validation[1], settings.where)  # before an epoch is spent
    return data
