"""The published STARE protocol: leave-one-out (one training per image on the others, tested on it),
the second observer as the human reference, and a DRIVE-trained model tested on STARE.

Each fold owns ``<experiment>/<id>/`` (weights, history, prediction.npy, result.json). A fold is
finished when its result.json exists (written last, atomically), so a rerun skips it; a fold
stopped during training resumes from its last finished epoch through ``fit(resume=True)``.
"""

import csv
import dataclasses
import io
import json
import time
from pathlib import Path

import numpy as np

from lib import cli
from lib import metrics as m
from lib.errors import UserError
from lib.imageio import atomic_path, write_png, write_text
from lib.stare import prepared_ids
from src.model import load_trained_model
from src.testing import (
    check_writable,
    comparison_picture,
    evaluate_predictions,
    human_reference,
    load_test_set,
    predict_test_set,
    prediction_mode,
)
from src.training import STATE_FILE, fit

RESULT_FILE = "result.json"
PREDICTION_FILE = "prediction.npy"
# The published leave-one-out AUC ROC per held-out image (orobix/retina-unet README) and its summary.
PUBLISHED_AUC = {
    "im0001": 0.9709, "im0002": 0.9588, "im0003": 0.9856, "im0004": 0.9732, "im0005": 0.9703,
    "im0044": 0.9883, "im0077": 0.9925, "im0081": 0.9930, "im0082": 0.9929, "im0139": 0.9845,
    "im0162": 0.9913, "im0163": 0.9952, "im0235": 0.9912, "im0236": 0.9893, "im0239": 0.9751,
    "im0240": 0.9832, "im0255": 0.9819, "im0291": 0.9635, "im0319": 0.9702, "im0324": 0.9661,
}  # fmt: skip
PUBLISHED_SUMMARY = "published (orobix/retina-unet): .9805 +- .0113 over the 20 folds"
TABLE_COLUMNS = ("auc_roc", "auc_pr", "accuracy", "sensitivity", "specificity", "f1")


def load_stare(config) -> dict:
    """The prepared STARE images preprocessed together (dataset statistics, as published), 0/1 ground
    truth, second observer and FOV masks (N, H, W), and ``ids``."""
    data = load_test_set(config)
    ids = prepared_ids(config)
    if len(ids) < len(data["images"]) or "second_observer" not in data:
        raise UserError(f"{config.path_local}: the STARE files are incomplete; re-run prepare_datasets_STARE.py")
    if len(data["images"]) < 2:
        raise UserError(f"{config.source}: [testing settings] full_images_to_test = 1; the leave-one-out needs 2")
    return data | {"ids": np.array(ids[: len(data["images"])])}


def fold_folder(config, image_id: str) -> Path:
    return config.experiment_dir / image_id


def run_leave_one_out(config, settings, folds=None, overwrite: bool = False) -> dict:
    """Run the folds (``folds`` ids, default [leave-one-out] folds, else all) and write the tables."""
    data = load_stare(config)
    ids = list(data["ids"])
    chosen = list(folds or settings.folds or ids)
    unknown = [image_id for image_id in chosen if image_id not in ids]
    if unknown:
        raise UserError(f"fold {unknown[0]} is not among the prepared STARE images ({', '.join(ids)})")
    check_writable(settings.results_folder)
    for number, image_id in enumerate(chosen, 1):
        folder, label = fold_folder(config, image_id), f"fold {number}/{len(chosen)} {image_id}"
        if (folder / RESULT_FILE).is_file() and not overwrite:
            done = json.loads((folder / RESULT_FILE).read_text())
            print(f"{label}: finished earlier (AUC ROC {done['auc_roc']:.4f}), skipped", flush=True)
            continue
        (folder / RESULT_FILE).unlink(missing_ok=True)
        start = time.perf_counter()
        train_fold(config, folder, data, ids.index(image_id), overwrite, label)
        results = evaluate_fold(config, folder, data, ids.index(image_id), settings.results_folder)
        print(
            f"{label}: AUC ROC {results['auc_roc']:.4f}  F1 {results['f1']:.4f}  "
            f"({(time.perf_counter() - start) / 60:.1f} min)",
            flush=True,
        )
    return write_summary(config, settings, data)


