"""The Keras callbacks of a training: atomic checkpoints after every epoch, the training curves, TensorBoard,
the threshold of the best weights, and dropout seeded per epoch for deterministic resumes."""

import importlib.util
import math
import time
from pathlib import Path

import numpy as np

from lib import metrics as m
from lib.atomic import atomic_group, atomic_path, require_free_space
from lib.config import TrainingSettings
from lib.errors import DiskFullError, UserError
from lib.experiment import WEIGHTS_SUFFIX, Experiment, TrainingState
from lib.visualize import save_training_curves
from src.backend import keras, tf
from src.model import build_unet, load_weights
from src.prediction import predict_patches

_DROPOUT_STREAM = 0xD0  # keeps the dropout seeds apart from the patch sampling's [seed, epoch]


class SafeCheckpoints(keras.callbacks.Callback):
    """After every epoch, its files as one atomic group: last weights, best-by-validation-loss weights, a resumable
    checkpoint, the history and the training state. A crash, Ctrl-C or full disk at any moment leaves the files of
    the last finished epoch, complete and consistent with each other. A NaN loss stops training before anything is
    saved from the broken epoch."""

    def __init__(self, experiment: Experiment, state: TrainingState):
        super().__init__()
        self.experiment, self.best_loss = experiment, state.best_val_loss
        self.nan_epoch = None
        self.epochs_saved = state.epochs_done  # the last epoch whose files are on disk
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if logs and not math.isfinite(float(logs.get("loss", 0.0))):
            self.nan_epoch = self.nan_epoch or "current"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self.nan_epoch is not None or not all(math.isfinite(float(v)) for v in logs.values()):
            self.nan_epoch = epoch + 1
            self.model.stop_training = True
            return
        logs["minutes"] = (time.perf_counter() - self.start) / 60  # this session's training time, for the history
        best_loss = min(self.best_loss, float(logs["val_loss"]))
        experiment = self.experiment
        try:
            require_free_space(experiment.folder, self._bytes_per_epoch(), f"the files of epoch {epoch + 1}")
            with atomic_group():
                self._save_weights("last")
                if best_loss < self.best_loss:
                    self._save_weights("best")
                with atomic_path(experiment.checkpoint, suffix=".keras") as temp:
                    self.model.save(temp)
                experiment.write_history(epoch, logs)
                experiment.write_state(TrainingState(epoch + 1, best_loss))
        except DiskFullError as error:
            then = "continue with --resume" if self.epochs_saved else "run again"
            raise UserError(
                f"{error.path}: the disk is full ({error.reason}); {self.kept()}; free some space, then {then}"
            ) from None
        self.best_loss, self.epochs_saved = best_loss, epoch + 1

    def kept(self) -> str:
        """What an interrupted training leaves behind."""
        if self.epochs_saved:
            return f"the weights of epoch {self.epochs_saved}, the last good one, are kept in {self.experiment.folder}/"
        return "no epoch had finished, so no weights were saved"

    def _bytes_per_epoch(self) -> int:
        """Generously, what an epoch's files take: two weights files and the checkpoint (the weights again and
        the optimizer's state), plus headers, history and state."""
        weights = sum(array.nbytes for array in self.model.get_weights())
        optimizer = sum(variable.numpy().nbytes for variable in self.model.optimizer.variables)
        return 3 * weights + optimizer + 2**20

    def _save_weights(self, which: str) -> None:
        """The network's weights alone: a compiled model's save_weights would add the optimizer state (3x the size)."""
        weights_only = build_unet(*self.model.input_shape[1:3])
        weights_only.set_weights(self.model.get_weights())
        with atomic_path(self.experiment.weights(which), suffix=WEIGHTS_SUFFIX) as temp:
            weights_only.save_weights(temp)


class TrainingCurves(keras.callbacks.Callback):
    """After every epoch, ``training_curves.png`` redrawn from the whole history CSV, so that after a resume it
    shows every epoch; placed after SafeCheckpoints, which has written the epoch's row by then."""

    def __init__(self, experiment: Experiment):
        super().__init__()
        self.experiment = experiment

    def on_epoch_end(self, epoch, logs=None):
        history = self.experiment.read_history()
        if {"epoch", "val_loss"} <= history.keys():
            save_training_curves(self.experiment.training_curves, history)


class ValidationPictures(keras.callbacks.Callback):
    """Each epoch, a few validation patches (preprocessed, ground truth, vessel probability side by side) as
    TensorBoard images in the validation run, step = epoch as Keras' scalars: how the predictions sharpen."""

    def __init__(self, log_dir: Path, patches: np.ndarray, labels: np.ndarray, count: int = 4):
        super().__init__()
        chosen = np.linspace(0, len(patches) - 1, min(count, len(patches))).astype(int)  # spread over the set
        self.patches, self.labels = patches[chosen], labels[chosen].astype(np.float32)
        self.log_dir, self.writer = log_dir, None

    def on_train_begin(self, logs=None):
        self.writer = tf.summary.create_file_writer(str(self.log_dir))  # one event file per training session

    def on_epoch_end(self, epoch, logs=None):
        probability = self.model.predict(self.patches, verbose=0)[..., 1].astype(np.float32)
        strips = np.concatenate([self.patches[..., 0], self.labels, probability], axis=2)[..., None]
        with self.writer.as_default():
            tf.summary.image(
                "validation patches",
                strips,
                step=epoch,
                max_outputs=len(strips),
                description="left to right: the preprocessed patch, its ground truth, the predicted vessel probability",
            )
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.close()


