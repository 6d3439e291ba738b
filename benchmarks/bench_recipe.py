"""A training recipe's DRIVE test AUC ROC against training minutes: the quality a time budget buys.

    python -m benchmarks.bench_recipe [--config configurations/fast.txt] [--resume | --overwrite]

Trains the configuration's experiment exactly as run_training.py does (same folder, weights and
history), and after every epoch predicts the DRIVE test images whole (fast, and within a few
10,000ths of stride 5) to measure AUC ROC on their FOV pixels. The evaluation is paused out of the
clock, so the minutes are training minutes. ``auc_curve.csv`` in the experiment folder gains its
row after every epoch, so ``--resume`` continues an interrupted curve as run_training.py continues
the training; the curve is printed at the end (the training itself logs to ``<name>/training.log`` when
``nohup = True``, as run_training.py does). ``run_testing.py`` then gives the stride-5 figure of
the final weights. The test set only measures: nothing is selected by it.
"""

import argparse
import csv
import io
import time
from pathlib import Path

import numpy as np

from lib.atomic import write_text
from lib.config import load_config
from lib.log_file import log_to
from lib.metrics import evaluate_fov
from lib.test_set import load_test_set
from src.backend import keras
from src.cli import run_cli
from src.model import build_unet_in
from src.prediction import predict_whole
from src.training import train

FIELDS = ("epoch", "training_minutes", "auc_roc_whole_image")


class TestCurve(keras.callbacks.Callback):
    """After each epoch: training minutes so far (evaluations excluded) and the whole-image test AUC ROC.

    ``rows`` are an interrupted run's curve, which this one continues: its minutes add to theirs.
    """

    def __init__(self, test_set: dict, path: Path, rows: list[dict]):
        super().__init__()
        self.test_set = test_set
        self.path = path
        self.whole = build_unet_in("float32")  # any size, float32 like run_testing.py; weights copied in
        self.rows = rows
        self.minutes_before = rows[-1]["training_minutes"] if rows else 0.0
        self.paused = 0.0
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        paused_at = time.perf_counter()
        minutes = self.minutes_before + (paused_at - self.start - self.paused) / 60
        auc = self.test_auc()
        self.rows[:] = [row for row in self.rows if row["epoch"] < epoch + 1]
        self.rows.append({"epoch": epoch + 1, "training_minutes": minutes, "auc_roc_whole_image": auc})
        write_text(self.path, curve_csv(self.rows))
        print(f"epoch {epoch + 1}: {minutes:.1f} training minutes, whole-image test AUC ROC {auc:.4f}", flush=True)
        self.paused += time.perf_counter() - paused_at

    def test_auc(self) -> float:
        """The current weights, predicting every test image whole."""
        self.whole.set_weights(self.model.get_weights())
        predictions = np.stack([predict_whole(self.whole, image) for image in self.test_set.images])
        return evaluate_fov(self.test_set.truths, predictions, self.test_set.masks).metrics["auc_roc"]


def curve_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: round(value, 5) for key, value in row.items()} for row in rows)
    return buffer.getvalue()


def read_curve(path: Path) -> list[dict]:
    """The rows an interrupted run wrote; none where it wrote nothing."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{"epoch": int(row["epoch"]), **{key: float(row[key]) for key in FIELDS[1:]}} for row in rows]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configurations/fast.txt")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted training and its curve")
    parser.add_argument("--overwrite", action="store_true", help="replace the experiment's earlier results")
    args = parser.parse_args()
    config = load_config(args.config)
    test_set = load_test_set(config.data, config.testing)
    path = config.experiment.test_curve
    curve = TestCurve(test_set, path, read_curve(path) if args.resume else [])
    start = time.perf_counter()
    with log_to(config.experiment.training_log if config.training.nohup else None):  # as run_training.py
        train(config, resume=args.resume, overwrite=args.overwrite, callbacks=(curve,))
    wall_minutes = (time.perf_counter() - start) / 60
    print(f"\n{config.source}: {len(curve.rows)} epochs, wall time {wall_minutes:.1f} min with the evaluations\n")
    print("| epoch | training minutes | whole-image AUC ROC |\n|---|---|---|")
    for row in curve.rows:
        print(f"| {row['epoch']} | {row['training_minutes']:.1f} | {row['auc_roc_whole_image']:.4f} |")


if __name__ == "__main__":
    run_cli(main)
