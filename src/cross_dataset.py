"""A model trained elsewhere (DRIVE) tested on every prepared STARE image: the zero-shot row of the STARE tables."""

import dataclasses
from pathlib import Path

from lib import metrics as m
from lib import reports
from lib.atomic import write_text
from lib.experiment import CrossDatasetResults
from lib.imageio import write_png
from lib.stare import load_stare
from src.engines import load_engine
from src.testing import check_writable, comparison_picture, evaluate_test_set, predict_images


def run_cross_dataset(config, settings, weights: Path, by_patches: bool = False) -> dict:
    """Test ``weights`` on every STARE image, whole images unless ``by_patches`` (then as [testing settings]
    says); per-image table, pooled metrics and pictures in ``<results_folder>/cross_dataset_<weights>/``."""
    data = load_stare(config)
    inference = config.testing.inference
    if not by_patches:
        inference = dataclasses.replace(inference, mode="whole")
    results = CrossDatasetResults.of_weights(settings.results_folder, weights)
    check_writable(results.folder)
    model = load_engine(weights, inference)
    predictions, seconds = predict_images(model, data.images, inference, data.masks)
    rows = m.evaluate_each_image(data.truths, predictions, data.masks, data.ids)
    for index, image_id in enumerate(data.ids):
        write_png(results.picture(image_id), comparison_picture(data, predictions, index))
    pooled = evaluate_test_set(data, predictions).metrics
    summary = reports.auc_summary(rows) | {
        "weights": str(weights),
        "images": len(rows),
        "seconds_per_image": seconds,
        "mode": inference.record(),
        "second_observer": pooled.pop("second_observer"),
        "pooled": pooled,
    }
    write_text(results.table, reports.per_image_csv(rows, reports.PUBLISHED_STARE_COLUMN))
    write_text(results.markdown, reports.stare_auc_markdown(rows, summary, f"weights {weights}"))
    write_text(results.summary, m.metrics_json(summary))
    return summary
