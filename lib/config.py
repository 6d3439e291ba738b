"""The experiment's INI configuration, parsed into typed, validated settings.

The published ``configuration.txt`` loads unchanged; keys this project added are optional and
default to the published behaviour. Every problem is reported as one line naming the key and the fix.
"""

import configparser
import dataclasses
import difflib
import re
import warnings
from pathlib import Path

from lib.augment import LIMITS, CameraAugmentation
from lib.errors import UserError
from lib.experiment import Experiment
from lib.inference import PRECISIONS, Inference

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
SEED_LIMIT = 2**32  # Keras and NumPy seeds are below it
# The keys of the published configuration.txt: one of them misspelt is an error, any other unknown key a warning.
PUBLISHED_KEYS = {
    "data paths": {"path_local", "train_imgs_original", "train_groundTruth", "train_border_masks",
                   "test_imgs_original", "test_groundTruth", "test_border_masks"},
    "experiment name": {"name"},
    "data attributes": {"patch_height", "patch_width"},
    "training settings": {"N_subimgs", "inside_FOV", "N_epochs", "batch_size", "nohup"},
    "testing settings": {"best_last", "full_images_to_test", "N_group_visual", "average_mode", "stride_height",
                         "stride_width", "nohup"},
}  # fmt: skip
_CLOSE = 0.75  # difflib similarity from which a key counts as a misspelling of another


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
class Config:
    source: Path
    name: str  # [experiment name]
    data: DataPaths
    training: TrainingSettings
    testing: TestingSettings

    @property
    def experiment(self) -> Experiment:
        return Experiment(Path(self.name), self.name)


class Section:
    """Typed getters for one INI section that report problems as ``file: [section] key ...``.

    Keys are case-insensitive, as the published parser's. The getters note the keys they read, so that
    ``check_unknown_keys`` can name the ones that nothing reads (typos, mostly).
    """

    def __init__(self, parser: configparser.ConfigParser, path: Path, section: str):
        if not parser.has_section(section):
            raise UserError(f"{path}: section [{section}] is missing; add it (see the README's configuration table)")
        self.items = parser[section]
        self.name = section
        self.where = f"{path}: [{section}]"
        self.written = [key for key in parser.options(section) if key not in parser.defaults()]
        self.known: dict[str, str] = {}  # lower case: as the code spells it

    def text(self, key: str, default: str | None = None) -> str:
        self.known[key.lower()] = key
        if key not in self.items:
            if default is None:
                raise UserError(
                    f"{self.where} key '{key}' is missing{self._misspelt_as(key)}; "
                    "add it (see the README's configuration table)"
                )
            return default
        value = self.items[key].strip()
        if not value.isprintable():  # an indented next line continues the value; also stray control bytes
            raise UserError(
                f"{self.where} {key} = {value!r} holds a line break or control character; write the value on "
                "one line (an indented line continues the value above it)"
            )
        if not value and default is None:
            raise UserError(f"{self.where} {key} is empty; give it a value")
        return value or default

    def _misspelt_as(self, key: str) -> str:
        """`` (written as 'n_epoch'?)`` when a key that nothing has read yet looks like the missing ``key``."""
        unread = [written for written in self.written if written not in self.known]
        close = difflib.get_close_matches(key.lower(), unread, n=1, cutoff=_CLOSE)
        return f" (written as '{close[0]}'?)" if close else ""

    def check_unknown_keys(self) -> None:
        """After every getter ran: warn of each key that nothing read, naming the closest known key; an error when
        that key is a published one absent from the file (its misspelling, surely, which the default replaced)."""
        for key in self.written:
            if key in self.known:
                continue
            close = difflib.get_close_matches(key, list(self.known), n=1, cutoff=_CLOSE)
            meant = self.known[close[0]] if close else None
            if meant in PUBLISHED_KEYS.get(self.name, ()) and meant not in self.items:
                raise UserError(f"{self.where} unknown key '{key}' and the published key '{meant}' is missing: "
                                f"write {meant} if that is what '{key}' means")
            hint = f" (did you mean {meant}?)" if meant else ""
            warnings.warn(f"{self.where} unknown key '{key}' is ignored{hint}", ConfigWarning, stacklevel=2)

    def integer(self, key: str, default: int | None = None, minimum: int = 1, maximum: int | None = None) -> int:
        raw = self.text(key, None if default is None else str(default))
        try:
            value = int(raw)
        except ValueError:
            raise UserError(
                f"{self.where} {key} = '{raw}' is not a whole number; write e.g. {key} = {default or minimum}"
            ) from None
        if value < minimum:
            raise UserError(f"{self.where} {key} = {value} is too small; it must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise UserError(f"{self.where} {key} = {value} is too large; it must be at most {maximum}")
        return value

    def number(self, key: str, default: float, low: float, high: float) -> float:
        raw = self.text(key, str(default))
        try:
            value = float(raw)
        except ValueError:
            raise UserError(f"{self.where} {key} = '{raw}' is not a number; write e.g. {key} = {default}") from None
        if not low < value < high:
            raise UserError(
                f"{self.where} {key} = {value} is out of range; it must lie strictly between {low} and {high}"
            )
        return value

    def amount(self, key: str, most: float, default: float = 0.0) -> float:
        """A number from 0 (off) to ``most``, both included."""
        raw = self.text(key, str(default))
        try:
            value = float(raw)
        except ValueError:
            raise UserError(f"{self.where} {key} = '{raw}' is not a number; write e.g. {key} = {most / 2:g}") from None
        if not 0 <= value <= most:
            raise UserError(f"{self.where} {key} = {value:g} is out of range; it must be from 0 (off) to {most:g}")
        return value

    def boolean(self, key: str, default: bool | None = None) -> bool:
        raw = self.text(key, None if default is None else str(default)).lower()
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise UserError(f"{self.where} {key} = '{raw}' is not True or False; write {key} = True or {key} = False")

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default).lower()
        if value not in choices:
            raise UserError(f"{self.where} {key} = '{value}' is not one of {', '.join(choices)}")
        return value


