"""Reliability in real use: a team's folders over weeks (two terminals on one output folder, outputs written
next to inputs, photographs replaced, files re-saved by a spreadsheet, 16-bit images of another tool). Each case
ends with exit 0 and nothing lost, or exit 1, one ``error:`` line and nothing of the user's changed.

The run_prediction.py cases use the stand-in network of tests/test_run_prediction.py (no weights, milliseconds);
the two concurrent runs are two real processes; the experiment cases use tests/test_reliability.py's scratch
experiment (a synthetic DRIVE prepared, tiny settings).
"""

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import REPO, assert_ok, assert_user_error, make_config, run_script
from test_reliability import Case, files_of, prepare_case, run_in_process, write_base, write_config
from test_run_prediction import SMALL, read_summary, read_summary_file, save, stand_in, write_photos  # noqa: F401

import run_export
import run_prediction
from lib.errors import UserError
from lib.lock import held
from lib.run_folder import SUMMARY
from src import cli


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return write_base(tmp_path_factory.mktemp("real_use") / "base")


def run_main(main, argv, capsys) -> subprocess.CompletedProcess:
    """A script's ``main(argv)`` through ``run_cli``, as the script runs it, in this process."""
    capsys.readouterr()
    try:
        cli.run_cli(lambda: sys.exit(main(argv)))
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, captured.out, captured.err)


def measuring(folder, capsys, *arguments):
    """run_measurements.py ``arguments`` from ``folder``, in this process (scikit-image stays loaded)."""
    import run_measurements

    saved = os.getcwd()
    os.chdir(folder)
    try:
        return run_main(run_measurements.main, [*map(str, arguments)], capsys)
    finally:
        os.chdir(saved)


def predicting(tmp_path, capsys, *arguments):
    """run_prediction.py with the stand-in network at a small scale, in this process."""
    return run_main(run_prediction.main, [*map(str, arguments), *SMALL], capsys)


# ------------------------------------------------------------------ one writer per output folder


@pytest.mark.slow  # three runs of the real script, each loading TensorFlow
def test_two_runs_into_one_folder_at_once_lose_no_row(tmp_path):
    """Two terminals, 4 + 4 photographs, one -o: the second run is refused at once, naming the first, which
    finishes; run again afterwards, the second adds its rows: 8 rows of 8."""
    import keras

    from src.model import build_unet

    keras.utils.set_random_seed(0)
    weights = tmp_path / "tiny.weights.h5"
    build_unet().save_weights(weights)
    write_photos(tmp_path / "first", 4, 200, 210)
    second = write_photos(tmp_path / "second", 4, 200, 210)
    for index, path in enumerate(second):
        path.rename(path.with_name(f"q{index}.png"))
    out = tmp_path / "out"
    command = [sys.executable, str(REPO / "run_prediction.py"), "-o", str(out), "--weights", str(weights), *SMALL]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    first = subprocess.Popen([*command, str(tmp_path / "first")], env=env, **pipes)
    lock = out / f"{SUMMARY}.lock"
    deadline = time.monotonic() + 120
    while first.poll() is None and not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    refused = run_script(
        "run_prediction.py", tmp_path / "second", "-o", out, "--weights", weights, *SMALL, cwd=tmp_path
    )
    assert time.monotonic() - started < 30 and first.poll() is None, "the second run was not refused at once"
    assert_user_error(refused, f"{out}/ is in use by another run_prediction.py run", f"process {first.pid}",
                      "wait for it to finish")  # fmt: skip
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0 and "Traceback" not in stderr, stderr[-3000:]
    assert len(read_summary(out)) == 4 and not lock.exists()
    assert_ok(
        run_script("run_prediction.py", tmp_path / "second", "-o", out, "--weights", weights, *SMALL, cwd=tmp_path)
    )
    assert len(read_summary(out)) == 8


