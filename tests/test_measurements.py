"""lib.measurements on shapes whose answers are known, and run_measurements.py end to end on PNGs."""

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import run_measurements
from lib.files import pairing_key
from lib.measurements import COLUMNS, measure_vessels

SQRT2 = math.sqrt(2)


def bar(height=40, width=240, rows=(18, 23), cols=(20, 220)) -> np.ndarray:
    vessels = np.zeros((height, width), dtype=bool)
    vessels[rows[0] : rows[1], cols[0] : cols[1]] = True
    return vessels


def hand_drawn_y() -> np.ndarray:
    """A one-pixel Y (its own skeleton): a 20-px stem from (20, 25) down, two 10-step diagonal arms
    from (20, 24) and (20, 26) up, so the junction is a triangle (20,24)-(20,25)-(21,25) and its mirror."""
    vessels = np.zeros((50, 50), dtype=bool)
    vessels[20:41, 25] = True
    vessels[20, 24] = vessels[20, 26] = True
    for step in range(1, 11):
        vessels[20 - step, 24 - step] = vessels[20 - step, 26 + step] = True
    return vessels


def test_a_straight_bar_is_its_length_and_thickness():
    result = measure_vessels(bar())
    assert result["vessel_density"] == pytest.approx(5 * 200 / (40 * 240))
    assert result["skeleton_length"] == pytest.approx(200, abs=5)  # thinning shortens each end by under half the width
    assert result["mean_width"] == pytest.approx(5, rel=0.03)
    assert (result["end_points"], result["branch_points"]) == (2, 0)
    assert result["tortuosity"] == pytest.approx(1, abs=0.005)


def test_a_diagonal_step_counts_sqrt2():
    result = measure_vessels(np.eye(60, dtype=np.uint8))
    assert result["skeleton_length"] == pytest.approx(59 * SQRT2)
    assert result["mean_width"] == pytest.approx(60 / (59 * SQRT2))
    assert (result["end_points"], result["branch_points"]) == (2, 0)
    assert result["tortuosity"] == pytest.approx(1)


def test_a_junction_triangle_is_walked_along_its_short_sides():
    result = measure_vessels(hand_drawn_y())
    # Stem 20, the two 1-px legs into the junction, two arms of 10 diagonals: the triangles' diagonals
    # (20,24)-(21,25) and (20,26)-(21,25) are not counted, nor do they make their pixels branch points.
    assert result["skeleton_length"] == pytest.approx(20 + 2 + 20 * SQRT2)
    assert (result["branch_points"], result["end_points"]) == (1, 3)
    arm_arc, arm_chord = 1 + 10 * SQRT2, math.hypot(10, 11)  # from the branch pixel (20, 25) to (10, 14)
    expected = (20 * 1 + 2 * arm_arc * arm_arc / arm_chord) / (20 + 2 * arm_arc)
    assert result["tortuosity"] == pytest.approx(expected)


def test_a_thick_t_has_one_branch_point_and_three_ends():
    vessels = bar(80, 120, (18, 23), (10, 110))
    vessels[18:75, 58:63] = True
    result = measure_vessels(vessels)
    assert (result["branch_points"], result["end_points"]) == (1, 3)
    assert result["skeleton_length"] == pytest.approx(100 + 55, abs=10)
    assert result["tortuosity"] == pytest.approx(1, abs=0.01)


def test_a_cross_is_one_branch_point_with_four_ends():
    vessels = np.zeros((100, 100), dtype=bool)
    vessels[48:53, 10:90] = vessels[10:90, 48:53] = True
    result = measure_vessels(vessels)
    assert (result["branch_points"], result["end_points"]) == (1, 4)


def test_a_sine_curve_has_its_analytic_arc_over_chord():
    amplitude, period, span = 15, 100, 300
    x = np.linspace(0, span, 4 * span + 1)
    points = np.stack([x + 20, 60 + amplitude * np.sin(2 * np.pi * x / period)], axis=1)
    vessels = np.zeros((120, span + 40), dtype=np.uint8)
    cv2.polylines(vessels, [np.round(points * 16).astype(np.int32)], False, 1, 3, shift=4)
    fine = np.linspace(0, span, 300_001)
    slope = amplitude * 2 * np.pi / period * np.cos(2 * np.pi * fine / period)
    analytic = np.trapezoid(np.hypot(1, slope), fine) / span  # 1.194
    result = measure_vessels(vessels)
    assert (result["branch_points"], result["end_points"]) == (0, 2)
    # An 8-neighbour chain is up to 8.2% longer than the curve it follows (see the next test): 4.5% here.
    assert result["tortuosity"] == pytest.approx(analytic, rel=0.06)
    assert result["tortuosity"] >= analytic


