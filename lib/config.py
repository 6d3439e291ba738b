"""The experiment's INI configuration, parsed into typed, validated settings.

The published ``configuration.txt`` loads unchanged; keys this project added are optional and
default to the published behaviour. Each key is parsed as its row of ``lib.config_keys.KEYS`` says;
a file may be written as its differences over a base (``lib.config_files``). Every problem is reported
as one line naming the key and the fix.
"""

import configparser
import dataclasses
import difflib
import re
import warnings
from pathlib import Path

from lib.augment import LIMITS, CameraAugmentation
from lib.config_files import read_ini
from lib.config_keys import BY_SECTION, PUBLISHED_KEYS, SECTIONS, SEED_LIMIT, Key  # noqa: F401  (SEED_LIMIT: the trainer's)
from lib.errors import UserError
from lib.experiment import Experiment
from lib.inference import Inference
from lib.sources import Source, parse_sources

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_CLOSE = 0.75  # difflib similarity from which a key counts as a misspelling of another
STARE_ID = re.compile(r"im\d{4}")  # a STARE image id
REFERENCE = "see docs/configuration.md"


class ConfigWarning(UserWarning):
    """A configuration that loads but probably does not say what its author meant (an unknown key)."""


@dataclasses.dataclass(frozen=True)
class DataPaths:
    """[data paths]: where the prepared HDF5 files are, and the downloaded DRIVE folder."""

    path_local: Path
    drive_folder: Path
    train_imgs_original: str
    train_groundTruth: str
    train_border_masks: str
    test_imgs_original: str
    test_groundTruth: str
    test_groundTruth_2nd: str
    test_border_masks: str

    def file(self, key: str) -> Path:
        """The HDF5 file named by ``[data paths] key``, inside ``path_local``."""
        return self.path_local / getattr(self, key)


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """[training settings], with the [data attributes] patch size and the file they came from (for messages)."""

    source: Path
    patch_hw: tuple[int, int]
    N_subimgs: int
    inside_FOV: bool
    N_epochs: int
    batch_size: int
    nohup: bool
    seed: int
    optimizer: str
    learning_rate: float
    validation_split: float
    patch_source: str
    augment: bool
    lr_schedule: str
    precision: str
    initial_weights: Path | None  # start from these weights instead of a random initialisation
    tensorboard: bool  # write TensorBoard event files to <name>/tensorboard/
    camera_augmentation: CameraAugmentation  # the augment_* keys: random changes of each photograph per epoch
    deterministic: bool  # TensorFlow's deterministic ops: the same seed repeats a run bit for bit
    initial_weights_compete: bool = False  # an epoch must beat the starting weights' validation loss to be the best

    @property
    def where(self) -> str:
        return f"{self.source}: [training settings]"


@dataclasses.dataclass(frozen=True)
class TestingSettings:
    """[testing settings]: which weights, how many images, the pictures, and how images are predicted."""

    source: Path
    best_last: str
    full_images_to_test: int
    N_group_visual: int
    nohup: bool
    inference: Inference


@dataclasses.dataclass(frozen=True)
class LeaveOneOut:
    """[leave-one-out]: the STARE download, the folds to run and where their results go."""

    stare_folder: Path
    folds: tuple[str, ...] | None  # the held-out image ids to run; None: every image
    results_folder: Path


@dataclasses.dataclass(frozen=True)
class PhotographSettings:
    """[photographs]: the labelled photographs ``run_finetune.py`` trains on, and how many patches each gives."""

    sources: tuple[Source, ...]
    patches_per_photograph: int


@dataclasses.dataclass(frozen=True)
class Config:
    source: Path
    name: str  # [experiment name]
    data: DataPaths
    training: TrainingSettings
    testing: TestingSettings
    leave_one_out: "LeaveOneOut | None" = None  # [leave-one-out], in the STARE configurations
    photographs: PhotographSettings | None = None  # [photographs] (fine-tuning), its defaults where absent

    @property
    def experiment(self) -> Experiment:
        return Experiment(Path(self.name), self.name)


