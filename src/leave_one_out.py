"""STARE leave-one-out (published): one training per image on the other images, tested on the image left out.

Each fold trains in ``<experiment>/<id>/`` (weights, history, log: large, not meant for git) and leaves
its result in the results folder, small enough to commit as the published project committed its
tables: ``<id>_probability.png`` (16-bit, 0..65535), ``<id>_fov.png`` (the FOV mask used), ``<id>.png``
(preprocessed original, ground truth, prediction) and ``<id>_result.json``, written last: it marks the
fold finished, so a rerun skips it. The metrics are computed from the 16-bit map as written, and the
tables (``leave_one_out.csv``/``.md``, ``summary.json``; named in ``lib.experiment.LeaveOneOutResults``) from
those files alone: anyone can recompute
every number, and a fresh clone with STARE prepared regenerates the tables without training.
A fold stopped during training resumes from its last finished epoch.
"""

import hashlib
import time
from pathlib import Path

import numpy as np

from lib import metrics as m
from lib import reports
from lib.atomic import write_text
from lib.errors import UserError
from lib.experiment import Experiment, LeaveOneOutResults
from lib.imageio import read_binary, read_probability_png, write_png, write_probability_png
from lib.log_file import log_to
from lib.stare import load_stare, read_fold_result
from lib.test_set import ImageSet
from src.engines import load_engine
from src.testing import check_writable, comparison_picture, human_reference, predict_images
from src.training import fit


def fold_experiment(config, image_id: str) -> Experiment:
    """Where the fold holding out ``image_id`` trains: ``<experiment>/<id>/``, files named after the experiment."""
    return Experiment(config.experiment.folder / image_id, config.name)


def finished_result(results_folder: Path, image_id: str, label: str) -> dict | None:
    """The fold's result when its files are complete; None when it has not run, or (said so) when damaged."""
    files = LeaveOneOutResults(results_folder).fold(image_id)
    if not files["result"].exists():
        return None
    try:
        result = read_fold_result(files["result"], image_id)
        missing = [path.name for key, path in files.items() if not path.is_file()]
        if missing:
            raise ValueError(f"{', '.join(missing)} missing")
        return result
    except (OSError, ValueError) as error:
        print(f"{label}: {files['result']} is damaged ({error}); running the fold again", flush=True)
        return None


def run_leave_one_out(config, settings, folds=None, overwrite: bool = False) -> dict:
    """Run the folds (``folds`` ids, default [leave-one-out] folds, else all) and write the tables."""
    data = load_stare(config)
    ids = list(data.ids)
    chosen = list(folds or settings.folds or ids)
    unknown = [image_id for image_id in chosen if image_id not in ids]
    if unknown:
        raise UserError(f"fold {unknown[0]} is not among the prepared STARE images ({', '.join(ids)})")
    results_folder = settings.results_folder
    check_writable(results_folder)
    if not overwrite:
        check_same_start(config, results_folder, ids)
    summary = None
    for number, image_id in enumerate(chosen, 1):
        label = f"fold {number}/{len(chosen)} {image_id}"
        done = None if overwrite else finished_result(results_folder, image_id, label)
        if done is not None:
            print(f"{label}: finished earlier (AUC ROC {done['auc_roc']:.4f}), skipped", flush=True)
            continue
        LeaveOneOutResults(results_folder).fold(image_id)["result"].unlink(missing_ok=True)
        start = time.perf_counter()
        experiment = fold_experiment(config, image_id)
        train_fold(config, experiment, data, ids.index(image_id), overwrite, label)
        result = evaluate_fold(config, experiment, data, ids.index(image_id), results_folder)
        print(
            f"{label}: AUC ROC {result['auc_roc']:.4f}  F1 {result['f1']:.4f}  "
            f"({(time.perf_counter() - start) / 60:.1f} min)",
            flush=True,
        )
        summary = write_summary(config, settings, data)  # a run stopped later still has tables of every finished fold
    return summary or write_summary(config, settings, data)  # written once even when every fold was done


def check_same_start(config, results_folder: Path, ids: list[str]) -> None:
    """Refuse to add folds to a table whose finished folds started from other initial weights: mixed, its mean
    would describe no training."""
    start = initial_weights_record(config.training.initial_weights)
    for image_id in ids:
        path = LeaveOneOutResults(results_folder).fold(image_id)["result"]
        try:
            earlier = read_fold_result(path, image_id)
        except (OSError, ValueError):
            continue  # not run, or damaged: the fold runs (again) anyway
        if earlier.get("initial_weights_sha256") != start.get("initial_weights_sha256"):
            raise UserError(
                f"{path} was trained from other initial weights ({start_name(earlier)}) than this configuration's "
                f"({start_name(start)}); run every fold again with --overwrite, or give this configuration its own "
                "[leave-one-out] results_folder"
            )


