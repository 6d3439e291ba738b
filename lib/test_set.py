"""The images a model is tested on, as one typed value: DRIVE's prepared test set (``run_testing.py``) or the
prepared STARE images (the leave-one-out and the cross-dataset test), preprocessed together as published, with
their ground truth, FOV masks, second observer and ids. Without TensorFlow."""

import dataclasses

import numpy as np

from lib.config import DataPaths, TestingSettings
from lib.datasets import load_hdf5, load_planes_of
from lib.errors import UserError
from lib.preprocessing import preprocess


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """Test images (N, 1, H, W) float32, preprocessed; ground truth, FOV masks and the second observer's labels
    (N, H, W) uint8 0/1 (``second_observer`` None where the dataset has none); one id per image."""

    images: np.ndarray
    truths: np.ndarray
    masks: np.ndarray
    ids: tuple[str, ...]
    second_observer: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, which) -> "ImageSet":
        """The images ``which`` selects (a slice, indices or a boolean mask), everything else alike."""
        chosen = np.arange(len(self))[which]
        observer = None if self.second_observer is None else self.second_observer[chosen]
        ids = tuple(self.ids[index] for index in np.atleast_1d(chosen))
        return ImageSet(self.images[chosen], self.truths[chosen], self.masks[chosen], ids, observer)


def ids_in_test_order(count: int) -> tuple[str, ...]:
    """The ids of the first ``count`` test images. The HDF5 files hold no ids, so they are numbered in test-set
    order, 01, 02, ...: DRIVE's own test ids, which prepare_datasets_DRIVE.py writes in that order."""
    return tuple(f"{number:02d}" for number in range(1, count + 1))


def load_test_set(data: DataPaths, testing: TestingSettings, ids: list[str] | None = None) -> ImageSet:
    """The first ``full_images_to_test`` test images preprocessed as one set (as published), with their ground
    truth, FOV masks and (where prepared) second observer; ``ids`` name them (default: DRIVE's 01, 02, ...)."""
    images = load_hdf5(data.file("test_imgs_original"), channels=3)
    truths = load_planes_of(data.file("test_groundTruth"), images)
    masks = load_planes_of(data.file("test_border_masks"), images)
    count = testing.full_images_to_test
    if count > images.shape[0]:
        raise UserError(
            f"{testing.source}: [testing settings] full_images_to_test = {count} but the test set holds "
            f"{images.shape[0]} images; lower it"
        )
    patch_hw = testing.inference.patch_hw
    if patch_hw[0] > images.shape[2] or patch_hw[1] > images.shape[3]:
        raise UserError(
            f"{testing.source}: [data attributes] patch {patch_hw} is larger than the test images "
            f"{images.shape[2:]}; use smaller patches"
        )
    second = data.file("test_groundTruth_2nd")
    observer = (load_planes_of(second, images)[:count, 0] > 0).astype(np.uint8) if second.is_file() else None
    test_set = ImageSet(
        images=preprocess(images)[:count],
        truths=(truths[:count, 0] > 0).astype(np.uint8),
        masks=(masks[:count, 0] > 0).astype(np.uint8),
        ids=ids_in_test_order(count) if ids is None else tuple(ids[:count]),
        second_observer=observer,
    )
    check_evaluable(data, test_set)
    return test_set


def check_evaluable(data: DataPaths, test_set: ImageSet) -> None:
    """Each test image needs a field of view holding vessel and background pixels: its metrics (and the AUC of a
    STARE fold, tested on that image alone) are undefined otherwise. Checked before the long prediction."""
    for index, (truth, mask) in enumerate(zip(test_set.truths, test_set.masks, strict=True)):
        if not mask.any():
            raise UserError(
                f"{data.file('test_border_masks')}: the FOV mask of test image {index + 1} is all black (no pixel "
                "inside the field of view); re-run the prepare script with the dataset's masks"
            )
        if np.unique(truth[mask > 0]).size < 2:
            what = "vessel" if truth[mask > 0].any() else "background"
            raise UserError(
                f"{data.file('test_groundTruth')}: the ground truth of test image {index + 1} is all {what} inside "
                "its field of view, so no metric is defined for it; re-run the prepare script with the dataset's "
                "labels"
            )
