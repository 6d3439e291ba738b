"""Export a trained U-Net for use outside Python (SavedModel, TFLite, ONNX), verified against Keras before it lands.

The exported model's contract (docs/export.md): input ``image``, (N, H, W, 1) float32, preprocessed gray images
(``lib.preprocessing.preprocess``) zero-padded at the bottom and right to multiples of 4; output ``vessel``,
(N, H, W) float32, the softmax's vessel channel. N, H and W are dynamic.
"""

import dataclasses
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lib.atomic import atomic_folder, atomic_path
from lib.errors import UserError
from lib.preprocessing import preprocess
from lib.synthetic import synthetic_fundus
from src.backend import keras, tf
from src.model import load_trained_model
from src.prediction import pad_to_downsampling, predict_whole

layers = keras.layers

INPUT_NAME = "image"
OUTPUT_NAME = "vessel"
DRIVE_HW = (584, 565)  # the size the script verifies at: padded to 584x568 as predict_whole pads it
ONNX_OPSET = 17  # onnxruntime >= 1.13, and most other ONNX runtimes, run it


class ResizeUpSampling2D(layers.UpSampling2D):
    """Keras' nearest UpSampling2D computed as a nearest-neighbour resize: the same values (each pixel copied into
    a size[0] x size[1] block), in a graph that TFLite and tf2onnx both convert.

    Keras 3 up-samples with tf.repeat, whose reshape leaves every dimension unknown when H and W are dynamic; the
    TFLite converter then cannot lower the next convolution to a builtin op ("'tf.Conv2D' op is neither a custom
    op nor a flex op"). Reshaping again with the channel count written in satisfies TFLite, but tf2onnx merges
    the two reshapes wrongly (onnxruntime: "The input tensor cannot be reshaped to the requested shape").
    """

    def call(self, inputs):
        size = tf.shape(inputs)[1:3] * tf.constant(self.size, dtype=tf.int32)
        # Without half-pixel centres: tf2onnx then writes ONNX's plain "asymmetric" nearest Resize, not the deprecated
        # "tf_half_pixel_for_nn" mode that onnxruntime warns about at every session.
        return tf.raw_ops.ResizeNearestNeighbor(images=inputs, size=size, align_corners=False, half_pixel_centers=False)


def vessel_function(model: keras.Model) -> tuple[tf.types.experimental.PolymorphicFunction, keras.Model]:
    """The exported computation: ``image`` (N, H, W, 1) → {``vessel``: (N, H, W)}, and the Keras graph it runs
    (``model``'s layers and weights, ResizeUpSampling2D in place of UpSampling2D)."""

    def convertible(layer):
        if isinstance(layer, layers.UpSampling2D):
            return ResizeUpSampling2D.from_config(layer.get_config())
        return layer  # the same layer object: the weights are shared, not copied

    graph = keras.models.clone_model(model, clone_function=convertible)

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 1), tf.float32, name=INPUT_NAME)])
    def vessel(image):
        return {OUTPUT_NAME: graph(image, training=False)[..., 1]}

    return vessel, graph


def write_savedmodel(function, graph: keras.Model, temp: Path) -> None:
    """A SavedModel folder whose serving_default signature is ``function``."""
    archive = keras.export.ExportArchive()
    archive.track(graph)
    archive.add_endpoint(name="serve", fn=function)
    archive.write_out(str(temp), verbose=False)


def write_tflite(function, graph: keras.Model, temp: Path) -> None:
    """A TFLite flatbuffer, converted from the SavedModel (``from_concrete_functions`` given the Keras 3 model
    wrote a file without its weights, whose output was NaN)."""
    with tempfile.TemporaryDirectory(prefix="retina-unet-export-") as folder:
        write_savedmodel(function, graph, Path(folder))
        flatbuffer = tf.lite.TFLiteConverter.from_saved_model(folder).convert()
    temp.write_bytes(flatbuffer)


def write_onnx(function, graph: keras.Model, temp: Path) -> None:
    """An ONNX model; its free dimensions are named batch, height and width (tf2onnx numbers them unk__N)."""
    import onnx  # checked by require_onnx_tools
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(function, input_signature=function.input_signature, opset=ONNX_OPSET)
    for value in (*proto.graph.input, *proto.graph.output):
        for dim, name in zip(value.type.tensor_type.shape.dim, ("batch", "height", "width"), strict=False):
            dim.dim_param = name
    onnx.save(proto, str(temp))


def run_savedmodel(path: Path, batch: np.ndarray) -> np.ndarray:
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return serve(**{INPUT_NAME: tf.constant(batch)})[OUTPUT_NAME].numpy()


def tflite_interpreter(path: Path) -> tf.lite.Interpreter:
    with warnings.catch_warnings():  # tf.lite.Interpreter is deprecated for ai_edge_litert's, the same API
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_path=str(path))


