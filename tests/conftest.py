"""Shared fixtures: where the real datasets and the published weights are, tiny synthetic datasets, configs.

The real data is optional: tests that need it skip with a message saying how to point at it.
"""

import os
import sys
from pathlib import Path

import pytest
from helpers import make_config

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `pytest` run from anywhere imports lib/ and src/ like the scripts do
    sys.path.insert(0, str(REPO))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from lib.synthetic import write_synthetic_drive  # noqa: E402 - after the repo is on sys.path

DATA_HELP = "set RETINA_DATA to the folder holding DRIVE/ and STARE/"
LEGACY_HELP = "set RETINA_LEGACY to the published test_best_weights.h5"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding DRIVE/ and STARE/: $RETINA_DATA, else <repo>/../shared/data."""
    return Path(os.environ.get("RETINA_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def drive_root(data_root) -> Path:
    root = data_root / "DRIVE"
    if not ((root / "training" / "images").is_dir() and (root / "test" / "images").is_dir()):
        pytest.skip(f"DRIVE not found under {data_root}; {DATA_HELP}")
    return root


@pytest.fixture(scope="session")
def stare_root(data_root) -> Path:
    root = data_root / "STARE"
    if not (root / "stare-images").is_dir():
        pytest.skip(f"STARE not found under {data_root}; {DATA_HELP}")
    return root


@pytest.fixture(scope="session")
def legacy_weights() -> Path:
    """The published Keras-1 weights: $RETINA_LEGACY, else the shared copy."""
    default = REPO.parent / "shared" / "legacy" / "retina-unet-published" / "test_best_weights.h5"
    path = Path(os.environ.get("RETINA_LEGACY") or default)
    if not path.is_file():
        pytest.skip(f"published weights not found at {path}; {LEGACY_HELP}")
    return path


@pytest.fixture
def make_synthetic_drive(tmp_path_factory):
    """Factory: a fake DRIVE folder (training/ and test/) of the given size; returns its root."""

    def make(n_train=4, n_test=2, height=96, width=90, seed=0) -> Path:
        root = tmp_path_factory.mktemp("DRIVE")
        write_synthetic_drive(root, n_train=n_train, n_test=n_test, height=height, width=width, seed=seed)
        return root

    return make


@pytest.fixture(scope="session")
def synthetic_drive(tmp_path_factory) -> Path:
    """A tiny fake DRIVE shared by the session (4 training, 2 test images of 96x90): do not modify it."""
    root = tmp_path_factory.mktemp("synthetic") / "DRIVE"
    write_synthetic_drive(root, n_train=4, n_test=2, height=96, width=90, seed=0)
    return root


@pytest.fixture
def write_config(tmp_path, monkeypatch):
    """Factory: ``make_config`` into tmp_path, which becomes the working directory (the experiment
    folder is ./<name>, relative to it)."""
    monkeypatch.chdir(tmp_path)

    def write(overrides=None, drop=(), filename="configuration.txt", tiny=False, base=None) -> Path:
        return make_config(tmp_path, overrides, drop, filename, tiny, base)

    return write
