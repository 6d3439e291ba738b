"""Reliability: every bad input gives one clear line and exit status 1, interruptions lose no finished
work, and a NaN loss stops training with the last good weights kept.

Each row of the README's "Bad input and interruptions" table is one ``Case`` below. The scripts that
fail before TensorFlow loads run as subprocesses, exactly as a user runs them; the ones that fail
after it loads run in this process (``runpy``, same ``sys.argv``, same ``run_cli``), which saves a
TensorFlow start-up per case. The Ctrl-C test sends a real SIGINT to a real training process.

``python tests/test_reliability.py`` runs every case as a subprocess in a scratch folder and prints
the README table with the real ``error:`` lines.
"""

import dataclasses
import errno
import json
import math
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import REPO, assert_user_error, default_sigint, make_config, run_script, stderr_lines  # noqa: E402

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DATA = "DRIVE_datasets_training_testing"  # path_local, relative to the experiment's working directory
TRAIN_IMAGES = f"{DATA}/DRIVE_dataset_imgs_train.hdf5"
TRAIN_LABELS = f"{DATA}/DRIVE_dataset_groundTruth_train.hdf5"
SIZE = (96, 90)  # synthetic DRIVE: 4 training and 2 test images of 96x90


# ------------------------------------------------------------------ the scratch experiment


def write_base(folder: Path) -> Path:
    """A folder as a user has it after download and prepare: ./DRIVE (synthetic), ./configuration.txt
    (tiny settings, experiment ``exp``), the prepared HDF5 files and U-Net weights in ./exp/."""
    from lib.synthetic import write_synthetic_drive

    folder.mkdir(parents=True, exist_ok=True)
    write_synthetic_drive(folder / "DRIVE", n_train=4, n_test=2, height=SIZE[0], width=SIZE[1], seed=0)
    write_config(folder)
    result = run_script("prepare_datasets_DRIVE.py", "--drive", "DRIVE", cwd=folder)
    assert result.returncode == 0, result.stderr
    save_unet_weights(folder / "exp" / "exp_best.weights.h5")
    return folder


def write_config(folder: Path, overrides=None, drop=(), filename="configuration.txt") -> Path:
    """The tiny configuration with relative paths, as a user writes it."""
    values = {"data paths": {"path_local": f"./{DATA}/", "drive_folder": "./DRIVE"}}
    for section, settings in (overrides or {}).items():
        values.setdefault(section, {}).update(settings)
    return make_config(folder, values, drop, filename, tiny=True)


def save_unet_weights(path: Path) -> None:
    from src.model import build_unet

    path.parent.mkdir(parents=True, exist_ok=True)
    build_unet(16, 16).save_weights(path)


def save_other_weights(path: Path) -> None:
    """Weights of another network (a two-layer CNN), saved as Keras saves any weights."""
    import keras

    model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(8, 3), keras.layers.Conv2D(2, 1)])
    model.save_weights(path)


