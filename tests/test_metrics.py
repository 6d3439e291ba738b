"""The evaluation against scikit-learn and the published run_testing.py computations."""

import json

import numpy as np
import pytest
from sklearn import metrics as sk

from lib import metrics as m
from lib.published import auc_pr, confusion_threshold, pred_only_FOV


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    y_true = (rng.random(5000) < 0.15).astype(np.uint8)
    y_score = np.clip(0.35 * y_true + rng.random(5000) * 0.7, 0, 1)
    return y_true, y_score


def test_evaluate_equals_scikit_learn(scored):
    y_true, y_score = scored
    results = m.evaluate(y_true, y_score).metrics
    y_pred = (y_score >= 0.5).astype(int)
    tn, fp, fn, tp = sk.confusion_matrix(y_true, y_pred).ravel()
    assert results["confusion_matrix"] == [[tn, fp], [fn, tp]]
    assert results["pixels"] == 5000
    assert results["auc_roc"] == pytest.approx(sk.roc_auc_score(y_true, y_score), abs=1e-12)
    assert results["average_precision"] == pytest.approx(sk.average_precision_score(y_true, y_score), abs=1e-12)
    assert results["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred), abs=1e-12)
    assert results["sensitivity"] == pytest.approx(sk.recall_score(y_true, y_pred), abs=1e-12)
    assert results["specificity"] == pytest.approx(sk.recall_score(y_true, y_pred, pos_label=0), abs=1e-12)
    assert results["precision"] == pytest.approx(sk.precision_score(y_true, y_pred), abs=1e-12)
    assert results["f1"] == pytest.approx(sk.f1_score(y_true, y_pred), abs=1e-12)
    assert results["jaccard"] == pytest.approx(sk.jaccard_score(y_true, y_pred), abs=1e-12)
    assert results["threshold"] == 0.5


def test_auc_pr_is_the_published_trapezoid_over_the_flipped_curve(scored):
    y_true, y_score = scored
    assert m.evaluate(y_true, y_score).metrics["auc_pr"] == pytest.approx(auc_pr(y_true, y_score), abs=1e-15)


def test_threshold_is_greater_or_equal_half():
    y_true = np.array([0, 1, 0, 1, 1, 0])
    y_score = np.array([0.5, 0.5, 0.49999, 0.9, 0.1, 0.2])
    results = m.evaluate(y_true, y_score).metrics
    np.testing.assert_array_equal(confusion_threshold(y_score), [1, 1, 0, 1, 0, 0])
    # vessel predicted: 0.5 (false positive), 0.5 and 0.9 (true positives); 0.1 missed
    assert results["confusion_matrix"] == [[2, 1], [1, 2]]


def test_jaccard_is_the_iou_not_the_accuracy():
    y_true = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    y_pred = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0])
    results = m.binary_metrics(y_true, y_pred)
    assert results["jaccard"] == pytest.approx(2 / 4)
    assert results["accuracy"] == pytest.approx(8 / 10)
    assert results["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert results["confusion_matrix"] == [[6, 1], [1, 2]]


def test_binary_metrics_without_positives_do_not_divide_by_zero():
    results = m.binary_metrics(np.zeros(4, dtype=int), np.zeros(4, dtype=int))
    assert results["accuracy"] == 1.0
    assert results["sensitivity"] == results["precision"] == results["f1"] == results["jaccard"] == 0.0


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="only 0 and 1"):
        m.binary_metrics(np.array([0, 2]), np.array([0, 1]))
    with pytest.raises(ValueError, match="values"):
        m.binary_metrics(np.array([0, 1, 1]), np.array([0, 1]))
    with pytest.raises(ValueError, match="single class"):
        m.evaluate(np.zeros(10, dtype=int), np.linspace(0, 1, 10))


