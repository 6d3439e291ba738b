"""How an image becomes vessel probabilities: the one value every script predicts with.

``whole``: the U-Net is fully convolutional, so the image goes through it in one pass.
``flips``: the same, averaged over the image and its horizontal, vertical and double flips.
``patches``: the published test, overlapping P x P patches at stride S averaged per pixel (with the
stride equal to the patch size, the published non-overlapping mode).
Images too large for one pass within the memory budget are predicted in tiles; the tiling is exact
(``src.prediction.predict_image`` says why), so it changes memory, never the probabilities.
"""

import dataclasses
import math

import numpy as np

MODES = ("whole", "flips", "patches")
PUBLISHED_PATCH_HW = (48, 48)  # the patches the published U-Net (and the shipped model) was trained on
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")  # Keras dtype policies
# What runs the network (src/engines.py): auto = the fastest installed one matching Keras float32 within 1e-5
ENGINES = ("auto", "keras", "onnxruntime")
DOWNSAMPLING = 4  # the U-Net pools twice: whole images and their tiles are aligned to multiples of 4
# A whole-image pass costs about 1.2 kB per pixel and view (measured on CPU) on top of TensorFlow's own
# 0.7 GB: 1 M pixel-views per pass keeps a 3504x2336 photograph at full resolution under 2.5 GB.
MAX_PASS_PIXELS = 1_048_576
# Patches cost ~21 B per patch pixel (the patches, the outputs, the float64 average; measured) on top of
# ~0.7 GB of activations for a batch of 256: 15 000 patches (about 0.7 GB) per pass keep patch mode as bounded.
# A DRIVE (584x565) or STARE (605x700) image at stride 5 needs fewer, so the published test runs in one pass.
MAX_PASS_PATCHES = 15_000
# Context around each tile of a whole-image pass, discarded after prediction: the U-Net's receptive radius
# (23 px: an output pixel depends on the input pixels at most 23 px away, tests/test_prediction.py measures it)
# rounded up to a multiple of 4, so the pooling grid of every tile stays aligned with the whole image's.
WHOLE_TILE_MARGIN = 24


def fov_window(fov: np.ndarray) -> tuple[slice, slice]:
    """The part of an image a whole-image pass needs to give the pixels ``fov`` marks exactly what a pass over
    the whole image gives them: their bounding box with WHOLE_TILE_MARGIN of context, its origin on the pooling
    grid. Black around the field of view (a 3:2 sensor's sides) is then never computed. The whole image when
    ``fov`` marks nothing."""
    rows, cols = np.flatnonzero(fov.any(axis=1)), np.flatnonzero(fov.any(axis=0))
    if not rows.size:
        return slice(0, fov.shape[0]), slice(0, fov.shape[1])
    return tuple(
        slice(max(first - WHOLE_TILE_MARGIN, 0) // DOWNSAMPLING * DOWNSAMPLING, last + 1 + WHOLE_TILE_MARGIN)
        for first, last in ((rows[0], rows[-1]), (cols[0], cols[-1]))
    )


@dataclasses.dataclass(frozen=True)
class Inference:
    mode: str = "patches"
    patch_hw: tuple[int, int] = PUBLISHED_PATCH_HW
    stride_hw: tuple[int, int] = (5, 5)
    batch_size: int = 256  # patches per forward pass
    precision: str = "float32"
    engine: str = "auto"  # how the network is computed, not what: neither described nor recorded below

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r} is not one of {MODES}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {PRECISIONS}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine {self.engine!r} is not one of {ENGINES}")
        if self.batch_size < 1 or min(self.patch_hw) < 1 or min(self.stride_hw) < 1:
            raise ValueError(f"batch size, patch and stride must be positive: {self}")
        if any(stride > patch for stride, patch in zip(self.stride_hw, self.patch_hw, strict=True)):
            raise ValueError(f"stride {self.stride_hw} larger than the patch {self.patch_hw} would skip pixels")

    def describe(self) -> str:
        """One line for the user: what the prediction does."""
        if self.mode == "patches":
            (ph, pw), (sh, sw) = self.patch_hw, self.stride_hw
            overlap = "no overlap" if self.stride_hw == self.patch_hw else f"stride {sh}x{sw}, averaged"
            text = f"patches {ph}x{pw}, {overlap}"
        else:
            text = "whole image" + (" + flips" if self.mode == "flips" else "")
        return text + ("" if self.precision == "float32" else f", {self.precision}")

    def record(self) -> dict:
        """What the results files say about how the predictions were made."""
        record = {"mode": self.mode, "precision": self.precision}
        if self.mode == "patches":
            record |= {"patch": list(self.patch_hw), "stride": list(self.stride_hw)}
        return record

    def tiles(self, image_hw: tuple[int, int]) -> tuple[int, int] | None:
        """(core, margin) of the tiles an image of this size is predicted in, or None for one pass.

        Tile origins are multiples of the core, and core and margin are multiples of the alignment
        (4 for whole images, the stride for patches), so every tile sees the whole image's grid.
        """
        height, width = image_hw
        if self.mode == "patches":
            rows, cols = (
                math.ceil(max(size - patch, 0) / stride) + 1
                for size, patch, stride in zip(image_hw, self.patch_hw, self.stride_hw, strict=True)
            )
            if rows * cols <= MAX_PASS_PATCHES:
                return None
            align = math.lcm(*self.stride_hw)
            margin = math.ceil(max(self.patch_hw) / align) * align  # every patch over a core pixel is in the tile
            side = int(math.sqrt(MAX_PASS_PATCHES * self.stride_hw[0] * self.stride_hw[1]))
        else:
            views = 4 if self.mode == "flips" else 1
            if height * width * views <= MAX_PASS_PIXELS:
                return None
            align, margin = DOWNSAMPLING, WHOLE_TILE_MARGIN
            side = int(math.sqrt(MAX_PASS_PIXELS // views))
        core = max((side - 2 * margin) // align * align, align)
        return core, margin
