"""run_export.py: each format round-trips an untrained U-Net within its tolerance at two sizes and batch sizes,
the exported files keep the documented contract, and every bad input is one ``error:`` line, exit 1, nothing written.
"""

import sys

import h5py
import numpy as np
import pytest
from helpers import assert_user_error, run_script, untrained_weights

import run_export
from lib.atomic import atomic_folder
from src import cli, export
from src.model import load_trained_model
from src.prediction import predict_whole

ONNX_SKIP = "tf2onnx is not installed: pip install -r requirements-export.txt"
FILE_NAMES = {"savedmodel": "unet_savedmodel", "tflite": "unet.tflite", "onnx": "unet.onnx"}


def needs_tools(fmt):
    if fmt == "onnx":
        pytest.importorskip("tf2onnx", reason=ONNX_SKIP)
        pytest.importorskip("onnxruntime", reason=ONNX_SKIP)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """An untrained U-Net's weights (seeded), as run_training.py saves them."""
    return untrained_weights(tmp_path_factory.mktemp("model"), "tiny.weights.h5", seed=0)


def run_main(argv, capsys):
    """run_export's main as the script runs it (through run_cli); returns (exit status, stdout, stderr)."""
    try:
        cli.run_cli(lambda: run_export.main(argv))
        status = 0
    except SystemExit as stop:
        status = stop.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_the_script_lists_the_formats_src_export_writes():
    assert set(run_export.FORMATS) == set(export.FORMATS)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", list(export.FORMATS))
def test_each_format_round_trips_within_its_tolerance_at_any_size(fmt, weights, tmp_path):
    needs_tools(fmt)
    out = tmp_path / FILE_NAMES[fmt]
    verification = export.export(weights, fmt, out, check_shape=(2, 64, 70))  # 70: padded to 72
    assert verification.input_shape == (2, 64, 72, 1)
    assert verification.difference <= export.FORMATS[fmt].tolerance
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # renamed into place, no temporary left

    model = load_trained_model(weights)
    images = export.verification_images(1, 48, 100)  # another size and batch size: H, W and N are dynamic
    expected = np.stack([predict_whole(model, image) for image in images])
    assert export.verify(out, fmt, images, expected).difference <= export.FORMATS[fmt].tolerance


@pytest.mark.slow
@pytest.mark.parametrize("fmt", list(export.FORMATS))
def test_exported_models_name_their_input_image_and_output_vessel(fmt, weights, tmp_path):
    needs_tools(fmt)
    out = tmp_path / FILE_NAMES[fmt]
    export.export(weights, fmt, out, check_shape=(1, 48, 48))
    if fmt == "savedmodel":
        import tensorflow as tf

        signature = tf.saved_model.load(str(out)).signatures["serving_default"]
        (spec,) = signature.structured_input_signature[1].values()
        assert spec.name == "image" and spec.shape.as_list() == [None, None, None, 1]
        assert signature.structured_outputs["vessel"].shape.as_list() == [None, None, None]
    elif fmt == "tflite":
        interpreter = export.tflite_interpreter(out)
        assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["image"], "outputs": ["vessel"]}}
        assert interpreter.get_input_details()[0]["shape_signature"].tolist() == [-1, -1, -1, 1]
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        (image,), (vessel,) = session.get_inputs(), session.get_outputs()
        assert (image.name, image.shape, image.type) == ("image", ["batch", "height", "width", 1], "tensor(float)")
        assert (vessel.name, vessel.shape) == ("vessel", ["batch", "height", "width"])


@pytest.mark.slow
def test_the_script_verifies_at_drive_size_and_replaces_an_earlier_export(weights, tmp_path, capsys):
    out = tmp_path / "unet_savedmodel"
    for _ in range(2):
        status, printed, errors = run_main(
            ["--weights", str(weights), "--format", "savedmodel", "-o", str(out)], capsys
        )
        assert status == 0, errors
    assert f"wrote {out} (savedmodel); max |exported - Keras| = " in printed
    assert "on a 1x584x568x1 input (tolerance 0.0001)" in printed
    assert (out / "saved_model.pb").is_file() and sorted(p.name for p in tmp_path.iterdir()) == [out.name]


@pytest.mark.slow
def test_the_published_keras1_weights_export_with_their_relu_head(legacy_weights, tmp_path):
    verification = export.export(legacy_weights, "savedmodel", tmp_path / "published", check_shape=(1, 64, 64))
    assert verification.difference <= export.FORMATS["savedmodel"].tolerance


