"""run_prediction.py: every input format, the rescaling round trip, FOV masks given or detected, ground truth
matched STARE-style, tiles equal to one pass, and one clear line per bad input while the others go on.

Most tests replace the U-Net by a stand-in (1 - the preprocessed image: vessels are dark, so they come out
likely) so they need no weights and take milliseconds; those using the ``unet`` fixture run a real, untrained one.
"""

import csv
import errno
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from helpers import REPO, assert_ok, assert_user_error, default_sigint, run_script
from PIL import Image

import run_prediction
from lib import atomic, photographs
from lib.errors import UserError
from lib.fov import detect_fov, fov_diameter
from lib.imageio import read_binary, read_rgb
from lib.measurements import COLUMNS as MEASUREMENTS
from lib.measurements import as_text, measure_vessels
from lib.rescale import resize
from lib.run_folder import OUTPUTS, REPORT, SETTINGS, SUMMARY, output_path
from lib.synthetic import synthetic_fundus, write_synthetic_drive, write_synthetic_stare
from src import pipeline, segment

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
    monkeypatch.setattr(segment, "load_model", lambda weights, precision: None)
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
        assert np.asarray(Image.open(out / f"{name}_overlay.jpg")).shape == shape
        assert 0 < float(row["vessel_density"]) < 1 and float(row["seconds"]) >= 0
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


def test_network_input_has_the_target_fov_diameter(tmp_path):
    rgb, _, fov = photo(1, 200, 240, fov_radius=90)
    path = save(tmp_path / "p.png", rgb)
    loaded = photographs.load_photograph(path, None, None, photographs.Options(fov_diameter=64))
    assert float(loaded.row["fov_diameter"]) == pytest.approx(181, abs=3)
    scale = 64 / fov_diameter(detect_fov(rgb))
    assert loaded.network_input.shape == (1, round(200 * scale), round(240 * scale))
    row = photographs.finish_photograph(loaded, loaded.network_input[0], photographs.Options(), tmp_path)
    probability = np.asarray(Image.open(tmp_path / "p_probability.png"))
    assert probability.shape == (200, 240) and int(row["height"]) == 200  # mapped back to the photograph
    unscaled = photographs.load_photograph(path, None, None, photographs.Options(fov_diameter=None))
    assert unscaled.network_input.shape == (1, 200, 240)
    near = photographs.load_photograph(
        path, None, None, photographs.Options(fov_diameter=1.04 * fov_diameter(detect_fov(rgb)))
    )
    assert near.network_input.shape == (1, 200, 240) and near.row["scale"] == "1.0000"  # not resampled for 4 %


@pytest.mark.parametrize("hw", [(61, 73), (200, 240), (437, 523)])  # shrunk, as it is, enlarged
def test_the_network_fov_holds_every_pixel_the_fov_reads_back(hw):
    """Only the network's pixels in ``network_fov`` need a probability (the FOV crop of whole-image prediction
    zeroes the rest): the photograph's FOV pixels come out the same when every other one is 0."""
    _, _, fov = photo(3, 200, 240, fov_radius=90)
    network_fov = photographs.fov_at(fov, hw)
    probability = np.random.default_rng(0).random(hw, dtype=np.float32)
    inside = fov > 0
    read_back = resize(probability, 200, 240)[inside]
    assert np.array_equal(resize(np.where(network_fov, probability, 0), 200, 240)[inside], read_back)
    assert network_fov.mean() < 0.8  # the black around the FOV is left out


def test_the_fov_is_detected_or_taken_from_the_mask(tmp_path, stand_in):
    rgb, _, _ = photo(2, 96, 110)
    save(tmp_path / "in" / "01_test.tif", rgb)
    assert run_prediction.main([str(tmp_path / "in"), "-o", str(tmp_path / "auto"), "--threshold", "0", *SMALL]) == 0
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
        for name in photographs.METRICS:
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


# --- clinic scale: outputs chosen, resuming, settings, shards, measurements, FOV sanity, bad input ---------------


