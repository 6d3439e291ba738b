"""An experiment folder's files, its training state and the result folders of its tests: every name in one place,
read one way everywhere (a prediction run's folder: ``lib.run_folder``).

The folder ``./<name>/`` of an experiment (or one STARE fold's ``./<name>/<id>/``) holds the weights
``<name>_best.weights.h5`` and ``<name>_last.weights.h5``, the resumable ``<name>_checkpoint.keras``
with ``training_state.json``, the threshold chosen for the best weights ``<name>_threshold.json``, the
history, the logs and the test results, and ``training.lock`` while a training runs in it.
"""

import dataclasses
import json
import math
from pathlib import Path

from lib.atomic import write_csv, write_text
from lib.errors import UserError
from lib.textfiles import read_csv, read_text

WEIGHTS_SUFFIX = ".weights.h5"  # Keras 3 insists on it
REPO = Path(__file__).resolve().parents[1]
REFERENCE_MODEL = REPO / "test"  # the published protocol's DRIVE model
DRIVE_PHOTOGRAPH_MODEL = REPO / "robust"  # the photograph model that saw DRIVE only: STARE stays a camera it never saw
PHOTOGRAPH_MODEL = REPO / "general"  # DRIVE + STARE: run_prediction.py's default and fine-tuning's start
SHIPPED_MODELS = (REFERENCE_MODEL.name, DRIVE_PHOTOGRAPH_MODEL.name, PHOTOGRAPH_MODEL.name)  # training never overwrites
SUMMARY_FILE = "summary.json"  # the pooled results of a STARE leave-one-out or cross-dataset test


def weights_name(weights) -> str:
    """What results of other weights are named after: the file name before its first dot, leading dots skipped
    (``.weights.h5`` gives ``weights``, never a name that is empty or the experiment folder itself)."""
    return Path(weights).name.lstrip(".").split(".")[0] or "weights"


@dataclasses.dataclass(frozen=True)
class TrainingState:
    """What a resumed training needs besides the checkpoint: how far it got and its best validation loss."""

    epochs_done: int = 0
    best_val_loss: float = math.inf


class _File:
    """One file of a folder, named by a template (``{name}``: the experiment's name)."""

    def __init__(self, template: str):
        self.template = template

    def __get__(self, folder, owner=None) -> Path:
        return folder.folder / self.template.format(name=getattr(folder, "name", ""))


@dataclasses.dataclass(frozen=True)
class Experiment:
    folder: Path
    name: str

    @classmethod
    def in_folder(cls, folder) -> "Experiment":
        """The experiment a trained-model folder holds: its files are named after the folder, ``test/test_best...``."""
        folder = Path(folder)
        return cls(folder, folder.resolve().name)

    def weights(self, which: str = "best") -> Path:
        """``best`` (lowest validation loss) or ``last`` weights."""
        return self.folder / f"{self.name}_{which}{WEIGHTS_SUFFIX}"

    checkpoint = _File("{name}_checkpoint.keras")  # model and optimizer after the last finished epoch
    state_file = _File("training_state.json")  # epochs done and best validation loss, for --resume
    history = _File("training_history.csv")
    architecture = _File("{name}_architecture.json")
    model_picture = _File("{name}_model.png")
    configuration = _File("configuration.txt")  # the copy of the configuration the training used
    threshold_file = _File("{name}_threshold.json")  # the F1-best threshold of the best weights, on validation
    training_log = _File("training.log")
    testing_log = _File("testing.log")
    training_curves = _File("training_curves.png")  # loss and accuracy per epoch, redrawn after each one
    test_curve = _File("auc_curve.csv")  # benchmarks/bench_recipe.py: whole-image test AUC ROC per epoch
    tensorboard = _File("tensorboard")  # folder of TensorBoard event files ([training settings] tensorboard)
    lock_file = _File("training.lock")  # held while a training runs in the folder (lib.lock)

    def read_state(self) -> TrainingState | None:
        """The state after the last finished epoch; None before the first one finished."""
        if not self.state_file.is_file():
            return None
        try:
            state = json.loads(read_text(self.state_file))
            return TrainingState(int(state["epochs_done"]), float(state["best_val_loss"]))
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(
                f"{self.state_file}: damaged training state; start over with --overwrite (its files move to "
                f"{self.folder}/replaced-<date-time>/)"
            ) from None

    def write_state(self, state: TrainingState) -> None:
        write_text(self.state_file, json.dumps(dataclasses.asdict(state)))

    def read_history(self) -> dict[str, list[float]]:
        """The history's columns (``epoch``, ``loss``, ``val_loss``, ...), one value per finished epoch; a value
        missing from a row (empty, or "NA" in histories Keras' CSVLogger wrote) is NaN. Empty before the first
        epoch."""
        rows = self._history_rows()
        return {key: [_number(row.get(key)) for row in rows] for key in (rows[0] if rows else {})}

    def _history_rows(self) -> list[dict]:
        """The history's rows of finished epochs (``epoch`` a number); a damaged history reads as none."""
        try:
            rows = read_csv(self.history)
        except UserError:
            return []
        return [row for row in rows if str(row.get("epoch", "")).isdigit()]

    def write_history(self, epoch: int, logs: dict) -> None:
        """Rewrite the history with the rows of the epochs before ``epoch`` (counted from 0) and this one's: written
        whole with the epoch's other files, it never holds a row of an epoch the state does not count."""
        rows = [row for row in self._history_rows() if int(row["epoch"]) < epoch]
        rows.append({"epoch": epoch, **logs})
        keys = {key for row in rows for key in row} - {"epoch"}
        write_csv(self.history, rows, ("epoch", *sorted(keys)))

    def training_minutes(self) -> float | None:
        """Minutes of training over every sitting, from the history's ``minutes`` column (it restarts at each
        resume); None before the first epoch."""
        minutes = [value for value in self.read_history().get("minutes", []) if not math.isnan(value)]
        if not minutes:
            return None
        restarts = [before for before, after in zip(minutes, minutes[1:], strict=False) if after < before]
        return sum(restarts) + minutes[-1]

    def best_epoch(self) -> int | None:
        """The epoch (from 1) of the lowest validation loss in the history: the best weights'; None without one."""
        rows = [row for row in self._history_rows() if not math.isnan(_number(row.get("val_loss")))]
        if not rows:
            return None
        return int(min(rows, key=lambda row: _number(row["val_loss"]))["epoch"]) + 1

    def read_threshold(self) -> dict | None:
        """The threshold stored for the best weights (``threshold`` and how it was chosen); None when there is none."""
        if not self.threshold_file.is_file():
            return None
        try:
            record = json.loads(read_text(self.threshold_file))
            threshold = float(record["threshold"])  # also a number written as a string
            if not 0 <= threshold <= 1:
                raise ValueError("threshold out of range")
            return record | {"threshold": threshold}
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(
                f"{self.threshold_file}: damaged threshold file; choose it again with "
                "python run_training.py --threshold-only (or delete it to use the published 0.5)"
            ) from None

    def write_threshold(self, record: dict) -> None:
        write_text(self.threshold_file, json.dumps(record, indent=2) + "\n")


