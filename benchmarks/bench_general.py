"""The general model's evidence: the leave-one-dataset-out table of its recipe, and each model on DRIVE's test set.

    python -m benchmarks.bench_general [--drive DRIVE] [--stare STARE]

Trains nothing: the models come from ``run_finetune.py --config configurations/<name>.txt`` (general,
general_drive_only, general_stare_only) and the shipped ``test/`` and ``robust/``. Every row is scored as
``run_prediction.py`` scores labelled photographs with its defaults (whole image, DRIVE's FOV diameter, the model's
stored threshold; STARE's FOV detected, DRIVE's given by its masks), into ./general_results/<model>-<dataset>/
(a rerun reuses what is done). A row's dataset is one its model never trained on, except the in-domain rows
(DRIVE's test set: other photographs of a camera it trained on). Prints the table and writes
``docs/figures/leave_one_dataset_out.csv``; a model folder not trained yet is left out with a note.
"""

import argparse
from pathlib import Path

from benchmarks.common import mean_scores
from lib.atomic import write_csv
from lib.config import load_config
from lib.experiment import SHIPPED_MODELS, Experiment
from src.cli import run_cli

WORK = Path("general_results")
TABLE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "leave_one_dataset_out.csv"
COLUMNS = ("model", "trained_on", "tested_on", "unseen_camera", "images", "auc_roc", "f1", "threshold")
# (model folder, the datasets it trained on, how, the dataset it is tested on)
ROWS = (
    ("test", ("DRIVE",), "published recipe", "STARE"),
    ("robust", ("DRIVE",), "robust recipe", "STARE"),
    ("general_drive_only", ("DRIVE",), "general recipe without STARE", "STARE"),
    ("general_stare_only", ("STARE",), "robust recipe, a ninth of its patches", "DRIVE"),
    ("test", ("DRIVE",), "published recipe", "DRIVE"),
    ("robust", ("DRIVE",), "robust recipe", "DRIVE"),
    ("general", ("DRIVE", "STARE"), "general recipe", "DRIVE"),
)


def finished(model: str) -> bool:
    """Whether the model folder holds a finished training: every epoch of its configuration done (a shipped model
    keeps no training state, only its weights and threshold)."""
    experiment = Experiment.in_folder(Path(model))
    if model in SHIPPED_MODELS:
        return experiment.read_threshold() is not None
    state = experiment.read_state()
    return state is not None and state.epochs_done >= load_config(experiment.configuration).training.N_epochs


def datasets(drive: Path, stare: Path) -> dict[str, dict]:
    """Each test set as mean_scores takes it: images, labels and masks (None: the FOV is detected)."""
    return {
        "DRIVE": {"images": str(drive / "test/images"), "labels": str(drive / "test/1st_manual"),
                  "masks": str(drive / "test/mask")},
        "STARE": {"images": str(stare / "stare-images"), "labels": str(stare / "labels-ah"), "masks": None},
    }  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drive", type=Path, default=Path("DRIVE"), help="the DRIVE download (default ./DRIVE)")
    parser.add_argument("--stare", type=Path, default=Path("STARE"), help="the STARE download (default ./STARE)")
    args = parser.parse_args()
    test_sets = datasets(args.drive, args.stare)
    rows = []
    for model, datasets_trained, recipe, tested_on in ROWS:
        if not finished(model):
            print(f"note: {model}/ has not finished its training: python run_finetune.py --config "
                  f"configurations/{model}.txt [--resume]")  # fmt: skip
            continue
        scores = mean_scores(Path(model), out=WORK / f"{model}-{tested_on}", **test_sets[tested_on])
        unseen = "no" if tested_on in datasets_trained else "yes"
        trained_on = f"{' + '.join(datasets_trained)} ({recipe})"
        rows.append({"model": model, "trained_on": trained_on, "tested_on": tested_on, "unseen_camera": unseen,
                     "images": scores["images"], "auc_roc": f"{scores['auc_roc']:.4f}", "f1": f"{scores['f1']:.4f}",
                     "threshold": f"{scores['threshold']:.4f}"})  # fmt: skip
    print("\n| model | trained on | tested on | unseen camera | images | mean AUC ROC | mean F1 | threshold |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(row[column]) for column in COLUMNS) + " |")
    write_csv(TABLE, rows, COLUMNS)


if __name__ == "__main__":
    run_cli(main)
