"""Smoke test of benchmarks/bench_prediction.py on small synthetic photographs: it runs every mode and its
figures are sane (speed is never asserted), and the large test photographs it makes keep the disc's shape."""

import numpy as np
import pytest
from helpers import REPO, assert_ok
from PIL import Image
from test_benchmarks import run_module, table_rows

from benchmarks.bench_prediction import SENSOR_HW, write_large_photographs
from lib.fov import detect_fov, fov_warning
from lib.imageio import read_rgb
from lib.synthetic import synthetic_fundus, write_synthetic_stare

pytestmark = pytest.mark.slow  # each mode loads TensorFlow in its own process


def test_every_mode_runs_and_a_rerun_writes_nothing(tmp_path):
    for index in range(2):
        rgb = synthetic_fundus(np.random.default_rng(index), 300, 330)[0]
        Image.fromarray(rgb).save(tmp_path / f"p{index}.jpg", quality=95)
    weights = REPO / "test" / "test_best.weights.h5"
    result = run_module("benchmarks.bench_prediction", "--photos", tmp_path, "--weights", weights, cwd=tmp_path)
    assert_ok(result)
    rows = table_rows(result.stdout)
    modes = ["network", "all", "probability", "first_run", "rerun"]
    assert list(rows) == [f"{mode}/{engine}" for mode in modes for engine in ("keras", "onnxruntime")]
    # s / image, x the network, CPU s / image, CPU x the network, total s, peak RSS, files written, x keras
    assert all(float(cells[0]) > 0 and float(cells[2]) > 0 and float(cells[5]) > 0 for cells in rows.values())
    assert rows["network/onnxruntime"][1] == rows["network/onnxruntime"][3] == "1.00"
    assert float(rows["all/keras"][1]) > 0 and float(rows["all/onnxruntime"][7]) > 0
    for engine in ("keras", "onnxruntime"):  # four maps and a thumbnail per photograph, summary, settings, report
        assert rows[f"first_run/{engine}"][6] == str(2 * 5 + 3) and rows[f"rerun/{engine}"][6] == "0"
    assert "2 photographs of 330x300 px" in result.stdout


@pytest.mark.parametrize("frame", ["sides", "width"])
def test_large_photographs_keep_the_disc(tmp_path, frame):
    write_synthetic_stare(tmp_path / "STARE", ids=["im0001", "im0002"], height=121, width=140)
    write_large_photographs(tmp_path / "STARE" / "stare-images", 1, tmp_path / "large", frame)
    (photo,) = tmp_path.glob("large/*.jpg")
    assert photo.name == "im0001.jpg"
    rgb = read_rgb(photo)
    assert rgb.shape[:2] == SENSOR_HW
    fov = detect_fov(rgb)
    assert fov_warning(fov) == ""  # still a disc
    black_sides = not fov[:, : SENSOR_HW[1] // 10].any()
    assert black_sides == (frame == "sides")  # "width": the FOV reaches across nearly the whole frame
