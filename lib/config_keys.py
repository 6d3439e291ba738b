"""Every configuration key in one table: its section, type, default, bounds or choices and meaning.

``lib.config`` parses each key as its row says, and the key reference of ``docs/configuration.md`` is written
from the same rows (``python -m lib.config_keys`` rewrites it between its markers; a test checks they agree).
"""

import dataclasses
from pathlib import Path

from lib.augment import LIMITS
from lib.inference import ENGINES, PRECISIONS

REQUIRED = None  # the default of a key the file must write
SEED_LIMIT = 2**32  # Keras and NumPy seeds are below it


@dataclasses.dataclass(frozen=True)
class Key:
    section: str
    name: str
    kind: str  # text, path, optional_path, integer, number, amount, boolean, choice, folds, sources
    default: str | None  # as written in a file; REQUIRED: the file must give it
    meaning: str
    published: bool = False  # a key of the published configuration.txt
    low: float | None = None  # an int for integers  # integer: at least; number: strictly above; amount: 0
    high: float | None = None  # integer: at most; number: strictly below; amount: at most
    choices: tuple[str, ...] = ()


# Each section: whether a file must hold it, and what it is for.
SECTIONS = {
    "data paths": (True, "Where the prepared HDF5 files are, and the downloaded DRIVE folder."),
    "experiment name": (True, "The experiment's folder."),
    "data attributes": (True, "The patch size."),
    "training settings": (True, "How `run_training.py` (and each STARE fold) trains."),
    "testing settings": (True, "Which weights are tested and how the images become probabilities; every script "
                               "that predicts (testing, the STARE folds, cross-dataset, `run_prediction.py`) goes "
                               "through the same prediction code, see [layout](layout.md)."),
    "photographs": (False, "Fine-tuning on labelled photographs of any camera: read by `run_finetune.py`; see "
                           "[your camera](finetuning.md)."),
    "leave-one-out": (False, "STARE only: read by `prepare_datasets_STARE.py` and `run_stare_leave_one_out.py`; "
                             "see [STARE](stare.md)."),
}  # fmt: skip
_HDF5 = "file name in `path_local`: "
_AUGMENT = {
    "scale": "camera augmentation (see below): resize each photograph about its centre by a factor in [1 − s, 1 + s]",
    "rotation": "rotate it by an angle in [−r, r] degrees",
    "brightness": "multiply all its channels by a gain in [1 − b, 1 + b]",
    "color": "multiply each channel by its own gain in [1 − c, 1 + c] (white balance)",
    "contrast": "scale the deviations from the FOV's mean colour by [1 − c, 1 + c]",
    "gamma": "tone curve 255 · (v / 255)^g with g in [1 − g, 1 + g]",
    "blur": "Gaussian blur of sigma in [0, b] pixels",
    "noise": "Gaussian noise of standard deviation in [0, n] gray levels (of 255)",
}
_PRECISION = "`float32` (published), `mixed_bfloat16` (CPUs with AVX-512 BF16, TPUs) or `mixed_float16` (NVIDIA GPUs)"

