"""run_prediction.py: every input format, the rescaling round trip, FOV masks given or detected, ground truth
matched STARE-style, tiles equal to one pass, and one clear line per bad input while the others go on.

Most tests replace the U-Net by a stand-in (1 - the preprocessed image: vessels are dark, so they come out
likely) so they need no weights and take milliseconds; those using the ``unet`` fixture run a real, untrained one.
"""

import csv
import gzip
import io

import cv2
import numpy as np
import pytest
from helpers import run_script
from PIL import Image

import run_prediction
from lib.errors import UserError
from lib.fov import detect_fov, fov_diameter
from lib.imageio import read_binary, read_rgb
from lib.rendering import SUMMARY
from lib.rescale import resize
from lib.synthetic import synthetic_fundus, write_synthetic_stare
from src import segment

SMALL = ["--fov-diameter", "64"]  # the stand-in and the untrained U-Net need no DRIVE scale: keep inputs tiny


def photo(seed=0, height=90, width=100, fov_radius=None):
    return synthetic_fundus(np.random.default_rng(seed), height, width, fov_radius)


def save(path, image, file_format=None):
    """Write ``image`` with Pillow; a name ending .gz gets gzipped (STARE's .ppm.gz)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=file_format or Image.registered_extensions()[path.suffix.lower()])
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def read_summary(out_dir):
    with open(out_dir / SUMMARY, newline="") as handle:
        return list(csv.DictReader(handle))


def error_lines(text):
    return [line for line in text.splitlines() if line.startswith("error:")]


@pytest.fixture
def stand_in(monkeypatch):
    """The 'U-Net' returns 1 - the preprocessed image, and no weights are loaded."""
    monkeypatch.setattr(segment, "load_trained_model", lambda weights, precision: None)
    monkeypatch.setattr(segment, "predict_image", lambda model, image, inference, fov=None: 1 - image[0])


@pytest.fixture(scope="module")
def unet():
    import keras

    from src.model import build_unet

    keras.utils.set_random_seed(0)
    return build_unet()


@pytest.fixture(scope="module")
def weights(unet, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.weights.h5"
    unet.save_weights(path)
    return path


def test_every_format_is_segmented_at_its_own_size(tmp_path, stand_in, capsys):
    names = ["a.jpg", "b.jpeg", "c.png", "d.tif", "e.tiff", "f.gif", "g.ppm", "h.ppm.gz", "i.JPG"]
    for index, name in enumerate(names):
        save(tmp_path / "in" / name, photo(index, 80 + 3 * index, 100 - 2 * index)[0], "PPM" if "ppm" in name else None)
    out = tmp_path / "out"
    assert run_prediction.main([str(tmp_path / "in"), "-o", str(out), *SMALL]) == 0
    captured = capsys.readouterr()
    assert not error_lines(captured.err), captured.err
    rows = read_summary(out)
    assert [row["image"] for row in rows] == [str(tmp_path / "in" / name) for name in sorted(names)]
    for row in rows:
        name = row["image"].rsplit("/", 1)[1].split(".")[0]
        shape = read_rgb(row["image"]).shape
        assert (int(row["height"]), int(row["width"])) == shape[:2]
        for kind in ("probability", "vessels", "fov"):
            assert np.asarray(Image.open(out / f"{name}_{kind}.png")).shape == shape[:2], kind
        assert np.asarray(Image.open(out / f"{name}_overlay.png")).shape == shape
        assert 0 < float(row["vessel_fraction"]) < 1 and float(row["seconds"]) >= 0
    assert "9 of 9 images segmented" in captured.out
    assert not list(out.glob(".*"))  # every file written atomically: no temporary left behind


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_prediction.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at the terminal width
    for option in ("--output", "--model", "--weights", "--masks", "--labels", "--fov-diameter", "--no-rescale"):
        assert option in text
    assert "within 5% the image is left alone" in text and "--stride" in text and "--flips" in text


@pytest.mark.parametrize("scale", [0.37, 0.8, 1.7])
def test_rescaling_round_trip_keeps_shape_and_a_smooth_map(scale):
    height, width = 131, 157
    ys, xs = np.mgrid[:height, :width]
    smooth = (0.5 + 0.4 * np.sin(xs / 17.0) * np.cos(ys / 23.0)).astype(np.float32)
    small = resize(smooth, round(height * scale), round(width * scale))
    back = resize(small, height, width)
    assert back.shape == smooth.shape and back.dtype == np.float32
    assert np.abs(back - smooth)[3:-3, 3:-3].max() < 0.02  # the outermost pixels extrapolate
    assert np.abs(back - smooth).mean() < 0.005


def test_network_input_has_the_target_fov_diameter(tmp_path, monkeypatch):
    rgb, _, fov = photo(1, 200, 240, fov_radius=90)
    seen = []
    monkeypatch.setattr(segment, "predict_image", lambda model, image, inference: seen.append(image.shape) or image[0])
    path = save(tmp_path / "p.png", rgb)
    result = segment.segment_image(None, path, None, None, segment.Options(fov_diameter=64))
    assert float(result["row"]["fov_diameter"]) == pytest.approx(181, abs=3)
    scale = 64 / fov_diameter(detect_fov(rgb))
    assert seen[0] == (1, round(200 * scale), round(240 * scale))
    assert result["probability"].shape == (200, 240)  # mapped back to the photograph
    segment.segment_image(None, path, None, None, segment.Options(fov_diameter=None))
    assert seen[1] == (1, 200, 240)
    near = segment.segment_image(
        None, path, None, None, segment.Options(fov_diameter=1.04 * fov_diameter(detect_fov(rgb)))
    )
    assert seen[2] == (1, 200, 240) and near["row"]["scale"] == "1.0000"  # not resampled for 4 %


def test_the_fov_is_detected_or_taken_from_the_mask(tmp_path, stand_in):
    rgb, _, _ = photo(2, 96, 110)
    save(tmp_path / "in" / "01_test.tif", rgb)
    assert run_prediction.main([str(tmp_path / "in"), "-o", str(tmp_path / "auto"), "--threshold", "0"]) == 0
    detected = detect_fov(rgb)
    np.testing.assert_array_equal(read_binary(tmp_path / "auto" / "01_test_fov.png"), detected)
    # with threshold 0 every FOV pixel is a vessel and nothing outside the FOV is
    np.testing.assert_array_equal(read_binary(tmp_path / "auto" / "01_test_vessels.png"), detected)

    mask = np.zeros(rgb.shape[:2], np.uint8)
    cv2.circle(mask, (55, 48), 30, 255, -1)
    save(tmp_path / "masks" / "01_test_mask.gif", mask)  # DRIVE's naming
    arguments = [str(tmp_path / "in"), "-o", str(tmp_path / "given"), "--masks", str(tmp_path / "masks")]
    assert run_prediction.main([*arguments, "--threshold", "0", *SMALL]) == 0
    np.testing.assert_array_equal(read_binary(tmp_path / "given" / "01_test_fov.png"), mask)
    probability = np.asarray(Image.open(tmp_path / "given" / "01_test_probability.png"))
    assert probability[mask == 0].max() == 0 and probability[mask > 0].max() > 0


def test_stare_labels_are_matched_and_evaluated(tmp_path, stand_in, capsys):
    write_synthetic_stare(tmp_path / "STARE", ids=["im0001", "im0002"], height=110, width=128)
    out = tmp_path / "out"
    arguments = [str(tmp_path / "STARE" / "stare-images"), "-o", str(out), "--labels"]
    assert run_prediction.main([*arguments, str(tmp_path / "STARE" / "labels-ah"), *SMALL]) == 0
    rows = read_summary(out)
    assert [row["image"].rsplit("/", 1)[1] for row in rows] == ["im0001.ppm.gz", "im0002.ppm.gz"]
    for row in rows:
        for name in segment.METRICS:
            assert 0 <= float(row[name]) <= 1, name
        assert float(row["auc_roc"]) > 0.7  # the stand-in finds the dark synthetic vessels
    mean = np.mean([float(row["auc_roc"]) for row in rows])
    assert f"mean over 2 images: auc_roc {mean:.4f}" in capsys.readouterr().out


def test_each_bad_input_is_one_line_and_the_others_are_segmented(tmp_path, stand_in, capsys):
    folder = tmp_path / "in"
    save(folder / "good.png", photo(3)[0])
    save(folder / "good2.ppm.gz", photo(4)[0], "PPM")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("ignored inside a folder")
    save(folder / "tiny.png", np.zeros((1, 1, 3), np.uint8))
    save(folder / "gray.png", photo(5)[0][..., 1])
    save(folder / "rgba.png", np.dstack([photo(6)[0], np.full((90, 100), 255, np.uint8)]))
    save(folder / "good.jpg", photo(7)[0])  # same name as good.png: the outputs would collide
    (tmp_path / "empty").mkdir()
    inputs = [folder, folder / "notes.txt", tmp_path / "empty", tmp_path / "none" / "*.jpg", tmp_path / "gone.png"]
    code = run_prediction.main([*map(str, inputs), "-o", str(tmp_path / "out"), *SMALL])
    captured = capsys.readouterr()
    assert code == 1
    errors = error_lines(captured.err)
    expected = {
        folder / "notes.txt": "not a readable image",
        tmp_path / "empty": "no images in this folder",
        tmp_path / "none" / "*.jpg": "no image files match",
        tmp_path / "gone.png": "not found",
        folder / "broken.jpg": "not a readable image",
        folder / "tiny.png": "1x1 px, too small",
        folder / "gray.png": "expected an RGB colour image, got mode L",
        folder / "rgba.png": "expected an RGB colour image, got mode RGBA",
        folder / "good.png": "outputs would collide",
    }
    assert len(errors) == len(expected), captured.err
    for path, what in expected.items():
        (line,) = [line for line in errors if line.startswith(f"error: {path}: ")]
        assert what in line and "; " in line, line  # what went wrong; how to fix it
    assert "Traceback" not in captured.err
    assert [row["image"] for row in read_summary(tmp_path / "out")] == [
        str(folder / "good.jpg"),
        str(folder / "good2.ppm.gz"),
    ]


def test_mask_problems_fail_only_their_image(tmp_path, stand_in, capsys):
    names = ["ok", "small", "missing", "gray"]
    for index, name in enumerate(names):
        save(tmp_path / "in" / f"{name}.png", photo(index)[0])
    masks = tmp_path / "masks"
    save(masks / "ok.png", photo(0)[2])
    save(masks / "small.png", photo(1, 60, 70)[2])
    save(masks / "gray.png", np.tile(np.arange(100, dtype=np.uint8), (90, 1)))
    code = run_prediction.main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--masks", str(masks), *SMALL])
    errors = error_lines(capsys.readouterr().err)
    assert code == 1
    assert errors == [
        f"error: {masks / 'gray.png'}: a label/mask must be binary (two gray levels), found 100 levels; "
        "use the dataset's original label files",
        f"error: {tmp_path / 'in' / 'missing.png'}: no mask named missing.* in {masks}; "
        "give each image exactly one mask with its name",
        f"error: {masks / 'small.png'}: the mask is 70x60 px but {tmp_path / 'in' / 'small.png'} is 100x90; "
        "use the mask made for this image",
    ]
    assert [row["image"] for row in read_summary(tmp_path / "out")] == [str(tmp_path / "in" / "ok.png")]


def test_an_empty_mask_source_or_missing_weights_stop_the_run(tmp_path):
    save(tmp_path / "in" / "a.png", photo()[0])
    (tmp_path / "masks").mkdir()
    with pytest.raises(UserError, match="no images in this folder"):
        run_prediction.main([str(tmp_path / "in"), "--masks", str(tmp_path / "masks")])
    with pytest.raises(UserError, match="weights file not found"):
        run_prediction.main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "nowhere")])


@pytest.mark.slow  # loads TensorFlow in a subprocess
def test_the_script_end_to_end(tmp_path, weights):
    """The real script with a real (untrained) U-Net: a bad file fails alone, with exit status 1."""
    save(tmp_path / "in" / "im0001.ppm.gz", photo(8)[0], "PPM")
    (tmp_path / "in" / "im0002.jpg").write_bytes(b"")
    result = run_script("run_prediction.py", tmp_path / "in", "-o", tmp_path / "out", "--weights", weights, *SMALL,
                        cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"error: {tmp_path / 'in' / 'im0002.jpg'}: not a readable image")
    assert [row["image"] for row in read_summary(tmp_path / "out")] == [str(tmp_path / "in" / "im0001.ppm.gz")]
    probability = np.asarray(Image.open(tmp_path / "out" / "im0001_probability.png"))
    assert probability.shape == (90, 100) and probability.max() > 0


@pytest.mark.slow  # the published weights on a real STARE photo
def test_published_weights_on_a_stare_image(tmp_path, stare_root, legacy_weights):
    """Cross-dataset: the DRIVE-trained published weights on STARE im0077, its FOV detected and rescaled."""
    arguments = [stare_root / "stare-images" / "im0077.ppm.gz", "-o", tmp_path, "--weights", legacy_weights]
    code = run_prediction.main([*map(str, arguments), "--labels", str(stare_root / "labels-ah")])
    assert code == 0
    (row,) = read_summary(tmp_path)
    assert float(row["scale"]) == pytest.approx(540 / float(row["fov_diameter"]), abs=1e-3)
    assert float(row["auc_roc"]) > 0.95
