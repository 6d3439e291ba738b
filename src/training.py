"""Training the U-Net on random patches, as published, with checkpoints that survive interruptions.

Two patch sources give the same patch distribution (equally many uniform random patches per image;
the last ``validation_split`` of them, i.e. of the last images, for validation):
``in_memory`` samples every patch up front as published; ``streaming`` samples the training patches
afresh each epoch with tf.data and never holds them all, and can draw them from photographs changed
anew each epoch (camera augmentation, ``lib.augment``).
"""

import contextlib
import dataclasses
import importlib.util
import itertools
import math
import shutil
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

from lib import metrics as m
from lib.augment import augment_training_images
from lib.config import SEED_LIMIT, ConfigWarning, DataPaths, TrainingSettings, load_config, with_name
from lib.datasets import load_hdf5, load_planes_of
from lib.errors import DiskFullError, UserError
from lib.experiment import WEIGHTS_SUFFIX, Experiment, TrainingState
from lib.imageio import atomic_group, atomic_path, folder_for, require_free_space, write_text
from lib.lock import InUseError, held
from lib.patches import allowed_centres, crop_patches, extract_random, fov_radius_for_patch, sample_centres
from lib.preprocessing import preprocess
from lib.visualize import save_grid, save_training_curves
from src.backend import keras, tf
from src.model import build_unet, load_trained_model, load_weights
from src.prediction import predict_patches

DRIVE_SIZE = (584, 565)
DRIVE_TRAIN_ROWS = slice(9, 574)  # published: cut top and bottom so the training images are 565x565
ANOTHER_NAME = "train under another name (--name NEW, or [experiment name] name)"
# What --resume applies when it differs from the settings the checkpoint was trained with; any other change is
# refused: the optimizer state, the schedule and the patches of the epochs done belong to those settings.
RESUME_MAY_CHANGE = ("source", "N_epochs", "nohup", "tensorboard")
_DROPOUT_STREAM = 0xD0  # keeps the dropout seeds apart from the patch sampling's [seed, epoch]


def load_training_set(data: DataPaths) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed training images (N, 1, H, W) float32 and labels (N, 1, H, W) uint8 0/1."""
    images = load_hdf5(data.file("train_imgs_original"), channels=3)
    labels = load_planes_of(data.file("train_groundTruth"), images)
    return training_rows(preprocess(images)), training_rows((labels > 0).astype(np.uint8))


def training_rows(array: np.ndarray) -> np.ndarray:
    """DRIVE's training images cut to 565x565 (published); other sizes as they are."""
    return array[:, :, DRIVE_TRAIN_ROWS] if array.shape[2:] == DRIVE_SIZE else array


@dataclasses.dataclass(frozen=True)
class Photographs:
    """The training images before preprocessing, (N, 3, H, W) uint8, and their FOV masks (N, 1, H, W) 0/1:
    what camera augmentation changes each epoch."""

    rgb: np.ndarray
    fovs: np.ndarray


def load_training_photographs(data: DataPaths) -> Photographs:
    """The training set's photographs and FOV masks, cut as ``load_training_set`` cuts its images."""
    rgb = load_hdf5(data.file("train_imgs_original"), channels=3)
    fovs = load_planes_of(data.file("train_border_masks"), rgb)
    return Photographs(training_rows(rgb), training_rows((fovs > 0).astype(np.uint8)))


def check_patch_settings(settings: TrainingSettings, shape: tuple[int, ...]) -> None:
    """Reject patch settings that cannot work on these images, before anything is trained."""
    count, _, height, width = shape
    where = settings.where
    patch_h, patch_w = settings.patch_hw
    if patch_h > height or patch_w > width:
        raise UserError(
            f"{settings.source}: [data attributes] patch {patch_h}x{patch_w} is "
            f"larger than the training images ({height}x{width}); use smaller patches"
        )
    if settings.N_subimgs % count:
        lower = settings.N_subimgs // count * count
        raise UserError(
            f"{where} N_subimgs = {settings.N_subimgs} is not a multiple of the {count} training images; "
            f"use e.g. {max(lower, count)}"
        )
    n_train, n_validation = split_counts(settings)
    if n_validation < 1 or n_train < settings.batch_size:
        raise UserError(
            f"{where} N_subimgs = {settings.N_subimgs} leaves {n_train} training and {n_validation} validation "
            f"patches for batches of {settings.batch_size}; raise N_subimgs"
        )


