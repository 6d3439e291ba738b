"""Helpers shared by the tests that run the top-level scripts."""

import configparser
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_sigint():
    """Give a child process a terminal's Ctrl-C: a suite started in the background (``pytest &`` without job
    control) ignores SIGINT and passes that on to its children (``Popen(..., preexec_fn=default_sigint)``)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def read_ini(path) -> configparser.ConfigParser:
    """The configuration at ``path``, merged over its bases, keys as written."""
    from lib.config_files import merged_text

    parser = configparser.ConfigParser(inline_comment_prefixes=("#", ";"))
    parser.optionxform = str
    parser.read_string(merged_text(path))
    return parser


# Settings that make the repo's configuration.txt run in seconds on synthetic 96x90 images.
TINY = {
    "experiment name": {"name": "exp"},
    "data attributes": {"patch_height": "16", "patch_width": "16"},
    "training settings": {
        "N_subimgs": "160",
        "N_epochs": "2",
        "batch_size": "16",
        "nohup": "False",
        "learning_rate": "0.05",
    },
    "testing settings": {
        "full_images_to_test": "2",
        "N_group_visual": "2",
        "stride_height": "8",
        "stride_width": "8",
        "predict_batch_size": "128",
    },
}


def make_config(folder, overrides=None, drop=(), filename="configuration.txt", tiny=False, base=None) -> Path:
    """Write a copy of the repo's configuration.txt with overrides into ``folder``; returns its path.

    path_local points to folder/data. ``tiny`` applies TINY first. ``overrides`` maps section ->
    {key: value}; ``drop`` lists (section, key) pairs to remove (a key of None removes the section).
    """
    folder = Path(folder)
    parser = read_ini(base or REPO / "configuration.txt")
    parser["data paths"]["path_local"] = str(folder / "data")
    for section, values in (TINY if tiny else {}).items():
        parser[section].update(values)
    for section, values in (overrides or {}).items():
        if not parser.has_section(section):
            parser.add_section(section)
        parser[section].update({key: str(value) for key, value in values.items()})
    for section, key in drop:
        if key is None:
            parser.remove_section(section)
        else:
            parser.remove_option(section, key)
    path = folder / filename
    with open(path, "w") as handle:
        parser.write(handle)
    return path


def run_script(script: str, *args, cwd, timeout=300) -> subprocess.CompletedProcess:
    """Run one of the repo's top-level scripts as the user would, from ``cwd``."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, str(REPO / script), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# What TensorFlow's C++ runtime prints on stderr at import, whatever TF_CPP_MIN_LOG_LEVEL says (TF 2.21):
# absl messages logged before absl::InitializeLog (oneDNN notice, "Could not find cuda drivers", cuInit).
_TF_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} |To enable the following)")


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    """The script's own stderr lines: TensorFlow's start-up chatter left out."""
    return [line for line in result.stderr.splitlines() if line.strip() and not _TF_NOISE.match(line)]


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (result.returncode, result.stdout[-3000:], result.stderr[-5000:])
    assert "Traceback" not in result.stderr, result.stderr[-5000:]


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The script failed cleanly: exit 1, one line on stderr starting with 'error:', no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout[-2000:], result.stderr[-4000:])
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-4000:]
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr[-4000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def untrained_weights(folder, name: str, seed: int) -> Path:
    """A seeded, untrained U-Net's weights in ``folder``, as run_training.py saves them."""
    import keras

    from src.model import build_unet

    keras.utils.set_random_seed(seed)
    path = Path(folder) / name
    build_unet().save_weights(path)
    return path
