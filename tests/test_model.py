"""The U-Net against the published Keras-1 model, and the loader of the published (Theano-layout) weights."""

import h5py
import keras
import numpy as np
import pytest

from lib.errors import UserError
from lib.published import UNET_CONVOLUTIONS
from src import model as unet

# layer_names of the published test_best_weights.h5 (Keras 1.0.5), up to the final convolution
PUBLISHED_LAYERS = [
    "input_1", "convolution2d_1", "dropout_1", "convolution2d_2", "maxpooling2d_1", "convolution2d_3", "dropout_2",
    "convolution2d_4", "maxpooling2d_2", "convolution2d_5", "dropout_3", "convolution2d_6", "upsampling2d_1",
    "merge_1", "convolution2d_7", "dropout_4", "convolution2d_8", "upsampling2d_2", "merge_2", "convolution2d_9",
    "dropout_5", "convolution2d_10", "convolution2d_11",
]  # fmt: skip
KERAS1_TO_KERAS3 = {
    "input": "InputLayer",
    "convolution2d": "Conv2D",
    "dropout": "Dropout",
    "maxpooling2d": "MaxPooling2D",
    "upsampling2d": "UpSampling2D",
    "merge": "Concatenate",
}


@pytest.fixture(scope="module")
def patch_model():
    keras.utils.set_random_seed(0)
    return unet.build_unet(48, 48)


def convolutions(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def test_published_layer_structure(patch_model):
    classes = [layer.__class__.__name__ for layer in patch_model.layers]
    expected = [KERAS1_TO_KERAS3[name.rsplit("_", 1)[0]] for name in PUBLISHED_LAYERS]
    # Keras 1 ended with Reshape + Permute + Activation('softmax'); here one Softmax over the channel axis
    assert classes == [*expected, "Softmax"]
    convs = convolutions(patch_model)
    assert len(convs) == unet.N_CONVOLUTIONS == 11
    assert [layer.name for layer in convs] == [f"conv_{i}" for i in range(1, 12)]
    assert [layer.filters for layer in convs] == [32, 32, 64, 64, 128, 128, 64, 64, 32, 32, 2]
    for layer, (channels_in, channels_out, size) in zip(convs, UNET_CONVOLUTIONS, strict=True):
        assert tuple(layer.kernel.shape) == (size, size, channels_in, channels_out), layer.name
        assert size == 1 or layer.padding == "same"  # a 1x1 convolution is the same with either padding
        if layer.name != "conv_11":
            assert layer.activation is keras.activations.relu, layer.name
    dropouts = [layer for layer in patch_model.layers if isinstance(layer, keras.layers.Dropout)]
    assert [layer.rate for layer in dropouts] == [0.2] * 5


def test_final_scores_have_no_relu_unless_rebuilding_the_published_head(patch_model):
    """The published ReLU on the class scores caps the vessel probability at 0.5 once its score turns negative."""
    assert patch_model.get_layer("conv_11").activation is keras.activations.linear
    published_head = unet.build_unet(48, 48, final_relu=True)
    assert published_head.get_layer("conv_11").activation is keras.activations.relu


def test_published_weights_get_the_published_head(legacy_weights):
    model = unet.load_trained_model(legacy_weights)
    assert model.get_layer("conv_11").activation is keras.activations.relu


def test_published_parameter_count(patch_model):
    assert patch_model.count_params() == 471_010
    assert sum((i * k * k + 1) * o for i, o, k in UNET_CONVOLUTIONS) == 471_010


def test_skip_concatenation_is_upsampled_first(patch_model):
    """The published merge([UpSampling2D(conv3), conv2]): the legacy kernels' input channels depend on it."""
    concatenations = [layer for layer in patch_model.layers if isinstance(layer, keras.layers.Concatenate)]
    assert len(concatenations) == 2
    for layer, skip in zip(concatenations, ("conv_4", "conv_2"), strict=True):
        sources = [tensor._keras_history.operation for tensor in layer.input]
        assert isinstance(sources[0], keras.layers.UpSampling2D)
        assert sources[1].name == skip


def test_softmax_over_two_classes(patch_model):
    x = np.random.default_rng(0).random((3, 48, 48, 1)).astype(np.float32)
    y = patch_model.predict(x, verbose=0)
    assert y.shape == (3, 48, 48, 2) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-5)
    assert (y >= 0).all() and (y <= 1).all()


@pytest.mark.parametrize("size", [(20, 28), (64, 92)])
def test_whole_images_with_sides_multiple_of_4(size):
    model = unet.build_unet()
    assert model.input_shape == (None, None, None, 1)
    y = model.predict(np.zeros((1, *size, 1), dtype=np.float32), verbose=0)
    assert y.shape == (1, *size, 2)