def test_fov_pixels_selects_row_major_image_by_image():
    rng = np.random.default_rng(1)
    values = rng.random((3, 7, 9))
    masks = (rng.random((3, 7, 9)) < 0.6).astype(np.uint8) * 255
    expected = [values[i, y, x] for i in range(3) for y in range(7) for x in range(9) if masks[i, y, x] > 0]
    np.testing.assert_array_equal(m.fov_pixels(values, masks), expected)


def test_fov_pixels_pairs_truth_and_score_as_the_published_pred_only_fov():
    """The published loop walks each image column by column; the pixels and their (truth, score) pairs are
    the same, only their order within an image differs, which changes no metric."""
    rng = np.random.default_rng(2)
    scores = rng.random((3, 1, 11, 13))
    truths = (rng.random((3, 1, 11, 13)) < 0.2).astype(np.uint8)
    masks = (rng.random((3, 1, 11, 13)) < 0.7).astype(np.uint8) * 255
    published_scores, published_truths = pred_only_FOV(scores, truths, masks)
    ours_scores, ours_truths = m.fov_pixels(scores, masks), m.fov_pixels(truths, masks)
    assert ours_scores.shape == (len(published_scores),)
    # the same pixels, image by image
    start = 0
    for image in range(3):
        count = int((masks[image] > 0).sum())
        block = slice(start, start + count)
        mine = sorted(zip(ours_scores[block], ours_truths[block], strict=True))
        theirs = sorted(zip(published_scores[block, 0], published_truths[block, 0], strict=True))
        assert mine == theirs
        start += count
    # column-major order within an image: transposing the planes gives the published order exactly
    np.testing.assert_array_equal(
        m.fov_pixels(scores.transpose(0, 1, 3, 2), masks.transpose(0, 1, 3, 2)), published_scores[:, 0]
    )
    # and every metric is the same
    theirs = m.evaluate(published_truths[:, 0], published_scores[:, 0]).metrics
    assert m.evaluate(ours_truths, ours_scores).metrics == theirs


def test_fov_pixels_checks_shapes():
    with pytest.raises(ValueError, match="differ"):
        m.fov_pixels(np.zeros((2, 3, 3)), np.zeros((2, 3, 4)))


def test_one_evaluation_gives_metrics_and_curves_from_one_sort(scored, monkeypatch):
    y_true, y_score = scored
    sorts = []
    counts = m.threshold_counts
    monkeypatch.setattr(m, "threshold_counts", lambda *args: sorts.append(1) or counts(*args))
    evaluation = m.evaluate(y_true, y_score)
    assert len(sorts) == 1
    np.testing.assert_array_equal(evaluation.roc, m.roc_points(y_true, y_score))
    np.testing.assert_array_equal(evaluation.pr, m.pr_points(y_true, y_score))
    assert evaluation.metrics["auc_roc"] == pytest.approx(sk.roc_auc_score(y_true, y_score), abs=1e-12)


def test_evaluate_fov_scores_only_the_pixels_inside_the_masks():
    rng = np.random.default_rng(3)
    truths, scores = rng.integers(0, 2, (2, 20, 30)), rng.random((2, 20, 30))
    masks = np.zeros((2, 20, 30), dtype=np.uint8)
    masks[:, 5:15, 4:25] = 255
    scores_outside_changed = np.where(masks > 0, scores, 1 - scores)
    inside = m.evaluate_fov(truths, scores, masks).metrics
    assert inside == m.evaluate_fov(truths, scores_outside_changed, masks).metrics
    assert inside == m.evaluate(truths[masks > 0], scores[masks > 0]).metrics
    assert inside["pixels"] == 2 * 10 * 21


def test_curves_for_plotting(scored):
    y_true, y_score = scored
    fpr, tpr = m.roc_points(y_true, y_score)
    assert np.trapezoid(tpr, fpr) == pytest.approx(sk.roc_auc_score(y_true, y_score))
    recall, precision = m.pr_points(y_true, y_score)
    assert recall[0] == 1.0 and recall[-1] == 0.0
    assert len(recall) == len(precision)