KEYS = (
    Key("data paths", "path_local", "path", REQUIRED, "folder of the HDF5 files written by the prepare script", True),
    Key("data paths", "train_imgs_original", "text", REQUIRED, _HDF5 + "training images", True),
    Key("data paths", "train_groundTruth", "text", REQUIRED, _HDF5 + "training vessel labels", True),
    Key("data paths", "train_border_masks", "text", REQUIRED, _HDF5 + "training field-of-view (FOV) masks", True),
    Key("data paths", "test_imgs_original", "text", REQUIRED, _HDF5 + "test images", True),
    Key("data paths", "test_groundTruth", "text", REQUIRED, _HDF5 + "test vessel labels (DRIVE's `1st_manual`)",
        True),
    Key("data paths", "test_border_masks", "text", REQUIRED, _HDF5 + "test FOV masks", True),
    Key("data paths", "test_groundTruth_2nd", "text", "DRIVE_dataset_groundTruth2nd_test.hdf5",
        _HDF5 + "second human observer (`2nd_manual`), for the human reference row"),
    Key("data paths", "drive_folder", "path", "./DRIVE",
        "the downloaded DRIVE folder (`prepare_datasets_DRIVE.py --drive` overrides it)"),
    Key("experiment name", "name", "text", REQUIRED,
        "the experiment's folder `./<name>/`; a plain folder name (letters, digits, `_ . -`)", True),
    Key("data attributes", "patch_height", "integer", REQUIRED, "patch height, a multiple of 4 (the U-Net pools "
        "twice)", True, low=4),
    Key("data attributes", "patch_width", "integer", REQUIRED, "patch width, a multiple of 4", True, low=4),
    Key("training settings", "N_subimgs", "integer", REQUIRED,
        "random patches per epoch, a multiple of the number of training images", True, low=1),
    Key("training settings", "inside_FOV", "boolean", REQUIRED, "only patches lying wholly inside the field of view",
        True),
    Key("training settings", "N_epochs", "integer", REQUIRED, "training epochs", True, low=1),
    Key("training settings", "batch_size", "integer", REQUIRED, "patches per optimizer step", True, low=1),
    Key("training settings", "nohup", "boolean", "False", "log to `<name>/training.log` instead of the terminal",
        True),
    Key("training settings", "initial_weights", "optional_path", "",
        "start from these weights (a `.weights.h5` of this project or the published Keras-1 `test_best_weights.h5`) "
        "instead of a random initialisation; empty: random"),
    Key("training settings", "seed", "integer", "42", "patch sampling, camera augmentation, initialisation, dropout "
        "and order; bit-identical repeats need `deterministic = True` (see [the seed](#what-the-seed-repeats))",
        low=0, high=SEED_LIMIT - 1),
    Key("training settings", "optimizer", "choice", "sgd", "`sgd` (published: plain SGD) or `adam`",
        choices=("sgd", "adam")),
    Key("training settings", "learning_rate", "number", "0.01", "the optimizer's learning rate", low=0.0, high=10.0),
    Key("training settings", "lr_schedule", "choice", "constant", "`constant` (published) or `cosine` (decays to 0 "
        "over all epochs)", choices=("constant", "cosine")),
    Key("training settings", "validation_split", "number", "0.1", "the last share of the patches (i.e. of the last "
        "images) for validation, as Keras' `validation_split`; with few images a small share keeps more of them in "
        "training (see [STARE](stare.md#results))", low=0.0, high=1.0),
    Key("training settings", "patch_source", "choice", "in_memory", "`in_memory`: all patches sampled up front "
        "(published); `streaming`: the same distribution sampled per batch with tf.data, fresh patches every epoch, "
        "little memory", choices=("in_memory", "streaming")),
    Key("training settings", "augment", "boolean", "False",
        "random horizontal and vertical flips of each training patch; needs `patch_source = streaming`"),
    *(Key("training settings", f"augment_{name}", "amount", "0", _AUGMENT[name], low=0.0, high=most)
      for name, most in LIMITS.items()),
    Key("training settings", "initial_weights_compete", "boolean", "False", "with `initial_weights`: the starting "
        "weights are scored on the validation patches first, and an epoch must beat them to become the best weights; "
        "a fine-tuning that only makes them worse keeps them (`configurations/finetune.txt`)"),
    Key("training settings", "deterministic", "boolean", "False", "TensorFlow's deterministic kernels and dropout "
        "seeded per epoch: a run repeats bit for bit (see [the seed](#what-the-seed-repeats))"),
    Key("training settings", "precision", "choice", "float32",
        _PRECISION + "; see [benchmarks](benchmarks.md#training)", choices=PRECISIONS),
    Key("training settings", "tensorboard", "boolean", "False", "each epoch, write the loss, accuracy, learning rate "
        "and a few validation patches with their predictions to `<name>/tensorboard/` (needs the `tensorboard` "
        "package); open them with `tensorboard --logdir <name>/tensorboard`"),
    Key("testing settings", "best_last", "choice", "best", "test the `best` weights (lowest validation loss) or the "
        "`last` epoch's", True, choices=("best", "last")),
    Key("testing settings", "full_images_to_test", "integer", REQUIRED,
        "the first N test images (at most the test set's size; 20 for DRIVE)", True, low=1),
    Key("testing settings", "N_group_visual", "integer", "1", "images per row in the comparison pictures", True,
        low=1),
    Key("testing settings", "average_mode", "boolean", REQUIRED,
        "average overlapping patches; False: non-overlapping tiles", True),
    Key("testing settings", "stride_height", "integer", REQUIRED, "vertical stride of the overlapping patches, at "
        "most the patch height (stride = patch size is the published non-average tiling)", True, low=1),
    Key("testing settings", "stride_width", "integer", REQUIRED, "horizontal stride, at most the patch width", True,
        low=1),
    Key("testing settings", "nohup", "boolean", "False", "log to `<name>/testing.log`", True),
    Key("testing settings", "whole_image", "boolean", "False",
        "predict each image at once (the U-Net is fully convolutional) instead of patches: about 50x faster"),
    Key("testing settings", "flip_tta", "boolean", "False", "average the predictions of the image and its "
        "horizontal, vertical and double flips; requires `whole_image = True`"),
    Key("testing settings", "predict_batch_size", "integer", "256",
        "patches per forward pass; lower it if memory is short", low=1),
    Key("testing settings", "precision", "choice", "float32", _PRECISION + "; bfloat16 gives AUC ROC within 0.0005 "
        "(see [benchmarks](benchmarks.md#test-time-inference))", choices=PRECISIONS),
    Key("testing settings", "engine", "choice", "auto", "what computes the network (`--engine` overrides it): "
        "`keras`, `onnxruntime` (`pip install -r requirements-export.txt`), or `auto`, the fastest installed one "
        "whose probabilities match Keras float32 within 1e-5; see [engines](engines.md)", choices=ENGINES),
    Key("photographs", "sources", "sources", "", "labelled photographs, one source per line: `IMAGES | LABELS` or "
        "`IMAGES | LABELS | MASKS` (files, a folder or a quoted pattern each, paired by name as `run_prediction.py "
        "--labels/--masks` pairs them; without masks each FOV is detected); several sources give equally many "
        "patches each; the command line's photographs replace them"),
    Key("photographs", "patches_per_photograph", "integer", "1000", "random patches per photograph and epoch "
        "(`N_subimgs` is this times the photographs' slots)", low=1),
    Key("leave-one-out", "stare_folder", "path", "./STARE",
        "the download, holding `stare-images/`, `labels-ah/`, `labels-vk/` (`--stare` overrides it)"),
    Key("leave-one-out", "folds", "folds", "all",
        "`all`, or the ids of the held-out images to run, e.g. `im0001, im0082` (`--folds` overrides it)"),
    Key("leave-one-out", "results_folder", "path", "./STARE_results",
        "tables, `summary.json`, pictures and cross-dataset results"),
)  # fmt: skip
BY_SECTION = {section: {key.name: key for key in KEYS if key.section == section} for section in SECTIONS}
# The keys of the published configuration.txt: one of them misspelt is an error, any other unknown key a warning.
PUBLISHED_KEYS = {
    section: {key.name for key in keys.values() if key.published}
    for section, keys in BY_SECTION.items()
    if any(key.published for key in keys.values())
}