def write_photos(folder, count, height=90, width=100):
    """``count`` synthetic photographs p0.png, p1.png, ...; returns their paths."""
    return [save(folder / f"p{index}.png", photo(index, height, width)[0]) for index in range(count)]


def segmenting(tmp_path, *extra):
    """run_prediction.main on tmp_path/in into tmp_path/out at the stand-in's small scale."""
    return run_prediction.main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), *SMALL, *map(str, extra)])


def file_times(folder):
    return {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}


@pytest.fixture
def network_calls(monkeypatch, stand_in):
    """The stand-in network, counting its calls."""
    calls = []

    def counting(model, image, inference, fov=None):
        calls.append(image.shape)
        return 1 - image[0]

    monkeypatch.setattr(segment, "predict_image", counting)
    return calls


def test_only_the_chosen_outputs_are_written(tmp_path, stand_in):
    write_photos(tmp_path / "in", 2)
    assert segmenting(tmp_path, "--outputs", "fov, probability") == 0
    assert sorted(path.name for path in (tmp_path / "out").glob("*.png")) == [
        "p0_fov.png", "p0_probability.png", "p1_fov.png", "p1_probability.png"
    ]  # fmt: skip
    assert len(read_summary(tmp_path / "out")) == 2
    for bad in ("vessels,mask", "", "overlay,,fov"):
        with pytest.raises(UserError, match="unknown output .*; choose from probability,vessels,overlay,fov"):
            segmenting(tmp_path, "--outputs", bad)


def test_a_rerun_skips_what_is_done_and_rewrites_nothing(tmp_path, network_calls, capsys):
    write_photos(tmp_path / "in", 3)
    assert segmenting(tmp_path) == 0
    out = tmp_path / "out"
    before, summary = file_times(out), (out / SUMMARY).read_text()
    thumbnails = {f"p{i}_thumbnail.jpg" for i in range(3)}
    assert set(before) == {output_path(out, f"p{i}", kind).name for i in range(3) for kind in OUTPUTS} | thumbnails | {
        SUMMARY,
        SETTINGS,
        REPORT,
    }
    network_calls.clear()
    capsys.readouterr()
    assert segmenting(tmp_path) == 0
    assert network_calls == [] and file_times(out) == before and (out / SUMMARY).read_text() == summary
    assert f"all 3 images were segmented into {out}/ before; --overwrite redoes them" in capsys.readouterr().out

    (out / "p1_overlay.jpg").unlink()  # an output missing: that photograph alone is done again
    assert segmenting(tmp_path) == 0
    assert len(network_calls) == 1 and (out / "p1_overlay.jpg").is_file()
    assert "segmenting 1 images" in capsys.readouterr().out and len(read_summary(out)) == 3

    network_calls.clear()
    assert segmenting(tmp_path, "--overwrite") == 0
    assert len(network_calls) == 3 and len(read_summary(out)) == 3


def test_a_folder_of_the_version_that_wrote_png_overlays_is_not_done_again(tmp_path, network_calls, capsys):
    write_photos(tmp_path / "in", 2)
    assert segmenting(tmp_path) == 0
    out = tmp_path / "out"
    for path in out.glob("*_overlay.jpg"):  # as the earlier version left its folders
        Image.open(path).save(path.with_suffix(".png"))
        path.unlink()
    (out / REPORT).unlink()  # and without a report: the rerun writes one
    network_calls.clear()
    assert segmenting(tmp_path) == 0
    assert network_calls == [] and "all 2 images were segmented" in capsys.readouterr().out
    assert '<a href="p0_overlay.png">' in (out / REPORT).read_text()


def test_the_summary_keeps_one_row_per_image_across_runs(tmp_path, stand_in):
    first, second = write_photos(tmp_path / "in", 2)
    out = tmp_path / "out"
    assert run_prediction.main([str(first), "-o", str(out), *SMALL]) == 0
    assert run_prediction.main([str(second), "-o", str(out), *SMALL]) == 0
    assert run_prediction.main([str(first), "-o", str(out), *SMALL, "--overwrite"]) == 0
    assert [row["image"] for row in read_summary(out)] == [str(first), str(second)]


