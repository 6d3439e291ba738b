"""src/engines.py: the onnxruntime engine gives Keras float32's probabilities within 1e-5; its ONNX model is built
once, cached under the weights' SHA-256 (a retrained file is never served a stale model, a damaged one is rebuilt,
an unwritable folder falls back to the user's cache), and without onnxruntime the project runs on Keras with a note.
"""

import importlib.util
import shutil

import numpy as np
import pytest
from helpers import untrained_weights

import run_prediction
from lib.config import load_config
from lib.errors import UserError
from lib.inference import Inference
from lib.preprocessing import preprocess
from lib.synthetic import synthetic_fundus
from src import cli, engines
from src.prediction import predict_image

# The tests of the onnxruntime engine; the others hold without its packages (the project runs on Keras then)
needs_onnx = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in engines.ONNX_PACKAGES), reason=engines.INSTALL
)


def fundus(seed: int, height: int, width: int) -> np.ndarray:
    """A preprocessed (1, H, W) synthetic fundus photograph."""
    rgb = synthetic_fundus(np.random.default_rng(seed), height, width)[0]
    return preprocess(rgb.transpose(2, 0, 1)[None])[0]


@pytest.fixture(scope="module")
def unet_weights(tmp_path_factory):
    """A U-Net's weights (seeded, untrained)."""
    return untrained_weights(tmp_path_factory.mktemp("weights"), "unet.weights.h5", seed=3)


@pytest.fixture(scope="module")
def built(unet_weights):
    """The weights and their ONNX engine, built once for the module."""
    return unet_weights, engines.load_engine(unet_weights, Inference(engine="onnxruntime"), quiet=True)


@pytest.fixture
def no_build(monkeypatch):
    """Building an ONNX model is recorded instead of done."""
    calls = []
    monkeypatch.setattr(engines, "build", lambda weights, folder, key: calls.append((folder, key)) or folder / "x")
    return calls


@needs_onnx
def test_onnxruntime_gives_the_keras_probabilities_within_1e5(built):
    from src.model import load_trained_model

    weights, engine = built
    assert isinstance(engine, engines.OnnxEngine)
    keras_model = load_trained_model(weights)
    image = fundus(0, 70, 90)  # 90: padded to 92 for the whole image
    for inference in (Inference(mode="whole"), Inference(mode="flips"), Inference(patch_hw=(16, 16), stride_hw=(5, 5))):
        expected = predict_image(keras_model, image, inference)
        assert np.abs(predict_image(engine, image, inference) - expected).max() <= engines.TOLERANCE


@needs_onnx
def test_the_cache_is_named_by_the_weights_sha256_and_served_without_rebuilding(built, no_build):
    weights, engine = built
    key = engines.cache_key(weights, engines.weights_digest(weights))
    assert engine.path.parent == weights.parent and engine.path.name.startswith(key + ".")
    assert engines.onnx_model(weights) == engine.path
    assert no_build == []


@needs_onnx
def test_retrained_weights_are_never_served_the_stale_model(built, tmp_path, no_build):
    weights, engine = built
    retrained = tmp_path / weights.name
    retrained.write_bytes(weights.read_bytes() + b"\0")  # another file under the same name
    shutil.copy(engine.path, tmp_path / engine.path.name)  # the old model beside it
    engines.onnx_model(retrained)
    assert no_build == [(tmp_path, engines.cache_key(retrained, engines.weights_digest(retrained)))]


@needs_onnx
def test_a_damaged_model_is_removed_and_rebuilt(built, tmp_path, no_build):
    weights, engine = built
    copy = tmp_path / weights.name
    shutil.copy(weights, copy)
    damaged = tmp_path / engine.path.name
    data = bytearray(engine.path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    damaged.write_bytes(bytes(data))
    assert engines.cached_model(tmp_path, engines.cache_key(copy, engines.weights_digest(copy))) is None
    assert not damaged.exists()
    engines.onnx_model(copy)
    assert len(no_build) == 1


@needs_onnx
def test_an_unwritable_weights_folder_caches_in_the_user_folder(built, tmp_path, monkeypatch, no_build, capsys):
    weights, _ = built
    copy = tmp_path / "models" / weights.name
    copy.parent.mkdir()
    shutil.copy(weights, copy)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(engines, "writable", lambda folder: folder != copy.parent)
    engines.onnx_model(copy)
    assert no_build[0][0] == tmp_path / "cache" / "retina-unet" / "onnx"
    assert f"note: {copy.parent} is not writable" in capsys.readouterr().out


def test_without_onnxruntime_keras_runs_with_one_line_of_note(unet_weights, monkeypatch, capsys):
    weights = unet_weights
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "onnxruntime" else found(name))
    engine = engines.load_engine(weights, Inference())
    assert isinstance(engine, engines.KerasEngine)
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("engine: keras") and "note: onnxruntime not installed" in line
    with pytest.raises(UserError, match="pip install -r requirements-export.txt"):
        engines.load_engine(weights, Inference(engine="onnxruntime"))


@needs_onnx
def test_auto_is_onnxruntime_in_float32_and_keras_for_the_keras_precisions():
    assert engines.resolve(Inference())[0] == "onnxruntime"
    assert engines.resolve(Inference(engine="keras"))[0] == "keras"
    assert engines.resolve(Inference(precision="mixed_bfloat16"))[0] == "keras"
    with pytest.raises(UserError, match="needs engine keras"):
        engines.resolve(Inference(precision="mixed_bfloat16", engine="onnxruntime"))


