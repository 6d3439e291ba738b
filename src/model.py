"""The published U-Net, in tf.keras (channels last), and the loader for the published Keras-1 weights."""

import contextlib
import os
import tempfile
import warnings
from pathlib import Path

import h5py
import numpy as np

from lib.errors import UserError
from lib.experiment import WEIGHTS_SUFFIX
from src.backend import keras

layers = keras.layers

N_CLASSES = 2  # background, vessel
N_CONVOLUTIONS = 11


def build_unet(
    patch_height: int | None = None, patch_width: int | None = None, dropout: float = 0.2, final_relu: bool = False
) -> keras.Model:
    """The published U-Net: 32/64/128 channels, two 3x3 ReLU convolutions per block with Dropout between.

    As published, each up-sampled map is concatenated before its skip ([up, skip]), and a 1x1
    convolution gives the two class scores, softmax over the classes. The published model also put a
    ReLU on those scores: once the vessel score turns negative it is clipped to 0, its gradient
    vanishes and the vessel probability can never exceed 0.5. This project trains without it;
    ``final_relu=True`` rebuilds the published head for the published weights. The network is fully
    convolutional: leave the size as None to predict whole images whose sides are multiples of 4.
    """
    names = iter(f"conv_{index}" for index in range(1, N_CONVOLUTIONS + 1))

    def block(tensor, channels):
        tensor = layers.Conv2D(channels, 3, padding="same", activation="relu", name=next(names))(tensor)
        tensor = layers.Dropout(dropout)(tensor)
        return layers.Conv2D(channels, 3, padding="same", activation="relu", name=next(names))(tensor)

    inputs = keras.Input(shape=(patch_height, patch_width, 1), name="image")
    level1 = block(inputs, 32)
    level2 = block(layers.MaxPooling2D(2)(level1), 64)
    bottom = block(layers.MaxPooling2D(2)(level2), 128)
    up2 = block(layers.Concatenate()([layers.UpSampling2D(2)(bottom), level2]), 64)
    up1 = block(layers.Concatenate()([layers.UpSampling2D(2)(up2), level1]), 32)
    logits = layers.Conv2D(N_CLASSES, 1, activation="relu" if final_relu else None, name=next(names))(up1)
    outputs = layers.Softmax(axis=-1, name="vessel_softmax", dtype="float32")(logits)
    return keras.Model(inputs, outputs, name="retina_unet")


def is_legacy_weights(path) -> bool:
    """Whether ``path`` holds the published Keras-1 weights (layer groups ``convolution2d_1`` ...)."""
    try:
        with h5py.File(path, "r") as handle:
            return "convolution2d_1" in handle
    except OSError:
        return False


def load_legacy_weights(model: keras.Model, path) -> None:
    """Load the published Keras-1 (Theano) weights into ``model``.

    Theano stored kernels as (out, in, kh, kw) and convolved (flipped kernels); TensorFlow
    cross-correlates with (kh, kw, in, out) kernels, so each kernel is flipped in both spatial axes
    and transposed.
    """
    with h5py.File(path, "r") as handle:
        for index in range(1, N_CONVOLUTIONS + 1):
            group = handle[f"convolution2d_{index}"]
            kernel = group[f"convolution2d_{index}_W"][()][:, :, ::-1, ::-1].transpose(2, 3, 1, 0)
            bias = group[f"convolution2d_{index}_b"][()]
            layer = model.get_layer(f"conv_{index}")
            expected = tuple(layer.kernel.shape)
            if kernel.shape != expected:
                raise UserError(f"{path}: convolution2d_{index} has shape {kernel.shape}, the U-Net needs {expected}")
            layer.set_weights([np.ascontiguousarray(kernel), bias])


def load_trained_model(path, precision: str = "float32") -> keras.Model:
    """A fully convolutional U-Net with the weights at ``path``: this project's, or the published ones
    (detected by their layer names, and given the published ReLU head they were trained with).

    ``precision`` is the Keras dtype policy it computes in (``mixed_bfloat16`` halves the time on CPUs
    with AVX-512 BF16); the weights and the probabilities stay float32.
    """
    if not os.path.isfile(path):
        raise UserError(f"{path}: weights file not found; train first (run_training.py) or pass --weights PATH")
    model = build_unet_in(precision, final_relu=is_legacy_weights(path))
    load_weights(model, path)
    return model


def build_unet_in(precision: str, **options) -> keras.Model:
    """``build_unet(**options)`` computing in the Keras dtype policy ``precision``, whatever the global one."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        return build_unet(**options)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def load_weights(model: keras.Model, path) -> None:
    """Load this project's ``.weights.h5`` or the published Keras-1 weights, with a clear error on mismatch."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: weights file not found; train first (run_training.py) or pass --weights PATH")
    if is_legacy_weights(path):
        try:
            load_legacy_weights(model, path)
        except (KeyError, OSError, ValueError) as error:  # a damaged or incomplete Keras-1 file
            reason = str(error).strip("'\"").splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(f"{path}: incomplete published Keras-1 weights ({reason}); re-download the file") from None
        return
    try:
        with warnings.catch_warnings(), _weights_name(path) as named:  # a mismatch also prints a dozen Keras warnings
            warnings.simplefilter("ignore")
            model.load_weights(named)
    except (ValueError, OSError, KeyError, TypeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        reason = reason.split(". Example error message")[0].rstrip(".:")  # Keras adds a multi-line example
        raise UserError(
            f"{path}: not weights of this U-Net ({reason}); pass a .weights.h5 written by run_training.py "
            "or the published test_best_weights.h5"
        ) from None


@contextlib.contextmanager
def _weights_name(path):
    """``path``, or when it does not end in ``.weights.h5``, which Keras 3 insists on (a file renamed ``.h5``), a
    link to it that does."""
    if str(path).endswith(WEIGHTS_SUFFIX):
        yield path
        return
    with tempfile.TemporaryDirectory() as folder:
        link = Path(folder) / f"weights{WEIGHTS_SUFFIX}"
        link.symlink_to(Path(path).resolve())
        yield link
