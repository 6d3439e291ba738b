"""Files a user may have touched, read tolerantly or refused in one line (issue 27, property 4): summaries and
shard parts re-saved by a spreadsheet (another encoding, a BOM, CRLF, semicolons), JSON of the wrong shape or cut
short, numbers stored as strings, a damaged training history, a configuration that cannot be read, and images
whose header announces more pixels than any photograph (a small .ppm.gz that decompresses to gigabytes).
"""

import csv
import gzip
import io
import json
import resource
import shutil
import struct
import sys
import zlib

import numpy as np
import pytest
from helpers import REPO, assert_user_error, make_config
from test_real_use import predicting, run_main
from test_run_prediction import read_summary, stand_in, write_photos  # noqa: F401

import run_prediction
from lib import stare
from lib.config import load_config
from lib.errors import UserError
from lib.experiment import Experiment
from lib.imageio import read_binary, read_rgb
from lib.run_folder import SUMMARY
from lib.textfiles import read_csv

# ------------------------------------------------------------------ CSVs a spreadsheet saved again


def resave(path, encoding: str, delimiter: str = ",", newline: str = "\n") -> None:
    """``path`` as a spreadsheet saves it again: its rows in ``encoding`` with ``delimiter`` and ``newline``."""
    rows = read_csv(path)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), delimiter=delimiter, lineterminator=newline)
    writer.writeheader()  # quoting a value that holds the delimiter, as spreadsheets do
    writer.writerows(rows)
    path.write_bytes(text.getvalue().encode(encoding))


SPREADSHEETS = [("utf-8-sig", ",", "\r\n"), ("cp1252", ";", "\r\n"), ("latin-1", "\t", "\n")]


@pytest.mark.parametrize(("encoding", "delimiter", "newline"), SPREADSHEETS)
@pytest.mark.usefixtures("stand_in")
def test_a_summary_saved_again_by_a_spreadsheet_is_read_as_before(tmp_path, capsys, encoding, delimiter, newline):
    """summary.csv re-saved as Latin-1 (a photograph named café.png), with a BOM, CRLF or semicolons: the rerun
    finds every photograph done, no traceback, no row lost."""
    first, _ = write_photos(tmp_path / "in", 2)
    first.rename(first.with_name("café.png"))
    out = tmp_path / "out"
    assert predicting(tmp_path, capsys, tmp_path / "in", "-o", out).returncode == 0
    resave(out / SUMMARY, encoding, delimiter, newline)
    result = predicting(tmp_path, capsys, tmp_path / "in", "-o", out)
    assert result.returncode == 0 and "all 2 images were segmented" in result.stdout, result.stderr
    assert {row["image"].rsplit("/", 1)[1] for row in read_csv(out / SUMMARY)} == {"café.png", "p1.png"}


@pytest.mark.usefixtures("stand_in")
def test_a_shard_part_saved_again_as_latin1_merges(tmp_path, capsys):
    photos = write_photos(tmp_path / "in", 4)
    photos[0].rename(photos[0].with_name("é0.png"))
    out = tmp_path / "out"
    for part in ("1/2", "2/2"):
        assert predicting(tmp_path, capsys, tmp_path / "in", "-o", out, "--shard", part).returncode == 0
    resave(out / "summary.part-1-of-2.csv", "latin-1", ";", "\r\n")
    result = run_main(run_prediction.main, ["--merge", "-o", str(out)], capsys)
    assert result.returncode == 0 and "4 rows merged" in result.stdout, result.stderr
    assert len(read_summary(out)) == 4


@pytest.mark.usefixtures("stand_in")
def test_a_summary_without_its_image_column_is_refused_not_emptied(tmp_path, capsys):
    write_photos(tmp_path / "in", 1)
    out = tmp_path / "out"
    assert predicting(tmp_path, capsys, tmp_path / "in", "-o", out).returncode == 0
    (out / SUMMARY).write_text("picture,width\nsomething,3\n")  # the header edited in a spreadsheet
    before = (out / SUMMARY).read_bytes()
    result = predicting(tmp_path, capsys, tmp_path / "in", "-o", out)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "error:" in result.stderr
    assert (out / SUMMARY).read_bytes() == before


