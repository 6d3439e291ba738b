"""What the scripts share: --config, one-line errors, logging to a file."""

import subprocess
import sys

import pytest
from helpers import REPO

from lib.errors import UserError
from lib.log_file import log_to
from src import cli


def test_user_errors_become_one_line_and_exit_1(capsys):
    def main():
        raise UserError("configuration.txt: [training settings] N_epochs = 'x' is not a whole number")

    with pytest.raises(SystemExit) as stop:
        cli.run_cli(main)
    assert stop.value.code == 1
    captured = capsys.readouterr()
    assert captured.err == "error: configuration.txt: [training settings] N_epochs = 'x' is not a whole number\n"
    assert captured.out == ""


def test_ctrl_c_exits_130(capsys):
    def main():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as stop:
        cli.run_cli(main)
    assert stop.value.code == 130
    assert "interrupted" in capsys.readouterr().err


def test_programming_errors_are_not_hidden():
    def main():
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        cli.run_cli(main)


def test_config_option_defaults_to_the_working_directory():
    args = cli.parser("test").parse_args([])
    assert str(args.config) == "configuration.txt"
    assert str(cli.parser("test").parse_args(["--config", "x.txt"]).config) == "x.txt"


LOGGING_SCRIPT = """
import os, sys
from pathlib import Path
from lib.log_file import log_to
with log_to(Path(sys.argv[1])):
    print("to the log")
    os.write(2, b"native stderr\\n")
    sys.stderr.write("python stderr\\n")
print("back on the terminal")
"""


def test_log_to_sends_both_streams_to_the_file_and_restores_them(tmp_path, repo):
    """As the published nohup: Python's and native (TensorFlow's) output go to the log, then back."""
    log = tmp_path / "exp" / "training.log"
    result = subprocess.run(
        [sys.executable, "-c", LOGGING_SCRIPT, str(log)], cwd=repo, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    text = log.read_text()
    assert "to the log" in text and "native stderr" in text and "python stderr" in text
    assert result.stdout == f"logging to {log}\nback on the terminal\n"
    assert result.stderr == ""


def test_log_to_none_changes_nothing(capfd):
    with log_to(None):
        print("here")
    assert capfd.readouterr().out == "here\n"


SCRIPTS = sorted(path.name for path in REPO.glob("*.py"))


def test_every_script_is_covered():
    assert {"run_training.py", "run_testing.py", "run_prediction.py", "run_export.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_answers_without_importing_tensorflow(script):
    """``--help`` must be instant: TensorFlow (about 4 s) is imported only once the arguments are valid."""
    code = (
        f"import runpy, sys\nsys.argv = [{script!r}, '--help']\n"
        f"try:\n    runpy.run_path({script!r}, run_name='__main__')\n"
        "except SystemExit as stop:\n    assert stop.code == 0, stop.code\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'skimage', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip().endswith("[]"), result.stdout[-2000:] + result.stderr


def test_every_lib_module_imports_without_tensorflow():
    """lib/ is TensorFlow-free: what a script imports before its arguments are valid, and what other tools reuse."""
    code = (
        "import importlib, pkgutil, sys, lib\n"
        "for module in pkgutil.iter_modules(lib.__path__):\n"
        "    importlib.import_module('lib.' + module.name)\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