@pytest.mark.usefixtures("stand_in")
def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path, capsys):
    write_photos(tmp_path / "in", 2)
    out = tmp_path / "out"
    out.mkdir()
    with held(out / f"{SUMMARY}.lock"):
        result = predicting(tmp_path, capsys, tmp_path / "in", "-o", out)
        assert_user_error(result, f"{out}/ is in use by another run_prediction.py run", f"process {os.getpid()}")
        assert sorted(path.name for path in out.iterdir()) == [f"{SUMMARY}.lock"]
    (out / f"{SUMMARY}.lock").write_text('{"pid": 999999, "host": "elsewhere", "since": "yesterday"}')  # kill -9
    assert predicting(tmp_path, capsys, tmp_path / "in", "-o", out).returncode == 0
    assert len(read_summary(out)) == 2 and not (out / f"{SUMMARY}.lock").exists()


@pytest.mark.usefixtures("stand_in")
def test_shards_run_side_by_side_and_the_merge_waits_for_them(tmp_path, capsys):
    write_photos(tmp_path / "in", 4)
    out = tmp_path / "out"
    assert predicting(tmp_path, capsys, tmp_path / "in", "-o", out, "--shard", "1/2").returncode == 0
    with held(out / "summary.part-1-of-2.csv.lock"):  # part 1 running again: part 2 goes on beside it
        assert predicting(tmp_path, capsys, tmp_path / "in", "-o", out, "--shard", "2/2").returncode == 0
        result = run_main(run_prediction.main, ["--merge", "-o", str(out)], capsys)
        assert_user_error(result, "summary.part-1-of-2.csv: still being written", f"process {os.getpid()}")
        assert not (out / SUMMARY).exists()
    assert run_main(run_prediction.main, ["--merge", "-o", str(out)], capsys).returncode == 0
    assert len(read_summary(out)) == 4


@pytest.mark.usefixtures("stand_in")
def test_merge_refuses_parts_of_other_lists_and_names_missing_photographs(tmp_path, capsys):
    """Parts made from different file lists would miss photographs silently: refused; a photograph of a part's share
    without a row (it failed) is named."""
    photos = write_photos(tmp_path / "in", 5)
    out = tmp_path / "out"
    photos[4].rename(tmp_path / "p4.png")  # part 1 sees 4 photographs
    assert predicting(tmp_path, capsys, tmp_path / "in", "-o", out, "--shard", "1/2").returncode == 0
    (tmp_path / "p4.png").rename(photos[4])  # part 2 sees 5
    assert predicting(tmp_path, capsys, tmp_path / "in", "-o", out, "--shard", "2/2").returncode == 0
    result = run_main(run_prediction.main, ["--merge", "-o", str(out)], capsys)
    assert_user_error(result, "summary.part-2-of-2.csv was made from another list of photographs (5)",
                      "summary.part-1-of-2.csv (4)", "run every part again")  # fmt: skip
    assert not (out / SUMMARY).exists()

    assert predicting(tmp_path, capsys, tmp_path / "in", "-o", out, "--shard", "1/2").returncode == 0
    photos[2].write_bytes(b"damaged on the way")  # p2 is in part 1's share (p0, p2, p4) and fails
    assert predicting(tmp_path, capsys, tmp_path / "in", "-o", out, "--shard", "1/2", "--overwrite").returncode == 1
    assert predicting(tmp_path, capsys, tmp_path / "in", "-o", out, "--shard", "2/2").returncode == 0
    result = run_main(run_prediction.main, ["--merge", "-o", str(out)], capsys)
    assert result.returncode == 1
    assert result.stdout == f"4 rows merged into {out / SUMMARY}\n"
    assert result.stderr == (f"error: {out / SUMMARY} is incomplete: 1 photographs of summary.part-1-of-2.csv have "
                             "no row (p2); run those parts (--shard K/N), then --merge again\n")  # fmt: skip


# ------------------------------------------------------------------ no output may be an input


@pytest.mark.parametrize(
    ("where", "relation"),
    [("in", "is the input folder"), ("in/results", "is inside the input folder"), (".", "contains the photograph")],
)
@pytest.mark.usefixtures("stand_in")
def test_an_output_folder_among_the_inputs_is_refused(tmp_path, capsys, monkeypatch, where, relation):
    """-o equal to, inside or containing the photographs: the rerun would read its own *_vessels.png as
    photographs (4 rows for 2 photographs). Refused before any work, nothing written."""
    monkeypatch.chdir(tmp_path)
    write_photos(tmp_path / "in", 2)
    before = files_of(tmp_path)
    result = predicting(tmp_path, capsys, "in" if where != "." else "in/p0.png", "-o", where)
    assert_user_error(result, f"-o {where} {relation}", "write the results into a folder of their own")
    assert files_of(tmp_path) == before