# ------------------------------------------------------------------ JSON of the wrong shape, numbers as strings


def test_a_threshold_stored_as_a_string_is_read_as_its_number(tmp_path):
    experiment = Experiment.in_folder(tmp_path / "model")
    experiment.folder.mkdir()
    experiment.threshold_file.write_text('{"threshold": "0.42", "chosen_on": "by hand"}')
    assert experiment.read_threshold()["threshold"] == 0.42
    for damaged in ('{"threshold": "high"}', "null", "[]", '{"threshold": 0.4', "\xff\xfe"):
        experiment.threshold_file.write_text(damaged)
        with pytest.raises(UserError, match="damaged threshold file"):
            experiment.read_threshold()


FOLD = {"id": "im0001", "mode": {"mode": "patches"}, **dict.fromkeys(stare.PER_IMAGE_METRICS, 0.9)}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("null", "holds NoneType"),
        ("[]", "holds list"),
        (json.dumps({key: value for key, value in FOLD.items() if key != "mode"}), "mode missing"),
        (json.dumps(FOLD | {"auc_roc": "0.97"}), "auc_roc is '0.97', not a number"),
        (json.dumps(FOLD | {"id": "im0002"}), "result of 'im0002'"),
        (json.dumps(FOLD)[:40], "line 1 column"),  # cut short
    ],
)
def test_a_fold_result_of_the_wrong_shape_runs_the_fold_again(tmp_path, capsys, text, reason):
    from lib.experiment import LeaveOneOutResults
    from src.leave_one_out import finished_result

    files = LeaveOneOutResults(tmp_path).fold("im0001")
    for path in files.values():
        path.write_bytes(b"")
    files["result"].write_text(text)
    with pytest.raises(ValueError, match=reason):
        stare.read_fold_result(files["result"], "im0001")
    assert finished_result(tmp_path, "im0001", "fold im0001") is None
    out = capsys.readouterr().out
    assert "im0001_result.json is damaged" in out and "running the fold again" in out


def test_a_fold_folder_deleted_midway_is_a_fold_not_run(tmp_path):
    from lib.experiment import LeaveOneOutResults
    from src.leave_one_out import finished_result

    files = LeaveOneOutResults(tmp_path / "results").fold("im0001")
    files["result"].parent.mkdir()
    for path in files.values():
        path.write_bytes(b"")
    files["result"].write_text(json.dumps(FOLD))
    assert finished_result(tmp_path / "results", "im0001", "fold im0001") == FOLD
    shutil.rmtree(tmp_path / "results")
    assert finished_result(tmp_path / "results", "im0001", "fold im0001") is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"folds": 2, "images": 20, "auc_roc_per', "damaged JSON"),
        ("null", "not a leave-one-out summary (holds NoneType)"),
        ('{"folds": "2"}', "not a leave-one-out summary (folds is '2')"),
    ],
)
def test_compare_refuses_a_damaged_summary_in_one_line(tmp_path, capsys, monkeypatch, text, fragment):
    import run_stare_leave_one_out

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "summary.json").write_text(text)
    config = make_config(
        tmp_path, base=REPO / stare.CONFIG_FILE, overrides={"leave-one-out": {"results_folder": folder}}
    )
    monkeypatch.setattr(sys, "argv", ["run_stare_leave_one_out.py", "--compare", str(config)])
    result = run_main(lambda argv: run_stare_leave_one_out.main(), [], capsys)
    assert_user_error(result, "summary.json", fragment, "run python run_stare_leave_one_out.py --config")


# ------------------------------------------------------------------ a damaged training history