def test_patch_and_whole_models_share_weights():
    keras.utils.set_random_seed(1)
    patch = unet.build_unet(16, 16)
    whole = unet.build_unet()
    whole.set_weights(patch.get_weights())
    x = np.random.default_rng(1).random((2, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(whole.predict(x, verbose=0), patch.predict(x, verbose=0), atol=1e-6)


# ------------------------------------------------------------------ the published Keras-1 weights


def to_theano(kernel: np.ndarray) -> np.ndarray:
    """A TensorFlow (kh, kw, in, out) cross-correlation kernel as Keras-1/Theano stored it: (out, in, kh, kw),
    flipped in both spatial axes because Theano convolved."""
    return kernel.transpose(3, 2, 0, 1)[:, :, ::-1, ::-1]


def write_keras1_weights(path, model, layout=to_theano):
    """A Keras-1 weights file of the published layout: groups convolution2d_k with _W and _b."""
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = np.array([f"convolution2d_{i}".encode() for i in range(1, 12)])
        for index in range(1, 12):
            kernel, bias = model.get_layer(f"conv_{index}").get_weights()
            group = handle.create_group(f"convolution2d_{index}")
            group.attrs["weight_names"] = np.array(
                [f"convolution2d_{index}_W".encode(), f"convolution2d_{index}_b".encode()]
            )
            group.create_dataset(f"convolution2d_{index}_W", data=layout(kernel))
            group.create_dataset(f"convolution2d_{index}_b", data=bias)


@pytest.fixture(scope="module")
def trained_like():
    """A small U-Net with random kernels and non-zero biases, and an input to compare outputs on."""
    keras.utils.set_random_seed(2)
    model = unet.build_unet(16, 16)
    rng = np.random.default_rng(2)
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(np.float32) for w in model.get_weights()])
    x = rng.random((2, 16, 16, 1)).astype(np.float32)
    return model, x, model.predict(x, verbose=0)


def test_legacy_loader_reproduces_the_original_outputs(tmp_path, trained_like):
    original, x, expected = trained_like
    path = tmp_path / "test_best_weights.h5"
    write_keras1_weights(path, original)
    assert unet.is_legacy_weights(path)
    keras.utils.set_random_seed(3)
    fresh = unet.build_unet(16, 16)
    assert not np.allclose(fresh.predict(x, verbose=0), expected, atol=1e-3)
    unet.load_weights(fresh, path)
    np.testing.assert_allclose(fresh.predict(x, verbose=0), expected, atol=1e-5)
    for index in range(1, 12):
        for mine, theirs in zip(
            fresh.get_layer(f"conv_{index}").get_weights(),
            original.get_layer(f"conv_{index}").get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(mine, theirs)


def test_legacy_kernels_must_be_flipped(tmp_path, trained_like):
    """Without the spatial flip (plain transpose) the outputs differ: the loader really undoes Theano's convolution."""
    original, x, expected = trained_like
    path = tmp_path / "unflipped.h5"
    write_keras1_weights(path, original, layout=lambda kernel: kernel.transpose(3, 2, 0, 1))
    model = unet.build_unet(16, 16)
    unet.load_weights(model, path)
    assert not np.allclose(model.predict(x, verbose=0), expected, atol=1e-3)


def test_legacy_weights_of_another_shape_are_refused(tmp_path):
    small = unet.build_unet(16, 16)
    path = tmp_path / "other.h5"
    write_keras1_weights(path, small)
    with h5py.File(path, "a") as handle:
        del handle["convolution2d_3/convolution2d_3_W"]
        handle["convolution2d_3"].create_dataset("convolution2d_3_W", data=np.zeros((16, 32, 3, 3), np.float32))
    with pytest.raises(UserError, match="convolution2d_3"):
        unet.load_weights(unet.build_unet(16, 16), path)


def test_project_weights_round_trip(tmp_path, trained_like):
    original, x, expected = trained_like
    path = tmp_path / "exp_best.weights.h5"
    original.save_weights(path)
    assert not unet.is_legacy_weights(path)
    model = unet.build_unet()  # whole-image model, as the test script builds it
    unet.load_weights(model, path)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-5)


def test_bfloat16_inference_keeps_float32_weights_and_probabilities(tmp_path, trained_like):
    """``[testing settings] precision = mixed_bfloat16``: bf16 arithmetic, float32 storage, the policy restored."""
    original, x, expected = trained_like
    path = tmp_path / "exp_best.weights.h5"
    original.save_weights(path)
    model = unet.load_trained_model(path, "mixed_bfloat16")
    assert keras.mixed_precision.global_policy().name == "float32"
    assert model.get_layer("conv_1").compute_dtype == "bfloat16"
    assert all(weight.dtype == np.float32 for weight in model.get_weights())
    output = model.predict(x, verbose=0)
    assert output.dtype == np.float32
    np.testing.assert_allclose(output, expected, atol=0.05)  # bfloat16 keeps 8 bits of mantissa
    assert not np.array_equal(output, expected)


def test_missing_or_bad_weights_are_user_errors(tmp_path):
    model = unet.build_unet(16, 16)
    with pytest.raises(UserError, match="weights file not found"):
        unet.load_weights(model, tmp_path / "none.weights.h5")
    garbage = tmp_path / "garbage.weights.h5"
    garbage.write_bytes(b"not an hdf5 file" * 50)
    with pytest.raises(UserError, match="garbage.weights.h5"):
        unet.load_weights(model, garbage)


@pytest.mark.slow  # the published weights on a real DRIVE image
def test_published_weights_segment_a_drive_image(legacy_weights, drive_root):
    """The published model, loaded into this U-Net, predicts DRIVE test image 01 (whole image) with AUC > 0.97."""
    from lib.datasets import read_drive_split
    from lib.metrics import evaluate_fov
    from lib.preprocessing import preprocess
    from src.prediction import predict_whole

    test = read_drive_split(drive_root, "test")
    images = preprocess(test["imgs"])  # the whole test set's statistics, as published
    model = unet.load_trained_model(legacy_weights)
    probabilities = predict_whole(model, images[0])
    assert probabilities.shape == (584, 565)
    mask = test["borderMasks"][0, 0]
    results = evaluate_fov(test["groundTruth"][0, 0] > 0, probabilities, mask).metrics
    assert results["auc_roc"] > 0.97
    assert results["accuracy"] > 0.94