@pytest.mark.usefixtures("stand_in")
def test_an_output_folder_of_something_else_is_refused(tmp_path, capsys):
    """-o into a folder holding files a run does not write (a team's notes, other results): refused before any
    work, nothing written there; a folder of earlier results, with a temporary file of a killed run, is used."""
    write_photos(tmp_path / "in", 2)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("the team's notes")
    (tmp_path / "docs" / "old").mkdir()
    before = files_of(tmp_path)
    result = predicting(tmp_path, capsys, tmp_path / "in", "-o", tmp_path / "docs")
    assert_user_error(result, f"-o {tmp_path / 'docs'} holds notes.txt and 1 more, which run_prediction.py does not "
                      "write; write the results into a new folder")  # fmt: skip
    assert files_of(tmp_path) == before
    out = tmp_path / "out"
    assert predicting(tmp_path, capsys, tmp_path / "in", "-o", out).returncode == 0
    (out / ".p0_vessels.png.x1y2.png").write_bytes(b"left by kill -9")
    assert predicting(tmp_path, capsys, tmp_path / "in", "-o", out, "--overwrite").returncode == 0
    assert len(read_summary(out)) == 2


@pytest.mark.usefixtures("stand_in")
def test_outputs_are_never_read_back_as_photographs(tmp_path, capsys):
    write_photos(tmp_path / "in", 2)
    for _ in range(2):
        assert predicting(tmp_path, capsys, tmp_path / "in", "-o", tmp_path / "out").returncode == 0
    assert len(read_summary(tmp_path / "out")) == 2


def test_measurements_written_over_their_map_are_refused(tmp_path, capsys):
    map_file = save(tmp_path / "map.png", np.where(np.eye(64, dtype=bool), 255, 0).astype(np.uint8))
    before = files_of(tmp_path)
    assert_user_error(measuring(tmp_path, capsys, map_file, "-o", map_file),
                      "-o", "is the input", "map.png", "a file of its own")  # fmt: skip
    assert files_of(tmp_path) == before


def test_measurements_written_over_another_csv_are_refused(tmp_path, capsys):
    """-o naming a CSV of the team's (not one run_measurements.py wrote): refused before measuring, unchanged; its
    own CSV of an earlier run is written again."""
    save(tmp_path / "map.png", np.where(np.eye(64, dtype=bool), 255, 0).astype(np.uint8))
    (tmp_path / "cohort.csv").write_text("patient,age\n17,54\n")
    before = files_of(tmp_path)
    result = measuring(tmp_path, capsys, "map.png", "-o", "cohort.csv")
    assert_user_error(result, "-o cohort.csv is a CSV that run_measurements.py did not write (columns patient, age)")
    assert files_of(tmp_path) == before
    for _ in range(2):
        assert_ok(measuring(tmp_path, capsys, "map.png", "-o", "m.csv"))


def test_an_export_over_its_weights_is_refused(tmp_path, capsys):
    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"the weights, not read: refused before")
    before = files_of(tmp_path)
    result = run_main(run_export.main, ["--weights", str(weights), "--format", "onnx", "-o", str(weights)], capsys)
    assert_user_error(result, f"-o {weights} is the weights", "a path of its own")
    assert files_of(tmp_path) == before


def test_a_savedmodel_is_not_exported_over_other_files(tmp_path):
    from lib.atomic import atomic_folder
    from src.export import SAVEDMODEL_CONTENTS

    target = tmp_path / "model"
    (target / "variables").mkdir(parents=True)
    (target / "saved_model.pb").write_text("earlier")
    (target / "notes.txt").write_text("the team's notes")
    before = files_of(tmp_path)
    with pytest.raises(UserError, match="holds notes.txt, which the export does not write"):
        with atomic_folder(target, marker="saved_model.pb", contents=SAVEDMODEL_CONTENTS):
            pass
    assert files_of(tmp_path) == before
    (target / "notes.txt").unlink()
    with atomic_folder(target, marker="saved_model.pb", contents=SAVEDMODEL_CONTENTS) as temp:
        (temp / "saved_model.pb").write_text("new")
    assert [path.name for path in target.iterdir()] == ["saved_model.pb"]


