"""An experiment folder's life across trainings, without TensorFlow: locked while a training runs in it, the
state a training starts from (fresh, resumed, or over an earlier one moved aside), and the settings a resume
must keep."""

import contextlib
import dataclasses
import shutil
import time
import warnings
from pathlib import Path

from lib.atomic import folder_for
from lib.config import ConfigWarning, TrainingSettings, load_config
from lib.errors import UserError
from lib.experiment import Experiment, TrainingState
from lib.lock import InUseError, held

ANOTHER_NAME = "train under another name (--name NEW, or [experiment name] name)"
# What --resume applies when it differs from the settings the checkpoint was trained with; any other change is
# refused: the optimizer state, the schedule and the patches of the epochs done belong to those settings.
RESUME_MAY_CHANGE = ("source", "N_epochs", "nohup", "tensorboard")


def start_over(folder: Path) -> str:
    """The way out that loses nothing when a folder cannot be continued."""
    return f"start over with --overwrite (its files move to {folder}/replaced-<date-time>/)"


@contextlib.contextmanager
def experiment_in_use(experiment: Experiment):
    """The experiment folder, created if need be and locked for the block: a second training of it is refused.
    A folder this run created and left empty is removed."""
    folder = experiment.folder
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(folder_for(folder))
        except OSError as error:  # e.g. a regular file of that name is in the way
            raise UserError(
                f"{folder}/: cannot create the experiment folder ({error.strerror or error}); "
                f"move the file of that name away, or {ANOTHER_NAME}"
            ) from None
        try:
            stale = stack.enter_context(held(experiment.lock_file))
        except InUseError as error:
            raise UserError(
                f"{folder}/ is in use by another training ({error.owner}); wait for it to finish, or {ANOTHER_NAME}"
            ) from None
        except OSError as error:  # a read-only folder, ...
            raise UserError(
                f"{folder}/: cannot write there ({error.strerror or error}); fix its permissions, or {ANOTHER_NAME}"
            ) from None
        if stale:
            print(f"note: {experiment.lock_file} was left by {stale}, which has ended; taking it over", flush=True)
        yield


def starting_state(settings: TrainingSettings, experiment: Experiment, resume: bool, overwrite: bool) -> TrainingState:
    """The state to train from; refuses what would lose work or mix two trainings in one folder."""
    folder = experiment.folder
    trained = [path for path in (experiment.weights("best"), experiment.weights("last"), experiment.state_file,
                                 experiment.checkpoint) if path.exists()]  # fmt: skip
    resumable = experiment.state_file.is_file() and experiment.checkpoint.is_file()
    if resume:
        if not resumable:
            if trained:
                raise UserError(
                    f"{folder}/ holds a trained model ({trained[0].name}) but no checkpoint to resume from; "
                    f"{ANOTHER_NAME}, or {start_over(folder)}"
                )
            raise UserError(f"{folder}/: no training to resume (no epoch finished); start it without --resume")
        check_resume_settings(settings, experiment)
        return experiment.read_state()
    if trained and not overwrite:
        resume_it = "continue it with --resume, " if resumable else ""
        raise UserError(
            f"{folder}/ already holds a trained model ({trained[0].name}); {resume_it}{ANOTHER_NAME}, or "
            f"{start_over(folder)}"
        )
    if trained:
        aside = set_aside(experiment, keep=settings.source)
        print(f"note: the earlier files of {folder}/ were moved to {aside}/", flush=True)
    shutil.rmtree(experiment.tensorboard, ignore_errors=True)  # a fresh training starts a fresh dashboard
    return TrainingState()


def set_aside(experiment: Experiment, keep: Path | None = None) -> Path:
    """Move an earlier training's files and TensorBoard folder into ``<folder>/replaced-<time>/``, so that
    --overwrite loses nothing. The training log stays: this run appends to it; and so does ``keep``, the
    configuration this run reads (``--config <folder>/configuration.txt``), which it still needs."""
    aside = experiment.folder / time.strftime("replaced-%Y%m%d-%H%M%S")
    aside.mkdir(exist_ok=True)
    stay = {path.resolve() for path in (experiment.lock_file, experiment.training_log, keep) if path is not None}
    for path in experiment.folder.iterdir():
        if (path.is_file() and path.resolve() not in stay) or path == experiment.tensorboard:
            path.replace(aside / path.name)
    return aside


def check_resume_settings(settings: TrainingSettings, experiment: Experiment) -> None:
    """Refuse to resume with other settings than the checkpoint was trained with (saved in the experiment's copy
    of the configuration), but for those RESUME_MAY_CHANGE: one line that names every key that differs."""
    saved_path = experiment.configuration
    if not saved_path.is_file() or saved_path.resolve() == settings.source.resolve():
        return
    with warnings.catch_warnings():  # its unknown keys were reported when it was used
        warnings.simplefilter("ignore", ConfigWarning)
        saved = load_config(saved_path).training
    changed = [
        _change(field.name, getattr(settings, field.name), getattr(saved, field.name))
        for field in dataclasses.fields(settings)
        if field.name not in RESUME_MAY_CHANGE and getattr(settings, field.name) != getattr(saved, field.name)
    ]
    if changed:
        raise UserError(
            f"{settings.source}: {', '.join(changed)}: not the settings {experiment.folder}/ was trained with; "
            f"resume with --config {saved_path} (raise N_epochs there to train longer), or {ANOTHER_NAME}"
        )


def _change(key: str, now, before) -> str:
    """``learning_rate = 0.5 (was 0.01)``; the patch size as ``patch 32x32 (was 16x16)``."""
    if key == "patch_hw":
        return f"patch {now[0]}x{now[1]} (was {before[0]}x{before[1]})"
    return f"{key} = {now} (was {before})"