# ------------------------------------------------------------------ the reference in docs/configuration.md

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "configuration.md"
BEGIN = "<!-- key reference: written by python -m lib.config_keys from lib/config_keys.py; edit the table there -->"
END = "<!-- end of the key reference -->"
SHOWN_IN = {
    "leave-one-out": "configurations/STARE.txt",
    "photographs": "configurations/finetune.txt",
}  # the file whose values a section's table shows


def _number(value: float) -> str:
    return f"{value:g}"


def allowed(key: Key) -> str:
    """The values a key takes, in words."""
    if key.kind == "integer":
        return f"whole number, {key.low} to {key.high}" if key.high is not None else f"whole number ≥ {key.low}"
    return {
        "text": "text",
        "path": "a path",
        "optional_path": "a path, or empty",
        "number": f"number strictly between {_number(key.low or 0)} and {_number(key.high or 0)}",
        "amount": f"0 (off) to {_number(key.high or 0)}",
        "boolean": "True or False",
        "choice": " · ".join(f"`{choice}`" for choice in key.choices),
        "folds": "`all` or STARE ids",
        "sources": "lines `IMAGES \\| LABELS [\\| MASKS]`",
    }[key.kind]


def _shown(value: str | None) -> str:
    return "—" if value is None else (f"`{value}`" if value else "empty")


def reference_markdown(shipped) -> str:
    """The key reference: per section, a table of its keys; ``shipped(section)`` is the configparser section of
    the file each table shows the values of (``SHOWN_IN``), or None where that file lacks the section."""
    lines = []
    for section, (required, meaning) in SECTIONS.items():
        shown = SHOWN_IN.get(section, "configuration.txt")
        values = shipped(section) or {}
        lines += [f"### `[{section}]`{'' if required else ' (optional)'}", "", meaning, "",
                  f"| key | in `{shown}` | if absent | values | meaning |", "|---|---|---|---|---|"]  # fmt: skip
        for key in BY_SECTION[section].values():
            name = f"`{key.name}`" + ("" if key.published else " *(added)*")
            absent = "required" if key.default is REQUIRED else _shown(key.default)
            lines.append(f"| {name} | {_shown(values.get(key.name))} | {absent} | {allowed(key)} | {key.meaning} |")
        lines.append("")
    return "\n".join(lines)


def shipped_sections(section: str):
    """The section of the shipped file that ``reference_markdown`` shows for ``section``."""
    from lib.config_files import read_ini  # here: lib.config_files needs nothing of this module, nor the reverse

    parser = read_ini(REPO / SHOWN_IN.get(section, "configuration.txt"))
    return parser[section] if parser.has_section(section) else None


def with_reference(document: str, reference: str) -> str:
    """``document`` with the text between the markers replaced by ``reference``."""
    head, begin, rest = document.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"{DOC} lacks the markers {BEGIN} ... {END}")
    return f"{head}{BEGIN}\n\n{reference}\n{END}{tail}"


def write_reference(doc: Path = DOC) -> None:
    """Rewrite the key reference of ``doc`` from the table."""
    from lib.atomic import write_text

    write_text(doc, with_reference(doc.read_text(), reference_markdown(shipped_sections)))


if __name__ == "__main__":
    write_reference()