def test_weights_named_with_a_leading_dot_get_their_own_results_folder():
    from lib.experiment import weights_name

    assert [weights_name(name) for name in (".weights.h5", "exp_best.weights.h5", "...", "/a/.b.c.h5")] == [
        "weights", "exp_best", "weights", "b"
    ]  # fmt: skip


@pytest.mark.slow  # tests the scratch experiment
def test_testing_weights_named_with_a_leading_dot_keeps_the_base_results(base, tmp_path, capsys):
    folder = prepare_case(base, tmp_path / "run", Case("", "run_testing.py"))
    assert_ok(run_in_process("run_testing.py", cwd=folder, capsys=capsys))
    base_results = {name: value for name, value in files_of(folder / "exp").items() if "/" not in name}
    shutil.copyfile(folder / "exp" / "exp_best.weights.h5", folder / ".weights.h5")
    assert_ok(run_in_process("run_testing.py", "--weights", ".weights.h5", cwd=folder, capsys=capsys))
    assert (folder / "exp" / "weights" / "performances.txt").is_file()
    assert {name: value for name, value in files_of(folder / "exp").items() if name in base_results} == base_results


def test_overwrite_never_moves_the_prepared_data_away(base, tmp_path, capsys):
    """path_local equal to the experiment folder, then run_training.py --overwrite: the earlier experiment's files
    would move aside with the prepared HDF5 files: refused before anything moves."""
    folder = prepare_case(base, tmp_path / "run", Case("", "run_training.py"))
    for path in (folder / "DRIVE_datasets_training_testing").iterdir():
        path.rename(folder / "exp" / path.name)
    write_config(folder, {"data paths": {"path_local": "./exp/"}})
    before = files_of(folder)
    result = run_in_process("run_training.py", "--overwrite", cwd=folder, capsys=capsys)
    assert_user_error(result, "exp/ is also [data paths] path_local", "set path_local to a folder of its own")
    assert files_of(folder) == before


def test_a_second_stare_driver_on_one_results_folder_is_refused(tmp_path, capsys, monkeypatch):
    import run_stare_leave_one_out

    monkeypatch.chdir(tmp_path)
    (tmp_path / "configurations").mkdir()
    shutil.copyfile(REPO / "configuration.txt", tmp_path / "configuration.txt")  # the base of STARE.txt
    shutil.copyfile(REPO / "configurations" / "STARE.txt", tmp_path / "configurations" / "STARE.txt")
    results = tmp_path / "STARE_results" / "published"  # configurations/STARE.txt's [leave-one-out] results_folder
    results.mkdir(parents=True)
    monkeypatch.setattr(sys, "argv", ["run_stare_leave_one_out.py", "--cross-dataset"])
    with held(results / "run_stare_leave_one_out.lock"):
        result = run_main(lambda argv: run_stare_leave_one_out.main(), [], capsys)
    assert_user_error(result, "STARE_results/published/ is in use by another run_stare_leave_one_out.py run",
                      f"process {os.getpid()}", "its own [leave-one-out] results_folder")  # fmt: skip


# ------------------------------------------------------------------ a failed run blocks nothing


def test_missing_weights_leave_no_empty_output_folder(tmp_path, capsys):
    write_photos(tmp_path / "in", 1)
    result = run_main(run_prediction.main, [str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--weights",
                                            str(tmp_path / "none.weights.h5")], capsys)  # fmt: skip
    assert_user_error(result, "none.weights.h5")
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("stand_in")
def test_a_run_where_every_photograph_failed_blocks_no_next_run(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "p0.png").write_bytes(b"not an image")
    assert predicting(tmp_path, capsys, tmp_path / "in", "-o", tmp_path / "out").returncode == 1
    write_photos(tmp_path / "in", 1)
    result = predicting(tmp_path, capsys, tmp_path / "in", "-o", tmp_path / "out", "--threshold", "0.3")
    assert result.returncode == 0, result.err
    assert len(read_summary(tmp_path / "out")) == 1


