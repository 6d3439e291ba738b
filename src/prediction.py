"""The one prediction core: a preprocessed image and an ``Inference`` value in, vessel probabilities out.

Every script (testing, your own photographs, the STARE folds, the benchmarks) predicts through
``predict_image``: overlapping patches averaged back (published), or the whole image at once, one
image at a time and in tiles when one pass would exceed the memory budget.
"""

import numpy as np

from lib.inference import DOWNSAMPLING, Inference, fov_window
from lib.patches import extract_overlapping, overlap_padding, pad_bottom_right, patches_touching, recompose_overlapping
from src.engines import as_engine


def predict_image(model, image: np.ndarray, inference: Inference, fov: np.ndarray | None = None) -> np.ndarray:
    """Vessel probabilities (H, W) of a preprocessed (1, H, W) image, as ``inference`` says; ``model`` is an
    engine (``src.engines.load_engine``) or a Keras model.

    With the (H, W) ``fov`` mask, only the FOV pixels' probabilities are those of a pass over the whole image:
    whole-image modes predict ``lib.inference.fov_window`` alone (the rest is 0), patch mode skips the patches
    holding no FOV pixel (every FOV pixel still averages all the patches covering it). Large images are predicted
    tile by tile (``Inference.tiles``): each tile carries a margin of context that is discarded, and tile origins
    lie on the whole image's grid (multiples of 4 for the U-Net's pooling, of the stride for patches), so every
    kept pixel sees exactly what one pass over the whole image would give it.
    """
    if fov is not None and inference.mode != "patches":
        window = fov_window(fov)
        result = np.zeros(image.shape[1:], dtype=np.float32)
        result[window] = predict_image(model, image[(slice(None), *window)], inference)
        return result
    tiling = inference.tiles(image.shape[1:])
    if tiling is None:
        return _predict_pass(model, image, inference, fov)
    core, margin = tiling
    height, width = image.shape[1:]
    result = np.empty((height, width), dtype=np.float32)
    for top in range(0, height, core):
        for left in range(0, width, core):
            y0, x0 = max(top - margin, 0), max(left - margin, 0)
            window = (slice(y0, top + core + margin), slice(x0, left + core + margin))
            tile = _predict_pass(model, image[(slice(None), *window)], inference, None if fov is None else fov[window])
            dy, dx = top - y0, left - x0
            result[top : top + core, left : left + core] = tile[dy : dy + core, dx : dx + core]
    return result


def _predict_pass(model, image: np.ndarray, inference: Inference, fov: np.ndarray | None) -> np.ndarray:
    if inference.mode == "patches":
        return predict_by_patches(model, image, inference.patch_hw, inference.stride_hw, inference.batch_size, fov)
    return predict_whole(model, image, flips=inference.mode == "flips")


def predict_patches(model, patches: np.ndarray, batch_size: int) -> np.ndarray:
    """Vessel probability of each pixel of (n, 1, ph, pw) patches → (n, ph, pw) float32.

    One engine call per batch (``src.engines``), so that memory holds one batch of outputs.
    """
    engine = as_engine(model)
    probabilities = np.empty((len(patches), *patches.shape[2:]), dtype=np.float32)
    for start in range(0, len(patches), batch_size):
        batch = patches[start : start + batch_size].transpose(0, 2, 3, 1)
        probabilities[start : start + batch_size] = engine.predict(batch)
    return probabilities


def predict_by_patches(
    model,
    image: np.ndarray,
    patch_hw: tuple[int, int],
    stride_hw: tuple[int, int],
    batch_size: int = 256,
    fov: np.ndarray | None = None,
) -> np.ndarray:
    """The published test-time prediction of one preprocessed (1, H, W) image → (H, W) probabilities.

    The image is zero-padded at the bottom and right so the patches tile it exactly, overlapping
    patches are predicted and their probabilities averaged per pixel, and the padding is cropped.
    With the stride equal to the patch size this is the published non-average mode.
    Given the (H, W) ``fov`` mask, patches without a FOV pixel are not predicted: every FOV pixel
    still averages all the patches covering it, exactly as published, and pixels outside the FOV
    (never evaluated, shown as 0 as the published ``kill_border`` does) average the patches left,
    or are 0.
    """
    height, width = image.shape[1:]
    patches, padded_hw, kept = overlapping_patches(image, patch_hw, stride_hw, fov)
    probabilities = predict_patches(model, patches, batch_size)
    del patches  # freed before the reassembly: the two never need to be in memory together
    recomposed = recompose_overlapping(probabilities, padded_hw, stride_hw, kept)
    return recomposed[:height, :width].astype(np.float32)


def overlapping_patches(
    image: np.ndarray, patch_hw: tuple[int, int], stride_hw: tuple[int, int], fov: np.ndarray | None = None
) -> tuple[np.ndarray, tuple[int, int], np.ndarray | None]:
    """The patches ``predict_by_patches`` predicts: (n, 1, ph, pw), the padded size, and which of the full
    extraction they are (None: all; with ``fov``, those holding a FOV pixel)."""
    padding = overlap_padding(image.shape[1:], patch_hw, stride_hw)
    padded = pad_bottom_right(image, padding)
    patches = extract_overlapping(padded, patch_hw, stride_hw)
    if fov is None:
        return patches, padded.shape[1:], None
    kept = patches_touching(pad_bottom_right(fov[None], padding)[0], patch_hw, stride_hw)
    return patches[kept], padded.shape[1:], kept


def predict_whole(model, image: np.ndarray, flips: bool = False) -> np.ndarray:
    """Predict a preprocessed (1, H, W) image in one pass (the U-Net is fully convolutional) → (H, W).

    With ``flips`` the probabilities of the image and its horizontal, vertical and double flips are averaged.
    """
    height, width = image.shape[1:]
    padded = pad_to_downsampling(image)[0]
    views = [padded]
    if flips:
        views += [padded[:, ::-1], padded[::-1, :], padded[::-1, ::-1]]
    batch = np.stack(views)[..., None].astype(np.float32)
    output = as_engine(model).predict(batch)
    unflipped = [output[0]]
    if flips:
        unflipped += [output[1][:, ::-1], output[2][::-1, :], output[3][::-1, ::-1]]
    return np.mean(unflipped, axis=0)[:height, :width].astype(np.float32)


def pad_to_downsampling(images: np.ndarray) -> np.ndarray:
    """Zero-pad (C, H, W) images at the bottom and right to the next multiples of 4, the sizes the U-Net takes whole."""
    height, width = images.shape[1:]
    return pad_bottom_right(images, (-height % DOWNSAMPLING, -width % DOWNSAMPLING))
