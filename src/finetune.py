"""Fine-tuning the U-Net on labelled photographs of any camera (``run_finetune.py``): the photographs of one or
several sources brought to the network's scale as ``run_prediction.py`` brings them (``lib.labelled_photographs``),
then the training of ``src.training.fit`` with its checkpoints, resume, best epoch and stored threshold. The
folder's configuration copy records the photographs and the patch counts, so that it alone repeats the run."""

import dataclasses
from pathlib import Path

from lib.atomic import write_csv
from lib.config import Config
from lib.config_files import merged_text, with_value
from lib.errors import UserError
from lib.experiment import SHIPPED_MODELS, Experiment
from lib.folders import refuse_overlap
from lib.labelled_photographs import TrainingSet, roles, training_set
from lib.photographs import Options
from lib.sources import SOURCE_SEPARATOR, Source
from lib.training_set import Photographs
from src.backend import keras
from src.training import fit

ROLE_COLUMNS = ("image", "source", "role", "training_slots", "validation_slots")
ROLES_FILE = "photographs.csv"  # in the experiment folder: which photograph trained, which validated


class WriteRoles(keras.callbacks.Callback):
    """Write the photographs' roles into the experiment folder once the training starts (after the folder's
    earlier files, if any, were moved aside)."""

    def __init__(self, path: Path, rows: list[dict]):
        super().__init__()
        self.path, self.rows = path, rows

    def on_train_begin(self, logs=None):
        write_csv(self.path, self.rows, ROLE_COLUMNS)


def check_name(config: Config) -> None:
    """A fine-tuning never trains into a shipped model's folder."""
    if config.name in SHIPPED_MODELS:
        raise UserError(
            f"the experiment name '{config.name}' is a shipped model's folder ({config.name}/), which fine-tuning "
            "would overwrite; fine-tune under another name, e.g. --name mycamera"
        )


def check_apart(folder: Path, sources: tuple[Source, ...]) -> None:
    """Refuse an experiment folder that is, is inside or contains a folder the photographs, labels or masks are
    read from: its files (curves, pictures) would be read back as photographs, and --overwrite would move the
    photographs aside with the earlier training's files."""
    named = [(f"the {what} folder", spec) for source in sources
             for what, spec in (("photographs'", source.images), ("labels'", source.labels), ("masks'", source.masks))
             if spec is not None]  # fmt: skip
    folders = [(what, path if path.is_dir() else path.parent) for what, path in ((w, Path(s)) for w, s in named)]
    refuse_overlap(folder, folders, "the experiment folder", "fine-tune under another name (--name NEW)")


def with_initial_weights(config: Config, model_or_weights: str | None) -> Config:
    """``config`` starting from a model folder's best weights or a weights file (``--from``) instead."""
    if model_or_weights is None:
        return config
    path = Path(model_or_weights)
    weights = Experiment.in_folder(path).weights("best") if path.is_dir() else path
    return dataclasses.replace(config, training=dataclasses.replace(config.training, initial_weights=weights))


def sources_text(sources: tuple[Source, ...]) -> str:
    """[photographs] sources as a configuration writes them, one source per indented line."""
    lines = [f" {SOURCE_SEPARATOR} ".join(filter(None, (s.images, s.labels, s.masks))) for s in sources]
    return "".join(f"\n    {line}" for line in lines)


def configuration_copy(config: Config, sources: tuple[Source, ...], settings, per_photograph: int) -> str:
    """The configuration as this run used it: the file merged, with the sources and the patch counts it set."""
    text = merged_text(config.source)
    text = with_value(text, "photographs", "sources", sources_text(sources))
    text = with_value(text, "photographs", "patches_per_photograph", str(per_photograph))
    text = with_value(text, "training settings", "N_subimgs", str(settings.N_subimgs))
    text = with_value(text, "training settings", "initial_weights", str(settings.initial_weights or ""))
    return with_value(text, "training settings", "validation_split", repr(settings.validation_split))


def finetune(
    config: Config,
    sources: tuple[Source, ...] = (),
    resume: bool = False,
    overwrite: bool = False,
    validate_on_training: bool = False,
    callbacks: tuple = (),
) -> Path:
    """Train ``config``'s experiment on the labelled photographs of ``sources`` (default: its [photographs]
    sources), each source giving equally many patches; returns the experiment folder."""
    check_name(config)
    written = config.photographs
    sources = sources or written.sources
    if not sources:
        raise UserError(
            f"no labelled photographs: name them (python run_finetune.py PHOTOS --labels LABELS) or write them "
            f"in [photographs] sources of {config.source}"
        )
    check_apart(config.experiment.folder, sources)
    options = Options()  # the scale and preprocessing run_prediction.py uses by default
    data = training_set(sources, options, config.training.validation_split, validate_on_training)
    settings = dataclasses.replace(
        config.training,
        N_subimgs=written.patches_per_photograph * len(data.slots),
        validation_split=data.validation_split,
    )
    rows = roles(data)
    describe(data, rows, sources)
    images, labels, fovs, rgb = data.arrays()
    return fit(
        settings,
        config.experiment,
        images,
        labels,
        fov_masks=fovs,
        resume=resume,
        overwrite=overwrite,
        callbacks=(WriteRoles(config.experiment.folder / ROLES_FILE, rows), *callbacks),
        photographs=Photographs(rgb, fovs),
        configuration=configuration_copy(config, sources, settings, written.patches_per_photograph),
    )


def describe(data: TrainingSet, rows: list[dict], sources: tuple[Source, ...]) -> None:
    for number, source in enumerate(sources, 1):
        mine = [row for row in rows if row["source"] == number]
        validating = sum(row["role"] != "train" for row in mine)
        print(f"source {number}: {len(mine)} photographs, {validating} validating: {source.describe()}", flush=True)
    _, _, height, width = data.images.shape
    print(f"photographs at the network's scale, padded to {width}x{height} px", flush=True)