class Section:
    """The keys of one INI section, each parsed as its row of the key table says; problems are reported as
    ``file: [section] key ...``.

    Keys are case-insensitive, as the published parser's. ``check_unknown_keys`` names the keys written in the
    file that the table does not know (typos, mostly).
    """

    def __init__(self, parser: configparser.ConfigParser, path: Path, section: str):
        if not parser.has_section(section):
            raise UserError(f"{path}: section [{section}] is missing; add it ({REFERENCE})")
        self.items = parser[section]
        self.name = section
        self.where = f"{path}: [{section}]"
        self.written = [key for key in parser.options(section) if key not in parser.defaults()]
        self.keys = BY_SECTION[section]
        self.known = {name.lower(): name for name in self.keys}  # lower case: as the code spells it

    def text(self, key: str, default: str | None = None) -> str:
        if key not in self.items:
            if default is None:
                raise UserError(f"{self.where} key '{key}' is missing{self._misspelt_as(key)}; add it ({REFERENCE})")
            return default
        value = self.items[key].strip()
        several_lines = self.keys[key].kind == "sources" if key in self.keys else False
        if not (value.replace("\n", "") if several_lines else value).isprintable():  # also stray control bytes
            raise UserError(
                f"{self.where} {key} = {value!r} holds a line break or control character; write the value on "
                "one line (an indented line continues the value above it)"
            )
        if not value and default is None:
            raise UserError(f"{self.where} {key} is empty; give it a value")
        return value or default

    def _misspelt_as(self, key: str) -> str:
        """`` (written as 'n_epoch'?)`` when a written key that is no known key looks like the missing ``key``."""
        unread = [written for written in self.written if written not in self.known]
        close = difflib.get_close_matches(key.lower(), unread, n=1, cutoff=_CLOSE)
        return f" (written as '{close[0]}'?)" if close else ""

    def check_unknown_keys(self) -> None:
        """Warn of each written key that the table does not know, naming the closest known key; an error when that
        key is a published one absent from the file (its misspelling, surely, which the default replaced)."""
        for key in self.written:
            if key in self.known:
                continue
            close = difflib.get_close_matches(key, list(self.known), n=1, cutoff=_CLOSE)
            meant = self.known[close[0]] if close else None
            if meant in PUBLISHED_KEYS.get(self.name, ()) and meant not in self.items:
                raise UserError(
                    f"{self.where} unknown key '{key}' and the published key '{meant}' is missing: "
                    f"write {meant} if that is what '{key}' means"
                )
            hint = f" (did you mean {meant}?)" if meant else ""
            warnings.warn(f"{self.where} unknown key '{key}' is ignored{hint}", ConfigWarning, stacklevel=2)

    def __getitem__(self, name: str):
        """The value of the key ``name``, typed and checked as its row of the table says."""
        key = self.keys[name]
        return _PARSERS[key.kind](self, key, self.text(key.name, key.default))

    def integer(self, key: Key, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            example = key.default or key.low
            raise UserError(f"{self.where} {key.name} = '{raw}' is not a whole number; write e.g. "
                            f"{key.name} = {example}") from None  # fmt: skip
        if value < key.low:
            raise UserError(f"{self.where} {key.name} = {value} is too small; it must be at least {key.low}")
        if key.high is not None and value > key.high:
            raise UserError(f"{self.where} {key.name} = {value} is too large; it must be at most {key.high}")
        return value

    def number(self, key: Key, raw: str) -> float:
        value = self._float(key, raw, key.default)
        if not key.low < value < key.high:
            raise UserError(f"{self.where} {key.name} = {value} is out of range; it must lie strictly between "
                            f"{key.low} and {key.high}")  # fmt: skip
        return value

    def amount(self, key: Key, raw: str) -> float:
        """A number from 0 (off) to ``key.high``, both included."""
        value = self._float(key, raw, f"{key.high / 2:g}")
        if not 0 <= value <= key.high:
            raise UserError(f"{self.where} {key.name} = {value:g} is out of range; it must be from 0 (off) to "
                            f"{key.high:g}")  # fmt: skip
        return value

    def _float(self, key: Key, raw: str, example: str) -> float:
        try:
            return float(raw)
        except ValueError:
            raise UserError(f"{self.where} {key.name} = '{raw}' is not a number; write e.g. {key.name} = "
                            f"{example}") from None  # fmt: skip

    def boolean(self, key: Key, raw: str) -> bool:
        raw = raw.lower()
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise UserError(f"{self.where} {key.name} = '{raw}' is not True or False; write {key.name} = True or "
                        f"{key.name} = False")  # fmt: skip

    def choice(self, key: Key, raw: str) -> str:
        value = raw.lower()
        if value not in key.choices:
            raise UserError(f"{self.where} {key.name} = '{value}' is not one of {', '.join(key.choices)}; write one "
                            "of them")  # fmt: skip
        return value

    def folds(self, key: Key, raw: str) -> tuple[str, ...] | None:
        return parse_folds(raw, f"{self.where} {key.name}")

    def sources(self, key: Key, raw: str) -> tuple[Source, ...]:
        return parse_sources(raw, f"{self.where} {key.name}")


_PARSERS = {
    "text": lambda section, key, raw: raw,
    "path": lambda section, key, raw: Path(raw),
    "optional_path": lambda section, key, raw: Path(raw) if raw else None,
    "integer": Section.integer,
    "number": Section.number,
    "amount": Section.amount,
    "boolean": Section.boolean,
    "choice": Section.choice,
    "folds": Section.folds,
    "sources": Section.sources,
}


def parse_folds(text: str, where: str) -> tuple[str, ...] | None:
    """``all`` → None, else the ids held out, in the given order: ``im0001, im0082`` (commas or spaces)."""
    if text.strip().lower() == "all":
        return None
    ids = [item for item in re.split(r"[\s,]+", text.strip()) if item]
    bad = [item for item in ids if not STARE_ID.fullmatch(item)]
    if bad or not ids:
        raise UserError(f"{where} = '{text}' is not 'all' or STARE ids; write e.g. all, or im0001, im0082")
    return tuple(dict.fromkeys(ids))


def load_config(path, name: str | None = None) -> Config:
    """Parse and validate the configuration file at ``path`` (merged over its bases); ``name`` replaces its
    [experiment name] (--name)."""
    path = Path(path)
    parser = read_ini(path)
    sections = {section: Section(parser, path, section) for section, (required, _) in SECTIONS.items() if required}
    for optional in ("leave-one-out", "photographs"):
        if parser.has_section(optional):
            sections[optional] = Section(parser, path, optional)

    written_name = sections["experiment name"]["name"]
    check_name(written_name, f"{path}: [experiment name] name = '{written_name}'")
    if name is not None:
        check_name(name, f"--name '{name}'")
    patch_hw = _patch_size(sections["data attributes"], path)
    paths = sections["data paths"]
    config = Config(
        source=path,
        name=name or written_name,
        data=DataPaths(**{key: paths[key] for key in BY_SECTION["data paths"]}),
        training=_training(sections["training settings"], path, patch_hw),
        testing=_testing(sections["testing settings"], path, patch_hw),
        leave_one_out=_leave_one_out(sections.get("leave-one-out")),
        photographs=_photographs(sections.get("photographs")),
    )
    for section in sections.values():
        section.check_unknown_keys()
    return config


def _patch_size(attributes: Section, path: Path) -> tuple[int, int]:
    patch_hw = attributes["patch_height"], attributes["patch_width"]
    for key, value in zip(("patch_height", "patch_width"), patch_hw, strict=True):
        if value % 4:
            raise UserError(
                f"{path}: [data attributes] {key} = {value} must be a multiple of 4 (the U-Net pools twice)"
            )
    return patch_hw


def _training(training: Section, path: Path, patch_hw: tuple[int, int]) -> TrainingSettings:
    streaming = training["patch_source"] == "streaming"
    if training["augment"] and not streaming:
        raise UserError(f"{path}: [training settings] augment = True needs patch_source = streaming")
    camera_augmentation = CameraAugmentation(**{name: training[f"augment_{name}"] for name in LIMITS})
    if camera_augmentation.active and not streaming:
        first = next(name for name in LIMITS if getattr(camera_augmentation, name))
        raise UserError(
            f"{path}: [training settings] augment_{first} = {getattr(camera_augmentation, first):g} changes each "
            "photograph once per epoch and needs patch_source = streaming"
        )
    fields = {field.name for field in dataclasses.fields(TrainingSettings)} & set(training.keys)
    return TrainingSettings(source=path, patch_hw=patch_hw, camera_augmentation=camera_augmentation,
                            **{key: training[key] for key in sorted(fields)})  # fmt: skip


def _testing(testing: Section, path: Path, patch_hw: tuple[int, int]) -> TestingSettings:
    stride_hw = testing["stride_height"], testing["stride_width"]
    if stride_hw[0] > patch_hw[0] or stride_hw[1] > patch_hw[1]:
        raise UserError(
            f"{path}: [testing settings] stride {stride_hw[0]}x{stride_hw[1]} is larger than the patch "
            f"{patch_hw[0]}x{patch_hw[1]}; pixels would be skipped: use a stride at most the patch size"
        )
    whole_image, flip_tta = testing["whole_image"], testing["flip_tta"]
    if flip_tta and not whole_image:
        raise UserError(
            f"{path}: [testing settings] flip_tta = True averages whole-image predictions but whole_image = False; "
            "set whole_image = True, or flip_tta = False for patches"
        )
    return TestingSettings(
        source=path,
        best_last=testing["best_last"],
        full_images_to_test=testing["full_images_to_test"],
        N_group_visual=testing["N_group_visual"],
        nohup=testing["nohup"],
        inference=Inference(
            mode=("flips" if flip_tta else "whole") if whole_image else "patches",
            patch_hw=patch_hw,
            stride_hw=stride_hw if testing["average_mode"] else patch_hw,
            batch_size=testing["predict_batch_size"],
            precision=testing["precision"],
            engine=testing["engine"],
        ),
    )


def _leave_one_out(section: Section | None) -> LeaveOneOut | None:
    if section is None:
        return None
    return LeaveOneOut(**{key: section[key] for key in BY_SECTION["leave-one-out"]})


def _photographs(section: Section | None) -> PhotographSettings:
    """[photographs], or its defaults where the file has none (the photographs come on the command line)."""
    keys = BY_SECTION["photographs"]
    if section is None:
        return PhotographSettings((), int(keys["patches_per_photograph"].default))
    return PhotographSettings(**{key: section[key] for key in keys})


def require_leave_one_out(config: Config) -> LeaveOneOut:
    """The [leave-one-out] settings that the STARE scripts need."""
    if config.leave_one_out is None:
        raise UserError(f"{config.source}: section [leave-one-out] is missing; add it ({REFERENCE})")
    return config.leave_one_out


def check_name(name: str, where: str) -> None:
    """An experiment name is a folder name in the working directory, nothing else."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in {".", ".."}:
        raise UserError(f"{where} must be a plain folder name (letters, digits, _ . -)")
