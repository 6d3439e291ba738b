"""report.html: one row per summary row with its thumbnail, flagged photographs first, rewritten as the summary is
(after a resumed run, with shards and after --merge), and nothing in it that needs a network."""

import re

import cv2
import numpy as np
import pytest
from test_run_prediction import read_summary, segmenting, stand_in, write_photos  # noqa: F401 (a fixture)

import run_prediction
from lib import html_report
from lib.atomic import write_csv
from lib.html_report import write_report
from lib.rendering import OVERLAY_ALPHA, OVERLAY_COLOUR, THUMBNAIL_SIDE, overlay, thumbnail
from lib.run_folder import REPORT, SUMMARY

ROW = re.compile(r"<tr( class=\"check\")?><td")


def report_rows(out):
    return ROW.findall((out / REPORT).read_text())


def shown_names(out):
    page = (out / REPORT).read_text()
    return re.findall(r'<td class="text" title="[^"]*">(?:<a href="[^"]*">)?([^<]*)(?:</a>)?</td>', page)


@pytest.mark.usefixtures("stand_in")
def test_every_photograph_has_a_row_and_a_thumbnail_and_nothing_is_fetched(tmp_path):
    write_photos(tmp_path / "in", 4)
    assert segmenting(tmp_path) == 0
    out = tmp_path / "out"
    page = (out / REPORT).read_text()
    assert sorted(shown_names(out)) == ["p0", "p1", "p2", "p3"]
    for index in range(4):
        assert f'<a href="p{index}_overlay.jpg"><img src="p{index}_thumbnail.jpg"' in page
        assert f'<a href="p{index}_probability.png">p{index}</a>' in page
        image = cv2.imread(str(out / f"p{index}_thumbnail.jpg"))
        assert image is not None and max(image.shape[:2]) <= THUMBNAIL_SIDE
    assert "http://" not in page and "https://" not in page and "<link" not in page and 'src="/' not in page
    for column in ("vessel_density", "reliability", "quality", "warning"):
        assert f"<th data-sort>{column}</th>" in page


def test_flagged_photographs_come_first_and_are_highlighted(tmp_path):
    rows = [{"image": f"/photos/p{index}.png", "reliability": f"0.{index}", "quality": "good"} for index in range(4)]
    rows[2]["quality"] = "check: few vessels"
    write_csv(tmp_path / SUMMARY, rows, ("image", "reliability", "quality"))
    write_report(tmp_path)
    assert shown_names(tmp_path) == ["p2", "p0", "p1", "p3"]
    assert [bool(flag) for flag in report_rows(tmp_path)] == [True, False, False, False]
    assert "1 flagged for a check" in (tmp_path / REPORT).read_text()
    assert '<td class="text">(none)</td>' in (tmp_path / REPORT).read_text()  # no thumbnail written: said so


def test_names_and_values_are_escaped(tmp_path):
    rows = [{"image": "/photos/a&b<script>.png", "quality": "check: <b>"}]
    write_csv(tmp_path / SUMMARY, rows, ("image", "quality"))
    page = write_report(tmp_path).read_text()
    assert "a&amp;b&lt;script&gt;" in page and "check: &lt;b&gt;" in page and "<script>.png" not in page


@pytest.mark.usefixtures("stand_in")
def test_the_report_follows_a_resumed_run_shards_and_their_merge(tmp_path):
    write_photos(tmp_path / "in", 5)
    out = tmp_path / "out"
    assert segmenting(tmp_path, "--shard", "1/2") == 0
    assert sorted(shown_names(out)) == ["p0", "p2", "p4"]
    assert segmenting(tmp_path, "--shard", "2/2") == 0
    assert sorted(shown_names(out)) == [f"p{index}" for index in range(5)]  # every part's rows
    (out / "p3_vessels.png").unlink()
    assert segmenting(tmp_path, "--shard", "2/2") == 0  # resumed: p3 redone, p1 kept
    assert sorted(shown_names(out)) == [f"p{index}" for index in range(5)]
    (out / REPORT).unlink()
    assert run_prediction.main(["--merge", "-o", str(out)]) == 0
    assert sorted(shown_names(out)) == sorted(row["image"].rsplit("/", 1)[1][:-4] for row in read_summary(out))


@pytest.mark.usefixtures("stand_in")
def test_a_folder_without_a_report_gets_one_when_nothing_is_left_to_do(tmp_path):
    write_photos(tmp_path / "in", 2)
    assert segmenting(tmp_path) == 0
    (tmp_path / "out" / REPORT).unlink()
    assert segmenting(tmp_path) == 0
    assert sorted(shown_names(tmp_path / "out")) == ["p0", "p1"]


def test_a_thumbnail_shows_the_vessels_tinted_over_the_photograph():
    rgb = np.full((2336, 3504, 3), 100, np.uint8)
    vessels = np.zeros((2336, 3504), bool)
    vessels[:, :1752] = True
    small = thumbnail(rgb, vessels)
    assert small.shape == (107, 160, 3)
    assert (small[:, :70, 1] > small[:, :70, 0]).all() and (small[:, 90:] == 100).all()


def test_the_overlay_blends_the_vessel_pixels_alone_as_a_whole_image_blend_rounds():
    rgb = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    vessels = np.zeros((64, 96), bool)
    vessels[10:30, 5:70] = True
    blended = cv2.addWeighted(rgb, 1 - OVERLAY_ALPHA, np.full_like(rgb, OVERLAY_COLOUR), OVERLAY_ALPHA, 0)
    tinted = overlay(rgb, vessels)
    assert np.array_equal(tinted[vessels], blended[vessels]) and np.array_equal(tinted[~vessels], rgb[~vessels])


def test_a_costly_report_is_rewritten_less_often_during_a_run_and_always_at_its_end(tmp_path, monkeypatch):
    write_csv(tmp_path / SUMMARY, [{"image": "/photos/p0.png"}], ("image",))
    written = []
    monkeypatch.setattr(html_report, "write_report", written.append)
    refresher = html_report.Refresher(tmp_path)
    refresher()
    refresher.cost = 1.0  # as if the first rewrite had taken a second: the next waits 1 / MAX_SHARE s
    refresher()
    assert written == [tmp_path] and refresher.pending
    refresher.finish()
    refresher.finish()
    assert written == [tmp_path, tmp_path]


def test_histograms_of_the_reliability_and_the_measurements_skip_what_is_not_a_number(tmp_path):
    rows = [
        {"image": f"/photos/p{index}.png", "reliability": str(index / 10), "tortuosity": "nan"} for index in range(5)
    ]
    write_csv(tmp_path / SUMMARY, rows, ("image", "reliability", "tortuosity"))
    page = write_report(tmp_path).read_text()
    assert page.count("<svg") == 1 and 'aria-label="histogram of reliability"' in page  # tortuosity all nan
    assert page.count("<rect") == 5 and "reliability: 0 to 0.4" in page
