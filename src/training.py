"""Training the U-Net on random patches, as published, with checkpoints that survive interruptions.

Two patch sources give the same patch distribution (equally many uniform random patches per image;
the last ``validation_split`` of them, i.e. of the last images, for validation):
``in_memory`` samples every patch up front as published; ``streaming`` samples the training patches
afresh each epoch with tf.data and never holds them all.
"""

import json
import math
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from lib.datasets import load_hdf5
from lib.errors import UserError
from lib.imageio import atomic_path, write_text
from lib.patches import extract_random, fov_radius_for_patch, patch_centres
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
    check_patch_settings(config, images.shape)
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
    validation = round(config.N_subimgs * config.validation_split)
    if validation < 1 or config.N_subimgs - validation < config.batch_size:
        raise UserError(
            f"{where} N_subimgs = {config.N_subimgs} leaves {config.N_subimgs - validation} training and "
            f"{validation} validation patches for batches of {config.batch_size}; raise N_subimgs"
        )
    if config.inside_FOV and fov_radius_for_patch((config.patch_height, config.patch_width)) <= 0:
        raise UserError(f"{where} inside_FOV = True but patches of this size cannot fit in the FOV")


def split_counts(config, n_images: int) -> tuple[int, int]:
    """Training and validation patch counts (validation = the last share, as Keras' validation_split)."""
    validation = round(config.N_subimgs * config.validation_split)
    return config.N_subimgs - validation, validation


def in_memory_patches(config, images, labels, rng) -> dict:
    """The published patch set: all N_subimgs patches sampled image by image, the last share for validation."""
    patches, patch_labels = extract_random(
        images, labels, config.N_subimgs, (config.patch_height, config.patch_width), config.inside_FOV, rng
    )
    n_train, _ = split_counts(config, len(images))
    x, y = patches.transpose(0, 2, 3, 1), patch_labels[:, 0]
    return {
        "train": (x[:n_train], y[:n_train]),
        "validation": (x[n_train:], y[n_train:]),
        "samples": (patches[:40], patch_labels[:40]),
    }


