"""What every top-level script shares: --config, clean error reporting, logging to the experiment folder."""

import argparse
import dataclasses
import errno
import signal
import sys
import threading
import warnings
from pathlib import Path

from lib.config import ConfigWarning, load_config
from lib.errors import UserError
from lib.experiment import PHOTOGRAPH_MODEL, Experiment
from lib.inference import ENGINES
from src.engines import TOLERANCE


class Parser(argparse.ArgumentParser):
    """Bad arguments are one ``error:`` line and exit status 1, as every other bad input (run_cli), not argparse's
    usage and status 2."""

    def error(self, message):
        raise UserError(f"{message}; see python {self.prog} --help")


def parser(description: str, config: str = "configuration.txt", name: bool = False) -> argparse.ArgumentParser:
    """An argument parser with the common ``--config`` option (default ``./<config>``) and, with ``name``,
    ``--name`` (another experiment name than the configuration's)."""
    result = Parser(description=description)
    result.add_argument(
        "--config",
        default=config,
        type=Path,
        help=f"the experiment's INI configuration (default: ./{config})",
    )
    if name:
        result.add_argument(
            "--name",
            help="use this experiment name (folder ./NAME/) instead of the configuration's [experiment name] name",
        )
    return result


def config_from(args):
    return load_config(args.config, getattr(args, "name", None))


def add_model_options(parser: argparse.ArgumentParser, used_for: str) -> None:
    """``--model DIR`` (an experiment folder, default the shipped model for photographs) or ``--weights PATH``."""
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--model",
        type=Path,
        default=PHOTOGRAPH_MODEL,
        help=f"experiment folder whose <name>_best.weights.h5 is {used_for} (default: general/, the shipped model "
        "trained on DRIVE and STARE for photographs of any camera; robust/ saw DRIVE only; test/ is the DRIVE "
        "reference model)",
    )
    choice.add_argument(
        "--weights",
        type=Path,
        help="a weights file instead: this project's .weights.h5 or the published Keras-1 test_best_weights.h5",
    )


def add_engine_option(parser: argparse.ArgumentParser) -> None:
    """``--engine NAME``: what computes the network (src/engines.py), instead of [testing settings] engine."""
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        help="what computes the network: auto (default: the fastest installed engine matching Keras float32 "
        f"within {TOLERANCE:g}: onnxruntime once requirements-export.txt is installed), keras or onnxruntime",
    )


def with_engine(config, engine: str | None):
    """``config`` with its [testing settings] engine replaced by ``engine`` (--engine), when given."""
    if engine is None:
        return config
    inference = dataclasses.replace(config.testing.inference, engine=engine)
    return dataclasses.replace(config, testing=dataclasses.replace(config.testing, inference=inference))


def weights_from(args) -> Path:
    """The weights file that ``add_model_options``' arguments name."""
    return args.weights or Experiment.in_folder(args.model).weights("best")


class Terminated(KeyboardInterrupt):
    """SIGTERM (a plain ``kill``), raised like Ctrl-C so that partial files are discarded on the way out."""


def _terminate(signum, frame):
    raise Terminated


def _show_warning(message, category, filename, lineno, file=None, line=None, shown=warnings.showwarning):
    """Configuration warnings as one line, ``warning: ...``; every other warning as Python shows it."""
    if issubclass(category, ConfigWarning):
        print(f"warning: {message}", file=sys.stderr, flush=True)
    else:
        shown(message, category, filename, lineno, file, line)


def run_cli(main) -> None:
    """Run a script's ``main()``; a UserError, a full disk, Ctrl-C or kill becomes one line on stderr and a
    non-zero exit (1 for bad input, 130 for Ctrl-C, 143 for SIGTERM, as a shell reports them)."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", ConfigWarning)
            warnings.showwarning = _show_warning
            main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except OSError as error:  # a write that no check foresaw, a log line, ...
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}the disk is full ({error.strerror}); free some space and run again", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as stop:
        print("\ninterrupted: finished files are intact, partial ones were discarded", file=sys.stderr)
        sys.exit(143 if isinstance(stop, Terminated) else 130)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