def test_a_straight_line_between_the_grid_directions_reads_above_one():
    """The documented bias of 8-neighbour lengths: one step across, one diagonal, repeated (26.6 degrees)."""
    vessels = np.zeros((40, 100), dtype=bool)
    for step in range(30):
        vessels[5 + step, 5 + 2 * step : 7 + 2 * step] = True
    result = measure_vessels(vessels)
    assert result["skeleton_length"] == pytest.approx(30 + 29 * SQRT2)
    assert result["tortuosity"] == pytest.approx((30 + 29 * SQRT2) / math.hypot(29, 59))  # 1.080


def test_a_closed_loop_has_length_but_no_ends_and_no_tortuosity():
    vessels = np.zeros((100, 100), dtype=np.uint8)
    cv2.circle(vessels, (50, 50), 30, 1, 3)
    result = measure_vessels(vessels)
    assert result["skeleton_length"] == pytest.approx(2 * np.pi * 30, rel=0.08)
    assert (result["branch_points"], result["end_points"]) == (0, 0)
    assert math.isnan(result["tortuosity"])


def test_only_short_segments_leave_tortuosity_undefined():
    vessels = np.zeros((40, 40), dtype=bool)
    vessels[10, 10:18] = True  # 7 px of skeleton: under MIN_SEGMENT_LENGTH
    result = measure_vessels(vessels)
    assert result["skeleton_length"] == pytest.approx(7)
    assert result["end_points"] == 2
    assert math.isnan(result["tortuosity"])


@pytest.mark.parametrize(
    ("region", "dimension"),
    [
        ((slice(None), slice(None)), 2.0),  # the whole map
        ((slice(64, 192), slice(64, 192)), 2.0),  # a square on the box grid
        ((100, slice(None)), 1.0),  # a one-pixel line across
        ((slice(None), 77), 1.0),
    ],
)
def test_box_counting_dimension_of_a_square_and_a_line(region, dimension):
    vessels = np.zeros((256, 256), dtype=bool)
    vessels[region] = True
    assert measure_vessels(vessels)["fractal_dimension"] == pytest.approx(dimension)


def test_a_square_off_the_box_grid_is_still_near_two():
    vessels = np.zeros((256, 256), dtype=bool)
    vessels[37:219, 41:223] = True
    assert measure_vessels(vessels)["fractal_dimension"] == pytest.approx(2, abs=0.2)


def test_an_empty_map_is_zeros_and_nans():
    result = measure_vessels(np.zeros((64, 64), dtype=bool))
    assert list(result) == list(COLUMNS)
    assert {name: result[name] for name in ("vessel_density", "skeleton_length", "branch_points", "end_points")} == {
        "vessel_density": 0,
        "skeleton_length": 0,
        "branch_points": 0,
        "end_points": 0,
    }
    assert all(math.isnan(result[name]) for name in ("mean_width", "tortuosity", "fractal_dimension"))


def test_a_map_under_16_px_has_no_fractal_dimension():
    assert math.isnan(measure_vessels(np.ones((15, 200), dtype=bool))["fractal_dimension"])


def test_only_the_field_of_view_is_measured():
    vessels = bar()  # columns 20..219
    fov = np.zeros(vessels.shape, dtype=np.uint8)
    fov[:, :120] = 255
    inside = measure_vessels(vessels, fov)
    cropped = bar(cols=(20, 120))
    assert inside == measure_vessels(cropped) | {"vessel_density": 5 * 100 / (40 * 120)}
    assert inside["skeleton_length"] == pytest.approx(100, abs=5)


def test_integer_maps_equal_bool_maps():
    vessels = hand_drawn_y()
    assert measure_vessels(vessels.astype(np.uint8) * 255) == measure_vessels(vessels)


@pytest.mark.parametrize(
    ("vessels", "fov", "error"),
    [
        (np.zeros((8, 8), dtype=np.float32), None, TypeError),
        ([[0, 1], [1, 0]], None, TypeError),
        (np.zeros((8, 8, 3), dtype=bool), None, ValueError),
        (np.arange(64, dtype=np.uint8).reshape(8, 8), None, ValueError),
        (np.zeros((8, 8), dtype=bool), np.ones((8, 9), dtype=bool), ValueError),
        (np.zeros((8, 8), dtype=bool), np.zeros((8, 8), dtype=bool), ValueError),
    ],
)
def test_programming_errors_raise(vessels, fov, error):
    with pytest.raises(error):
        measure_vessels(vessels, fov)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("01_manual1.gif", "01"),
        ("01_manual2.gif", "01"),
        ("01_test_mask.gif", "01"),
        ("01_test.tif", "01"),
        ("21_training_mask.gif", "21"),
        ("01_test_vessels.png", "01"),  # run_prediction.py's outputs for DRIVE's 01_test.tif
        ("photo_vessels.png", "photo"),
        ("photo_fov.png", "photo"),
        ("photo_mask.png", "photo"),
        ("photo.jpg", "photo"),
        ("01_manual1_extra.png", "01_manual1_extra"),
        ("im0001.ah.ppm.gz", "im0001"),
        ("Image_01L_1stHO.png", "Image_01L"),  # CHASE_DB1's two observers' labels of Image_01L.jpg
        ("Image_01L_2ndHO.png", "Image_01L"),
        ("01_h_mask.tif", "01_h"),  # HRF's mask of 01_h.jpg
    ],
)
def test_maps_masks_and_labels_are_paired_by_their_key(name, key):
    assert pairing_key(Path(name)) == key


