"""Labelled photographs of any camera as a training set: each photograph paired with its label (and mask) by the
rules of ``run_prediction.py --labels/--masks``, brought to the network's scale exactly as ``run_prediction.py``
brings it (``lib.photographs.load_photograph``), and the photographs of several sources (folders, datasets)
arranged so that every source gives the same number of patches. Without TensorFlow."""

import dataclasses
from pathlib import Path

import numpy as np

from lib.errors import UserError
from lib.files import NAME_IMAGES_ALONE, companion, expand, index_files, pairing_key, unique_files
from lib.photographs import Options, load_photograph
from lib.progress import progress
from lib.rescale import resize
from lib.sources import Source


@dataclasses.dataclass(frozen=True)
class Example:
    """One labelled photograph at the network's scale: RGB (3, h, w) uint8, its preprocessed network input
    (1, h, w) float32, vessel label and FOV (1, h, w) uint8 0/1."""

    path: Path
    rgb: np.ndarray
    network_input: np.ndarray
    label: np.ndarray
    fov: np.ndarray


def find_pairs(source: Source) -> list[tuple[Path, Path, Path | None]]:
    """Each photograph of ``source`` with its label and mask; a photograph without exactly one label is an error."""
    images = sorted(unique_files(expand(source.images)), key=str)
    labels = index_files(source.labels)
    masks = None if source.masks is None else index_files(source.masks)
    seen = {}
    for image in images:
        key = pairing_key(image)
        if key in seen:
            raise UserError(
                f"{image}: pairs with the same label ({key}.*) as {seen[key]} in {source.images}; rename one, or "
                f"{NAME_IMAGES_ALONE}"
            )
        seen[key] = image
    return [
        (image, companion(labels, image, "label", "the labels"), companion(masks, image, "mask", "the masks"))
        for image in images
    ]


def binary_at(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """A 0/1 map resized to (height, width): the share of each new pixel it covered, at least half → 1."""
    if array.shape == (height, width):
        return array.astype(np.uint8)
    return (resize(array.astype(np.float32), height, width) >= 0.5).astype(np.uint8)


def load_example(image: Path, label: Path, mask: Path | None, options: Options) -> Example:
    """A photograph and its label at the scale ``options`` bring it to; UserError on bad input."""
    photo = load_photograph(image, mask, label, options)
    _, height, width = photo.network_input.shape
    rgb = photo.rgb if photo.rgb.shape[:2] == (height, width) else resize(photo.rgb, height, width)
    fov = binary_at(photo.fov, height, width)
    vessels = binary_at(photo.label, height, width) * fov
    if not vessels.any():
        raise UserError(
            f"{label}: no vessel is left inside the field of view at the network's scale; check that it is the "
            "vessel label of this photograph"
        )
    return Example(image, rgb.transpose(2, 0, 1), photo.network_input, vessels[None], fov[None])


@dataclasses.dataclass(frozen=True)
class TrainingSet:
    """Photographs for ``src.training.fit``, padded bottom-right to one size (padding: black, outside the FOV).

    ``slots`` index ``paths`` in the order patches are drawn (each slot gets the same number of patches; the last
    ``validation_slots`` are validation photographs that never train)."""

    paths: list[Path]
    source_of: list[int]
    images: np.ndarray  # (N, 1, H, W) float32, preprocessed
    labels: np.ndarray  # (N, 1, H, W) uint8 0/1
    fovs: np.ndarray  # (N, 1, H, W) uint8 0/1
    rgb: np.ndarray  # (N, 3, H, W) uint8, for camera augmentation
    slots: np.ndarray
    validation_slots: int

    @property
    def validation_split(self) -> float:
        return self.validation_slots / len(self.slots)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """images, labels, FOV masks and RGB photographs, one per slot."""
        return tuple(array[self.slots] for array in (self.images, self.labels, self.fovs, self.rgb))


def pad_stack(arrays: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """(C, h, w) arrays zero-padded at the bottom and right to (C, height, width), stacked."""
    out = np.zeros((len(arrays), arrays[0].shape[0], height, width), dtype=arrays[0].dtype)
    for index, array in enumerate(arrays):
        out[index, :, : array.shape[1], : array.shape[2]] = array
    return out


def validation_count(count: int, validation_split: float, where: str, validate_on_training: bool) -> int:
    """How many of a source's ``count`` photographs (its last ones) only validate."""
    if validate_on_training:
        return 0
    if count < 2:
        raise UserError(
            f"{where}: {count} labelled photograph, but fine-tuning needs at least 2 (the last one validates: "
            "it chooses the best epoch and the threshold); label another, or add --validate-on-training"
        )
    return min(count - 1, max(1, round(count * validation_split)))


def balanced_slots(training: list[list[int]], validation: list[list[int]]) -> tuple[np.ndarray, int]:
    """Every source as many training slots as the largest has training photographs (its own cycled), sources
    taking turns; then the validation photographs the same way. Returns the slots and the validation count."""

    def turns(groups: list[list[int]]) -> list[int]:
        size = max(len(group) for group in groups)
        return [group[turn % len(group)] for turn in range(size) for group in groups]

    tail = turns(validation)
    return np.array(turns(training) + tail), len(tail)


def training_set(
    sources: tuple[Source, ...], options: Options, validation_split: float, validate_on_training: bool = False
) -> TrainingSet:
    """Load every labelled photograph of ``sources`` at the network's scale and arrange the slots.

    With ``validate_on_training`` every photograph trains and the validation patches are another draw from
    the same photographs (a team with a single labelled photograph; the threshold is then optimistic)."""
    training, validation, source_of, pairs = [], [], [], []
    for number, source in enumerate(sources):  # every pairing checked before any photograph is read
        found = find_pairs(source)
        held = validation_count(len(found), validation_split, source.images, validate_on_training)
        indices = list(range(len(pairs), len(pairs) + len(found)))
        training.append(indices[: len(indices) - held])
        validation.append(indices[len(indices) - held :] or indices)
        source_of += [number] * len(found)
        pairs += found
    examples = [load_example(*pair, options) for pair in progress(pairs, "reading the labelled photographs")]
    slots, validation_slots = balanced_slots(training, validation)
    height = max(example.rgb.shape[1] for example in examples)
    width = max(example.rgb.shape[2] for example in examples)
    fields = ("network_input", "label", "fov", "rgb")
    images, labels, fovs, rgb = (
        pad_stack([getattr(example, field) for example in examples], height, width) for field in fields
    )
    paths = [example.path for example in examples]
    return TrainingSet(paths, source_of, images, labels, fovs, rgb, slots, validation_slots)


def roles(data: TrainingSet) -> list[dict]:
    """One row per photograph: its source, its role and how many slots (shares of the patches) it holds."""
    first_validation = len(data.slots) - data.validation_slots
    rows = []
    for index, path in enumerate(data.paths):
        trains = int(np.count_nonzero(data.slots[:first_validation] == index))
        validates = int(np.count_nonzero(data.slots[first_validation:] == index))
        role = "train+validate" if trains and validates else "train" if trains else "validate"
        rows.append({"image": str(path), "source": data.source_of[index] + 1, "role": role,
                     "training_slots": trains, "validation_slots": validates})  # fmt: skip
    return rows
