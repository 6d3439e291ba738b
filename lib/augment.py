"""Camera-robust augmentation: a training photograph changed as another camera might have taken it.

The changes are made to the RGB photograph BEFORE the published preprocessing, so the network learns
from what another camera's photograph looks like after that preprocessing: a field of view of another
size (``scale``) and orientation (``rotation``), another exposure (``brightness``), colour balance
(``color``), tone curve (``contrast``, ``gamma``), sharpness (``blur``) and sensor noise (``noise``).
Labels and FOV masks follow the geometric changes with nearest-neighbour sampling, so they stay 0/1
and aligned. Each epoch changes each training photograph once, as a whole (never patch by patch), with
a random stream that depends only on the seed, the epoch and the image: a resumed training sees the
same photographs as an uninterrupted one.

What survives the preprocessing: it ends every image with a min-max stretch, which undoes any gain
or offset. Brightness and contrast therefore act only through what a camera does with them, clipping
at 0 and 255 (bright discs saturate) and rounding to 8 bits; gamma, colour balance, blur, noise and
the geometry change the network's input directly.
"""

import dataclasses

import cv2
import numpy as np

from lib.preprocessing import preprocess

# The most each change may be asked for ([training settings] augment_<name>), far beyond what cameras differ by
LIMITS = {
    "scale": 0.5,
    "rotation": 180.0,
    "brightness": 0.9,
    "color": 0.9,
    "contrast": 0.9,
    "gamma": 0.9,
    "blur": 5.0,
    "noise": 50.0,
}
_AUGMENTATION_STREAM = 0xA06  # keeps these random streams apart from the patch sampling's [seed, epoch]


@dataclasses.dataclass(frozen=True)
class CameraAugmentation:
    """How far each random change may go; 0 turns it off (the defaults: the published training)."""

    scale: float = 0.0  # the photograph is resized by a factor in [1 - scale, 1 + scale]
    rotation: float = 0.0  # rotated by an angle in [-rotation, rotation] degrees
    brightness: float = 0.0  # all channels multiplied by a gain in [1 - brightness, 1 + brightness]
    color: float = 0.0  # each channel multiplied by its own gain in [1 - color, 1 + color]
    contrast: float = 0.0  # deviations from the FOV's mean colour multiplied by [1 - contrast, 1 + contrast]
    gamma: float = 0.0  # tone curve 255 * (v / 255) ** g with g in [1 - gamma, 1 + gamma]
    blur: float = 0.0  # Gaussian blur of sigma in [0, blur] px
    noise: float = 0.0  # Gaussian noise of standard deviation in [0, noise] gray levels (of 255)

    @property
    def active(self) -> bool:
        return any(getattr(self, field.name) for field in dataclasses.fields(self))


@dataclasses.dataclass(frozen=True)
class Draw:
    """One photograph's changes, drawn from a ``CameraAugmentation``; the defaults change nothing."""

    scale: float = 1.0
    angle: float = 0.0  # degrees, counter-clockwise
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)  # R, G, B: brightness times colour balance
    contrast: float = 1.0
    gamma: float = 1.0
    blur: float = 0.0
    noise: float = 0.0


def image_rng(seed: int, epoch: int, image: int) -> np.random.Generator:
    """The random stream of one photograph in one epoch: the same whatever ran before it (resumable)."""
    return np.random.default_rng([seed, epoch, _AUGMENTATION_STREAM, image])


def draw(augmentation: CameraAugmentation, rng: np.random.Generator) -> Draw:
    """Random changes within the ranges; always the same number of draws, so turning one change on or off
    leaves the others' values alone."""
    u = rng.random(10)
    a = augmentation

    def around_one(amount, value):
        return 1.0 + amount * (2.0 * value - 1.0)

    brightness = around_one(a.brightness, u[2])
    return Draw(
        scale=around_one(a.scale, u[0]),
        angle=a.rotation * (2.0 * u[1] - 1.0),
        gains=tuple(brightness * around_one(a.color, value) for value in u[3:6]),
        contrast=around_one(a.contrast, u[6]),
        gamma=around_one(a.gamma, u[7]),
        blur=a.blur * u[8],
        noise=a.noise * u[9],
    )


def warp(image: np.ndarray, scale: float, angle: float, interpolation: int) -> np.ndarray:
    """Resize by ``scale`` and rotate by ``angle`` degrees (counter-clockwise) about the image centre, on a
    canvas of the same size: what leaves it is cut off, what comes in is black (0)."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, scale)
    return cv2.warpAffine(
        image, matrix, (width, height), flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def photometric(rgb: np.ndarray, fov: np.ndarray, change: Draw, rng: np.random.Generator) -> np.ndarray:
    """A camera's response to the same scene: blur (optics), gains and noise (exposure, white balance,
    sensor), clipping, then the tone curve (contrast about the FOV's mean colour, gamma), rounded to uint8."""
    image = rgb.astype(np.float32)
    if change.blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), change.blur)
    image *= np.asarray(change.gains, dtype=np.float32)
    if change.noise > 0:
        image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(change.noise)
    np.clip(image, 0, 255, out=image)
    if change.contrast != 1 and fov.any():
        mean = np.asarray(cv2.mean(image, mask=(fov > 0).astype(np.uint8))[:3], dtype=np.float32)
        contrasted = np.clip(mean + np.float32(change.contrast) * (image - mean), 0, 255)
        np.copyto(image, contrasted, where=(fov > 0)[..., None])
    if change.gamma != 1:
        image = 255 * (image / 255) ** np.float32(change.gamma)
    return np.rint(image).astype(np.uint8)


def augment(
    rgb: np.ndarray, label: np.ndarray, fov: np.ndarray, change: Draw, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One photograph (H, W, 3) uint8 with its label and FOV mask (H, W) uint8, changed by ``change``.

    The image is resampled bicubically (sharper than bilinear for 1-px vessels), label and mask by the
    nearest neighbour, so they stay 0/1 and aligned with the image. ``rng`` draws the noise.
    """
    if change.scale != 1 or change.angle != 0:
        rgb = warp(rgb, change.scale, change.angle, cv2.INTER_CUBIC)
        label = warp(label, change.scale, change.angle, cv2.INTER_NEAREST)
        fov = warp(fov, change.scale, change.angle, cv2.INTER_NEAREST)
    return photometric(rgb, fov, change, rng), label, fov


def augment_training_images(
    photographs: np.ndarray,
    labels: np.ndarray,
    fovs: np.ndarray,
    augmentation: CameraAugmentation,
    seed: int,
    epoch: int,
    indices,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The epoch's version of the photographs ``indices``: changed, then preprocessed as published.

    ``photographs`` (N, 3, H, W) uint8, ``labels`` and ``fovs`` (N, 1, H, W) 0/1; returns preprocessed
    images (n, 1, H, W) float32 in [0, 1], labels and FOV masks (n, 1, H, W) uint8. Each image is
    preprocessed alone: the published preprocessing is per image in effect (the dataset's mean and
    standard deviation cancel in its per-image min-max stretch).
    """
    images, new_labels, new_fovs = [], [], []
    for index in indices:
        rng = image_rng(seed, epoch, int(index))
        rgb = np.ascontiguousarray(photographs[index].transpose(1, 2, 0))
        rgb, label, fov = augment(rgb, labels[index, 0], fovs[index, 0], draw(augmentation, rng), rng)
        images.append(preprocess(rgb.transpose(2, 0, 1)[None])[0])
        new_labels.append(label[None])
        new_fovs.append(fov[None])
    return np.stack(images), np.stack(new_labels), np.stack(new_fovs)