def save_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def error_lines(text):
    return [line for line in text.splitlines() if line.startswith("error:")]


def test_the_script_measures_each_map_and_reports_a_gray_one(tmp_path, capsys):
    save_png(tmp_path / "maps" / "bar.png", bar() * 255)
    save_png(tmp_path / "maps" / "y.png", hand_drawn_y() * 255)
    gray = save_png(tmp_path / "maps" / "probability.png", np.tile(np.arange(0, 250, 5), (50, 1)))
    out = tmp_path / "out" / "measurements.csv"
    assert run_measurements.main([str(tmp_path / "maps"), "-o", str(out)]) == 1
    captured = capsys.readouterr()
    assert error_lines(captured.err) == [
        f"error: {gray}: a vessel map must be binary (two gray levels), found 50 levels; "
        "threshold it first (run_prediction.py's <id>_vessels.png is binary)"
    ]
    rows = read_csv(out)
    assert list(rows[0]) == ["image", *COLUMNS]
    assert [row["image"] for row in rows] == [str(tmp_path / "maps" / name) for name in ("bar.png", "y.png")]
    assert rows[1]["skeleton_length"] == f"{20 + 2 + 20 * SQRT2:.4f}"
    assert (rows[1]["branch_points"], rows[1]["end_points"]) == ("1", "3")
    assert float(rows[0]["mean_width"]) == pytest.approx(5, rel=0.03)
    assert "2 of 3 maps measured" in captured.out


def test_the_script_matches_masks_drive_and_prediction_style(tmp_path, capsys):
    vessels = bar(cols=(20, 220)) * 255
    for name in ("01_manual1.gif", "02_manual1.gif", "a_vessels.png"):
        save_png(tmp_path / "maps" / name, vessels)
    for name, right in (("01_test_mask.gif", 120), ("02_test_mask.gif", 60), ("a_fov.png", 240)):
        fov = np.zeros(vessels.shape)
        fov[:, :right] = 255
        save_png(tmp_path / "masks" / name, fov)
    out = tmp_path / "drive.csv"
    assert run_measurements.main([str(tmp_path / "maps"), "--masks", str(tmp_path / "masks"), "-o", str(out)]) == 0
    densities = {row["image"].split("/")[-1]: float(row["vessel_density"]) for row in read_csv(out)}
    assert densities == {
        "01_manual1.gif": pytest.approx(5 * 100 / (40 * 120), abs=1e-4),
        "02_manual1.gif": pytest.approx(5 * 40 / (40 * 60), abs=1e-4),
        "a_vessels.png": pytest.approx(5 * 200 / (40 * 240), abs=1e-4),
    }
    assert not error_lines(capsys.readouterr().err)


def test_a_map_without_its_mask_is_one_error_and_nothing_half_written(tmp_path, capsys):
    save_png(tmp_path / "maps" / "01_manual1.png", bar() * 255)
    save_png(tmp_path / "maps" / "02_manual1.png", bar() * 255)
    save_png(tmp_path / "masks" / "01_test_mask.png", np.full((40, 240), 255))
    save_png(tmp_path / "masks" / "02_test_mask.png", np.full((40, 200), 255))
    out = tmp_path / "out.csv"
    args = [str(tmp_path / "maps" / "01_manual1.png"), "--masks", str(tmp_path / "masks"), "-o", str(out)]
    assert run_measurements.main(args) == 0
    save_png(tmp_path / "maps" / "03_manual1.png", bar() * 255)
    args[0] = str(tmp_path / "maps" / "0[23]_manual1.png")
    assert run_measurements.main(args) == 1
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 2
    assert "02_test_mask.png: the mask is 200x40 px but" in errors[0]
    assert "03_manual1.png: no mask named 03.* in" in errors[1]
    assert [row["image"] for row in read_csv(out)] == [str(tmp_path / "maps" / "01_manual1.png")]  # untouched
