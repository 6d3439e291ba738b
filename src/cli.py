"""What every top-level script shares: --config, clean error reporting, logging to the experiment folder."""

import argparse
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

from lib.config import load_config
from lib.errors import UserError
from lib.experiment import Experiment


def parser(description: str, config: str = "configuration.txt") -> argparse.ArgumentParser:
    """An argument parser with the common ``--config`` option (default ``./<config>``)."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument(
        "--config",
        default=config,
        type=Path,
        help=f"the experiment's INI configuration (default: ./{config})",
    )
    return result


def config_from(args):
    return load_config(args.config)


SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "test"  # the reference experiment shipped in test/


def add_model_options(parser: argparse.ArgumentParser, used_for: str) -> None:
    """``--model DIR`` (an experiment folder, default the shipped reference model) or ``--weights PATH``."""
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--model",
        type=Path,
        default=SHIPPED_MODEL,
        help=f"experiment folder whose <name>_best.weights.h5 is {used_for} (default: the shipped reference model, "
        "test/)",
    )
    choice.add_argument(
        "--weights",
        type=Path,
        help="a weights file instead: this project's .weights.h5 or the published Keras-1 test_best_weights.h5",
    )


def weights_from(args) -> Path:
    """The weights file that ``add_model_options``' arguments name."""
    return args.weights or Experiment.in_folder(args.model).weights("best")



class Terminated(KeyboardInterrupt):
    """SIGTERM (a plain ``kill``), raised like Ctrl-C so that partial files are discarded on the way out."""


def _terminate(signum, frame):
    raise Terminated


def run_cli(main) -> None:
    """Run a script's ``main()``; a UserError, Ctrl-C or kill becomes one line on stderr and a non-zero exit
    (1 for bad input, 130 for Ctrl-C, 143 for SIGTERM, as a shell reports them)."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as stop:
        print("\ninterrupted: finished files are intact, partial ones were discarded", file=sys.stderr)
        sys.exit(143 if isinstance(stop, Terminated) else 130)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def log_to(path: Path | None):
    """With a path, send this process's output (Python's and TensorFlow's) to that file, as ``nohup`` did."""
    if path is None:
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        log = open(path, "a", buffering=1)  # noqa: SIM115 - closed below, after the streams are restored
    except OSError as error:
        reason = error.strerror or error
        raise UserError(f"{path}: cannot write the log ({reason}); fix the path or set nohup = False") from None
    print(f"logging to {path}", flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for handle in saved:
                os.close(handle)