# ------------------------------------------------------------------ a result is reused only for the same input


@pytest.mark.usefixtures("stand_in")
def test_a_photograph_replaced_under_its_name_is_done_again(tmp_path, capsys):
    from test_run_prediction import photo

    first, second = write_photos(tmp_path / "in", 2)
    out = tmp_path / "out"
    assert predicting(tmp_path, capsys, tmp_path / "in", "-o", out).returncode == 0
    rows = {row["image"]: row for row in read_summary(out)}
    kept = (out / "p1_vessels.png").stat().st_mtime_ns
    save(first, photo(7, 80, 110)[0])  # another photograph under the same name
    result = predicting(tmp_path, capsys, tmp_path / "in", "-o", out)
    assert result.returncode == 0 and "segmenting 1 images" in result.stdout and "1 done before" in result.stdout
    new = {row["image"]: row for row in read_summary(out)}
    assert (new[str(first)]["width"], new[str(first)]["height"]) == ("110", "80")
    assert new[str(second)] == rows[str(second)] and (out / "p1_vessels.png").stat().st_mtime_ns == kept
    status = first.stat()
    os.utime(first, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))  # touched, same size: done again too
    assert "segmenting 1 images" in predicting(tmp_path, capsys, tmp_path / "in", "-o", out).stdout
    assert "all 2 images were segmented" in predicting(tmp_path, capsys, tmp_path / "in", "-o", out).stdout


# ------------------------------------------------------------------ images read by value at their bit depth