@pytest.mark.parametrize(
    "history",
    [
        b"",
        b"epoch,loss,val_loss\n0,0.5,0.4\n1,0.4",  # cut short in its last row
        b"epoch;loss;val_loss\r\n0;0,5;0,4\r\n",  # re-saved with a decimal comma
        b"loss,val_loss\n0.5,0.4\n",  # no epoch column
        b"\x00\xff\x10garbage\n\x00",
        b"epoch,loss,val_loss\nzero,a,b\n0,0.5,0.3\n",
    ],
)
def test_a_damaged_history_reads_as_the_epochs_it_still_shows(tmp_path, history):
    experiment = Experiment.in_folder(tmp_path / "exp")
    experiment.folder.mkdir()
    experiment.history.write_bytes(history)
    columns = experiment.read_history()
    assert all(isinstance(values, list) for values in columns.values())
    assert experiment.best_epoch() in (None, 1)
    experiment.write_history(1, {"loss": 0.3, "val_loss": 0.2})  # the next epoch's row, on resume
    assert experiment.read_history()["epoch"][-1] == 1 and experiment.best_epoch() == 2


# ------------------------------------------------------------------ a configuration that cannot be read


def test_a_configuration_saved_as_latin1_is_read(tmp_path):
    path = make_config(tmp_path)
    path.write_bytes(("# réglages de l'équipe\n" + path.read_text()).encode("latin-1"))
    assert load_config(path).name


def test_an_unreadable_configuration_is_one_line(tmp_path, monkeypatch):
    from lib import textfiles

    path = make_config(tmp_path)

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(textfiles.Path, "read_bytes", denied)  # root reads any file: the refusal a user gets
    with pytest.raises(
        UserError, match=r"configuration.txt: cannot read it \(Permission denied\); fix its permissions"
    ):
        load_config(path)


# ------------------------------------------------------------------ decompression bounded


def ppm_gz_header(path, width: int, height: int, body: int) -> None:
    """A .ppm.gz whose header announces ``width`` x ``height`` px, followed by ``body`` zero bytes."""
    with gzip.open(path, "wb", compresslevel=9) as handle:
        handle.write(f"P6\n{width} {height}\n255\n".encode())
        chunk = bytes(2**20)
        for _ in range(body // len(chunk)):
            handle.write(chunk)


def png_header(path, width: int, height: int) -> None:
    """A PNG whose IHDR announces ``width`` x ``height`` px (what a decompression bomb looks like)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1000))))


@pytest.mark.parametrize("reader", [read_rgb, read_binary])
def test_an_image_announcing_too_many_pixels_is_refused_from_its_header(tmp_path, reader):
    """A 2.8 MB .ppm.gz of 4.8 GB took 10 GB and ended in a MemoryError: now one line, read from the header, with
    memory unchanged (the body is never decompressed)."""
    ppm_gz_header(tmp_path / "bomb.ppm.gz", 40_000, 40_000, 16 * 2**20)  # 4.8 GB announced, 16 MiB present
    png_header(tmp_path / "bomb.png", 30_000, 30_000)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name, size in (("bomb.ppm.gz", "1600 megapixels"), ("bomb.png", "900 megapixels")):
        with pytest.raises(UserError, match=f"{name}: {size}.*more than the 100 megapixels"):
            reader(tmp_path / name)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200 * 2**10  # KiB: under 200 MiB more


@pytest.mark.usefixtures("stand_in")
def test_a_decompression_bomb_among_photographs_fails_alone(tmp_path, capsys):
    write_photos(tmp_path / "in", 1)
    ppm_gz_header(tmp_path / "in" / "bomb.ppm.gz", 40_000, 40_000, 2**20)
    result = predicting(tmp_path, capsys, tmp_path / "in", "-o", tmp_path / "out")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {tmp_path / 'in' / 'bomb.ppm.gz'}: 1600 megapixels, more than the 100 megapixels "
        "this project reads (a fundus photograph has a few); check that it is the photograph, or reduce it"
    ]
    assert len(read_summary(tmp_path / "out")) == 1


def test_an_image_within_the_limit_still_reads(tmp_path):
    from PIL import Image
    from test_run_prediction import photo

    Image.fromarray(photo(0, 90, 100)[0]).save(tmp_path / "p.ppm")
    (tmp_path / "p.ppm.gz").write_bytes(gzip.compress((tmp_path / "p.ppm").read_bytes()))
    assert read_rgb(tmp_path / "p.ppm.gz").shape == (90, 100, 3)
    assert np.asarray(read_rgb(tmp_path / "p.ppm.gz")).dtype == np.uint8
