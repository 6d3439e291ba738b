"""Test-time prediction: the published patch pipeline (pad, overlapping patches, average, crop) and whole images."""

import keras
import numpy as np
import pytest

from lib import inference as inference_module
from lib.inference import Inference
from lib.published import extract_ordered_overlap, paint_border_overlap, recompone_overlap
from src import prediction
from src.model import build_unet
from src.prediction import predict_by_patches, predict_image, predict_patches, predict_whole


class Echo:
    """A stand-in model whose vessel probability is the input pixel itself (channels last, 2 classes)."""

    def __init__(self):
        self.batch_sizes = []

    def predict_on_batch(self, x):
        self.batch_sizes.append(len(x))
        x = np.asarray(x, dtype=np.float32)
        return np.concatenate([1 - x, x], axis=-1)


class RowIndex(Echo):
    """A model that is not flip-equivariant: it outputs each pixel's row position in its input."""

    def predict_on_batch(self, x):
        rows = np.broadcast_to(np.linspace(0, 1, x.shape[1])[None, :, None, None], x.shape).astype(np.float32)
        return np.concatenate([1 - rows, rows], axis=-1)


class PatchMean(Echo):
    """A stand-in whose output is constant over each patch (its mean): every pixel's average then depends on
    exactly which patches cover it, so a tiling that loses or adds one shows."""

    def predict_on_batch(self, x):
        means = np.broadcast_to(np.asarray(x, dtype=np.float32).mean(axis=(1, 2, 3), keepdims=True), x.shape)
        return np.concatenate([1 - means, means], axis=-1)


class Recorded:
    """A model that records the (height, width) of every batch it is given."""

    def __init__(self, model):
        self.model, self.shapes = model, []

    def predict_on_batch(self, x):
        self.shapes.append(x.shape[1:3])
        return self.model.predict_on_batch(x)


@pytest.fixture(scope="module")
def random_unet():
    keras.utils.set_random_seed(0)
    return build_unet()


@pytest.mark.parametrize("mode", ["whole", "flips"])
def test_whole_image_tiles_equal_one_pass(random_unet, monkeypatch, mode):
    image = np.random.default_rng(0).random((1, 181, 190), dtype=np.float32)
    inference = Inference(mode=mode)
    assert inference.tiles(image.shape[1:]) is None
    whole = predict_image(random_unet, image, inference)
    monkeypatch.setattr(inference_module, "MAX_PASS_PIXELS", 160 * 160 * (4 if mode == "flips" else 1))
    assert inference.tiles(image.shape[1:]) == (112, 24)  # 160 px passes: 112 px kept, 24 px of context each side
    tiled = predict_image(random_unet, image, inference)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


@pytest.mark.parametrize("mode", ["whole", "flips"])
def test_a_fov_narrower_than_the_image_is_predicted_alone_and_exactly(random_unet, mode):
    """A 3:2 frame with black sides: only the FOV's bounding box and its context go through the network, and
    every FOV pixel gets what a pass over the whole frame gives it (its pooling grid and receptive field kept)."""
    image = np.random.default_rng(2).random((1, 124, 230), dtype=np.float32)
    fov = np.zeros((124, 230), dtype=bool)
    fov[3:120, 70:171] = True  # 24 px of context reach neither side of the frame
    inference = Inference(mode=mode)
    whole = predict_image(random_unet, image, inference)
    recorded = Recorded(random_unet)
    cropped = predict_image(recorded, image, inference, fov)
    np.testing.assert_allclose(cropped[fov], whole[fov], atol=1e-6)
    assert set(recorded.shapes) == {(124, 152)}  # rows 0..124, columns 44..195 padded to 152: 152 of 230
    assert not cropped[:, :44].any() and not cropped[:, 195:].any()


def test_the_context_covers_the_unets_receptive_field():
    """WHOLE_TILE_MARGIN is the U-Net's receptive radius rounded up to the pooling grid: with every weight positive
    no ReLU is ever off, so the pixels an input pixel changes are all it can ever change, at each pooling phase."""
    unet = build_unet()
    for layer in unet.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([np.full_like(kernel, 1 / kernel[..., 0].size), np.zeros_like(bias)])
    scores = keras.Model(unet.input, unet.layers[-2].output)  # before the softmax, which would round them away
    radius = 0
    for centre in range(80, 80 + inference_module.DOWNSAMPLING):
        impulse = np.zeros((1, 160, 160, 1), dtype=np.float32)
        impulse[0, centre, centre] = 1
        reached = np.argwhere(np.asarray(scores.predict_on_batch(impulse))[0, ..., 1] > 0)
        radius = max(radius, int(np.abs(reached - centre).max()))
    assert radius == 23
    margin = inference_module.WHOLE_TILE_MARGIN
    assert radius <= margin < radius + inference_module.DOWNSAMPLING and margin % inference_module.DOWNSAMPLING == 0


def test_the_fov_window_keeps_the_context_and_the_pooling_grid():
    fov = np.zeros((300, 400), dtype=bool)
    fov[101:150, 203:260] = True
    rows, cols = inference_module.fov_window(fov)
    assert (rows.start, cols.start) == (76, 176)  # 101 - 24 and 203 - 24, down to multiples of 4
    assert (rows.stop, cols.stop) == (150 + 24, 260 + 24)
    assert inference_module.fov_window(np.zeros((30, 40), dtype=bool)) == (slice(0, 30), slice(0, 40))