def tensorboard_callbacks(experiment: Experiment, validation: tuple[np.ndarray, np.ndarray]) -> list:
    """Keras' TensorBoard scalars (loss, accuracy, learning rate per epoch, in ``train/`` and ``validation/``) and
    the validation pictures; a resumed training appends new event files, at the following epochs."""
    folder = experiment.tensorboard
    return [
        keras.callbacks.TensorBoard(log_dir=str(folder), write_graph=False),
        ValidationPictures(folder / "validation", *validation),
    ]


def check_tensorboard(settings: TrainingSettings) -> None:
    """tf.summary writes nothing without the tensorboard package (TensorFlow no longer installs it)."""
    if settings.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise UserError(
            f"{settings.where} tensorboard = True needs the tensorboard package; install it "
            "(pip install -r requirements.txt) or set tensorboard = False"
        )


class ThresholdOfTheBest(keras.callbacks.Callback):
    """Whenever the best weights change, choose the threshold that maximises F1 on the validation patches
    with them and store it beside them (``<name>_threshold.json``): chosen on training data, never on a test set."""

    def __init__(self, experiment: Experiment, checkpoints: SafeCheckpoints, validation, settings: TrainingSettings):
        super().__init__()
        self.experiment, self.checkpoints, self.validation = experiment, checkpoints, validation
        self.settings, self.best_loss = settings, checkpoints.best_loss

    def on_epoch_end(self, epoch, logs=None):
        if self.checkpoints.best_loss < self.best_loss:  # SafeCheckpoints has just saved new best weights
            self.best_loss = self.checkpoints.best_loss
            self.experiment.write_threshold(choose_threshold(self.model, self.validation, self.settings, epoch + 1))


class StartCompetes(keras.callbacks.Callback):
    """``initial_weights_compete``: before the first epoch, the starting weights' validation loss becomes the loss to
    beat (the best weights stay unwritten until an epoch beats it); when the training ends and none did, the
    starting weights become the best weights, with their threshold. Runs before the checkpoints' callbacks."""

    def __init__(self, checkpoints: SafeCheckpoints, threshold: ThresholdOfTheBest, settings, fresh: bool):
        super().__init__()
        self.checkpoints, self.threshold, self.settings, self.fresh = checkpoints, threshold, settings, fresh

    def on_train_begin(self, logs=None):
        if not self.fresh:  # resumed: the loss to beat is in the training state already
            return
        x, y = self.threshold.validation
        loss = float(self.model.evaluate(x, y, batch_size=self.settings.batch_size, verbose=0)[0])
        self.checkpoints.best_loss = self.threshold.best_loss = loss
        print(f"the starting weights' validation loss is {loss:.5f}: an epoch must beat it to be the best", flush=True)

    def on_train_end(self, logs=None):
        experiment = self.checkpoints.experiment
        if experiment.weights("best").is_file() or not self.checkpoints.epochs_saved:
            return
        start = build_unet(*self.model.input_shape[1:3])
        load_weights(start, self.settings.initial_weights)
        with atomic_path(experiment.weights("best"), suffix=WEIGHTS_SUFFIX) as temp:
            start.save_weights(temp)
        experiment.write_threshold(choose_threshold(start, self.threshold.validation, self.settings, 0))
        print("no epoch beat the starting weights on the validation patches: they are kept as the best", flush=True)


class EpochSeededDropout(keras.callbacks.Callback):
    """For ``deterministic``: the dropout masks of epoch e depend only on the seed and e, as its patches do, so
    a training resumed with --resume repeats an uninterrupted one bit for bit (the Keras checkpoint does not
    hold the dropout layers' random state; a resumed model would start them afresh)."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch, logs=None):
        generators = [layer.seed_generator for layer in self.model.layers if hasattr(layer, "seed_generator")]
        seeds = np.random.default_rng([self.seed, epoch, _DROPOUT_STREAM]).integers(0, 2**31, len(generators))
        for generator, seed in zip(generators, seeds, strict=True):
            generator.state.assign(np.array([seed, 0], dtype=generator.state.dtype))


def choose_threshold(model: keras.Model, validation, settings: TrainingSettings, epoch: int | None) -> dict:
    """The record of the F1-best threshold of ``model`` on the validation patches (x (n, h, w, 1), labels (n, h, w))."""
    x, y = validation
    probabilities = predict_patches(model, x.transpose(0, 3, 1, 2), 256)
    threshold, f1 = m.best_f1_threshold(y, probabilities)
    at_published = m.binary_metrics(y, probabilities >= m.THRESHOLD)["f1"]
    print(
        f"threshold {threshold:.4f} maximises F1 on the validation patches ({f1:.4f}; {at_published:.4f} at "
        f"{m.THRESHOLD}); stored with the best weights",
        flush=True,
    )
    return {
        "threshold": threshold,
        "f1": f1,
        "f1_at_published_threshold": at_published,
        "published_threshold": m.THRESHOLD,
        "weights_epoch": epoch,
        "validation_patches": len(y),
        "pixels": int(y.size),
        "chosen_on": (
            f"every pixel of the {len(y)} validation patches ([training settings] validation_split = "
            f"{settings.validation_split} of N_subimgs = {settings.N_subimgs}, from the last training images, "
            f"seed {settings.seed}), predicted with the best weights: the threshold with the highest F1 "
            "(vessel when the probability is at least it), midway between two successive probabilities"
        ),
    }
