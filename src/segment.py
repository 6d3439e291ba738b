"""Segment your own fundus photographs: any camera, size and format, with a trained U-Net.

Per photograph (``lib.photographs``): read it upright → the field of view → rescaled to the training data's FOV
diameter → the published preprocessing → the U-Net (``predict_image``) → probabilities mapped back to the
photograph's resolution → vessel measurements, the chosen PNGs and a summary row. The photographs flow through
``src.pipeline``, so that the network never waits for files; resuming, shards and settings: ``lib.run_folder``.
A bad file is one ``error:`` line and the others are still processed.
"""

import functools
from pathlib import Path

import numpy as np

from lib.errors import UserError
from lib.files import companion, expand, file_id, index_files, unique_files
from lib.html_report import Refresher, write_report
from lib.inference import Inference
from lib.photographs import (
    COLUMNS,
    METRICS,
    Options,
    Photograph,
    describe,
    describe_scale,
    finish_photograph,
    load_photograph,
)
from lib.run_folder import (
    REPORT,
    WEIGHTS_DIGEST,
    WEIGHTS_PATH,
    Shard,
    Summary,
    check_apart,
    plan_run,
    record_part,
    settings_difference,
    summary_files,
    summary_path,
    weights_digest,
    write_settings,
)
from src.pipeline import report, run_pipeline
from src.prediction import predict_image

SUMMARY_INTERVAL = 10.0  # s between rewrites of the summary during a run (and once at its end or interruption)


def settings_of(weights: Path, options: Options, masks: str | None, labels: str | None) -> dict:
    """What the results depend on, as recorded in the output folder's settings.json."""
    try:
        digest = weights_digest(weights)
    except OSError:  # missing or unreadable: the model loader says so in the project's words
        load_model(weights, options.inference)
        raise
    return {
        WEIGHTS_PATH: str(weights),
        WEIGHTS_DIGEST: digest,
        "prediction": options.inference.describe(),
        "scale": describe_scale(options),
        "threshold": options.threshold,
        "fov": "detected" if masks is None else "given masks",
        "labels": "given" if labels else "none",
        "outputs": ",".join(options.outputs),
    }


@functools.lru_cache(maxsize=1)
def load_model(weights: Path, inference: Inference):
    """The engine running the U-Net with ``weights``, loaded once per process (a process segmenting several
    folders reuses it). Which engine runs, run_prediction.py says first."""
    from src.engines import load_engine  # TensorFlow or ONNX Runtime loads only when there is something to segment

    return load_engine(weights, inference, quiet=True)


def find_images(specs: list[str]) -> tuple[list[Path], int]:
    """The photographs named by ``specs``, each file once, sorted by path; and how many specs named none."""
    failures, images = 0, []
    for spec in specs:
        try:
            images += expand(spec)
        except UserError as error:
            report(error)
            failures += 1
    return sorted(unique_files(images), key=str), failures


def name_owners(images: list[Path]) -> dict[str, Path]:
    """The photograph each output name belongs to: the first in sorted order of those with that name."""
    owners = {}
    for path in images:
        owners.setdefault(file_id(path), path)
    return owners


def segment(
    specs: list[str],
    out_dir: Path,
    weights: Path,
    options: Options,
    masks: str | None = None,
    labels: str | None = None,
    shard: Shard | None = None,
    overwrite: bool = False,
) -> int:
    """Segment the images named by ``specs`` (the ``shard``'s part of them) into ``out_dir``; returns how many
    inputs failed.

    A missing weights file, an empty --masks/--labels source, an output folder that cannot be written or holds
    results of other settings (unless ``overwrite``) stop everything before any prediction (UserError); a bad
    image is reported on one line and skipped. Photographs done by an earlier run are skipped unless ``overwrite``.
    """
    images, failures = find_images(specs)
    check_apart(out_dir, [*specs, masks, labels], images, weights)
    mask_index = None if masks is None else index_files(masks)
    label_index = None if labels is None else index_files(labels)
    if not images:
        return failures
    owners = name_owners(images)  # over every shard's images, so that all shards agree
    mine = images if shard is None else shard.select(images)
    part = "" if shard is None else f" (part {shard.index} of {shard.count} of {len(images)})"
    if not mine:
        print(f"no images to segment{part}")
        return failures
    make_folder(out_dir)
    settings = settings_of(weights, options, masks, labels)
    check_settings(out_dir, settings, overwrite)
    columns = COLUMNS + (METRICS if labels else ())
    report_refresher = Refresher(out_dir)
    summary = Summary(summary_path(out_dir, shard), columns, SUMMARY_INTERVAL, report_refresher)
    plan = plan_run(mine, owners, summary, out_dir, options.outputs, overwrite)
    for message in plan.refused:
        report(message)
    failures += len(plan.refused)
    todo, done_before = plan.todo, plan.done_before
    if not todo:
        if not (out_dir / REPORT).is_file():  # a folder of an earlier version, or its report deleted
            write_report(out_dir)
        print(f"all {done_before} images{part} were segmented into {out_dir}/ before; --overwrite redoes them")
        return failures
    write_settings(out_dir, settings)  # also refuses an unwritable folder before any prediction
    record_part(out_dir, shard, images, settings)
    model = load_model(weights, options.inference)
    skipped = f"; {done_before} done before are skipped" if done_before else ""
    print(
        f"segmenting {len(todo)} images{part} with {weights}: {describe(options)}; results in {out_dir}/{skipped}",
        flush=True,
    )
    segmented = []

    def record(row: dict) -> None:
        summary.add(row)
        segmented.append(row)

    def load(path: Path) -> Photograph:
        return load_photograph(
            path, companion(mask_index, path, "mask", masks), companion(label_index, path, "label", labels), options
        )

    def predict(photo: Photograph) -> np.ndarray:
        return predict_image(model, photo.network_input, options.inference, photo.network_fov)

    def finish(photo: Photograph, probability: np.ndarray) -> dict:
        return finish_photograph(photo, probability, options, out_dir)

    try:
        failures += run_pipeline(todo, load, predict, finish, record)
    finally:
        if summary.rows:
            summary.write()
            report_refresher.finish()
    where = f"summary in {summary.path}" if summary.rows else "no summary written"
    print(f"{len(segmented)} of {len(todo)} images segmented{part}; {where}")
    if labels:
        print_means(summary)
    return failures


def make_folder(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{out_dir}: cannot create the output folder ({error.strerror}); choose another") from None


def check_settings(out_dir: Path, settings: dict, overwrite: bool) -> None:
    """Refuse a folder of results made with other settings; with ``overwrite`` drop their summaries (the old
    rows would mix two settings in one summary)."""
    difference = settings_difference(out_dir, settings)
    if difference and not overwrite:
        raise UserError(
            f"{out_dir}: holds results made with other settings ({difference}); choose another output folder "
            "(-o), or add --overwrite to redo its images with these settings"
        )
    if difference:
        for path in summary_files(out_dir):
            path.unlink()


def print_means(summary: Summary) -> None:
    """The mean of each metric over the photographs scored against a label."""
    scored = [row for row in summary.rows.values() if row.get(METRICS[0])]
    if scored:
        means = {name: np.mean([float(row[name]) for row in scored]) for name in METRICS}
        print(f"mean over {len(scored)} images: " + "  ".join(f"{name} {value:.4f}" for name, value in means.items()))