def write_16bit(path, levels) -> None:
    """A 16-bit gray PNG (or TIFF) holding ``levels`` in a pattern: a label or map of another tool."""
    import cv2

    image = np.zeros((64, 64), np.uint16)
    for index, level in enumerate(levels):
        image[:, index * 64 // len(levels) : (index + 1) * 64 // len(levels)] = level
    cv2.imwrite(str(path), image)


@pytest.mark.parametrize("name", ["label.png", "label.tif"])
def test_16bit_labels_are_read_by_value_not_cut_to_8_bits(tmp_path, name):
    """0 / 20000 / 65535 was read as 0 / 255 / 255 (binary) and scored: three levels are refused."""
    import cv2

    from lib.imageio import read_binary

    write_16bit(tmp_path / name, (0, 20000, 65535))
    with pytest.raises(UserError, match="must be binary .* found 3 levels"):
        read_binary(tmp_path / name)
    colour = np.stack([np.array([[0, 200, 65535]] * 3, np.uint16)] * 3, axis=-1)
    cv2.imwrite(str(tmp_path / "colour.png"), colour)  # Pillow keeps 8 bits of a 16-bit colour PNG: 200 is 0
    with pytest.raises(UserError, match="found 3 levels"):
        read_binary(tmp_path / "colour.png")
    write_16bit(tmp_path / name, (0, 65535))
    assert np.array_equal(np.unique(read_binary(tmp_path / name)), [0, 255])
    write_16bit(tmp_path / name, (40000,))  # one level above the middle of 16 bits: all inside
    assert read_binary(tmp_path / name).min() == 255


def test_a_16bit_map_is_measured_as_its_8bit_copy(tmp_path, capsys):
    from PIL import Image

    vessels = np.zeros((96, 96), np.uint8)
    vessels[40:44, 5:90] = 255
    vessels[5:90, 60:63] = 255
    save(tmp_path / "eight.png", vessels)
    Image.fromarray(vessels.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    result = measuring(tmp_path, capsys, "eight.png", "sixteen.png", "-o", "m.csv")
    assert_ok(result)
    eight, sixteen = read_summary_file(tmp_path / "m.csv")
    assert {**eight, "image": ""} == {**sixteen, "image": ""}
    write_16bit(tmp_path / "sixteen.png", (0, 20000, 65535))
    assert_user_error(measuring(tmp_path, capsys, "sixteen.png", "-o", "n.csv"), "3 levels")
    assert not (tmp_path / "n.csv").exists()


@pytest.mark.usefixtures("stand_in")
def test_a_16bit_label_of_three_levels_fails_its_photograph_alone(tmp_path, capsys):
    write_photos(tmp_path / "in", 2)
    (tmp_path / "labels").mkdir()
    write_16bit(tmp_path / "labels" / "p0.png", (0, 20000, 65535))
    result = predicting(tmp_path, capsys, tmp_path / "in", "-o", tmp_path / "out", "--labels", tmp_path / "labels")
    assert result.returncode == 1 and "labels/p0.png: a label/mask must be binary" in result.stderr
    assert "p1.png: no label named p1.*" in result.stderr  # the other photograph has no label: its own line
    assert not (tmp_path / "out" / SUMMARY).exists()


def write_dataset(path, array) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        handle.create_dataset("image", data=array)


def test_hdf5_images_that_are_no_pixels_are_refused(tmp_path, monkeypatch):
    import errno

    import h5py

    from lib import datasets

    write_dataset(tmp_path / "signed.hdf5", np.full((2, 3, 8, 8), -5, np.int8))
    with pytest.raises(UserError, match=r"negative values \(type int8, down to -5\)"):
        datasets.load_hdf5(tmp_path / "signed.hdf5")
    write_dataset(tmp_path / "empty.hdf5", np.zeros((0, 3, 8, 8), np.uint8))
    with pytest.raises(UserError, match=r"holds no images \(shape \(0, 3, 8, 8\)\)"):
        datasets.load_hdf5(tmp_path / "empty.hdf5", channels=3)

    def denied(path, mode):  # what h5py raises for a file without read permission (root reads any file)
        raise OSError(errno.EACCES, f"Unable to synchronously open file (unable to open file: name = '{path}', "
                                    "errno = 13, error message = 'Permission denied')")  # fmt: skip

    monkeypatch.setattr(h5py, "File", denied)
    with pytest.raises(UserError) as refused:
        datasets.load_hdf5(tmp_path / "signed.hdf5")
    assert "permission denied); fix its permissions" in str(refused.value) and "delete" not in str(refused.value)


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        ("empty", "holds no images (shape (0, 3, 96, 90))"),
        ("signed", "holds negative values"),
        ("no vessel", "the 16 validation patches hold no vessel pixel"),
    ],
)
def test_training_data_that_gives_no_result_is_refused_before_the_first_epoch(base, tmp_path, capsys, setup, fragment):
    import h5py
    from test_reliability import TRAIN_IMAGES, TRAIN_LABELS

    folder = prepare_case(base, tmp_path / "run", Case("", "run_training.py"))
    with h5py.File(folder / TRAIN_IMAGES, "r") as handle:
        images = handle["image"][()]
    if setup == "empty":
        write_dataset(folder / TRAIN_IMAGES, images[:0])
    elif setup == "signed":
        write_dataset(folder / TRAIN_IMAGES, (images // 2).astype(np.int8) - 64)
    else:
        with h5py.File(folder / TRAIN_LABELS, "r") as handle:
            labels = handle["image"][()]
        labels[-1] = 0  # the validation patches come from the last image: without a vessel there
        write_dataset(folder / TRAIN_LABELS, labels)
    before = files_of(folder)
    result = run_in_process("run_training.py", "--name", "fresh", cwd=folder, capsys=capsys)
    assert_user_error(result, fragment)
    assert files_of(folder) == before


def test_overwrite_leaves_the_configuration_it_reads_in_place(tmp_path):
    """run_training.py --config exp/configuration.txt --overwrite: the earlier training's files move aside, but not
    the configuration the new training reads (and copies) as it starts."""
    import types

    from lib.experiment import Experiment
    from lib.experiment_state import starting_state

    experiment = Experiment.in_folder(tmp_path / "exp")
    experiment.folder.mkdir()
    experiment.weights("best").write_bytes(b"earlier weights")
    (experiment.folder / "configuration.txt").write_text("[experiment name]\nname = exp\n")
    settings = types.SimpleNamespace(source=tmp_path / "exp" / ".." / "exp" / "configuration.txt")
    starting_state(settings, experiment, resume=False, overwrite=True)
    assert (experiment.folder / "configuration.txt").is_file() and not experiment.weights("best").exists()
    (aside,) = experiment.folder.glob("replaced-*")
    assert [path.name for path in aside.iterdir()] == [experiment.weights("best").name]


@pytest.mark.slow  # trains one epoch, then resumes
def test_a_damaged_history_does_not_stop_a_resume(base, tmp_path, capsys):
    folder = prepare_case(base, tmp_path / "run", Case("", "run_training.py"))
    write_config(folder, {"training settings": {"N_epochs": "1"}, "experiment name": {"name": "fresh"}})
    assert_ok(run_in_process("run_training.py", cwd=folder, capsys=capsys))
    history = folder / "fresh" / "training_history.csv"
    assert history.is_file()
    history.write_bytes(b"epoch;loss\r\n0;0,5\r\n\xff\x00garbage")  # re-saved by a spreadsheet, then damaged
    write_config(folder, {"training settings": {"N_epochs": "2"}, "experiment name": {"name": "fresh"}})
    assert_ok(run_in_process("run_training.py", "--resume", cwd=folder, capsys=capsys))
    assert (folder / "fresh" / "fresh_last.weights.h5").is_file()


@pytest.mark.parametrize(
    ("images", "name", "relation"),
    [
        ("photos", "photos", "is the photographs' folder photos"),
        ("cam/*.png", "cam", "is the photographs' folder cam"),
        ("cam/photos", "cam", "contains the photographs' folder cam/photos"),
    ],
)
def test_a_fine_tuning_into_its_photographs_folder_is_refused(tmp_path, capsys, images, name, relation):
    """run_finetune.py photos/ --name photos: the training's curves and pictures would land among the photographs
    (and be read as photographs by the next run), --overwrite would move the photographs aside."""
    from test_finetune import tiny_finetune_config, write_photographs

    photos, labels = write_photographs(tmp_path, 2)
    if images != "photos":
        (tmp_path / "cam").mkdir()
        photos.rename(tmp_path / "cam" / "photos" if images == "cam/photos" else tmp_path / "cam" / "x")
        if images == "cam/*.png":
            for path in (tmp_path / "cam" / "x").iterdir():
                path.rename(tmp_path / "cam" / path.name)
            (tmp_path / "cam" / "x").rmdir()
    config = tiny_finetune_config(tmp_path)
    before = files_of(tmp_path)
    result = run_in_process("run_finetune.py", images, "--labels", labels, "--config", config, "--name", name,
                            cwd=tmp_path, capsys=capsys)  # fmt: skip
    assert_user_error(result, f"the experiment folder {name} {relation}", "fine-tune under another name")
    assert files_of(tmp_path) == before


@pytest.mark.parametrize(
    ("path_local", "shown"),
    [("./DRIVE/", "DRIVE is"), ("./DRIVE/prepared/", "DRIVE/prepared is inside"), ("./", ". contains")],
)
def test_prepared_files_are_not_written_into_the_download(base, tmp_path, capsys, path_local, shown):
    folder = prepare_case(base, tmp_path / "run", Case("", "prepare_datasets_DRIVE.py"))
    write_config(folder, {"data paths": {"path_local": path_local}})
    before = files_of(folder)
    result = run_in_process("prepare_datasets_DRIVE.py", cwd=folder, capsys=capsys)
    assert_user_error(result, f"[data paths] path_local {shown} the DRIVE folder DRIVE",
                      "prepare into a folder of its own")  # fmt: skip
    assert files_of(folder) == before


def test_stare_is_not_prepared_into_its_download(tmp_path):
    from lib import stare
    from lib.config import load_config

    config = make_config(tmp_path, {"data paths": {"path_local": tmp_path / "STARE" / "prepared"}},
                         base=REPO / stare.CONFIG_FILE)  # fmt: skip
    with pytest.raises(UserError, match=r"path_local .*/STARE/prepared is inside the STARE folder .*/STARE; prepare"):
        stare.prepare(load_config(config).data, tmp_path / "STARE")
    assert not (tmp_path / "STARE").exists()