@pytest.mark.parametrize("stride, budget", [((5, 5), 60), ((8, 6), 200)])
def test_patch_tiles_equal_one_pass_with_the_fov_skipping(monkeypatch, stride, budget):
    image = np.random.default_rng(1).random((1, 97, 123), dtype=np.float32)
    fov = np.zeros((97, 123), dtype=np.uint8)
    fov[10:90, 15:110] = 1
    inference = Inference(mode="patches", patch_hw=(16, 16), stride_hw=stride, batch_size=64)
    one_pass = predict_image(PatchMean(), image, inference, fov)
    monkeypatch.setattr(inference_module, "MAX_PASS_PATCHES", budget)
    core, margin = inference.tiles(image.shape[1:])
    assert core < 97 and margin >= 16 and core % stride[0] == margin % stride[0] == 0
    counted = []
    monkeypatch.setattr(
        prediction,
        "predict_patches",
        lambda model, patches, batch: counted.append(len(patches)) or predict_patches(model, patches, batch),
    )
    np.testing.assert_allclose(predict_image(PatchMean(), image, inference, fov), one_pass, rtol=0, atol=1e-12)
    assert len(counted) > 1 and max(counted) <= budget  # every pass within the memory budget


def test_predict_patches_returns_the_vessel_channel():
    patches = np.random.default_rng(0).random((5, 1, 8, 8)).astype(np.float32)
    model = Echo()
    out = predict_patches(model, patches, batch_size=3)
    assert out.shape == (5, 8, 8) and out.dtype == np.float32
    np.testing.assert_array_equal(out, patches[:, 0])
    assert model.batch_sizes == [3, 2]


@pytest.mark.parametrize(
    "size, patch, stride", [((37, 45), (16, 16), (5, 5)), ((32, 32), (16, 16), (16, 16)), ((30, 41), (8, 12), (3, 7))]
)
def test_predict_by_patches_of_an_echo_is_the_image(size, patch, stride):
    image = np.random.default_rng(1).random((1, *size)).astype(np.float32)
    out = predict_by_patches(Echo(), image, patch, stride, batch_size=64)
    assert out.shape == size and out.dtype == np.float32
    np.testing.assert_allclose(out, image[0], rtol=1e-6)


def test_predict_by_patches_equals_the_published_pipeline():
    """get_data_testing_overlap + model.predict + pred_to_imgs + recompone_overlap + crop, with a real U-Net."""
    keras.utils.set_random_seed(4)
    model = build_unet(16, 16)
    image = np.random.default_rng(4).random((1, 30, 27)).astype(np.float32)
    patch, stride = (16, 16), (5, 5)
    padded = paint_border_overlap(image[None], *patch, *stride)
    patches = extract_ordered_overlap(padded, *patch, *stride)
    predictions = model.predict(patches.transpose(0, 2, 3, 1).astype(np.float32), batch_size=32, verbose=0)
    vessel = predictions[..., 1][:, None]  # pred_to_imgs(..., "original")
    published, _ = recompone_overlap(vessel, padded.shape[2], padded.shape[3], *stride)
    published = published[0, 0, :30, :27]
    ours = predict_by_patches(model, image, patch, stride, batch_size=32)
    np.testing.assert_allclose(ours, published, atol=1e-6)


def test_predict_whole_pads_to_multiples_of_4_and_crops():
    image = np.random.default_rng(2).random((1, 30, 27)).astype(np.float32)
    model = Echo()
    out = predict_whole(model, image)
    assert out.shape == (30, 27) and out.dtype == np.float32
    np.testing.assert_array_equal(out, image[0])
    keras_out = predict_whole(build_unet(), image)  # a real U-Net needs the padding
    assert keras_out.shape == (30, 27)


def test_flip_averaging_undoes_each_flip():
    image = np.random.default_rng(3).random((1, 12, 9)).astype(np.float32)
    np.testing.assert_allclose(predict_whole(Echo(), image, flips=True), image[0], rtol=1e-6)
    # a model that outputs the row position: the vertical flips, undone, average every row to the middle...
    rows = predict_whole(RowIndex(), image, flips=True)
    assert rows.shape == (12, 9)
    # ...of the padded 12-row image: (r + (11 - r)) / 11 / 2 = 0.5 for every pixel
    np.testing.assert_allclose(rows, 0.5, atol=1e-6)
    np.testing.assert_allclose(predict_whole(RowIndex(), image)[:, 0], np.linspace(0, 1, 12), atol=1e-6)


def test_predict_by_patches_with_a_fov_predicts_fewer_patches_and_the_same_fov_pixels():
    keras.utils.set_random_seed(6)
    model = build_unet(16, 16)
    image = np.random.default_rng(6).random((1, 41, 38)).astype(np.float32)
    rows, cols = np.ogrid[:41, :38]
    fov = ((rows - 20) ** 2 + (cols - 19) ** 2 <= 12**2).astype(np.uint8)
    every = predict_by_patches(model, image, (16, 16), (5, 5), batch_size=32)
    counting = Counting(model)
    skipped = predict_by_patches(counting, image, (16, 16), (5, 5), batch_size=32, fov=fov)
    assert counting.patches < 7 * 6  # the 7x6 grid of patches, less those outside the disc
    np.testing.assert_allclose(skipped[fov > 0], every[fov > 0], atol=1e-6)


class Counting:
    """Wraps a model and counts the patches it is asked to predict."""

    def __init__(self, model):
        self.model, self.patches = model, 0

    def predict_on_batch(self, x):
        self.patches += len(x)
        return self.model.predict_on_batch(x)