def start_name(record: dict) -> str:
    """Initial weights as a person tells them apart: the path and the start of the digest, or none."""
    if not record.get("initial_weights"):
        return "none"
    return f"{record['initial_weights']}, sha256 {record.get('initial_weights_sha256', '?')[:12]}"


def train_fold(config, experiment: Experiment, data: ImageSet, index: int, overwrite: bool, label: str) -> None:
    """Train on every image but ``index`` (inside_FOV: inside their FOV masks); resume an interrupted training,
    skip a finished one."""
    state = None if overwrite else experiment.read_state()
    epochs_done = 0 if state is None else state.epochs_done
    if epochs_done >= config.training.N_epochs:
        print(f"{label}: trained earlier ({epochs_done} epochs), testing", flush=True)
        return
    others = np.arange(len(data)) != index
    print(f"{label}: training on the other {np.count_nonzero(others)} images in {experiment.folder}/", flush=True)
    with log_to(experiment.training_log if config.training.nohup else None):
        fit(
            config.training,
            experiment,
            data.images[others],
            data.truths[others, None],
            fov_masks=data.masks[others, None],
            resume=epochs_done > 0,
            overwrite=epochs_done == 0,  # without a finished epoch, whatever the folder holds is incomplete
        )


def evaluate_fold(config, experiment: Experiment, data: ImageSet, index: int, results_folder: Path) -> dict:
    """Predict the held-out image with the fold's best/last weights; write its maps, then its result."""
    testing = config.testing
    weights = experiment.weights(testing.best_last)
    model = load_engine(weights, testing.inference)
    held_out = data.subset(slice(index, index + 1))
    image_id = held_out.ids[0]
    predictions, seconds = predict_images(model, held_out.images, testing.inference, held_out.masks)
    files = LeaveOneOutResults(results_folder).fold(image_id)
    written = write_probability_png(files["probability"], predictions[0])[None]  # the metrics use what is on disk
    write_png(files["fov"], held_out.masks[0] * np.uint8(255))
    write_png(files["picture"], comparison_picture(held_out, written))
    result = m.evaluate_fov(held_out.truths, written, held_out.masks).metrics | {
        "id": image_id,
        "weights": str(weights),
        **initial_weights_record(config.training.initial_weights),
        "training_minutes": experiment.training_minutes(),
        "seconds_per_image": seconds,
        "mode": testing.inference.record(),
    }
    write_text(files["result"], m.metrics_json(result))  # last: it marks the fold finished
    return result


def initial_weights_record(path: Path | None) -> dict:
    """Which weights the folds started from: the path, and a digest that tells whether that file changed since."""
    if path is None:
        return {"initial_weights": None}
    return {"initial_weights": str(path), "initial_weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def write_summary(config, settings, data: ImageSet) -> dict:
    """The tables of the finished folds (``leave_one_out.csv``/``.md``, ``summary.json``), from the result files."""
    folder = settings.results_folder
    fold_results = LeaveOneOutResults(folder)
    read = {index: finished_result(folder, image_id, f"fold {image_id}") for index, image_id in enumerate(data.ids)}
    finished = [index for index, result in read.items() if result is not None]
    rows = [read[index] for index in finished]
    summary = {
        "experiment": config.name,
        "folds": len(rows),
        "images": len(data),
        "second_observer": human_reference(data),
        **initial_weights_record(config.training.initial_weights),
    }
    if rows:
        files = [fold_results.fold(row["id"]) for row in rows]
        probabilities = np.stack([read_probability_png(f["probability"]) for f in files])
        fovs = np.stack([read_binary(f["fov"]) > 0 for f in files])
        minutes = [row["training_minutes"] for row in rows if row.get("training_minutes") is not None]
        summary |= reports.auc_summary(rows) | {
            "pooled": m.evaluate_fov(data.truths[finished], probabilities, fovs).metrics,
            "training_minutes_mean": float(np.mean(minutes)) if minutes else None,
            "mode": rows[0]["mode"],
        }
    write_text(fold_results.table, reports.per_image_csv(rows, reports.PUBLISHED_STARE_COLUMN))
    write_text(
        fold_results.markdown,
        reports.stare_auc_markdown(rows, summary, reports.PUBLISHED_STARE_SUMMARY)
        + reports.stare_comparison(summary)
        + reports.stare_published_table(summary, f"this project ({config.name})"),
    )
    write_text(fold_results.summary, m.metrics_json(summary))
    return summary