def read_ini(path) -> configparser.ConfigParser:
    """The INI file at ``path``, parsed as the configuration files are (keys in any case, # comments, a UTF-8 byte
    order mark as some editors write it)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: configuration file not found; pass --config PATH or copy configuration.txt")
    # No interpolation, as the published RawConfigParser: a value holding "%" is read as written and
    # then validated, instead of raising an interpolation error when it is looked up. Keys are
    # case-insensitive as there (n_epochs is N_epochs).
    parser = configparser.ConfigParser(inline_comment_prefixes=("#", ";"), interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8-sig"), source=str(path))
    except (configparser.Error, UnicodeDecodeError) as error:
        first_line = str(error).splitlines()[0]
        raise UserError(f"{path}: not a valid INI file ({first_line}); compare it with configuration.txt") from None
    return parser


def load_config(path, name: str | None = None) -> Config:
    """Parse and validate the configuration file at ``path``; ``name`` replaces its [experiment name] (--name)."""
    path = Path(path)
    parser = read_ini(path)
    paths = Section(parser, path, "data paths")
    experiment = Section(parser, path, "experiment name")
    attributes = Section(parser, path, "data attributes")
    training = Section(parser, path, "training settings")
    testing = Section(parser, path, "testing settings")

    written_name = experiment.text("name")
    check_name(written_name, f"{path}: [experiment name] name = '{written_name}'")
    if name is not None:
        check_name(name, f"--name '{name}'")

    patch_height = attributes.integer("patch_height", minimum=4)
    patch_width = attributes.integer("patch_width", minimum=4)
    for key, value in (("patch_height", patch_height), ("patch_width", patch_width)):
        if value % 4:
            raise UserError(
                f"{path}: [data attributes] {key} = {value} must be a multiple of 4 (the U-Net pools twice)"
            )

    stride_height = testing.integer("stride_height")
    stride_width = testing.integer("stride_width")
    if stride_height > patch_height or stride_width > patch_width:
        raise UserError(
            f"{path}: [testing settings] stride {stride_height}x{stride_width} is larger than the patch "
            f"{patch_height}x{patch_width}; pixels would be skipped: use a stride at most the patch size"
        )

    streaming = training.text("patch_source", "in_memory").lower() == "streaming"
    if training.boolean("augment", False) and not streaming:
        raise UserError(f"{path}: [training settings] augment = True needs patch_source = streaming")
    camera_augmentation = CameraAugmentation(
        **{name: training.amount(f"augment_{name}", most) for name, most in LIMITS.items()}
    )
    if camera_augmentation.active and not streaming:
        first = next(name for name in LIMITS if getattr(camera_augmentation, name))
        raise UserError(
            f"{path}: [training settings] augment_{first} = {getattr(camera_augmentation, first):g} changes each "
            "photograph once per epoch and needs patch_source = streaming"
        )
    whole_image, flip_tta = testing.boolean("whole_image", False), testing.boolean("flip_tta", False)
    if flip_tta and not whole_image:
        raise UserError(
            f"{path}: [testing settings] flip_tta = True averages whole-image predictions but whole_image = False; "
            "set whole_image = True, or flip_tta = False for patches"
        )
    patch_hw = (patch_height, patch_width)
    average = testing.boolean("average_mode")
    initial_weights = training.text("initial_weights", "")

    config = Config(
        source=path,
        name=name or written_name,
        data=DataPaths(
            path_local=Path(paths.text("path_local")),
            drive_folder=Path(paths.text("drive_folder", "./DRIVE")),
            train_imgs_original=paths.text("train_imgs_original"),
            train_groundTruth=paths.text("train_groundTruth"),
            train_border_masks=paths.text("train_border_masks"),
            test_imgs_original=paths.text("test_imgs_original"),
            test_groundTruth=paths.text("test_groundTruth"),
            test_groundTruth_2nd=paths.text("test_groundTruth_2nd", "DRIVE_dataset_groundTruth2nd_test.hdf5"),
            test_border_masks=paths.text("test_border_masks"),
        ),
        training=TrainingSettings(
            source=path,
            patch_hw=patch_hw,
            N_subimgs=training.integer("N_subimgs"),
            inside_FOV=training.boolean("inside_FOV"),
            N_epochs=training.integer("N_epochs"),
            batch_size=training.integer("batch_size"),
            nohup=training.boolean("nohup", False),
            seed=training.integer("seed", 42, minimum=0, maximum=SEED_LIMIT - 1),
            optimizer=training.choice("optimizer", "sgd", ("sgd", "adam")),
            learning_rate=training.number("learning_rate", 0.01, 0.0, 10.0),
            validation_split=training.number("validation_split", 0.1, 0.0, 1.0),
            patch_source=training.choice("patch_source", "in_memory", ("in_memory", "streaming")),
            augment=training.boolean("augment", False),
            lr_schedule=training.choice("lr_schedule", "constant", ("constant", "cosine")),
            precision=training.choice("precision", "float32", PRECISIONS),
            initial_weights=Path(initial_weights) if initial_weights else None,
            tensorboard=training.boolean("tensorboard", False),
            camera_augmentation=camera_augmentation,
            deterministic=training.boolean("deterministic", False),
        ),
        testing=TestingSettings(
            source=path,
            best_last=testing.choice("best_last", "best", ("best", "last")),
            full_images_to_test=testing.integer("full_images_to_test"),
            N_group_visual=testing.integer("N_group_visual", 1),
            nohup=testing.boolean("nohup", False),
            inference=Inference(
                mode=("flips" if flip_tta else "whole") if whole_image else "patches",
                patch_hw=patch_hw,
                stride_hw=(stride_height, stride_width) if average else patch_hw,
                batch_size=testing.integer("predict_batch_size", 256),
                precision=testing.choice("precision", "float32", PRECISIONS),
            ),
        ),
    )
    for section in (paths, experiment, attributes, training, testing):
        section.check_unknown_keys()
    return config


def check_name(name: str, where: str) -> None:
    """An experiment name is a folder name in the working directory, nothing else."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in {".", ".."}:
        raise UserError(f"{where} must be a plain folder name (letters, digits, _ . -)")


def with_name(text: str, name: str) -> str:
    """The configuration ``text`` with its [experiment name] name set to ``name``, everything else as written:
    the copy an experiment trained under --name keeps, so that ``--config <name>/configuration.txt`` finds it."""
    section = re.search(r"^\[experiment name\][^\n]*$", text, re.M)
    if section is None:
        return text
    following = re.compile(r"^\s*\[", re.M).search(text, section.end())
    end = following.start() if following else len(text)
    body = re.sub(r"^(name\s*[=:]).*$", lambda m: f"{m.group(1)} {name}", text[section.end() : end], count=1,
                  flags=re.M | re.I)  # fmt: skip
    return text[: section.end()] + body + text[end:]