def streaming_patches(config, images, labels, rng) -> dict:
    """The same distribution, the training patches sampled afresh every epoch by a tf.data generator.

    Patch k of the published ordering belongs to image k // per_image; the validation patches (the
    last ones) are sampled once and kept, the training patches are drawn anew each epoch.
    """
    patch_hw = (config.patch_height, config.patch_width)
    per_image = config.N_subimgs // len(images)
    n_train, _ = split_counts(config, len(images))
    image_of = np.arange(config.N_subimgs) // per_image
    radius = fov_radius_for_patch(patch_hw) if config.inside_FOV else None
    rows, cols = np.arange(patch_hw[0]) - patch_hw[0] // 2, np.arange(patch_hw[1]) - patch_hw[1] // 2

    def gather(image_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        centres = np.empty((len(image_indices), 2), dtype=np.int64)
        for index in np.unique(image_indices):
            chosen = image_indices == index
            centres[chosen] = patch_centres(rng, int(chosen.sum()), images.shape[2:], patch_hw, radius)
        ys = centres[:, 0, None, None] + rows[None, :, None]
        xs = centres[:, 1, None, None] + cols[None, None, :]
        return images[image_indices[:, None, None], 0, ys, xs][..., None], labels[
            image_indices[:, None, None], 0, ys, xs
        ]

    def epoch_batches():
        order = rng.permutation(image_of[:n_train])
        for start in range(0, len(order), config.batch_size):
            yield gather(order[start : start + config.batch_size])

    spec = (tf.TensorSpec((None, *patch_hw, 1), tf.float32), tf.TensorSpec((None, *patch_hw), tf.uint8))
    train = tf.data.Dataset.from_generator(epoch_batches, output_signature=spec).prefetch(4)
    sample_x, sample_y = gather(image_of[:40])
    return {
        "train": train,
        "validation": gather(image_of[n_train:]),
        "samples": (sample_x.transpose(0, 3, 1, 2), sample_y[:, None]),
    }


class SafeCheckpoints(keras.callbacks.Callback):
    """After every epoch: last weights, best-by-validation-loss weights and a resumable checkpoint,
    each written atomically, so a crash or Ctrl-C at any moment leaves complete, loadable files.
    A NaN loss stops training before anything is saved from the broken epoch."""

    def __init__(self, folder: Path, name: str, best_loss: float = math.inf):
        super().__init__()
        self.folder, self.name, self.best_loss = folder, name, best_loss
        self.nan_epoch = None

    def on_train_batch_end(self, batch, logs=None):
        if logs and not math.isfinite(float(logs.get("loss", 0.0))):
            self.nan_epoch = self.nan_epoch or "current"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
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

    def _save_weights(self, which: str) -> None:
        with atomic_path(self.folder / f"{self.name}_{which}.weights.h5", suffix=".weights.h5") as temp:
            self.model.save_weights(temp)


def compile_model(model: keras.Model, config) -> None:
    optimizer = (
        keras.optimizers.SGD(config.learning_rate)
        if config.optimizer == "sgd"
        else keras.optimizers.Adam(config.learning_rate)
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def prepare_experiment_folder(config, resume: bool, overwrite: bool) -> tuple[int, float]:
    """Create the experiment folder, refusing to train over finished weights unless asked; (epochs done, best loss)."""
    folder = config.experiment_dir
    state_path = folder / STATE_FILE
    finished = [p for p in (folder / f"{config.name}_best.weights.h5", state_path) if p.exists()]
    if resume:
        if not state_path.is_file() or not (folder / f"{config.name}_checkpoint.keras").is_file():
            raise UserError(f"{folder}/: no checkpoint to resume from; start without --resume")
        state = json.loads(state_path.read_text())
        return int(state["epochs_done"]), float(state["best_val_loss"])
    if finished and not overwrite:
        raise UserError(
            f"{folder}/ already holds a trained model ({finished[0].name}); continue it with --resume, "
            "start over with --overwrite, or change [experiment name] name"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (state_path, folder / f"{config.name}_checkpoint.keras", folder / "training_history.csv"):
        stale.unlink(missing_ok=True)
    return 0, math.inf


def save_model_picture(model: keras.Model, path: Path) -> None:
    """The published model picture; needs pydot and Graphviz, skipped with a message otherwise."""
    try:
        keras.utils.plot_model(model, to_file=str(path), show_shapes=True)
    except (ImportError, OSError) as error:
        print(f"note: skipped the model picture {path.name} ({str(error).splitlines()[0][:120]})")


def train(config, resume: bool = False, overwrite: bool = False) -> Path:
    """Train the experiment of ``config``; returns its folder."""
    folder = config.experiment_dir
    images, labels = load_training_set(config)
    epochs_done, best_loss = prepare_experiment_folder(config, resume, overwrite)
    if epochs_done >= config.N_epochs:
        raise UserError(f"{folder}/ finished all {config.N_epochs} epochs already; raise N_epochs to train further")
    shutil.copyfile(config.source, folder / "configuration.txt")

    keras.utils.set_random_seed(config.seed + epochs_done)
    rng = np.random.default_rng(config.seed)
    sample_patches = in_memory_patches if config.patch_source == "in_memory" else streaming_patches
    data = sample_patches(config, images, labels, rng)
    if config.patch_source == "streaming" and epochs_done:
        rng.bit_generator.advance(epochs_done)  # do not replay the epochs already trained
    n_train, n_validation = split_counts(config, len(images))
    print(
        f"training on {n_train} patches, validating on {n_validation} ({config.patch_source}), "
        f"{config.N_epochs} epochs of batch {config.batch_size}",
        flush=True,
    )

    if resume:
        model = keras.models.load_model(folder / f"{config.name}_checkpoint.keras")
        print(f"resuming after epoch {epochs_done} (best validation loss {best_loss:.5f})", flush=True)
    else:
        model = build_unet(config.patch_height, config.patch_width)
        compile_model(model, config)
        write_text(folder / f"{config.name}_architecture.json", model.to_json(indent=2))
        save_model_picture(model, folder / f"{config.name}_model.png")
        sample_images, sample_labels = data["samples"]
        per_row = 5 if len(sample_images) % 5 == 0 else 1
        save_grid(folder / "sample_input_imgs.png", sample_images, per_row)
        save_grid(folder / "sample_input_masks.png", sample_labels.astype(np.float32), per_row)

    checkpoints = SafeCheckpoints(folder, config.name, best_loss)
    train_data = data["train"]
    x, y = train_data if isinstance(train_data, tuple) else (train_data, None)
    model.fit(
        x,
        y,
        batch_size=config.batch_size if y is not None else None,
        shuffle=True,
        validation_data=data["validation"],
        validation_batch_size=config.batch_size,
        epochs=config.N_epochs,
        initial_epoch=epochs_done,
        verbose=2 if config.train_nohup else 1,
        callbacks=[checkpoints, keras.callbacks.CSVLogger(str(folder / "training_history.csv"), append=True)],
    )
    if checkpoints.nan_epoch is not None:
        raise UserError(
            f"the training loss became NaN in epoch {checkpoints.nan_epoch}; training stopped and the "
            f"last good weights were kept in {folder}/; lower [training settings] learning_rate"
        )
    return folder