def run_tflite(path: Path, batch: np.ndarray) -> np.ndarray:
    """Run the flatbuffer at ``batch``'s size (the input is resized: the file's H and W are dynamic)."""
    interpreter = tflite_interpreter(path)
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], batch.shape)
    interpreter.allocate_tensors()
    return interpreter.get_signature_runner("serving_default")(**{INPUT_NAME: batch})[OUTPUT_NAME]


def run_onnx(path: Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime  # checked by require_onnx_tools

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]


@dataclasses.dataclass(frozen=True)
class Format:
    write: Callable[[object, keras.Model, Path], None]  # (vessel_function, its graph, temporary path)
    run: Callable[[Path, np.ndarray], np.ndarray]  # (exported path, (N, H, W, 1) batch) → (N, H, W)
    tolerance: float  # the largest difference from Keras accepted
    suffix: str | None  # of the temporary file; None: the format is a folder


FORMATS = {
    "savedmodel": Format(write_savedmodel, run_savedmodel, 1e-4, None),
    "tflite": Format(write_tflite, run_tflite, 1e-3, ".tflite"),
    "onnx": Format(write_onnx, run_onnx, 1e-4, ".onnx"),
}


@dataclasses.dataclass(frozen=True)
class Verification:
    difference: float  # max |exported - Keras| over every pixel
    tolerance: float
    input_shape: tuple[int, ...]  # the padded (N, H, W, 1) batch the exported model ran on

    def __str__(self):
        shape = "x".join(map(str, self.input_shape))
        return f"max |exported - Keras| = {self.difference:.3g} on a {shape} input (tolerance {self.tolerance:g})"


def export(
    weights: Path,
    fmt: str,
    out: Path,
    check_shape: tuple[int, int, int] = (1, *DRIVE_HW),
    tolerance: float | None = None,
) -> Verification:
    """Export the U-Net with ``weights`` to ``out`` in ``fmt``, written atomically once it matches Keras on
    ``check_shape`` (N, H, W) synthetic fundus images; a larger difference than ``tolerance`` (default the
    format's) is an error and writes nothing."""
    if fmt == "onnx":
        require_onnx_tools()
    model = load_trained_model(weights)
    with atomic_output(out, FORMATS[fmt].suffix) as temp:
        images = verification_images(*check_shape)
        expected = np.stack([predict_whole(model, image) for image in images])
        function, graph = vessel_function(model)
        FORMATS[fmt].write(function, graph, temp)
        result = verify(temp, fmt, images, expected)
        if tolerance is not None:
            result = dataclasses.replace(result, tolerance=tolerance)
        if not result.difference <= result.tolerance:  # NaN too
            raise UserError(f"{out}: the exported model differs from Keras: {result}; nothing was written")
    return result


SAVEDMODEL_CONTENTS = ("fingerprint.pb", "variables", "assets")  # what tf.saved_model.save writes beside the .pb


def atomic_output(out: Path, suffix: str | None):
    """Where to write ``out`` (a file with ``suffix``, or a SavedModel folder): renamed onto it on success."""
    if suffix is None:
        return atomic_folder(out, marker="saved_model.pb", contents=SAVEDMODEL_CONTENTS)
    return atomic_path(out, suffix=suffix)


def verify(path: Path, fmt: str, images: np.ndarray, expected: np.ndarray) -> Verification:
    """Compare the exported model's probabilities for preprocessed (N, 1, H, W) ``images`` with ``expected``."""
    batch = exported_input(images)
    probabilities = FORMATS[fmt].run(path, batch)[:, : images.shape[2], : images.shape[3]]
    difference = float(np.max(np.abs(probabilities - expected)))
    return Verification(difference, FORMATS[fmt].tolerance, batch.shape)


def exported_input(images: np.ndarray) -> np.ndarray:
    """Preprocessed (N, 1, H, W) images → the exported model's input: zero-padded to multiples of 4, (N, H', W', 1)."""
    return np.ascontiguousarray(pad_to_downsampling(images[:, 0])[..., None], dtype=np.float32)


def verification_images(count: int, height: int, width: int) -> np.ndarray:
    """``count`` synthetic fundus photographs (seeded), preprocessed as published → (N, 1, H, W) float32."""
    rng = np.random.default_rng(0)
    photographs = np.stack([synthetic_fundus(rng, height, width)[0] for _ in range(count)])
    return preprocess(photographs.transpose(0, 3, 1, 2))


def require_onnx_tools() -> None:
    """tf2onnx, onnx and onnxruntime are requirements of the ONNX export only: requirements-export.txt."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as error:
        raise UserError(
            f"--format onnx needs tf2onnx, onnx and onnxruntime ({error}): pip install -r requirements-export.txt"
        ) from None