def split_counts(settings: TrainingSettings) -> tuple[int, int]:
    """Training and validation patch counts (validation = the last share, as Keras' validation_split)."""
    validation = round(settings.N_subimgs * settings.validation_split)
    return settings.N_subimgs - validation, validation


def patch_memory(settings: TrainingSettings) -> int:
    """Bytes the patches take in memory (float32 images, uint8 labels): every patch with ``in_memory``, three
    times over (Keras copies the arrays it is given); with ``streaming`` the validation patches and the patch
    indices."""
    patch_bytes = settings.patch_hw[0] * settings.patch_hw[1] * 5
    if settings.patch_source == "in_memory":
        return 3 * settings.N_subimgs * patch_bytes
    _, n_validation = split_counts(settings)
    return n_validation * patch_bytes + 16 * settings.N_subimgs


def available_memory() -> int | None:
    """Bytes this process may still allocate: Linux's MemAvailable, within a container's limit; None elsewhere."""
    try:
        meminfo = Path("/proc/meminfo").read_text()
        available = int(meminfo.split("MemAvailable:")[1].split()[0]) * 1024
    except (OSError, IndexError, ValueError):
        return None
    try:
        cgroup = Path("/sys/fs/cgroup")
        limit = int((cgroup / "memory.max").read_text()) - int((cgroup / "memory.current").read_text())
        return min(available, limit)
    except (OSError, ValueError):  # no cgroup v2, or "max": no limit
        return available


def check_memory(settings: TrainingSettings) -> int:
    """Refuse, before allocating, patches that do not fit in memory; the bytes they take."""
    needed, available = patch_memory(settings), available_memory()
    if available is not None and needed > available:
        streaming = "" if settings.patch_source == "streaming" else ", or set patch_source = streaming"
        raise UserError(
            f"{settings.where} N_subimgs = {settings.N_subimgs}: its {settings.patch_hw[0]}x{settings.patch_hw[1]} "
            f"patches need about {_gib(needed)} of memory ({settings.patch_source}) and {_gib(available)} are "
            f"available; lower N_subimgs{streaming}"
        )
    return needed