def train_fold(config, folder: Path, data: dict, index: int, overwrite: bool, label: str) -> None:
    """Train on every image but ``index`` (inside_FOV: inside their FOV masks); resume an interrupted training,
    skip a finished one."""
    state = folder / STATE_FILE
    epochs_done = 0 if overwrite or not state.is_file() else json.loads(state.read_text())["epochs_done"]
    if epochs_done >= config.N_epochs:
        print(f"{label}: trained earlier ({epochs_done} epochs), testing", flush=True)
        return
    others = np.arange(len(data["ids"])) != index
    print(f"{label}: training on the other {np.count_nonzero(others)} images in {folder}/", flush=True)
    with cli.log_to(folder / "training.log" if config.train_nohup else None):
        fit(
            config,
            folder,
            data["images"][others],
            data["truths"][others, None],
            fov_masks=data["masks"][others, None],
            resume=epochs_done > 0,
            overwrite=epochs_done == 0,  # without a finished epoch, whatever the folder holds is incomplete
        )


def evaluate_fold(config, folder: Path, data: dict, index: int, results_folder: Path) -> dict:
    """Predict the held-out image with the fold's best/last weights and evaluate it on its FOV pixels."""
    weights = folder / f"{config.name}_{config.best_last}.weights.h5"
    model = load_trained_model(weights, config.test_precision)
    held_out = {key: value[index : index + 1] for key, value in data.items()}
    predictions, seconds = predict_test_set(config, model, held_out["images"], held_out["masks"])
    results = evaluate_predictions(held_out, predictions) | {
        "id": str(held_out["ids"][0]),
        "weights": str(weights),
        "seconds_per_image": seconds,
        "mode": prediction_mode(config),
    }
    write_png(results_folder / f"{results['id']}.png", comparison_picture(held_out, predictions))
    with atomic_path(folder / PREDICTION_FILE, suffix=".npy") as temp:
        np.save(temp, predictions[0])
    write_text(folder / RESULT_FILE, m.metrics_json(results))  # last: it marks the fold finished
    return results


def run_cross_dataset(config, settings, weights: Path, by_patches: bool = False) -> dict:
    """Test a model trained elsewhere (DRIVE) on every prepared STARE image; whole images unless ``by_patches``."""
    data = load_stare(config)
    model = load_trained_model(weights, config.test_precision)
    name = Path(weights).name.split(".")[0]
    out_dir = settings.results_folder / f"cross_dataset_{name}"
    check_writable(out_dir)
    test_config = config if by_patches else dataclasses.replace(config, whole_image=True)
    predictions, seconds = predict_test_set(test_config, model, data["images"], data["masks"])
    rows = []
    for index, image_id in enumerate(data["ids"]):
        masks = data["masks"][index]
        scores = m.evaluate(m.fov_pixels(data["truths"][index], masks), m.fov_pixels(predictions[index], masks))
        rows.append(scores | {"id": str(image_id)})
        write_png(out_dir / f"{image_id}.png", comparison_picture(data, predictions, index))
    summary = _table_summary(rows) | {
        "weights": str(weights),
        "images": len(rows),
        "seconds_per_image": seconds,
        "mode": prediction_mode(test_config),
        "pooled": evaluate_predictions(data, predictions),
    }
    _write_table(out_dir, "cross_dataset", rows, summary, f"weights {weights}")
    write_text(out_dir / "summary.json", m.metrics_json(summary))
    return write_summary(config, settings, data) | {"cross_dataset": summary}


def write_summary(config, settings, data: dict) -> dict:
    """Tables of the finished folds (``leave_one_out.csv``/``.md``), the human reference and any
    cross-dataset results, into the results folder; returns what ``summary.json`` holds."""
    finished = [i for i, image_id in enumerate(data["ids"]) if (fold_folder(config, image_id) / RESULT_FILE).is_file()]
    rows = [json.loads((fold_folder(config, data["ids"][i]) / RESULT_FILE).read_text()) for i in finished]
    summary = {"folds": len(rows), "images": len(data["ids"]), "second_observer": human_reference(data)}
    if rows:
        done = {key: value[finished] for key, value in data.items()}
        predictions = np.stack([np.load(fold_folder(config, image_id) / PREDICTION_FILE) for image_id in done["ids"]])
        summary |= _table_summary(rows) | {"pooled": evaluate_predictions(done, predictions)}
    cross = {
        path.parent.name: json.loads(path.read_text())
        for path in sorted(settings.results_folder.glob("cross_dataset_*/summary.json"))
    }
    summary["cross_dataset"] = cross
    _write_table(settings.results_folder, "leave_one_out", rows, summary, PUBLISHED_SUMMARY, _comparison(summary))
    write_text(settings.results_folder / "summary.json", m.metrics_json(summary))
    return summary