@pytest.mark.slow
@pytest.mark.parametrize(("drift", "printed"), [(0.01, "0.01"), (np.nan, "nan")])
def test_a_difference_beyond_the_tolerance_is_an_error_and_writes_nothing(
    drift, printed, weights, tmp_path, capsys, monkeypatch
):
    savedmodel = export.FORMATS["savedmodel"]
    drifted = export.Format(savedmodel.write, lambda path, batch: savedmodel.run(path, batch) + drift, 1e-4, None)
    monkeypatch.setitem(export.FORMATS, "savedmodel", drifted)
    out = tmp_path / "unet_savedmodel"
    with pytest.raises(SystemExit) as stop:
        cli.run_cli(lambda: export.export(weights, "savedmodel", out, check_shape=(1, 48, 48)))
    assert stop.value.code == 1
    errors = capsys.readouterr().err
    assert errors.startswith(
        f"error: {out}: the exported model differs from Keras: max |exported - Keras| = {printed} "
    )
    assert errors.endswith("(tolerance 0.0001); nothing was written\n") and errors.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_missing_weights(tmp_path, capsys):
    out = str(tmp_path / "x")
    status, _, errors = run_main(
        ["--weights", str(tmp_path / "none.weights.h5"), "--format", "tflite", "-o", out], capsys
    )
    assert status == 1 and errors == f"error: {tmp_path / 'none.weights.h5'}: weights file not found; " + (
        "train first (run_training.py) or pass --weights PATH\n"
    )


def test_a_model_folder_without_best_weights(tmp_path, capsys):
    status, _, errors = run_main(["--model", str(tmp_path), "--format", "tflite", "-o", str(tmp_path / "x")], capsys)
    assert status == 1 and f"{tmp_path.name}_best.weights.h5: weights file not found" in errors


def test_a_foreign_hdf5_file(tmp_path, capsys):
    foreign = tmp_path / "other.h5"
    with h5py.File(foreign, "w") as handle:
        handle["dense/kernel"] = np.zeros((3, 3))
    status, _, errors = run_main(
        ["--weights", str(foreign), "--format", "savedmodel", "-o", str(tmp_path / "x")], capsys
    )
    assert status == 1 and errors.startswith(f"error: {foreign}: not weights of this U-Net (")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--format", "pb", "-o", "x"], "error: argument --format: invalid choice: 'pb' (choose from "),
        (["--format", "onnx"], "error: the following arguments are required: -o/--output; see python run_export.py"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_1(argv, message, capsys):
    status, _, errors = run_main(argv, capsys)
    assert status == 1 and errors.startswith(message) and errors.count("\n") == 1, errors


@pytest.mark.parametrize("fmt", list(export.FORMATS))
def test_an_unwritable_output(fmt, weights, tmp_path, capsys):
    needs_tools(fmt)
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    status, _, errors = run_main(["--weights", str(weights), "--format", fmt, "-o", str(blocker / "out")], capsys)
    assert status == 1 and errors.startswith(f"error: {blocker}: cannot write out there (")


def test_a_savedmodel_never_replaces_a_folder_or_file_it_did_not_write(weights, tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"keep me")
    status, _, errors = run_main(
        ["--weights", str(weights), "--format", "savedmodel", "-o", str(tmp_path / "photos")], capsys
    )
    assert status == 1 and "photos: already exists and holds no saved_model.pb" in errors
    assert (tmp_path / "photos" / "a.png").read_bytes() == b"keep me"


def test_onnx_without_its_tools_says_what_to_install(weights, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # what an environment without it raises: ImportError
    out = str(tmp_path / "x.onnx")
    status, _, errors = run_main(["--weights", str(weights), "--format", "onnx", "-o", out], capsys)
    assert status == 1 and errors.startswith("error: --format onnx needs tf2onnx, onnx and onnxruntime (")
    assert errors.endswith("): pip install -r requirements-export.txt\n")


def test_atomic_folder_replaces_an_earlier_result_only_on_success(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "saved_model.pb").write_text("earlier")
    with pytest.raises(RuntimeError), atomic_folder(target, marker="saved_model.pb") as temp:
        (temp / "saved_model.pb").write_text("half")
        raise RuntimeError
    assert (target / "saved_model.pb").read_text() == "earlier"
    with atomic_folder(target, marker="saved_model.pb") as temp:
        (temp / "saved_model.pb").write_text("new")
    assert [p.name for p in target.iterdir()] == ["saved_model.pb"] and (target / "saved_model.pb").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


@pytest.mark.slow
def test_the_real_script_prints_one_error_line(tmp_path):
    assert_user_error(
        run_script("run_export.py", "--weights", "none.weights.h5", "--format", "tflite", "-o", "x", cwd=tmp_path),
        "none.weights.h5: weights file not found",
    )