def test_an_interruption_leaves_whole_files_and_the_rerun_finishes(tmp_path, network_calls, monkeypatch, capsys):
    write_photos(tmp_path / "in", 5)
    out = tmp_path / "out"

    def interrupted(model, image, inference, fov=None):
        network_calls.append(image.shape)
        if len(network_calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the network runs on p2; p0 and p1 may still be being written
        return 1 - image[0]

    monkeypatch.setattr(segment, "predict_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        segmenting(tmp_path)
    assert not list(out.glob(".*"))  # no temporary file left behind
    assert [row["image"] for row in read_summary(out)] == [str(tmp_path / "in" / f"p{i}.png") for i in (0, 1)]
    written = sorted(output_path(out, f"p{i}", kind).name for i in (0, 1) for kind in OUTPUTS)
    assert sorted(path.name for path in out.glob("*_*.*") if "thumbnail" not in path.name) == written

    monkeypatch.setattr(segment, "predict_image", lambda model, image, inference, fov=None: 1 - image[0])
    capsys.readouterr()
    assert segmenting(tmp_path) == 0
    assert "segmenting 3 images" in capsys.readouterr().out and len(read_summary(out)) == 5


def test_the_network_does_not_wait_for_the_files(tmp_path, network_calls, monkeypatch):
    """Writers blocked until the network has run on MAX_FINISHING + 1 photographs: a network waiting for the
    files would never get there. Then it waits: no more photographs are held than that bound."""
    write_photos(tmp_path / "in", pipeline.MAX_FINISHING + 3)
    released, predicted_at_release = threading.Event(), []
    real_write = photographs.write_outputs

    def blocked_write(*args):
        assert released.wait(timeout=30), "the network waited for the files"
        real_write(*args)

    def predict(model, image, inference, fov=None):
        network_calls.append(image.shape)
        if len(network_calls) == pipeline.MAX_FINISHING + 1:
            threading.Timer(0.5, lambda: predicted_at_release.append(len(network_calls)) or released.set()).start()
        return 1 - image[0]

    monkeypatch.setattr(photographs, "write_outputs", blocked_write)
    monkeypatch.setattr(segment, "predict_image", predict)
    assert segmenting(tmp_path) == 0
    assert predicted_at_release == [pipeline.MAX_FINISHING + 1]
    assert len(read_summary(tmp_path / "out")) == pipeline.MAX_FINISHING + 3


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        (["--threshold", "0.3"], " there, 0.3 now"),  # the stored threshold of test/ there
        (["--fov-diameter", "70"], "scale FOV rescaled to 64 px there, FOV rescaled to 70 px now"),
        (["--no-rescale"], "scale FOV rescaled to 64 px there, no rescaling now"),
        (["--flips"], "prediction whole image there, whole image + flips now"),
        (["--stride", "8"], "prediction whole image there, patches 48x48, stride 8x8, averaged now"),
        (["--outputs", "probability"], "outputs probability,vessels,overlay,fov there, probability now"),
        (["--weights", "other.weights.h5"], "weights "),
    ],
)
def test_other_settings_are_refused_unless_overwrite(tmp_path, stand_in, change, difference):
    write_photos(tmp_path / "in", 1)
    (tmp_path / "other.weights.h5").write_bytes(b"other weights")
    assert segmenting(tmp_path) == 0
    change = [str(tmp_path / part) if part.endswith(".h5") else part for part in change]
    scale = [] if "--no-rescale" in change else SMALL
    arguments = [str(tmp_path / "in"), "-o", str(tmp_path / "out"), *scale, *change]
    with pytest.raises(UserError, match="holds results made with other settings") as refused:
        run_prediction.main(arguments)
    assert difference in str(refused.value) and "--overwrite" in str(refused.value)
    assert run_prediction.main([*arguments, "--overwrite"]) == 0
    settings = json.loads((tmp_path / "out" / SETTINGS).read_text())
    assert run_prediction.main(arguments) == 0  # the folder now holds the new settings
    assert json.loads((tmp_path / "out" / SETTINGS).read_text()) == settings