def _number(text: str | None) -> float:
    """A history value as a float; NaN for what is no number (a value the epoch lacked)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


@dataclasses.dataclass(frozen=True)
class TestResults:
    """What ``run_testing.py`` writes: into the experiment folder, or ``<name>/<weights>/`` for other weights."""

    folder: Path
    name: str  # the experiment's: it names the comparison pictures

    roc = _File("ROC.png")
    precision_recall = _File("Precision_recall.png")
    per_image_table = _File("per_image.csv")
    per_image_chart = _File("per_image.png")
    performances = _File("performances.txt")
    performances_json = _File("performances.json")
    comparison = _File("comparison.md")  # the published DRIVE table with this run's row

    @classmethod
    def of_weights(cls, experiment: "Experiment", weights: Path) -> "TestResults":
        """Where the test of weights other than the experiment's goes: ``<name>/<weights' id>/``."""
        return cls(experiment.folder / weights_name(weights), experiment.name)

    def grid(self, label: str) -> Path:
        return self.folder / f"all_{label}.png"

    def comparison_strip(self, index: int) -> Path:
        return self.folder / f"{self.name}_Original_GroundTruth_Prediction{index}.png"


@dataclasses.dataclass(frozen=True)
class _StareResults:
    """A folder of results on the STARE images: a per-image table as CSV and Markdown, and the pooled summary."""

    folder: Path

    summary = _File(SUMMARY_FILE)


class LeaveOneOutResults(_StareResults):
    """A STARE leave-one-out's results folder: per fold four small files (committed), and the tables."""

    table = _File("leave_one_out.csv")
    markdown = _File("leave_one_out.md")

    def fold(self, image_id: str) -> dict[str, Path]:
        """The fold's result (written last: it marks the fold finished), 16-bit map, FOV mask and picture."""
        return {
            "result": self.folder / f"{image_id}_result.json",
            "probability": self.folder / f"{image_id}_probability.png",
            "fov": self.folder / f"{image_id}_fov.png",
            "picture": self.folder / f"{image_id}.png",
        }


class CrossDatasetResults(_StareResults):
    """A DRIVE-trained model tested on every STARE image: ``<results_folder>/cross_dataset_<weights' id>/``."""

    table = _File("cross_dataset.csv")
    markdown = _File("cross_dataset.md")

    @classmethod
    def of_weights(cls, results_folder: Path, weights: Path) -> "CrossDatasetResults":
        return cls(results_folder / f"cross_dataset_{weights_name(weights)}")

    def picture(self, image_id: str) -> Path:
        return self.folder / f"{image_id}.png"
