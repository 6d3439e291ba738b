"""Training the U-Net on random patches, as published, with checkpoints that survive interruptions: the
training itself, from the patch sources (``src.patch_sources``), the callbacks (``src.callbacks``) and the
experiment folder's state (``lib.experiment_state``)."""

import math
import sys
import zipfile
from pathlib import Path

import numpy as np

from lib.atomic import atomic_path, write_text
from lib.config import SEED_LIMIT, TrainingSettings
from lib.config_files import merged_text, with_name
from lib.errors import UserError
from lib.experiment import Experiment
from lib.experiment_state import experiment_in_use, start_over, starting_state
from lib.folders import check_data_apart
from lib.training_set import (
    Photographs,
    check_memory,
    check_patch_settings,
    describe_bytes,
    load_training_photographs,
    load_training_set,
    split_counts,
)
from lib.visualize import save_grid
from src.backend import keras, tf
from src.callbacks import (
    EpochSeededDropout,
    SafeCheckpoints,
    StartCompetes,
    ThresholdOfTheBest,
    TrainingCurves,
    check_tensorboard,
    choose_threshold,
    tensorboard_callbacks,
)
from src.model import build_unet, load_trained_model, load_weights
from src.patch_sources import patch_data


def store_threshold(config) -> dict:
    """Choose and store the threshold of an already trained experiment's best weights, without training: the
    validation patches are sampled again exactly as its training sampled them (same settings, same seed)."""
    settings, experiment = config.training, config.experiment
    weights = experiment.weights("best")
    if not weights.is_file():
        raise UserError(f"{weights}: not found; train the experiment first (python run_training.py)")
    images, labels = load_training_set(config.data)
    check_patch_settings(settings, images.shape)
    validation = patch_data(settings, images, labels, None, np.random.default_rng(settings.seed)).validation
    record = choose_threshold(load_trained_model(weights), validation, settings, experiment.best_epoch())
    experiment.write_threshold(record)
    return record


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
    if overwrite:
        check_data_apart(config.data.path_local, config.experiment.folder)
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
    configuration: str | None = None,
) -> Path:
    """Train a U-Net on preprocessed images (N, 1, H, W) and 0/1 labels, saving everything into the experiment.

    ``fov_masks`` (N, 1, H, W) replace DRIVE's FOV disc for ``inside_FOV`` (STARE). Reusable by
    any experiment (the STARE leave-one-out trains one folder per fold); ``callbacks`` are extra
    Keras callbacks, run after the checkpoints (the training-curve benchmark's evaluation).
    ``photographs`` are the images before preprocessing, which camera augmentation needs. ``configuration``
    is the text of the configuration copy the folder keeps (default: ``settings.source``'s, merged).
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
        arrays = images, labels, fov_masks, photographs
        return _fit_in_folder(settings, experiment, arrays, state, callbacks, memory, configuration)


def _fit_in_folder(settings, experiment, arrays, state, callbacks, memory, configuration) -> Path:
    """``fit`` once the folder is locked and the starting state known."""
    images, labels, fov_masks, photographs = arrays
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
        f"{describe_bytes(memory)} of memory), {settings.N_epochs} epochs of batch {settings.batch_size}, "
        f"{settings.optimizer} lr {settings.learning_rate}{start}",
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
        sample_images, sample_labels = data.samples
        per_row = 5 if len(sample_images) % 5 == 0 else 1
        save_grid(folder / "sample_input_imgs.png", sample_images, per_row)
        save_grid(folder / "sample_input_masks.png", sample_labels.astype(np.float32), per_row)

    # the configuration used, copied once the model is ready to train (under the name it trains under)
    if settings.source.resolve() != experiment.configuration.resolve():  # --config <name>/configuration.txt
        text = configuration if configuration is not None else merged_text(settings.source)
        write_text(experiment.configuration, with_name(text, experiment.name))
    checkpoints = SafeCheckpoints(experiment, state)
    threshold = ThresholdOfTheBest(experiment, checkpoints, data.validation, settings)
    start = settings.initial_weights_compete and settings.initial_weights is not None
    model.fit(
        **data.fit_arguments(settings.batch_size),
        validation_data=data.validation,
        validation_batch_size=settings.batch_size,
        epochs=settings.N_epochs,
        initial_epoch=state.epochs_done,
        verbose=2 if settings.nohup or not sys.stdout.isatty() else 1,
        callbacks=[
            *([StartCompetes(checkpoints, threshold, settings, fresh=not resume)] if start else []),
            checkpoints,
            TrainingCurves(experiment),
            *(tensorboard_callbacks(experiment, data.validation) if settings.tensorboard else ()),
            threshold,
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