def _gib(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


def fov_constraint(settings: TrainingSettings, fov_masks: np.ndarray | None):
    """Where patches may lie: anywhere, inside DRIVE's FOV disc (published), or inside given FOV masks."""
    if not settings.inside_FOV:
        return None
    if fov_masks is not None:
        return fov_masks > 0
    radius = fov_radius_for_patch(settings.patch_hw)
    if radius <= 0:
        raise UserError(f"{settings.where} inside_FOV = True but these patches cannot fit in the FOV")
    return radius


def in_memory_patches(settings: TrainingSettings, images, labels, inside, rng) -> dict:
    """The published patch set: all N_subimgs patches sampled image by image, the last share for validation."""
    patch_hw = settings.patch_hw
    patches, patch_labels = extract_random(images, labels, settings.N_subimgs, patch_hw, rng, inside)
    n_train, _ = split_counts(settings)
    x, y = patches.transpose(0, 2, 3, 1), patch_labels[:, 0]
    return {
        "train": (x[:n_train], y[:n_train]),
        "validation": (x[n_train:], y[n_train:]),
        "samples": (patches[:40], patch_labels[:40]),
    }


def streaming_patches(
    settings: TrainingSettings,
    images,
    labels,
    inside,
    rng,
    first_epoch: int = 0,
    photographs: Photographs | None = None,
) -> dict:
    """The same distribution, the training patches sampled afresh every epoch by a tf.data generator.

    Patch k of the published ordering belongs to image k // per_image; the validation patches (the
    last ones) are sampled once and kept, the training patches are drawn anew each epoch. With
    ``augment`` each training patch is flipped at random horizontally and vertically. With
    ``photographs`` and camera augmentation, each epoch first changes every training photograph once
    (``lib.augment``) and draws that epoch's patches from the changed, preprocessed photographs.
    """
    patch_hw = settings.patch_hw
    n_images, _, height, width = images.shape
    image_of = np.arange(settings.N_subimgs) // (settings.N_subimgs // n_images)
    n_train, _ = split_counts(settings)
    fovs = [inside[index, 0] if isinstance(inside, np.ndarray) else inside for index in range(n_images)]
    clean = (images, labels, [allowed_centres((height, width), patch_hw, fov) for fov in fovs])

    def gather(source, image_indices: np.ndarray, rng: np.random.Generator, augment: bool = False):
        source_images, source_labels, candidates = source
        x = np.empty((len(image_indices), 1, *patch_hw), dtype=np.float32)
        y = np.empty((len(image_indices), 1, *patch_hw), dtype=np.uint8)
        for index in np.unique(image_indices):
            chosen = np.flatnonzero(image_indices == index)
            centres = sample_centres(rng, candidates[index], len(chosen), width)
            x[chosen], y[chosen] = (
                crop_patches(source_images[index], centres, patch_hw),
                crop_patches(source_labels[index], centres, patch_hw),
            )
        if augment:
            for axis in (2, 3):
                flip = rng.random(len(x)) < 0.5
                x[flip], y[flip] = np.flip(x[flip], axis), np.flip(y[flip], axis)
        return x.transpose(0, 2, 3, 1), y[:, 0]

    def epoch_source(epoch: int):
        """The images, labels and patch centres the training patches of ``epoch`` come from."""
        if photographs is None or not settings.camera_augmentation.active:
            return clean
        changed = np.unique(image_of[:n_train])
        new_images, new_labels, new_fovs = augment_training_images(
            photographs.rgb, labels, photographs.fovs, settings.camera_augmentation, settings.seed, epoch, changed
        )
        epoch_images, epoch_labels, candidates = images.copy(), labels.copy(), list(clean[2])
        epoch_images[changed], epoch_labels[changed] = new_images, new_labels
        if inside is not None:  # inside_FOV: inside each changed photograph's changed FOV mask
            for index, fov in zip(changed, new_fovs, strict=True):
                candidates[index] = allowed_centres((height, width), patch_hw, fov[0])
        return epoch_images, epoch_labels, candidates

    epochs = itertools.count(first_epoch)

    def epoch_batches():
        epoch = next(epochs)
        epoch_rng = np.random.default_rng([settings.seed, epoch])  # resumable: epoch e always draws the same
        source = epoch_source(epoch)
        order = epoch_rng.permutation(image_of[:n_train])
        for start in range(0, len(order), settings.batch_size):
            yield gather(source, order[start : start + settings.batch_size], epoch_rng, settings.augment)

    spec = (tf.TensorSpec((None, *patch_hw, 1), tf.float32), tf.TensorSpec((None, *patch_hw), tf.uint8))
    steps = math.ceil(n_train / settings.batch_size)
    train = tf.data.Dataset.from_generator(epoch_batches, output_signature=spec)
    sample_x, sample_y = gather(clean, image_of[:40], rng)
    return {
        "train": train.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(4),
        "validation": gather(clean, image_of[n_train:], rng),
        "samples": (sample_x.transpose(0, 3, 1, 2), sample_y[:, None]),
    }


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


def store_threshold(config) -> dict:
    """Choose and store the threshold of an already trained experiment's best weights, without training: the
    validation patches are sampled again exactly as its training sampled them (same settings, same seed)."""
    settings, experiment = config.training, config.experiment
    weights = experiment.weights("best")
    if not weights.is_file():
        raise UserError(f"{weights}: not found; train the experiment first (python run_training.py)")
    images, labels = load_training_set(config.data)
    check_patch_settings(settings, images.shape)
    validation = patch_data(settings, images, labels, None, np.random.default_rng(settings.seed))["validation"]
    record = choose_threshold(load_trained_model(weights), validation, settings, experiment.best_epoch())
    experiment.write_threshold(record)
    return record


def patch_data(
    settings: TrainingSettings, images, labels, fov_masks, rng, first_epoch: int = 0, photographs=None
) -> dict:
    """The training, validation and sample patches of ``settings.patch_source``: the one sampling, for training
    and for choosing the threshold again (``store_threshold``)."""
    inside = fov_constraint(settings, fov_masks)
    if settings.patch_source == "in_memory":
        return in_memory_patches(settings, images, labels, inside, rng)
    return streaming_patches(settings, images, labels, inside, rng, first_epoch, photographs)


def load_checkpoint(path: Path) -> keras.Model:
    """The model and optimizer state saved after the last finished epoch."""
    if not zipfile.is_zipfile(path):  # Keras would report "File not found" for a damaged archive
        raise UserError(f"{path}: unreadable checkpoint (not a complete .keras archive); {start_over(path.parent)}")
    try:
        return keras.models.load_model(path)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: unreadable checkpoint ({reason}); {start_over(path.parent)}") from None


def device_strategy() -> tf.distribute.Strategy:
    """Several GPUs: MirroredStrategy (each batch split across them); one device: TensorFlow's default."""
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        print(f"training on {len(gpus)} GPUs with MirroredStrategy", flush=True)
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def learning_rate_schedule(settings: TrainingSettings, steps_per_epoch: int):
    """The learning rate, or with ``lr_schedule = cosine`` its decay to 0 over all N_epochs."""
    if settings.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(settings.learning_rate, steps_per_epoch * settings.N_epochs)
    return settings.learning_rate


def compile_model(model: keras.Model, settings: TrainingSettings, steps_per_epoch: int) -> None:
    """Loss and optimizer: categorical cross-entropy per pixel (sparse labels, same loss) and SGD as published."""
    rate = learning_rate_schedule(settings, steps_per_epoch)
    optimizer = keras.optimizers.SGD(rate) if settings.optimizer == "sgd" else keras.optimizers.Adam(rate)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


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
        aside = set_aside(experiment)
        print(f"note: the earlier files of {folder}/ were moved to {aside}/", flush=True)
    shutil.rmtree(experiment.tensorboard, ignore_errors=True)  # a fresh training starts a fresh dashboard
    return TrainingState()


def set_aside(experiment: Experiment) -> Path:
    """Move an earlier training's files and TensorBoard folder into ``<folder>/replaced-<time>/``, so that
    --overwrite loses nothing. The training log stays: this run appends to it."""
    aside = experiment.folder / time.strftime("replaced-%Y%m%d-%H%M%S")
    aside.mkdir(exist_ok=True)
    stay = (experiment.lock_file, experiment.training_log)
    for path in experiment.folder.iterdir():
        if (path.is_file() and path not in stay) or path == experiment.tensorboard:
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


def save_model_picture(model: keras.Model, path: Path) -> None:
    """The published model picture; needs pydot and Graphviz, skipped with a message otherwise."""
    try:
        import pydot  # noqa: F401

        with atomic_path(path, suffix=path.suffix) as temp:
            keras.utils.plot_model(model, to_file=str(temp), show_shapes=True)
    except (ImportError, OSError) as error:
        print(f"note: skipped the model picture {path.name}: needs pydot and Graphviz ({type(error).__name__})")


def train(config, resume: bool = False, overwrite: bool = False, callbacks: tuple = ()) -> Path:
    """Train the experiment of ``config`` on its prepared training set; returns its folder."""
    images, labels = load_training_set(config.data)
    photographs = load_training_photographs(config.data) if config.training.camera_augmentation.active else None
    return fit(
        config.training,
        config.experiment,
        images,
        labels,
        resume=resume,
        overwrite=overwrite,
        callbacks=callbacks,
        photographs=photographs,
    )


def initial_model(settings: TrainingSettings) -> keras.Model:
    """A fresh U-Net for the patches: randomly initialised, or from ``initial_weights`` (fine-tuning)."""
    model = build_unet(*settings.patch_hw)
    if settings.initial_weights is not None:
        try:
            load_weights(model, settings.initial_weights)
        except UserError as error:
            raise UserError(f"{settings.where} initial_weights: {error}") from None
    return model


def fit(
    settings: TrainingSettings,
    experiment: Experiment,
    images,
    labels,
    fov_masks=None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: tuple = (),
    photographs: Photographs | None = None,
) -> Path:
    """Train a U-Net on preprocessed images (N, 1, H, W) and 0/1 labels, saving everything into the experiment.

    ``fov_masks`` (N, 1, H, W) replace DRIVE's FOV disc for ``inside_FOV`` (STARE). Reusable by
    any experiment (the STARE leave-one-out trains one folder per fold); ``callbacks`` are extra
    Keras callbacks, run after the checkpoints (the training-curve benchmark's evaluation).
    ``photographs`` are the images before preprocessing, which camera augmentation needs.
    """
    check_patch_settings(settings, images.shape)
    check_tensorboard(settings)
    memory = check_memory(settings)
    if settings.camera_augmentation.active and photographs is None:
        raise UserError(
            f"{settings.where} the augment_* keys change the photographs before preprocessing, which only "
            "run_training.py trains from; set them to 0 here"
        )
    if not resume and settings.initial_weights is not None:
        initial_model(settings)  # a missing or foreign file is reported before anything is written
    with experiment_in_use(experiment):
        state = starting_state(settings, experiment, resume, overwrite)
        return _fit_in_folder(settings, experiment, images, labels, fov_masks, state, callbacks, memory, photographs)


def _fit_in_folder(settings, experiment, images, labels, fov_masks, state, callbacks, memory, photographs) -> Path:
    """``fit`` once the folder is locked and the starting state known."""
    folder, resume = experiment.folder, state.epochs_done > 0
    if state.epochs_done >= settings.N_epochs:
        raise UserError(f"{folder}/ finished all {settings.N_epochs} epochs already; raise N_epochs to train further")
    keras.mixed_precision.set_global_policy(settings.precision)
    keras.utils.set_random_seed((settings.seed + state.epochs_done) % SEED_LIMIT)
    if settings.deterministic:
        tf.config.experimental.enable_op_determinism()  # for the rest of this process
    rng = np.random.default_rng(settings.seed)
    data = patch_data(settings, images, labels, fov_masks, rng, state.epochs_done, photographs)
    n_train, n_validation = split_counts(settings)
    steps_per_epoch = math.ceil(n_train / settings.batch_size)
    start = f", starting from {settings.initial_weights}" if settings.initial_weights and not resume else ""
    print(
        f"training on {n_train} patches, validating on {n_validation} ({settings.patch_source}, about "
        f"{_gib(memory)} of memory), {settings.N_epochs} epochs of batch {settings.batch_size}, {settings.optimizer} "
        f"lr {settings.learning_rate}{start}",
        flush=True,
    )
    with device_strategy().scope():
        if resume:
            model = load_checkpoint(experiment.checkpoint)
        else:
            model = initial_model(settings)
            compile_model(model, settings, steps_per_epoch)
    if resume:
        if settings.lr_schedule == "cosine":  # decaying over the N_epochs of now: more epochs train on
            model.optimizer.learning_rate = learning_rate_schedule(settings, steps_per_epoch)
        print(
            f"resuming after epoch {state.epochs_done} (best validation loss {state.best_val_loss:.5f}, "
            f"learning rate now {float(model.optimizer.learning_rate):.3g})",
            flush=True,
        )
    else:
        write_text(experiment.architecture, model.to_json(indent=2))
        save_model_picture(model, experiment.model_picture)
        sample_images, sample_labels = data["samples"]
        per_row = 5 if len(sample_images) % 5 == 0 else 1
        save_grid(folder / "sample_input_imgs.png", sample_images, per_row)
        save_grid(folder / "sample_input_masks.png", sample_labels.astype(np.float32), per_row)

    # the configuration used, copied once the model is ready to train (under the name it trains under)
    if settings.source.resolve() != experiment.configuration.resolve():  # --config <name>/configuration.txt
        text = settings.source.read_text(encoding="utf-8-sig")
        write_text(experiment.configuration, with_name(text, experiment.name))
    checkpoints = SafeCheckpoints(experiment, state)
    x, y = data["train"] if isinstance(data["train"], tuple) else (data["train"], None)
    model.fit(
        x,
        y,
        batch_size=settings.batch_size if y is not None else None,
        shuffle=y is not None,  # a streaming dataset is already in random order
        validation_data=data["validation"],
        validation_batch_size=settings.batch_size,
        epochs=settings.N_epochs,
        initial_epoch=state.epochs_done,
        verbose=2 if settings.nohup or not sys.stdout.isatty() else 1,
        callbacks=[
            checkpoints,
            TrainingCurves(experiment),
            *(tensorboard_callbacks(experiment, data["validation"]) if settings.tensorboard else ()),
            ThresholdOfTheBest(experiment, checkpoints, data["validation"], settings),
            *([EpochSeededDropout(settings.seed)] if settings.deterministic else []),
            *callbacks,
        ],
    )
    if checkpoints.nan_epoch is not None:
        raise UserError(
            f"the training loss became NaN in epoch {checkpoints.nan_epoch}; training stopped and "
            f"{checkpoints.kept()}; lower [training settings] learning_rate ({settings.learning_rate}) "
            f"in {settings.source}"
        )
    return folder