PUBLISHED_LINES = (
    "Area under the ROC curve: ",
    "Area under Precision-Recall curve: ",
    "F1 score (F-measure): ",
    "Confusion matrix",
    "ACCURACY: ",
    "SENSITIVITY: ",
    "SPECIFICITY: ",
    "PRECISION: ",
)


def test_performances_text_has_the_published_lines(scored):
    y_true, y_score = scored
    results = m.evaluate(y_true, y_score).metrics
    text = m.performances_text(results)
    lines = text.splitlines()
    for prefix in PUBLISHED_LINES:
        assert sum(line.startswith(prefix) for line in lines) == 1, prefix
    # published order
    positions = [next(i for i, line in enumerate(lines) if line.startswith(prefix)) for prefix in PUBLISHED_LINES]
    assert positions == sorted(positions)
    value = next(line for line in lines if line.startswith("Area under the ROC curve: ")).split(": ")[1]
    assert float(value) == pytest.approx(results["auc_roc"], abs=1e-11)
    assert float(next(line for line in lines if line.startswith("ACCURACY: ")).split()[1]) == pytest.approx(
        results["accuracy"], abs=1e-11
    )
    (tn, fp), (fn, tp) = results["confusion_matrix"]
    confusion = text[text.index("Confusion matrix") :]
    numbers = [
        int(n)
        for n in confusion[confusion.index("[[") : confusion.index("]]")].replace("[", " ").replace("]", " ").split()
    ]
    assert numbers == [tn, fp, fn, tp]
    # the published "Jaccard similarity score" was the accuracy; it is not reported under that name
    assert "Jaccard similarity score" not in text


def test_metrics_json_round_trips(scored):
    results = m.evaluate(*scored).metrics
    loaded = json.loads(m.metrics_json(results))
    assert loaded["auc_roc"] == results["auc_roc"] and loaded["confusion_matrix"] == results["confusion_matrix"]


def test_rates_reproduce_the_published_performances_from_its_confusion_matrix():
    """The published DRIVE performances.txt: confusion matrix [[3895256 65238] [134513 443136]]."""
    (tn, fp), (fn, tp) = (3895256, 65238), (134513, 443136)
    y_true = np.repeat([0, 0, 1, 1], [tn, fp, fn, tp]).astype(bool)
    y_pred = np.repeat([0, 1, 0, 1], [tn, fp, fn, tp]).astype(bool)
    results = m.binary_metrics(y_true, y_pred)
    assert results["confusion_matrix"] == [[tn, fp], [fn, tp]]
    assert results["accuracy"] == pytest.approx(0.955983978469, abs=1e-11)
    assert results["sensitivity"] == pytest.approx(0.767137136912, abs=1e-11)
    assert results["specificity"] == pytest.approx(0.98352781244, abs=1e-10)
    assert results["precision"] == pytest.approx(0.8716732169622, abs=1e-12)
    assert results["f1"] == pytest.approx(0.816071114516, abs=1e-11)
    # the published "Jaccard similarity score: 0.955983978469" was the accuracy; the IoU is much lower
    assert results["jaccard"] == pytest.approx(tp / (tp + fp + fn))
    assert results["jaccard"] < 0.7


def test_each_image_is_evaluated_on_its_own_fov_pixels():
    rng = np.random.default_rng(3)
    truths = (rng.random((3, 12, 10)) < 0.3).astype(np.uint8)
    scores = np.clip(truths * 0.4 + rng.random((3, 12, 10)) * 0.7, 0, 1)
    masks = (rng.random((3, 12, 10)) < 0.8).astype(np.uint8)
    rows = m.evaluate_each_image(truths, scores, masks, ["01", "02", "03"])
    assert [row["id"] for row in rows] == ["01", "02", "03"]
    for row, truth, score, mask in zip(rows, truths, scores, masks, strict=True):
        assert row["auc_roc"] == pytest.approx(sk.roc_auc_score(truth[mask > 0], score[mask > 0]), abs=1e-12)
        assert row["pixels"] == np.count_nonzero(mask)