def _table_summary(rows: list[dict]) -> dict:
    """Mean and sample standard deviation (n - 1, as the published ± .0113) of the per-image AUC ROC."""
    auc = np.array([row["auc_roc"] for row in rows])
    return {
        "auc_roc_per_image": {row["id"]: row["auc_roc"] for row in rows},
        "auc_roc_mean": float(auc.mean()),
        "auc_roc_std": float(auc.std(ddof=1)) if len(auc) > 1 else None,
    }


def _short(value: float | None) -> str:
    """The published number style: .9805."""
    return "–" if value is None else f"{value:.4f}".removeprefix("0")


def _write_table(folder: Path, stem: str, rows: list[dict], summary: dict, note: str, extra: str = "") -> None:
    """``stem.csv`` (per image, then mean and std, with the published leave-one-out AUC beside) and
    ``stem.md``: the AUC table in the published README's format, ``note`` under it, then ``extra``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", *TABLE_COLUMNS, "published_leave_one_out_auc_roc"])
    for row in rows:
        writer.writerow([row["id"], *(f"{row[key]:.6f}" for key in TABLE_COLUMNS), PUBLISHED_AUC.get(row["id"], "")])
    if rows:
        values = np.array([[row[key] for key in TABLE_COLUMNS] for row in rows])
        spread = values.std(axis=0, ddof=1) if len(rows) > 1 else np.full(len(TABLE_COLUMNS), np.nan)
        writer.writerow(["mean", *(f"{v:.6f}" for v in values.mean(axis=0)), "0.9805"])
        writer.writerow(["std", *(f"{v:.6f}" for v in spread), "0.0113"])
    write_text(folder / f"{stem}.csv", buffer.getvalue())

    lines = ["| STARE image| AUC ROC|", "| ---------- |:------:|"]
    lines += [f"| {row['id']}.ppm | {_short(row['auc_roc'])} |" for row in rows]
    if rows:
        std = summary["auc_roc_std"]
        average = _short(summary["auc_roc_mean"]) + ("" if std is None else f" +- {_short(std)}")
        lines += ["", f"__AVERAGE:   {average}__", "", f"{len(rows)} of {summary['images']} images; {note}"]
    else:
        lines += ["", "No fold has finished yet."]
    write_text(folder / f"{stem}.md", "\n".join(lines) + "\n" + extra)


def _comparison(summary: dict) -> str:
    """The comparison table: the U-Net (leave-one-out, cross-dataset) beside the second observer, on FOV pixels."""
    lines = [
        "",
        "| STARE, FOV pixels | images | AUC ROC per image | AUC ROC pooled | accuracy | sensitivity | "
        "specificity | F1 |",
        "| --- | :---: | :---: | :---: | :---: | :---: | :---: | :---: |",
    ]

    def row(label, images, result, pooled):
        std = result.get("auc_roc_std")
        per_image = _short(result.get("auc_roc_mean")) + ("" if std is None else f" ± {_short(std)}")
        rates = " | ".join(_short(pooled[key]) for key in ("accuracy", "sensitivity", "specificity", "f1"))
        lines.append(f"| {label} | {images} | {per_image} | {_short(pooled.get('auc_roc'))} | {rates} |")

    if summary["folds"]:
        row("U-Net, leave-one-out", summary["folds"], summary, summary["pooled"])
    for name, cross in summary["cross_dataset"].items():
        mode = "whole image" if cross["mode"]["whole_image"] else "patches"
        row(f"U-Net trained on DRIVE ({name.removeprefix('cross_dataset_')}, {mode})", cross["images"], cross,
            cross["pooled"])
    row("second observer (vk) vs ground truth (ah)", summary["images"], {}, summary["second_observer"])
    return "\n".join(lines) + "\n"
