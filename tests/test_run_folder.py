"""lib.run_folder and the pieces run_prediction.py's throughput rests on: shards, outputs, settings, the summary's
rows and their merge, each file once, the FOV plausibility check, fast PNGs."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from lib.atomic import write_csv
from lib.errors import UserError
from lib.files import unique_files
from lib.fov import fov_warning
from lib.imageio import write_png
from lib.run_folder import (
    OUTPUTS,
    SUMMARY,
    Shard,
    Summary,
    is_done,
    merged_rows,
    parse_outputs,
    settings_difference,
    summary_path,
    write_settings,
)
from lib.textfiles import read_csv

SETTINGS = {"weights": "a.weights.h5", "weights_sha256": "1" * 64, "threshold": 0.5, "outputs": "probability"}


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_are_disjoint_and_cover_every_item(count):
    items = list(range(23))
    parts = [Shard(index, count).select(items) for index in range(1, count + 1)]
    assert sorted(item for part in parts for item in part) == items
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert Shard.parse(f"{count}/{count}") == Shard(count, count) and Shard.parse(" 1/3 ") == Shard(1, 3)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0/3", "K must be between 1 and N (3)"),
        ("4/3", "K must be between 1 and N (3)"),
        ("1/0", "N must be at least 1"),
        ("two/3", "expected K/N"),
        ("-1/3", "expected K/N"),
        ("1/3/5", "expected K/N"),
    ],
)
def test_a_bad_shard_says_what_is_wrong(text, problem):
    with pytest.raises(UserError, match=f"^--shard {text}: ") as error:
        Shard.parse(text)
    assert problem in str(error.value)


def test_outputs_keep_their_order_and_refuse_unknown_names():
    assert parse_outputs("fov,probability,fov") == ("probability", "fov")
    assert parse_outputs(",".join(reversed(OUTPUTS))) == OUTPUTS
    with pytest.raises(UserError, match="unknown output 'masks'"):
        parse_outputs("probability,masks")


def test_settings_differences_name_the_setting(tmp_path):
    assert settings_difference(tmp_path, SETTINGS) is None  # an empty folder
    (tmp_path / SUMMARY).write_text("image\n")
    assert settings_difference(tmp_path, SETTINGS) == "unknown settings (no settings.json)"
    write_settings(tmp_path, SETTINGS)
    assert settings_difference(tmp_path, SETTINGS) is None
    assert settings_difference(tmp_path, SETTINGS | {"threshold": 0.4}) == "threshold 0.5 there, 0.4 now"
    moved = SETTINGS | {"weights": "elsewhere/a.weights.h5"}
    assert settings_difference(tmp_path, moved) is None  # the same weights under another name
    retrained = SETTINGS | {"weights_sha256": "2" * 64}
    changed = "weights a.weights.h5 there, a.weights.h5 now (the file changed since)"
    assert settings_difference(tmp_path, retrained) == changed
    (tmp_path / "settings.json").write_text("{not json")
    assert settings_difference(tmp_path, SETTINGS) == "unknown settings (settings.json unreadable)"


def test_a_photograph_is_done_when_its_row_names_it_and_its_files_exist(tmp_path):
    image = tmp_path / "p.png"
    image.write_bytes(b"")
    for kind in ("probability", "fov"):
        (tmp_path / f"p_{kind}.png").write_bytes(b"")
    row = {"image": str(image)}
    assert is_done(row, image, tmp_path, ("probability", "fov"))
    assert not is_done(row, image, tmp_path, ("probability", "vessels"))
    assert not is_done(None, image, tmp_path, ("probability",))
    other = tmp_path / "other" / "p.png"
    other.parent.mkdir()
    other.write_bytes(b"")
    assert not is_done(row, other, tmp_path, ("probability",))  # same name, another file


def test_the_summary_is_rewritten_whole_and_merged_newest_first(tmp_path):
    summary = Summary(summary_path(tmp_path, Shard(1, 2)), ("image", "value"), interval=3600)
    summary.add({"image": "b/x.png", "value": "1"})
    summary.add({"image": "a/y.png", "value": "2"})
    assert not summary.path.exists()  # not due yet
    summary.write()
    assert read_csv(summary.path) == [{"image": "a/y.png", "value": "2"}, {"image": "b/x.png", "value": "1"}]
    later = summary_path(tmp_path, Shard(2, 2))
    write_csv(later, [{"image": "b/x.png", "value": "3"}, {"image": "c.png", "value": "4"}], ("image", "value"))
    os.utime(later, (summary.path.stat().st_mtime + 10,) * 2)
    rows, columns, missing = merged_rows(tmp_path)
    assert [(row["image"], row["value"]) for row in rows] == [("a/y.png", "2"), ("b/x.png", "3"), ("c.png", "4")]
    assert columns == ["image", "value"] and missing == []
    later.unlink()
    assert merged_rows(tmp_path)[2] == ["part 2 of 2"]
    assert read_csv(tmp_path / "none.csv") == []


def test_unique_files_keeps_the_first_mention_of_each_file(tmp_path, monkeypatch):
    (tmp_path / "a.png").write_bytes(b"a")
    (tmp_path / "b.png").write_bytes(b"b")
    (tmp_path / "link.png").symlink_to(tmp_path / "a.png")
    (tmp_path / "x").mkdir()
    monkeypatch.chdir(tmp_path)
    paths = [tmp_path / "a.png", tmp_path / "b.png", Path("a.png"), tmp_path / "link.png", tmp_path / "x/../a.png"]
    assert unique_files(paths) == [tmp_path / "a.png", tmp_path / "b.png"]
    assert unique_files([tmp_path / "gone.png"]) == [tmp_path / "gone.png"]  # its reader reports it


def disc(height, width, radius, centre=None):
    mask = np.zeros((height, width), np.uint8)
    cv2.circle(mask, centre or (width // 2, height // 2), radius, 255, -1)
    return mask


def test_fov_warning_flags_small_and_non_disc_fields_of_view():
    assert fov_warning(disc(584, 565, 270)) == ""  # DRIVE's
    assert fov_warning(disc(2336, 3504, 1160)) == ""  # a disc in a 3:2 frame, checked on a small copy
    clipped = disc(605, 700, 330)
    clipped[:10], clipped[-10:] = 0, 0  # cut at the top and bottom, as STARE's camera does
    assert fov_warning(clipped) == ""
    assert fov_warning(disc(600, 600, 100)) == "the field of view covers only 9% of the frame"
    ellipse = np.zeros((600, 800), np.uint8)
    cv2.ellipse(ellipse, (400, 300), (380, 200), 0, 0, 360, 255, -1)
    assert fov_warning(ellipse).startswith("the field of view is not a disc (")
    crescent = disc(600, 600, 280)
    crescent[disc(600, 600, 250, (380, 300)) > 0] = 0
    both = fov_warning(crescent)
    assert "covers only" in both and "not a disc" in both


@pytest.mark.parametrize("fast", [False, True])
def test_png_writing_is_lossless(tmp_path, fast):
    rng = np.random.default_rng(0)
    for image in (
        rng.integers(0, 256, (37, 41, 3), dtype=np.uint8),
        rng.integers(0, 256, (37, 41), dtype=np.uint8),
        rng.integers(0, 65536, (37, 41), dtype=np.uint16),
    ):
        write_png(tmp_path / "x.png", image, fast=fast)
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "x.png")), image)
    assert not list(tmp_path.glob(".*"))