def test_new_settings_with_overwrite_start_the_summary_afresh(tmp_path, stand_in):
    first, second = write_photos(tmp_path / "in", 2)
    out = tmp_path / "out"
    assert run_prediction.main([str(first), "-o", str(out), *SMALL]) == 0
    assert run_prediction.main([str(second), "-o", str(out), *SMALL, "--threshold", "0.3", "--overwrite"]) == 0
    assert [row["image"] for row in read_summary(out)] == [str(second)]  # no row of the old threshold stays


def test_shards_are_disjoint_and_merge_into_one_summary(tmp_path, stand_in, capsys):
    folder, out = tmp_path / "in", tmp_path / "out"
    write_photos(folder, 5)
    save(folder / "p3.jpg", photo(9)[0])  # sorted before p3.png, which clashes with it
    # sorted: p0.png p1.png p2.png p3.jpg p3.png p4.png; part 1 of 2 is the 1st, 3rd, 5th, part 2 the others
    assert segmenting(tmp_path, "--shard", "1/2") == 1
    assert error_lines(capsys.readouterr().err) == [
        f"error: {folder / 'p3.png'}: same name as {folder / 'p3.jpg'}, the outputs would collide; rename one"
    ]
    assert segmenting(tmp_path, "--shard", "2/2") == 0
    assert not error_lines(capsys.readouterr().err)  # the clash is reported once, by the part holding it
    parts = [[row["image"] for row in read_summary_file(out / f"summary.part-{k}-of-2.csv")] for k in (1, 2)]
    assert parts == [[str(folder / name) for name in names] for names in (["p0.png", "p2.png"],
                                                                         ["p1.png", "p3.jpg", "p4.png"])]  # fmt: skip
    assert not (out / SUMMARY).exists()
    assert segmenting(tmp_path, "--shard", "2/2") == 0  # a part resumes from its own summary part
    assert "all 3 images (part 2 of 2 of 6) were segmented" in capsys.readouterr().out

    assert run_prediction.main(["--merge", "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"5 rows merged into {out / SUMMARY}\n"
    assert [row["image"] for row in read_summary(out)] == sorted(parts[0] + parts[1])


def test_merge_names_the_missing_parts(tmp_path, stand_in, capsys):
    write_photos(tmp_path / "in", 4)
    assert segmenting(tmp_path, "--shard", "2/3") == 0
    capsys.readouterr()
    assert run_prediction.main(["--merge", "-o", str(tmp_path / "out")]) == 1
    summary = tmp_path / "out" / SUMMARY
    captured = capsys.readouterr()
    assert captured.out == f"1 rows merged into {summary}\n"
    assert captured.err.startswith(f"error: {summary} is incomplete: part 1 of 3 not found; part 3 of 3 not found; ")
    with pytest.raises(UserError, match="no summary parts .* to merge; run with --shard K/N first"):
        run_prediction.main(["--merge", "-o", str(tmp_path / "in")])
    for wrong in (["--merge", str(tmp_path / "in")], []):  # images with --merge, or neither
        with pytest.raises(UserError, match="see python .* --help"):
            run_prediction.main(wrong)


@pytest.mark.parametrize("shard", ["0/3", "4/3", "1/0", "two", "1/2/3", ""])
def test_a_bad_shard_is_one_clear_line(tmp_path, stand_in, shard):
    write_photos(tmp_path / "in", 1)
    with pytest.raises(UserError, match=f"--shard {shard}: .*K.*N"):
        segmenting(tmp_path, "--shard", shard)


def read_summary_file(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_summary_holds_the_measurements_of_the_vessel_map_written(tmp_path, stand_in):
    write_photos(tmp_path / "in", 2, 120, 130)
    assert segmenting(tmp_path) == 0
    for row in read_summary(tmp_path / "out"):
        name = row["image"].rsplit("/", 1)[1].split(".")[0]
        vessels = read_binary(tmp_path / "out" / f"{name}_vessels.png") > 0
        fov = read_binary(tmp_path / "out" / f"{name}_fov.png") > 0
        expected = as_text(measure_vessels(vessels, fov))
        assert {column: row[column] for column in MEASUREMENTS} == expected
        assert int(expected["branch_points"]) > 0 and float(expected["skeleton_length"]) > 0


def test_an_implausible_fov_is_a_warning_and_the_image_is_still_written(tmp_path, stand_in):
    rgb = photo(1, 200, 240, fov_radius=95)[0]
    for name in ("disc", "square", "small"):
        save(tmp_path / "in" / f"{name}.png", rgb)
    masks = {name: np.zeros((200, 240), np.uint8) for name in ("disc", "square", "small")}
    cv2.circle(masks["disc"], (120, 100), 95, 255, -1)
    masks["square"][20:180, 40:200] = 255
    cv2.circle(masks["small"], (120, 100), 40, 255, -1)  # 10 % of the frame
    for name, mask in masks.items():
        save(tmp_path / "masks" / f"{name}.png", mask)
    assert segmenting(tmp_path, "--masks", tmp_path / "masks") == 0
    warnings = {row["image"].rsplit("/", 1)[1]: row["warning"] for row in read_summary(tmp_path / "out")}
    assert warnings["disc.png"] == ""
    assert warnings["square.png"].startswith("the field of view is not a disc (")
    assert warnings["small.png"] == "the field of view covers only 10% of the frame"
    assert len(list((tmp_path / "out").glob("*_overlay.jpg"))) == 3


def test_a_black_photograph_and_an_implausible_enlargement_fail_alone(tmp_path, stand_in, capsys):
    folder = tmp_path / "in"
    save(folder / "black.jpg", np.zeros((90, 100, 3), np.uint8))
    save(folder / "dot.png", photo(2, 200, 206)[0])
    save(folder / "good.png", photo(3, 200, 206)[0])
    save(tmp_path / "masks" / "good.png", photo(3, 200, 206)[2])
    dot = np.zeros((200, 206), np.uint8)
    cv2.circle(dot, (103, 100), 10, 255, -1)  # a 20 px field of view: 540 px would be 25x
    save(tmp_path / "masks" / "dot.png", dot)
    save(tmp_path / "masks" / "black.png", photo(3, 90, 100)[2])
    code = run_prediction.main([str(folder), "-o", str(tmp_path / "out"), "--masks", str(tmp_path / "masks")])
    assert code == 1
    errors = error_lines(capsys.readouterr().err)
    assert errors == [
        f"error: {folder / 'black.jpg'}: the photograph is black (no pixel above 10 of 255); check the file",
        f"error: {folder / 'dot.png'}: the field of view is 20 px across: bringing it to 540 px would enlarge the "
        "image 26.6x (at most 4x); use the full-size photograph, or predict at its own scale (--no-rescale)",
    ]
    assert [row["image"] for row in read_summary(tmp_path / "out")] == [str(folder / "good.png")]


def test_the_same_file_given_twice_is_segmented_once(tmp_path, stand_in, monkeypatch, capsys):
    folder = tmp_path / "in"
    (first,) = write_photos(folder, 1)
    (tmp_path / "link.png").symlink_to(first)
    monkeypatch.chdir(tmp_path)
    specs = [str(folder), str(first), "in/p0.png", "./in/../in/p0.png", str(tmp_path / "in" / "*.png"), "link.png"]
    assert run_prediction.main([*specs, "-o", "out", *SMALL]) == 0
    assert not capsys.readouterr().err
    assert [row["image"] for row in read_summary(tmp_path / "out")] == [str(first)]


def test_drive_images_labels_and_masks_pair_by_number(tmp_path, stand_in, capsys):
    write_synthetic_drive(tmp_path / "DRIVE", n_train=1, n_test=2, height=96, width=90)
    test = tmp_path / "DRIVE" / "test"
    arguments = [str(test / "images"), "-o", str(tmp_path / "out"), "--labels", str(test / "1st_manual"), *SMALL]
    assert run_prediction.main(arguments) == 0
    assert run_prediction.main([*arguments, "--masks", str(test / "mask"), "-o", str(tmp_path / "masked")]) == 0
    assert not capsys.readouterr().err
    for out in ("out", "masked"):
        rows = read_summary(tmp_path / out)
        assert [row["image"] for row in rows] == [str(test / "images" / f"0{i}_test.tif") for i in (1, 2)]
        assert all(float(row["auc_roc"]) > 0.7 for row in rows)


def test_an_unwritable_output_folder_is_refused_before_any_prediction(tmp_path, network_calls, monkeypatch, capsys):
    write_photos(tmp_path / "in", 2)
    (tmp_path / "out").mkdir()

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)  # what a read-only folder does to a new file
    with pytest.raises(UserError, match=f"{tmp_path / 'out'}: cannot write settings.json there .Permission denied."):
        segmenting(tmp_path)
    assert network_calls == [] and "summary" not in capsys.readouterr().out
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot create the output folder"):
        run_prediction.main([str(tmp_path / "in"), "-o", str(tmp_path / "file" / "out"), *SMALL])


def test_no_summary_is_announced_when_none_was_written(tmp_path, stand_in, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not a jpeg")
    assert segmenting(tmp_path) == 1
    assert "0 of 1 images segmented; no summary written" in capsys.readouterr().out
    assert not (tmp_path / "out" / SUMMARY).exists()


def test_exif_orientation_is_applied(tmp_path, stand_in):
    stored = photo(4, 90, 120)[0]
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": how many cameras store a portrait photograph
    (tmp_path / "in").mkdir()
    Image.fromarray(stored).save(tmp_path / "in" / "portrait.jpg", quality=100, exif=exif)
    upright = read_rgb(tmp_path / "in" / "portrait.jpg")
    assert upright.shape == (120, 90, 3)
    assert np.abs(upright.astype(int) - np.rot90(stored, k=-1)).mean() < 3
    assert segmenting(tmp_path) == 0
    (row,) = read_summary(tmp_path / "out")
    assert (row["width"], row["height"]) == ("90", "120")
    assert np.asarray(Image.open(tmp_path / "out" / "portrait_overlay.jpg")).shape == (120, 90, 3)


@pytest.mark.slow  # runs the script twice in a subprocess
def test_ctrl_c_leaves_whole_files_and_a_rerun_finishes(tmp_path, weights):
    """SIGINT to the real script while it writes: exit 130, no partial file, every row's files complete,
    and a rerun does the rest alone."""
    count = 40
    write_photos(tmp_path / "in", count, 120, 130)
    out = tmp_path / "out"
    arguments = [tmp_path / "in", "-o", out, "--weights", weights, *SMALL]
    command = [sys.executable, str(REPO / "run_prediction.py"), *map(str, arguments)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint
    )
    deadline = time.monotonic() + 300
    while process.poll() is None and not list(out.glob("*_overlay.jpg")) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr[-3000:]
    assert "interrupted: finished files are intact" in stderr and "Traceback" not in stderr
    assert not list(out.glob(".*"))
    done = [row["image"].rsplit("/", 1)[1].split(".")[0] for row in read_summary(out)]
    assert 0 < len(done) < count
    assert all(output_path(out, name, kind).is_file() for name in done for kind in OUTPUTS)

    rerun = run_script("run_prediction.py", *arguments, cwd=tmp_path)
    assert_ok(rerun)
    assert f"segmenting {count - len(done)} images" in rerun.stdout
    assert len(read_summary(out)) == count


@pytest.mark.slow  # runs the script in a subprocess
def test_bad_outputs_and_shards_are_one_line_from_the_script(tmp_path):
    write_photos(tmp_path / "in", 1)
    for option, problem in (("--shard=4/3", "--shard 4/3: K must be between 1 and N (3)"),
                            ("--outputs=vessels,mask", "unknown output 'mask'")):  # fmt: skip
        assert_user_error(run_script("run_prediction.py", tmp_path / "in", option, cwd=tmp_path), problem)
