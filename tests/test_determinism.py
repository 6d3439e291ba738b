"""[training settings] deterministic = True: two runs of one configuration give the same weights, history and
stored threshold bit for bit, and a training resumed with --resume ends where an uninterrupted one ends.

Each training runs in its own process, as a user runs it: TensorFlow's op determinism, once enabled, holds
for the whole process, and the other tests must keep the default kernels.
"""

import csv
import shutil

import h5py
import numpy as np
import pytest
from helpers import assert_ok, make_config, run_script

pytestmark = pytest.mark.slow  # four tiny trainings, each in its own process

RECIPE = {  # the robust recipe's kind of training, tiny: streaming patches, flips and camera augmentation
    "patch_source": "streaming",
    "augment": "True",
    "augment_scale": "0.1",
    "augment_rotation": "30",
    "augment_gamma": "0.2",
    "augment_noise": "3",
    "optimizer": "adam",
    "learning_rate": "0.001",
    "deterministic": "True",
    "N_epochs": "3",
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory, synthetic_drive):
    folder = tmp_path_factory.mktemp("determinism")
    config = make_config(folder, {"training settings": RECIPE}, tiny=True)
    assert_ok(run_script("prepare_datasets_DRIVE.py", "--drive", synthetic_drive, "--config", config, cwd=folder))
    return folder


def weights(path):
    """Every array of a weights file, by its name in the file."""
    arrays = {}

    def keep(name, item):
        if isinstance(item, h5py.Dataset):
            arrays[name] = item[()]

    with h5py.File(path, "r") as handle:
        handle.visititems(keep)
    return arrays


def history(path):
    """Every column but the wall-clock minutes."""
    with open(path, newline="") as handle:
        return [{key: value for key, value in row.items() if key != "minutes"} for row in csv.DictReader(handle)]


def assert_same_training(first, second):
    for which in ("best", "last"):
        a, b = weights(first / f"exp_{which}.weights.h5"), weights(second / f"exp_{which}.weights.h5")
        assert a.keys() == b.keys() and len(a) > 10
        for name in a:
            assert np.array_equal(a[name], b[name]), (which, name)
    assert history(first / "training_history.csv") == history(second / "training_history.csv")


def train(folder, *arguments, settings=RECIPE):
    make_config(folder, {"training settings": settings}, tiny=True)
    assert_ok(run_script("run_training.py", *arguments, cwd=folder))


def test_two_runs_of_one_configuration_are_bit_identical(folder):
    train(folder)
    shutil.move(folder / "exp", folder / "first")
    train(folder)
    assert_same_training(folder / "first", folder / "exp")
    assert (folder / "first/exp_threshold.json").read_bytes() == (folder / "exp/exp_threshold.json").read_bytes()
    assert len(history(folder / "exp/training_history.csv")) == 3


def test_a_resumed_training_ends_where_an_uninterrupted_one_ends(folder):
    constant = {**RECIPE, "lr_schedule": "constant"}  # so that stopping after 2 of 3 epochs is N_epochs = 2
    train(folder, "--overwrite", settings=constant)
    shutil.move(folder / "exp", folder / "uninterrupted")
    train(folder, settings={**constant, "N_epochs": "2"})
    train(folder, "--resume", settings=constant)
    assert_same_training(folder / "uninterrupted", folder / "exp")
