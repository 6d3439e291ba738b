"""Training the U-Net on random patches, as published, with checkpoints that survive interruptions.

Two patch sources give the same patch distribution (equally many uniform random patches per image;
the last ``validation_split`` of them, i.e. of the last images, for validation):
``in_memory`` samples every patch up front as published; ``streaming`` samples the training patches
afresh each epoch with tf.data and never holds them all.
"""

import itertools
import json
import math
import shutil
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from lib.datasets import load_hdf5
from lib.errors import UserError
from lib.imageio import atomic_path, write_text
from lib.patches import allowed_centres, crop_patches, extract_random, fov_radius_for_patch, sample_centres
from lib.preprocessing import preprocess
from lib.visualize import save_grid
from src.model import build_unet

DRIVE_SIZE = (584, 565)
DRIVE_TRAIN_ROWS = slice(9, 574)  # published: cut top and bottom so the training images are 565x565
STATE_FILE = "training_state.json"


def load_training_set(config) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed training images (N, 1, H, W) float32 and labels (N, 1, H, W) uint8 0/1."""
    images = load_hdf5(config.data_file("train_imgs_original"), channels=3)
    labels = load_hdf5(config.data_file("train_groundTruth"), channels=1)
    if labels.shape[0] != images.shape[0] or labels.shape[2:] != images.shape[2:]:
        raise UserError(
            f"{config.data_file('train_groundTruth')}: shape {labels.shape} does not match the images "
            f"{images.shape}; re-run the prepare script"
        )
    images, labels = preprocess(images), (labels > 0).astype(np.uint8)
    if images.shape[2:] == DRIVE_SIZE:
        images, labels = images[:, :, DRIVE_TRAIN_ROWS], labels[:, :, DRIVE_TRAIN_ROWS]
    return images, labels


def check_patch_settings(config, shape: tuple[int, ...]) -> None:
    """Reject patch settings that cannot work on these images, before anything is trained."""
    count, _, height, width = shape
    where = f"{config.source}: [training settings]"
    if config.patch_height > height or config.patch_width > width:
        raise UserError(
            f"{config.source}: [data attributes] patch {config.patch_height}x{config.patch_width} is "
            f"larger than the training images ({height}x{width}); use smaller patches"
        )
    if config.N_subimgs % count:
        lower = config.N_subimgs // count * count
        raise UserError(
            f"{where} N_subimgs = {config.N_subimgs} is not a multiple of the {count} training images; "
            f"use e.g. {max(lower, count)}"
        )
    n_train, n_validation = split_counts(config)
    if n_validation < 1 or n_train < config.batch_size:
        raise UserError(
            f"{where} N_subimgs = {config.N_subimgs} leaves {n_train} training and {n_validation} validation "
            f"patches for batches of {config.batch_size}; raise N_subimgs"
        )


def split_counts(config) -> tuple[int, int]:
    """Training and validation patch counts (validation = the last share, as Keras' validation_split)."""
    validation = round(config.N_subimgs * config.validation_split)
    return config.N_subimgs - validation, validation


def fov_constraint(config, fov_masks: np.ndarray | None):
    """Where patches may lie: anywhere, inside DRIVE's FOV disc (published), or inside given FOV masks."""
    if not config.inside_FOV:
        return None
    if fov_masks is not None:
        return fov_masks > 0
    radius = fov_radius_for_patch((config.patch_height, config.patch_width))
    if radius <= 0:
        raise UserError(
            f"{config.source}: [training settings] inside_FOV = True but these patches cannot fit in the FOV"
        )
    return radius


def in_memory_patches(config, images, labels, inside, rng) -> dict:
    """The published patch set: all N_subimgs patches sampled image by image, the last share for validation."""
    patch_hw = (config.patch_height, config.patch_width)
    patches, patch_labels = extract_random(images, labels, config.N_subimgs, patch_hw, rng, inside)
    n_train, _ = split_counts(config)
    x, y = patches.transpose(0, 2, 3, 1), patch_labels[:, 0]
    return {
        "train": (x[:n_train], y[:n_train]),
        "validation": (x[n_train:], y[n_train:]),
        "samples": (patches[:40], patch_labels[:40]),
    }


def streaming_patches(config, images, labels, inside, rng, first_epoch: int = 0) -> dict:
    """The same distribution, the training patches sampled afresh every epoch by a tf.data generator.

    Patch k of the published ordering belongs to image k // per_image; the validation patches (the
    last ones) are sampled once and kept, the training patches are drawn anew each epoch. With
    ``augment`` each training patch is flipped at random horizontally and vertically.
    """
    patch_hw = (config.patch_height, config.patch_width)
    n_images, _, height, width = images.shape
    image_of = np.arange(config.N_subimgs) // (config.N_subimgs // n_images)
    n_train, _ = split_counts(config)
    fovs = [inside[index, 0] if isinstance(inside, np.ndarray) else inside for index in range(n_images)]
    candidates = [allowed_centres((height, width), patch_hw, fov) for fov in fovs]

    def gather(image_indices: np.ndarray, rng: np.random.Generator, augment: bool = False):
        x = np.empty((len(image_indices), 1, *patch_hw), dtype=np.float32)
        y = np.empty((len(image_indices), 1, *patch_hw), dtype=np.uint8)
        for index in np.unique(image_indices):
            chosen = np.flatnonzero(image_indices == index)
            centres = sample_centres(rng, candidates[index], len(chosen), width)
            x[chosen], y[chosen] = (
                crop_patches(images[index], centres, patch_hw),
                crop_patches(labels[index], centres, patch_hw),
            )
        if augment:
            for axis in (2, 3):
                flip = rng.random(len(x)) < 0.5
                x[flip], y[flip] = np.flip(x[flip], axis), np.flip(y[flip], axis)
        return x.transpose(0, 2, 3, 1), y[:, 0]

    epochs = itertools.count(first_epoch)

    def epoch_batches():
        epoch_rng = np.random.default_rng([config.seed, next(epochs)])  # resumable: epoch e always draws the same
        order = epoch_rng.permutation(image_of[:n_train])
        for start in range(0, len(order), config.batch_size):
            yield gather(order[start : start + config.batch_size], epoch_rng, config.augment)

    spec = (tf.TensorSpec((None, *patch_hw, 1), tf.float32), tf.TensorSpec((None, *patch_hw), tf.uint8))
    steps = math.ceil(n_train / config.batch_size)
    train = tf.data.Dataset.from_generator(epoch_batches, output_signature=spec)
    sample_x, sample_y = gather(image_of[:40], rng)
    return {
        "train": train.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(4),
        "validation": gather(image_of[n_train:], rng),
        "samples": (sample_x.transpose(0, 3, 1, 2), sample_y[:, None]),
    }


class SafeCheckpoints(keras.callbacks.Callback):
    """After every epoch: last weights, best-by-validation-loss weights and a resumable checkpoint,
    each written atomically, so a crash or Ctrl-C at any moment leaves complete, loadable files.
    A NaN loss stops training before anything is saved from the broken epoch."""

    def __init__(self, folder: Path, name: str, best_loss: float = math.inf, epochs_done: int = 0):
        super().__init__()
        self.folder, self.name, self.best_loss = folder, name, best_loss
        self.nan_epoch = None
        self.epochs_saved = epochs_done  # the last epoch whose weights and checkpoint are on disk
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
        self._save_weights("last")
        if logs["val_loss"] < self.best_loss:
            self.best_loss = float(logs["val_loss"])
            self._save_weights("best")
        with atomic_path(self.folder / f"{self.name}_checkpoint.keras", suffix=".keras") as temp:
            self.model.save(temp)
        write_text(self.folder / STATE_FILE, json.dumps({"epochs_done": epoch + 1, "best_val_loss": self.best_loss}))
        self.epochs_saved = epoch + 1
        logs["minutes"] = (time.perf_counter() - self.start) / 60  # this session's training time, for the history

    def _save_weights(self, which: str) -> None:
        """The network's weights alone: a compiled model's save_weights would add the optimizer state (3x the size)."""
        weights_only = build_unet(*self.model.input_shape[1:3])
        weights_only.set_weights(self.model.get_weights())
        with atomic_path(self.folder / f"{self.name}_{which}.weights.h5", suffix=".weights.h5") as temp:
            weights_only.save_weights(temp)


def load_checkpoint(path: Path, config) -> keras.Model:
    """The model and optimizer state saved after the last finished epoch, checked against the configuration."""
    if not zipfile.is_zipfile(path):  # Keras would report "File not found" for a damaged archive
        raise UserError(f"{path}: unreadable checkpoint (not a complete .keras archive); start over with --overwrite")
    try:
        model = keras.models.load_model(path)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: unreadable checkpoint ({reason}); start over with --overwrite") from None
    trained = tuple(model.input_shape[1:3])
    if trained != (config.patch_height, config.patch_width):
        raise UserError(
            f"{config.source}: [data attributes] patch {config.patch_height}x{config.patch_width} differs from "
            f"the {trained[0]}x{trained[1]} patches of the checkpoint {path.name}; resume with the original settings"
        )
    return model


def device_strategy() -> tf.distribute.Strategy:
    """Several GPUs: MirroredStrategy (each batch split across them); one device: TensorFlow's default."""
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        print(f"training on {len(gpus)} GPUs with MirroredStrategy", flush=True)
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def compile_model(model: keras.Model, config, steps_per_epoch: int) -> None:
    """Loss and optimizer: categorical cross-entropy per pixel (sparse labels, same loss) and SGD as published."""
    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, steps_per_epoch * config.N_epochs)
    optimizer = (
        keras.optimizers.SGD(learning_rate) if config.optimizer == "sgd" else keras.optimizers.Adam(learning_rate)
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def prepare_experiment_folder(folder: Path, name: str, resume: bool, overwrite: bool) -> tuple[int, float]:
    """Create the experiment folder, refusing to train over finished weights unless asked; (epochs done, best loss)."""
    state_path = folder / STATE_FILE
    finished = [p for p in (folder / f"{name}_best.weights.h5", state_path) if p.exists()]
    if resume:
        if not state_path.is_file() or not (folder / f"{name}_checkpoint.keras").is_file():
            raise UserError(f"{folder}/: no checkpoint to resume from; start without --resume")
        try:
            state = json.loads(state_path.read_text())
            epochs_done, best_loss = int(state["epochs_done"]), float(state["best_val_loss"])
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"{state_path}: damaged; start over with --overwrite") from None
        trim_history(folder / "training_history.csv", epochs_done)
        return epochs_done, best_loss
    if finished and not overwrite:
        raise UserError(
            f"{folder}/ already holds a trained model ({finished[0].name}); continue it with --resume, "
            "start over with --overwrite, or change [experiment name] name"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # e.g. a regular file of that name is in the way
        raise UserError(
            f"{folder}/: cannot create the experiment folder ({error.strerror or error}); "
            "move the file of that name away or change [experiment name] name"
        ) from None
    for stale in (state_path, folder / f"{name}_checkpoint.keras", folder / "training_history.csv"):
        stale.unlink(missing_ok=True)
    return 0, math.inf


def trim_history(path: Path, epochs_done: int) -> None:
    """Keep the history rows of the checkpointed epochs only: an epoch that was interrupted after its row
    was written, or that stopped on a NaN loss, is trained again on resume and must not appear twice."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)

    def checkpointed(line: str) -> bool:
        epoch = line.split(",", 1)[0].strip()
        return epoch.isdigit() and int(epoch) < epochs_done

    kept = lines[:1] + [line for line in lines[1:] if checkpointed(line)]
    if kept != lines:
        write_text(path, "".join(kept))


def save_model_picture(model: keras.Model, path: Path) -> None:
    """The published model picture; needs pydot and Graphviz, skipped with a message otherwise."""
    try:
        import pydot  # noqa: F401

        with atomic_path(path, suffix=path.suffix) as temp:
            keras.utils.plot_model(model, to_file=str(temp), show_shapes=True)
    except (ImportError, OSError) as error:
        print(f"note: skipped the model picture {path.name}: needs pydot and Graphviz ({type(error).__name__})")


def train(config, resume: bool = False, overwrite: bool = False) -> Path:
    """Train the experiment of ``config`` on its prepared training set; returns its folder."""
    images, labels = load_training_set(config)
    return fit(config, config.experiment_dir, images, labels, resume=resume, overwrite=overwrite)


def fit(
    config,
    folder: Path,
    images,
    labels,
    fov_masks=None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: tuple = (),
) -> Path:
    """Train a U-Net on preprocessed images (N, 1, H, W) and 0/1 labels, saving everything into ``folder``.

    ``fov_masks`` (N, 1, H, W) replace DRIVE's FOV disc for ``inside_FOV`` (STARE). Reusable by
    any experiment (the STARE leave-one-out trains one folder per fold); ``callbacks`` are extra
    Keras callbacks, run after the checkpoints (the training-curve benchmark's evaluation).
    """
    check_patch_settings(config, images.shape)
    epochs_done, best_loss = prepare_experiment_folder(folder, config.name, resume, overwrite)
    if epochs_done >= config.N_epochs:
        raise UserError(f"{folder}/ finished all {config.N_epochs} epochs already; raise N_epochs to train further")
    keras.mixed_precision.set_global_policy(config.precision)
    keras.utils.set_random_seed(config.seed + epochs_done)
    rng = np.random.default_rng(config.seed)
    inside = fov_constraint(config, fov_masks)
    if config.patch_source == "in_memory":
        data = in_memory_patches(config, images, labels, inside, rng)
    else:
        data = streaming_patches(config, images, labels, inside, rng, first_epoch=epochs_done)
    n_train, n_validation = split_counts(config)
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    print(
        f"training on {n_train} patches, validating on {n_validation} ({config.patch_source}), "
        f"{config.N_epochs} epochs of batch {config.batch_size}, {config.optimizer} lr {config.learning_rate}",
        flush=True,
    )
    with device_strategy().scope():
        if resume:
            model = load_checkpoint(folder / f"{config.name}_checkpoint.keras", config)
        else:
            model = build_unet(config.patch_height, config.patch_width)
            compile_model(model, config, steps_per_epoch)
    if resume:
        print(f"resuming after epoch {epochs_done} (best validation loss {best_loss:.5f})", flush=True)
    else:
        write_text(folder / f"{config.name}_architecture.json", model.to_json(indent=2))
        save_model_picture(model, folder / f"{config.name}_model.png")
        sample_images, sample_labels = data["samples"]
        per_row = 5 if len(sample_images) % 5 == 0 else 1
        save_grid(folder / "sample_input_imgs.png", sample_images, per_row)
        save_grid(folder / "sample_input_masks.png", sample_labels.astype(np.float32), per_row)

    # the configuration used, copied once the model is ready to train
    if config.source.resolve() != (folder / "configuration.txt").resolve():  # --config <name>/configuration.txt
        with atomic_path(folder / "configuration.txt", suffix=".txt") as temp:
            shutil.copyfile(config.source, temp)
    checkpoints = SafeCheckpoints(folder, config.name, best_loss, epochs_done)
    x, y = data["train"] if isinstance(data["train"], tuple) else (data["train"], None)
    model.fit(
        x,
        y,
        batch_size=config.batch_size if y is not None else None,
        shuffle=y is not None,  # a streaming dataset is already in random order
        validation_data=data["validation"],
        validation_batch_size=config.batch_size,
        epochs=config.N_epochs,
        initial_epoch=epochs_done,
        verbose=2 if config.train_nohup or not sys.stdout.isatty() else 1,
        callbacks=[
            checkpoints,
            keras.callbacks.CSVLogger(str(folder / "training_history.csv"), append=True),
            *callbacks,
        ],
    )
    if checkpoints.nan_epoch is not None:
        kept = (
            f"the weights of epoch {checkpoints.epochs_saved}, the last good one, are kept in {folder}/"
            if checkpoints.epochs_saved
            else "no epoch had finished, so no weights were saved"
        )
        raise UserError(
            f"the training loss became NaN in epoch {checkpoints.nan_epoch}; training stopped and {kept}; "
            f"lower [training settings] learning_rate ({config.learning_rate}) in {config.source}"
        )
    return folder