def test_the_engine_key_and_option(tmp_path, repo):
    assert load_config(repo / "configuration.txt").testing.inference.engine == "auto"
    config = tmp_path / "c.txt"  # a variant written as its difference
    variant = f"[based on]\nfile = {repo / 'configuration.txt'}\n[testing settings]\nengine = "
    config.write_text(variant + "keras\n")
    loaded = load_config(config)
    assert loaded.testing.inference.engine == "keras"
    assert cli.with_engine(loaded, "onnxruntime").testing.inference.engine == "onnxruntime"
    assert cli.with_engine(loaded, None) is loaded
    config.write_text(variant + "tensorrt\n")
    with pytest.raises(UserError, match="engine = 'tensorrt' is not one of auto, keras, onnxruntime"):
        load_config(config)


def test_run_prediction_says_first_which_engine_runs(tmp_path, monkeypatch, capsys):
    from src import segment

    monkeypatch.setattr(segment, "segment", lambda *args: 0)
    assert run_prediction.main([str(tmp_path), "--engine", "keras", "--weights", str(tmp_path / "w.h5")]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("engine: keras, TensorFlow ")


@needs_onnx
@pytest.mark.slow  # the 20 real DRIVE test images, whole, with two sets of weights and both engines (about 2 min)
@pytest.mark.parametrize("which", ["published", "reference"])
def test_onnxruntime_gives_the_keras_probabilities_on_real_drive(which, drive_root, legacy_weights, repo, tmp_path):
    from lib.datasets import read_drive_split
    from src.model import load_trained_model

    weights = tmp_path / (legacy_weights.name if which == "published" else "test_best.weights.h5")
    shutil.copy(legacy_weights if which == "published" else repo / "test" / "test_best.weights.h5", weights)
    keras_model = load_trained_model(weights)
    engine = engines.load_engine(weights, Inference(engine="onnxruntime"), quiet=True)
    images = preprocess(read_drive_split(drive_root, "test")["imgs"])
    for image in images:
        expected = predict_image(keras_model, image, Inference(mode="whole"))
        assert np.abs(predict_image(engine, image, Inference(mode="whole")) - expected).max() <= engines.TOLERANCE
    corner = images[0][:, 250:350, 250:350]  # stride-5 patches of a part of the image: the published test's way
    expected = predict_image(keras_model, corner, Inference())
    assert np.abs(predict_image(engine, corner, Inference()) - expected).max() <= engines.TOLERANCE


@needs_onnx
@pytest.mark.slow  # the published stride-5 test of the 20 DRIVE images (about 15 min on 2 cores with onnxruntime)
def test_the_published_weights_keep_their_stride5_auc_with_the_default_engine(drive_root, legacy_weights, tmp_path):
    import json

    from helpers import assert_ok, make_config, run_script

    config = make_config(tmp_path)
    assert_ok(run_script("prepare_datasets_DRIVE.py", "--drive", drive_root, "--config", config, cwd=tmp_path))
    weights = tmp_path / legacy_weights.name
    shutil.copy(legacy_weights, weights)
    result = run_script("run_testing.py", "--config", config, "--weights", weights, cwd=tmp_path, timeout=3600)
    assert_ok(result)
    assert result.stdout.startswith("engine: onnxruntime ")
    results = json.loads((tmp_path / "test" / "test_best_weights" / "performances.json").read_text())
    assert results["auc_roc"] == pytest.approx(0.97903421, abs=1e-6)


@needs_onnx
@pytest.mark.slow  # the shipped model's stride-5 test of the 20 DRIVE images (about 12 min on 2 cores with onnxruntime)
def test_the_shipped_results_are_regenerated_with_the_default_engine(drive_root, repo, tmp_path):
    """python run_testing.py, as configuration.txt says, on onnxruntime: every figure at a threshold and the per-image
    table as shipped (no pixel crosses 0.5); the ranking figures (AUC ROC, AUC PR, average precision) within 1e-8
    (measured: 7.3e-09 at most; pooled AUC ROC 0.98033028599 against 0.98033028588)."""
    from helpers import assert_ok, make_config, run_script

    config = make_config(tmp_path)
    assert_ok(run_script("prepare_datasets_DRIVE.py", "--drive", drive_root, "--config", config, cwd=tmp_path))
    ignored = shutil.ignore_patterns("*.onnx", "performances.*", "per_image.csv")
    shutil.copytree(repo / "test", tmp_path / "test", ignore=ignored)
    result = run_script("run_testing.py", "--config", config, cwd=tmp_path, timeout=3600)
    assert_ok(result)
    assert result.stdout.startswith("engine: onnxruntime ")
    assert (tmp_path / "test" / "per_image.csv").read_text() == (repo / "test" / "per_image.csv").read_text()
    written = (tmp_path / "test" / "performances.txt").read_text().splitlines()
    shipped = (repo / "test" / "performances.txt").read_text().splitlines()
    assert len(written) == len(shipped)
    for new, old in zip(written, shipped, strict=True):
        if old.startswith(("Area under", "Average precision")):
            (name, value), (old_name, old_value) = new.rsplit(": ", 1), old.rsplit(": ", 1)
            assert name == old_name and float(value) == pytest.approx(float(old_value), abs=1e-8)
        else:
            assert new == old