def files_of(folder: Path) -> dict[str, tuple[int, int] | str]:
    """Every file under ``folder`` with its size and modification time, and every folder: what a run wrote or
    changed, or left behind (an empty experiment folder, an empty log)."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns) if path.is_file() else "folder"
        for path in sorted(folder.rglob("*"))
    }


# ------------------------------------------------------------------ the cases


@dataclasses.dataclass
class Case:
    row: str  # the bad input, as the README table names it
    script: str
    args: tuple = ()
    fragments: tuple = ()  # what the error line must contain: the file or key, and the fix
    tensorflow: bool = False  # fails after TensorFlow loads: run in this process in the tests
    setup: object = None  # setup(folder) makes the bad input in a copy of the base folder


def _copy_drive_image(folder, relative, array):
    Image.fromarray(array).save(folder / "DRIVE" / relative, format="TIFF" if relative.endswith(".tif") else "GIF")


def _remove(*relatives):
    def setup(folder):
        for relative in relatives:
            target = folder / relative
            shutil.rmtree(target) if target.is_dir() else target.unlink()

    return setup


def _stare_layout(folder):
    from lib.synthetic import write_synthetic_stare

    write_synthetic_stare(folder / "STARE", ids=["im0001", "im0002"], height=64, width=64)


def _mixed_sizes(folder):
    rgb = np.random.default_rng(0).integers(0, 256, (80, 80, 3), dtype=np.uint8)
    _copy_drive_image(folder, "training/images/22_training.tif", rgb)


def _truncated_image(folder):
    path = folder / "DRIVE/training/images/21_training.tif"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _text_as_image(folder):
    (folder / "DRIVE/test/images/01_test.tif").write_text("<html>404 Not Found</html>\n")


def _gray_label(folder):
    ramp = np.tile(np.linspace(0, 255, SIZE[1]).astype(np.uint8), (SIZE[0], 1))
    _copy_drive_image(folder, "training/1st_manual/21_manual1.gif", ramp)


def _config(overrides=None, drop=()):
    def setup(folder):
        write_config(folder, overrides, drop)

    return setup


def _truncate_hdf5(folder):
    path = folder / TRAIN_IMAGES
    path.write_bytes(path.read_bytes()[:3000])


def _wrong_shape_hdf5(folder):
    from lib.datasets import write_hdf5

    write_hdf5(folder / TRAIN_LABELS, np.zeros((3, 1, *SIZE), dtype=np.uint8))


def _nan_hdf5(folder):
    path = folder / TRAIN_IMAGES
    with h5py.File(path, "r") as handle:
        images = handle["image"][()].astype(np.float64)
    images[0, 1, 40:50, 40:50] = np.nan
    with h5py.File(path, "w") as handle:
        handle.create_dataset("image", data=images)


def _other_weights(folder):
    save_other_weights(folder / "other.weights.h5")


def _blocking_file(name):
    def setup(folder):
        (folder / name).write_text("a regular file where a folder is needed\n")

    return setup


def _blocked_data_folder(folder):
    (folder / "blocker").write_text("a regular file\n")
    write_config(folder, {"data paths": {"path_local": "./blocker/data/"}})


def _damaged_checkpoint(folder):
    (folder / "exp" / "exp_checkpoint.keras").write_bytes(b"PK\x03\x04 not a zip archive")
    (folder / "exp" / "training_state.json").write_text('{"epochs_done": 1, "best_val_loss": 0.5}')


def _trained_experiment(folder):
    """exp/ as after a finished epoch: a checkpoint, its state and the configuration it was trained with."""
    exp = folder / "exp"
    (exp / "exp_checkpoint.keras").write_bytes(b"not read: the settings are refused first")
    (exp / "training_state.json").write_text('{"epochs_done": 1, "best_val_loss": 0.5}')
    shutil.copyfile(folder / "configuration.txt", exp / "configuration.txt")


def _resumed_with_other_settings(folder):
    _trained_experiment(folder)
    write_config(folder, {"training settings": {"optimizer": "adam", "learning_rate": "0.5", "batch_size": "8"}})


def _black_test_masks(folder):
    from lib.datasets import write_hdf5

    path = folder / DATA / "DRIVE_dataset_borderMasks_test.hdf5"
    with h5py.File(path, "r") as handle:
        write_hdf5(path, np.zeros_like(handle["image"][()]))


PREPARE = "prepare_datasets_DRIVE.py"
TRAIN = "run_training.py"
TEST = "run_testing.py"
DRIVE_FIX = "download DRIVE"

CASES = {
    "dataset folder missing": Case(
        "dataset folder missing", PREPARE, ("--drive", "nowhere"), ("nowhere/training/images", "not found", DRIVE_FIX)
    ),
    "dataset folder empty": Case(
        "dataset folder empty",
        PREPARE,
        ("--drive", "empty"),
        ("empty/training/images", "not found", DRIVE_FIX),
        setup=lambda folder: (folder / "empty").mkdir(),
    ),
    "another layout": Case(
        "dataset folder in another layout (STARE's given to the DRIVE script)",
        PREPARE,
        ("--drive", "STARE"),
        ("STARE/training/images", DRIVE_FIX),
        setup=_stare_layout,
    ),
    "no images named like DRIVE": Case(
        "images folder without DRIVE's file names (e.g. converted to .png)",
        PREPARE,
        ("--drive", "DRIVE"),
        ("DRIVE/training/images", "no images named like", DRIVE_FIX),
        setup=lambda folder: [p.rename(p.with_suffix(".png")) for p in (folder / "DRIVE/training/images").iterdir()],
    ),
    "label missing": Case(
        "a label missing for an image",
        PREPARE,
        ("--drive", "DRIVE"),
        ("DRIVE/training/1st_manual/22_manual1.gif", "missing for image 22", DRIVE_FIX),
        setup=_remove("DRIVE/training/1st_manual/22_manual1.gif"),
    ),
    "mask missing": Case(
        "a FOV mask missing for an image",
        PREPARE,
        ("--drive", "DRIVE"),
        ("DRIVE/test/mask/02_test_mask.gif", "missing for image 02"),
        setup=_remove("DRIVE/test/mask/02_test_mask.gif"),
    ),
    "mixed sizes": Case(
        "images of mixed sizes",
        PREPARE,
        ("--drive", "DRIVE"),
        ("DRIVE/training/images/22_training.tif", "80x80 (height x width)", "96x90", "one size"),
        setup=_mixed_sizes,
    ),
    "truncated image": Case(
        "a truncated image file",
        PREPARE,
        ("--drive", "DRIVE"),
        ("DRIVE/training/images/21_training.tif", "not a readable image", "replace the file"),
        setup=_truncated_image,
    ),
    "not an image": Case(
        "a non-image file with an image extension",
        PREPARE,
        ("--drive", "DRIVE"),
        ("DRIVE/test/images/01_test.tif", "no known image format", "replace the file"),
        setup=_text_as_image,
    ),
    "label not binary": Case(
        "a label that is not binary",
        PREPARE,
        ("--drive", "DRIVE"),
        ("DRIVE/training/1st_manual/21_manual1.gif", "binary", "original label files"),
        setup=_gray_label,
    ),
    "HDF5 folder not writable": Case(
        "HDF5 folder not writable (path_local under a regular file)",
        PREPARE,
        ("--drive", "DRIVE"),
        ("blocker/data", "cannot write", "writable folder"),
        setup=_blocked_data_folder,
    ),
    "HDF5 missing": Case(
        "HDF5 files missing (training before prepare)",
        TRAIN,
        (),
        (TRAIN_IMAGES, "not found", "prepare_datasets_DRIVE.py"),
        tensorflow=True,
        setup=_remove(DATA),
    ),
    "HDF5 truncated": Case(
        "HDF5 file truncated",
        TRAIN,
        (),
        (TRAIN_IMAGES, "unreadable HDF5", "re-run the prepare script"),
        tensorflow=True,
        setup=_truncate_hdf5,
    ),
    "HDF5 wrong shape": Case(
        "HDF5 files of the wrong shapes (3 labels for 4 images)",
        TRAIN,
        (),
        (TRAIN_LABELS, "(3, 1, 96, 90)", "re-run the prepare script"),
        tensorflow=True,
        setup=_wrong_shape_hdf5,
    ),
    "HDF5 NaN": Case(
        "HDF5 images holding NaN",
        TRAIN,
        (),
        (TRAIN_IMAGES, "NaN", "re-run the prepare script"),
        tensorflow=True,
        setup=_nan_hdf5,
    ),
    "config missing": Case(
        "configuration file missing",
        TRAIN,
        ("--config", "nope.txt"),
        ("nope.txt", "configuration file not found", "--config"),
    ),
    "config section missing": Case(
        "a section missing",
        TRAIN,
        (),
        ("configuration.txt", "[testing settings]", "add it"),
        setup=_config(drop=[("testing settings", None)]),
    ),
    "config key missing": Case(
        "a key missing",
        TRAIN,
        (),
        ("configuration.txt", "[training settings]", "N_epochs", "add it"),
        setup=_config(drop=[("training settings", "N_epochs")]),
    ),
    "config wrong type": Case(
        "a value of the wrong type",
        TRAIN,
        (),
        ("configuration.txt", "N_epochs = 'ten'", "whole number"),
        setup=_config({"training settings": {"N_epochs": "ten"}}),
    ),
    "config not a boolean": Case(
        "a boolean that is not True/False",
        TRAIN,
        (),
        ("configuration.txt", "inside_FOV = 'maybe'", "inside_FOV = True"),
        setup=_config({"training settings": {"inside_FOV": "maybe"}}),
    ),
    "patch larger than image": Case(
        "patch larger than the images",
        TRAIN,
        (),
        ("configuration.txt", "patch 128x128", "smaller patches"),
        tensorflow=True,
        setup=_config({"data attributes": {"patch_height": "128", "patch_width": "128"}}),
    ),
    "stride larger than patch": Case(
        "stride larger than the patch (stride = patch is allowed: the published non-average tiling)",
        TEST,
        (),
        ("configuration.txt", "stride 24x8", "at most the patch size"),
        setup=_config({"testing settings": {"stride_height": "24"}}),
    ),
    "N_subimgs not a multiple": Case(
        "N_subimgs not a multiple of the image count",
        TRAIN,
        (),
        ("configuration.txt", "N_subimgs = 162", "multiple of the 4 training images", "use e.g. 160"),
        tensorflow=True,
        setup=_config({"training settings": {"N_subimgs": "162"}}),
    ),
    "full_images_to_test too large": Case(
        "full_images_to_test larger than the test set",
        TEST,
        (),
        ("configuration.txt", "full_images_to_test = 5", "holds 2 images", "lower it"),
        tensorflow=True,
        setup=_config({"testing settings": {"full_images_to_test": "5"}}),
    ),
    "batch size 0": Case(
        "batch size 0",
        TRAIN,
        (),
        ("configuration.txt", "batch_size = 0", "at least 1"),
        setup=_config({"training settings": {"batch_size": "0"}}),
    ),
    "weights missing": Case(
        "weights missing",
        TEST,
        ("--weights", "none.weights.h5"),
        ("none.weights.h5", "weights file not found", "run_training.py"),
        tensorflow=True,
    ),
    "weights of another architecture": Case(
        "weights of another architecture",
        TEST,
        ("--weights", "other.weights.h5"),
        ("other.weights.h5", "not weights of this U-Net", "run_training.py"),
        tensorflow=True,
        setup=_other_weights,
    ),
    "results folder not writable": Case(
        "results folder not writable (its parent is a regular file)",
        TEST,
        ("--output", "blocker/results"),
        ("blocker/results", "not writable", "--output"),
        tensorflow=True,
        setup=_blocking_file("blocker"),
    ),
    "experiment folder blocked": Case(
        "experiment folder is a regular file",
        TRAIN,
        ("--overwrite",),
        ("exp/", "cannot create the experiment folder", "[experiment name]"),
        tensorflow=True,
        setup=lambda folder: (shutil.rmtree(folder / "exp"), _blocking_file("exp")(folder)),
    ),
    "resume without checkpoint": Case(
        "--resume where the folder holds weights but no checkpoint (the shipped test/)",
        TRAIN,
        ("--resume",),
        ("exp/", "no checkpoint to resume from", "--name NEW", "--overwrite", "exp/replaced-"),
        tensorflow=True,
    ),
    "resume with nothing": Case(
        "--resume with nothing to resume",
        TRAIN,
        ("--resume",),
        ("exp/", "no training to resume", "without --resume"),
        tensorflow=True,
        setup=_remove("exp"),
    ),
    "trained without checkpoint": Case(
        "training where the folder holds weights but no checkpoint (the shipped test/ in a fresh clone)",
        TRAIN,
        (),
        ("exp/", "already holds a trained model", "--name NEW", "--overwrite", "exp/replaced-"),
        tensorflow=True,
    ),
    "resume with other settings": Case(
        "--resume with other training settings than the checkpoint's",
        TRAIN,
        ("--resume",),
        (
            "optimizer = adam (was sgd)",
            "learning_rate = 0.5 (was 0.05)",
            "batch_size = 8 (was 16)",
            "--config exp/configuration.txt",
            "--name NEW",
        ),
        tensorflow=True,
        setup=_resumed_with_other_settings,
    ),
    "seed too large": Case(
        "a seed beyond 2**32 - 1",
        TRAIN,
        (),
        ("configuration.txt", "seed = 4294967296", "at most 4294967295"),
        setup=_config({"training settings": {"seed": "4294967296"}}),
    ),
    "patches beyond memory": Case(
        "more patches than the memory holds (N_subimgs = 400000000)",
        TRAIN,
        (),
        (
            "configuration.txt",
            "N_subimgs = 400000000",
            "GiB of memory",
            "available",
            "lower N_subimgs",
            "patch_source = streaming",
        ),
        tensorflow=True,
        setup=_config({"training settings": {"N_subimgs": "400000000"}}),
    ),
    "published key misspelt": Case(
        "a published key misspelt (nohupp for nohup)",
        TRAIN,
        (),
        ("configuration.txt", "unknown key 'nohupp'", "'nohup' is missing"),
        setup=_config({"training settings": {"nohupp": "True"}}, drop=[("training settings", "nohup")]),
    ),
    "black FOV masks": Case(
        "all-black FOV masks in the test set",
        TEST,
        (),
        ("DRIVE_dataset_borderMasks_test.hdf5", "test image 1 is all black", "re-run the prepare script"),
        tensorflow=True,
        setup=_black_test_masks,
    ),
    "checkpoint damaged": Case(
        "--resume with a damaged checkpoint",
        TRAIN,
        ("--resume",),
        ("exp_checkpoint.keras", "not a complete .keras archive", "--overwrite", "exp/replaced-"),
        tensorflow=True,
        setup=_damaged_checkpoint,
    ),
}


def prepare_case(base: Path, folder: Path, case: Case) -> Path:
    shutil.copytree(base, folder)
    if case.setup is not None:
        case.setup(folder)
    return folder


# ------------------------------------------------------------------ running a script in this process


def run_in_process(script: str, *args, cwd: Path, capsys) -> subprocess.CompletedProcess:
    """Run a top-level script as ``python script args`` would, but in this process (TensorFlow stays loaded)."""
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    sys.argv = [str(REPO / script), *map(str, args)]
    os.chdir(cwd)
    capsys.readouterr()
    try:
        runpy.run_path(str(REPO / script), run_name="__main__")
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess([script, *args], code, captured.out, captured.err)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return write_base(tmp_path_factory.mktemp("reliability") / "base")


# ------------------------------------------------------------------ bad input: one line, exit 1, nothing written


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(base, tmp_path, capsys, name):
    case = CASES[name]
    folder = prepare_case(base, tmp_path / "run", case)
    before = files_of(folder)
    if case.tensorflow:
        result = run_in_process(case.script, *case.args, cwd=folder, capsys=capsys)
    else:
        result = run_script(case.script, *case.args, cwd=folder)
    line = assert_user_error(result, *case.fragments)
    assert len(line) < 400, line
    assert files_of(folder) == before, "a failed run wrote or changed files"


def test_stride_equal_to_the_patch_is_allowed(tmp_path):
    """The published non-average tiling: stride = patch size is valid, only a larger stride is refused."""
    from lib.config import load_config

    config = load_config(write_config(tmp_path, {"testing settings": {"stride_height": "16", "stride_width": "16"}}))
    assert config.testing.inference.stride_hw == config.testing.inference.patch_hw == (16, 16)


def test_every_case_has_a_row_in_the_bad_input_table():
    """docs/bad-input.md lists every case tried here, with its real error line."""
    page = (REPO / "docs" / "bad-input.md").read_text()
    section = page.split("## Bad input", 1)[1].split("\n## ", 1)[0]
    assert "| bad input" in section, "no bad-input table (python tests/test_reliability.py prints it)"
    for case in CASES.values():
        assert f"| {case.row} — " in section, case.row


# ------------------------------------------------------------------ interruptions


def _interrupt_on(monkeypatch, target, name, when):
    """Make ``target.name`` raise KeyboardInterrupt (as Ctrl-C would) on the calls where ``when(*args)``."""
    original = getattr(target, name)

    def interrupted(*args, **kwargs):
        if when(*args, **kwargs):
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, interrupted)


def _assert_interrupted(result):
    assert result.returncode == 130, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("interrupted: "), lines


def _temporaries(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob(".*") if p.is_file()] + [str(p) for p in folder.rglob("*.tmp")]


def test_a_kill_is_reported_like_ctrl_c_and_cleans_up(tmp_path, capsys):
    """SIGTERM (plain ``kill``) during a write: the temporary file is removed, one line, exit 143."""
    from lib.atomic import atomic_path
    from src import cli

    target = tmp_path / "results.txt"

    def main():
        with atomic_path(target) as temp:
            temp.write_text("half")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
            temp.write_text("complete")

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stop:
        cli.run_cli(main)
    assert stop.value.code == 143
    assert capsys.readouterr().err.strip().startswith("interrupted: ")
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary file
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the caller's again


def test_interrupted_prepare_replaces_no_file(base, tmp_path, capsys, monkeypatch):
    """Ctrl-C while the third HDF5 file is being built: the prepare script writes all its files or none, so no
    file is written, no temporary file or empty folder is left."""
    folder = tmp_path / "run"
    shutil.copytree(base, folder, ignore=shutil.ignore_patterns(DATA))
    calls = []

    def third_dataset(self, name, *args, **kwargs):
        calls.append(self.file.filename)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, name, *args, **kwargs)

    original = h5py.Group.create_dataset
    monkeypatch.setattr(h5py.Group, "create_dataset", third_dataset)
    result = run_in_process(PREPARE, "--drive", "DRIVE", cwd=folder, capsys=capsys)
    _assert_interrupted(result)
    assert not (folder / DATA).exists()


def _other_drive(folder: Path) -> None:
    """A second DRIVE download, other images than the prepared ones, in folder/DRIVE2."""
    from lib.synthetic import write_synthetic_drive

    write_synthetic_drive(folder / "DRIVE2", n_train=4, n_test=2, height=SIZE[0], width=SIZE[1], seed=1)


def _disk_full_at_call(monkeypatch, target, name, call: int):
    """Make the ``call``-th call of ``target.name`` fail as a full disk does (ENOSPC)."""
    original, calls = getattr(target, name), []

    def failing(*args, **kwargs):
        calls.append(args)
        if len(calls) == call:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, failing)


def test_full_disk_during_prepare_keeps_every_earlier_file(base, tmp_path, capsys, monkeypatch):
    """The disk fills while the fourth of seven HDF5 files is written: one line, and the seven files of the
    earlier run stay as they were: never new training files beside old test files."""
    folder = prepare_case(base, tmp_path / "run", Case("", PREPARE))
    _other_drive(folder)
    before = files_of(folder / DATA)
    _disk_full_at_call(monkeypatch, Path, "write_bytes", call=4)
    result = run_in_process(PREPARE, "--drive", "DRIVE2", cwd=folder, capsys=capsys)
    assert_user_error(result, "DRIVE_dataset_imgs_test.hdf5", "the disk is full", "free some space")
    assert files_of(folder / DATA) == before


@pytest.fixture
def small_disk(tmp_path):
    """Factory: a tmpfs of the given size mounted at a new folder, as a nearly full disk; skips where mounting
    is not allowed (root in a machine or container that permits it)."""
    mounted = []

    def mount(folder: Path, size: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                capture_output=True, text=True)  # fmt: skip
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or result.returncode})")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", str(folder)], check=False)


def test_full_tmpfs_during_prepare_keeps_every_earlier_file(base, tmp_path, small_disk):
    """As above on a real full disk: a 520 kB tmpfs holding the earlier run's files (about 300 kB) has room for
    some of the new files only."""
    folder = prepare_case(base, tmp_path / "run", Case("", PREPARE))
    _other_drive(folder)
    earlier = tmp_path / "earlier"
    shutil.copytree(folder / DATA, earlier)
    small_disk(folder / DATA, "520k")
    for path in earlier.iterdir():
        shutil.copy2(path, folder / DATA / path.name)
    before = files_of(folder / DATA)
    result = run_script(PREPARE, "--drive", "DRIVE2", cwd=folder)
    assert_user_error(result, DATA, "the disk is full", "free some space")
    assert files_of(folder / DATA) == before


def test_interrupted_testing_leaves_no_partial_results(base, tmp_path, capsys, monkeypatch):
    """Ctrl-C while performances.json is being written: it does not exist, nor does any temporary file."""
    folder = prepare_case(base, tmp_path / "run", Case("", TEST))

    def half_then_interrupt(self, text, *args, **kwargs):
        if ".performances.json." in self.name:
            original(self, text[: len(text) // 2])
            raise KeyboardInterrupt
        return original(self, text, *args, **kwargs)

    original = Path.write_text
    monkeypatch.setattr(Path, "write_text", half_then_interrupt)
    result = run_in_process(TEST, cwd=folder, capsys=capsys)
    _assert_interrupted(result)
    assert (folder / "exp" / "performances.txt").is_file()  # written before: complete
    assert not (folder / "exp" / "performances.json").exists()
    assert not _temporaries(folder / "exp")


# ------------------------------------------------------------------ NaN loss


@pytest.mark.slow  # trains
def test_nan_loss_keeps_the_last_good_weights(base, tmp_path, capsys, monkeypatch):
    """Epoch 1 trains normally; then the weights turn NaN (as after an exploding step). Training stops in
    epoch 2 with one clear line, and the weights and checkpoint of epoch 1 stay, loadable and finite."""
    from src import training
    from src.model import load_trained_model

    class PoisonAfterFirstEpoch(training.SafeCheckpoints):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            if epoch == 0:
                layer = self.model.get_layer("conv_11")
                kernel, bias = layer.get_weights()
                layer.set_weights([np.full_like(kernel, np.nan), bias])

    monkeypatch.setattr(training, "SafeCheckpoints", PoisonAfterFirstEpoch)
    folder = prepare_case(
        base, tmp_path / "run", Case("", TRAIN, setup=_config({"training settings": {"N_epochs": "3"}}))
    )
    result = run_in_process(TRAIN, "--overwrite", cwd=folder, capsys=capsys)
    line = assert_user_error(result, "NaN in epoch 2", "weights of epoch 1", "learning_rate")
    assert "exp/" in line
    exp = folder / "exp"
    for which in ("best", "last"):
        model = load_trained_model(exp / f"exp_{which}.weights.h5")
        assert all(np.isfinite(w).all() for w in model.get_weights()), which
    assert json.loads((exp / "training_state.json").read_text())["epochs_done"] == 1
    assert not _temporaries(exp)


@pytest.mark.slow  # trains
def test_nan_in_the_first_epoch_says_nothing_was_saved(base, tmp_path, capsys):
    """A learning rate far too high: NaN at once; the message says no weights were saved."""
    folder = prepare_case(
        base, tmp_path / "run", Case("", TRAIN, setup=_config({"training settings": {"learning_rate": "9.9"}}))
    )
    shutil.rmtree(folder / "exp")
    result = run_in_process(TRAIN, cwd=folder, capsys=capsys)
    assert_user_error(result, "NaN in epoch 1", "no epoch had finished", "learning_rate (9.9)")
    assert not (folder / "exp" / "exp_last.weights.h5").exists()
    assert not (folder / "exp" / "training_state.json").exists()


def test_the_history_holds_the_rows_of_the_saved_epochs_only(tmp_path):
    """Each epoch rewrites the history with the rows before it: a row of an epoch trained again after --resume
    (or one an earlier version appended before a NaN) goes, a column new in this epoch is added."""
    from lib.experiment import Experiment

    experiment = Experiment(tmp_path, "exp")
    experiment.history.write_text("epoch,accuracy,loss\n0,0.9,0.3\n1,0.8,nan\n")
    experiment.write_history(1, {"loss": 0.25, "accuracy": 0.95, "minutes": 2.0})
    assert experiment.history.read_text().splitlines() == [
        "epoch,accuracy,loss,minutes",
        "0,0.9,0.3,",
        "1,0.95,0.25,2.0",
    ]
    Experiment(tmp_path / "new", "exp").write_history(0, {"loss": 0.5})
    assert (tmp_path / "new" / "training_history.csv").read_text().splitlines() == ["epoch,loss", "0,0.5"]


# ------------------------------------------------------------------ two trainings of one experiment


def test_a_second_training_of_an_experiment_in_use_is_refused(base, tmp_path, capsys):
    """While a training holds exp/ (its lock file, here held by this test), another one is refused with one line
    naming the owner, and nothing in exp/ changes."""
    from lib.lock import held

    folder = prepare_case(base, tmp_path / "run", Case("", TRAIN))
    before = files_of(folder)
    with held(folder / "exp" / "training.lock"):
        result = run_in_process(TRAIN, "--overwrite", cwd=folder, capsys=capsys)
        assert_user_error(result, "exp/ is in use by another training", f"process {os.getpid()}", "--name NEW")
        assert json.loads((folder / "exp" / "training.lock").read_text())["pid"] == os.getpid()
    assert files_of(folder) == before


def test_a_stale_lock_is_taken_over_with_a_note(base, tmp_path, capsys):
    """A lock file left by a process that ended without removing it (kill -9) blocks nobody."""
    folder = prepare_case(base, tmp_path / "run", Case("", TRAIN, setup=_remove("exp")))
    (folder / "exp").mkdir()
    (folder / "exp" / "training.lock").write_text('{"pid": 999999, "host": "elsewhere", "since": "yesterday"}')
    result = run_in_process(TRAIN, "--resume", cwd=folder, capsys=capsys)
    assert_user_error(result, "no training to resume")
    assert "exp/training.lock was left by process 999999 on elsewhere since yesterday" in result.stdout
    assert list((folder / "exp").iterdir()) == []  # the lock file goes with the run


def test_the_lock_file(tmp_path):
    from lib.errors import UserError
    from lib.lock import InUseError, held

    path = tmp_path / "training.lock"
    with held(path) as stale:
        assert stale is None
        with pytest.raises(InUseError) as refused, held(path):
            pass
        assert isinstance(refused.value, UserError) and f"process {os.getpid()}" in refused.value.owner
    assert not path.exists()
    path.write_text("garbage")  # a lock file without an owner: taken over, and said so as well as it can be
    with held(path) as stale:
        assert stale is None


# ------------------------------------------------------------------ ways out that lose nothing


def test_overwrite_moves_the_earlier_model_aside(base, tmp_path, capsys):
    """--overwrite over a trained model (the shipped test/ in a fresh clone) keeps it in exp/replaced-<time>/."""
    from lib.experiment import Experiment
    from lib.experiment_state import starting_state

    folder = prepare_case(base, tmp_path / "run", Case("", TRAIN))
    experiment = Experiment(folder / "exp", "exp")
    weights = experiment.weights("best").read_bytes()
    settings = load_settings(folder)
    state = starting_state(settings, experiment, resume=False, overwrite=True)
    assert state.epochs_done == 0 and not experiment.weights("best").exists()
    (aside,) = (folder / "exp").glob("replaced-*")
    assert (aside / "exp_best.weights.h5").read_bytes() == weights
    assert f"were moved to {aside}/" in capsys.readouterr().out


def load_settings(folder: Path):
    from lib.config import load_config

    return load_config(folder / "configuration.txt").training


def test_a_failed_run_leaves_no_empty_folder_or_log(base, tmp_path, capsys):
    """nohup = True and no prepared data: one line; neither exp/ nor an empty exp/training.log is left."""
    folder = prepare_case(base, tmp_path / "run", Case("", TRAIN, setup=_remove("exp", DATA)))
    write_config(folder, {"training settings": {"nohup": "True"}})
    before = files_of(folder)
    result = run_in_process(TRAIN, cwd=folder, capsys=capsys)
    assert_user_error(result, "HDF5 file not found")
    assert files_of(folder) == before


def test_weights_renamed_h5_load(base, tmp_path):
    """Keras 3 reads weights only from a name ending in .weights.h5; a file renamed .h5 is linked to one."""
    from src.model import load_trained_model

    renamed = tmp_path / "model.h5"
    shutil.copyfile(base / "exp" / "exp_best.weights.h5", renamed)
    model = load_trained_model(renamed)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            model.get_weights(), load_trained_model(base / "exp" / "exp_best.weights.h5").get_weights(), strict=True
        )
    )


# ------------------------------------------------------------------ resuming, full disks (these train)

COSINE = {"optimizer": "adam", "learning_rate": "0.001", "lr_schedule": "cosine", "N_epochs": "1"}


def _weights(path: Path) -> list[np.ndarray]:
    from src.model import load_trained_model

    return load_trained_model(path).get_weights()


@pytest.mark.slow  # trains
def test_resume_with_more_epochs_trains_on_under_the_cosine_schedule(base, tmp_path, capsys):
    """N_epochs 1 -> 3 with --resume: the schedule is rebuilt for 3 epochs, so epochs 2 and 3 change the weights
    (the checkpoint's schedule had decayed to 0 at the end of epoch 1)."""
    folder = prepare_case(base, tmp_path / "run", Case("", TRAIN, setup=_remove("exp")))
    write_config(folder, {"training settings": COSINE})
    assert run_in_process(TRAIN, cwd=folder, capsys=capsys).returncode == 0
    first = _weights(folder / "exp" / "exp_last.weights.h5")
    write_config(folder, {"training settings": {**COSINE, "N_epochs": "3"}})
    resumed = run_in_process(TRAIN, "--resume", cwd=folder, capsys=capsys)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "learning rate now 0.00075" in resumed.stdout  # cos(pi / 3) halfway: (1 + 0.5) / 2 * 0.001
    assert not all(np.array_equal(a, b) for a, b in zip(first, _weights(folder / "exp" / "exp_last.weights.h5"),
                                                        strict=True))  # fmt: skip
    losses = [row.split(",")[-1] for row in (folder / "exp" / "training_history.csv").read_text().splitlines()[1:]]
    assert len(losses) == 3 and len(set(losses)) == 3


def _assert_epoch_files(exp: Path, epochs: int) -> None:
    """The files of a training after ``epochs`` finished epochs, consistent: state, history rows, checkpoint."""
    import keras

    assert json.loads((exp / "training_state.json").read_text())["epochs_done"] == epochs
    assert _history(exp) == [str(epoch) for epoch in range(epochs)]
    steps = math.ceil(144 / 16)  # 90 % of the 160 patches for training, batches of 16
    assert int(keras.models.load_model(exp / "exp_checkpoint.keras").optimizer.iterations.numpy()) == epochs * steps
    for which in ("best", "last"):
        _weights(exp / f"exp_{which}.weights.h5")
    assert not _temporaries(exp)


@pytest.mark.slow  # trains
def test_a_full_disk_at_any_write_of_an_epoch_keeps_the_last_epoch_and_resumes(base, tmp_path, capsys, monkeypatch):
    """ENOSPC at epoch 2's checkpoint save: one line naming the file and --resume; the files of epoch 1 stay
    consistent; once space is freed --resume trains epochs 2 and 3."""
    import keras

    folder = prepare_case(base, tmp_path / "run", Case("", TRAIN, setup=_remove("exp")))
    write_config(folder, {"training settings": {"N_epochs": "3"}})
    _disk_full_at_call(monkeypatch, keras.Model, "save", call=2)
    result = run_in_process(TRAIN, cwd=folder, capsys=capsys)
    assert_user_error(result, "exp_checkpoint.keras: the disk is full", "weights of epoch 1", "--resume")
    _assert_epoch_files(folder / "exp", 1)
    monkeypatch.undo()
    resumed = run_in_process(TRAIN, "--resume", cwd=folder, capsys=capsys)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_epoch_files(folder / "exp", 3)


@pytest.mark.slow  # trains
def test_a_full_tmpfs_during_training_fails_cleanly_and_resumes(base, tmp_path, capsys, small_disk):
    """A 7 MB tmpfs as the experiment folder holds one epoch's files (6 MB with SGD), not two epochs' at once:
    epoch 2 stops with one line before h5py writes (h5py crashed the process on a full disk), epoch 1 stays
    consistent, and --resume finishes once the tmpfs is enlarged."""
    folder = prepare_case(base, tmp_path / "run", Case("", TRAIN, setup=_remove("exp")))
    write_config(folder, {"training settings": {"N_epochs": "3"}})
    exp = small_disk(folder / "exp", "7m")
    result = run_script(TRAIN, cwd=folder)
    assert_user_error(result, "exp: the disk is full", "the files of epoch 2 need about", "--resume")
    _assert_epoch_files(exp, 1)
    subprocess.run(["mount", "-o", "remount,size=40m", str(exp)], check=True)
    resumed = run_script(TRAIN, "--resume", cwd=folder)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_epoch_files(exp, 3)


@pytest.mark.slow  # trains
def test_an_interrupted_first_epoch_leaves_no_dead_end(base, tmp_path, capsys, monkeypatch):
    """Ctrl-C during epoch 1's checkpoint save: none of the epoch's files is written (not weights without a
    checkpoint), so a plain start trains at once."""
    import keras

    folder = prepare_case(base, tmp_path / "run", Case("", TRAIN, setup=_remove("exp")))
    _interrupt_on(monkeypatch, keras.Model, "save", lambda *args, **kwargs: True)
    _assert_interrupted(run_in_process(TRAIN, cwd=folder, capsys=capsys))
    assert not list((folder / "exp").glob("*.weights.h5")) and not (folder / "exp" / "training_state.json").exists()
    monkeypatch.undo()
    assert_user_error(run_in_process(TRAIN, "--resume", cwd=folder, capsys=capsys), "start it without --resume")
    assert run_in_process(TRAIN, cwd=folder, capsys=capsys).returncode == 0
    _assert_epoch_files(folder / "exp", 2)


# ------------------------------------------------------------------ a real Ctrl-C, then --resume

INTERRUPT_SETTINGS = {"N_subimgs": "2400", "N_epochs": "30", "batch_size": "16", "nohup": "False"}


def _history(exp: Path) -> list[str]:
    return [row.split(",")[0] for row in (exp / "training_history.csv").read_text().splitlines()[1:]]


@pytest.mark.slow  # trains in a subprocess, twice
def test_ctrl_c_during_training_then_resume(base, tmp_path):
    """SIGINT (Ctrl-C) mid-epoch after at least one finished epoch: one 'interrupted:' line and exit 130;
    best and last weights load; --resume continues after the last finished epoch with the optimizer state."""
    import keras

    from src.model import load_trained_model

    folder = tmp_path / "run"
    shutil.copytree(base, folder, ignore=shutil.ignore_patterns("exp"))
    write_config(folder, {"training settings": INTERRUPT_SETTINGS})
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    process = subprocess.Popen(
        [sys.executable, str(REPO / TRAIN)], cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=default_sigint,
    )  # fmt: skip
    exp, state = folder / "exp", folder / "exp" / "training_state.json"
    try:
        deadline = time.monotonic() + 600  # generous: a loaded 2-core machine starts TensorFlow slowly
        while not state.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert state.exists(), "no epoch finished in time"
        epoch_seconds = state.stat().st_mtime - (exp / "exp_architecture.json").stat().st_mtime
        time.sleep(max(0.3, epoch_seconds / 3))  # about a third into the next epoch
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    _assert_interrupted(subprocess.CompletedProcess(TRAIN, process.returncode, stdout, stderr))
    done = json.loads(state.read_text())["epochs_done"]
    assert 1 <= done < 30
    assert _history(exp) == [str(epoch) for epoch in range(done)]
    for which in ("best", "last"):
        load_trained_model(exp / f"exp_{which}.weights.h5")
    assert not _temporaries(exp)

    steps = 2160 // 16  # 90 % of 2400 patches for training, batches of 16
    write_config(folder, {"training settings": {**INTERRUPT_SETTINGS, "N_epochs": str(done + 1)}})
    resumed = run_script(TRAIN, "--resume", cwd=folder)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming after epoch {done}" in resumed.stdout
    assert f"Epoch {done + 1}/{done + 1}" in resumed.stdout and f"Epoch {done}/" not in resumed.stdout
    assert _history(exp) == [str(epoch) for epoch in range(done + 1)]  # nothing repeated, nothing lost
    checkpoint = keras.models.load_model(exp / "exp_checkpoint.keras")
    assert int(checkpoint.optimizer.iterations.numpy()) == (done + 1) * steps  # the optimizer went on
    for which in ("best", "last"):
        load_trained_model(exp / f"exp_{which}.weights.h5")


# ------------------------------------------------------------------ the README table


def print_table() -> None:
    """Run every case as a user would (subprocesses, relative paths) and print the table of docs/bad-input.md."""
    with tempfile.TemporaryDirectory() as scratch:
        base = write_base(Path(scratch) / "base")
        print("| bad input — command | what the user sees (stderr; exit status 1) |")
        print("|---|---|")
        for index, case in enumerate(CASES.values()):
            folder = prepare_case(base, Path(scratch) / f"case{index}", case)
            result = run_script(case.script, *case.args, cwd=folder)
            lines = stderr_lines(result)
            shown = lines[0] if len(lines) == 1 else " / ".join(lines)
            status = "" if result.returncode == 1 else f" **(exit {result.returncode})**"
            command = " ".join([case.script, *map(str, case.args)])
            print(f"| {case.row} — `{command}` | `{shown}`{status} |", flush=True)


if __name__ == "__main__":
    print_table()
