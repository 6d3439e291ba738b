"""Segmentation metrics on field-of-view pixels, as the published ``run_testing.py`` computes them.

One correction: the published "Jaccard similarity score" was scikit-learn's old
``jaccard_similarity_score``, which for flat binary labels is the accuracy. Here ``jaccard`` is the
true Jaccard index (intersection over union of the vessel pixels).
"""

import json

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

THRESHOLD = 0.5  # the published threshold_confusion; a pixel is vessel when its probability is >= it


def fov_pixels(values: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The values of the pixels inside the FOV, image by image in row-major order (published ``pred_only_FOV``)."""
    if values.shape != masks.shape:
        raise ValueError(f"values {values.shape} and FOV masks {masks.shape} differ in shape")
    return values[masks > 0]


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Confusion matrix and the rates derived from it, for 0/1 truths and 0/1 predictions."""
    y_true, y_pred = _flat_binary(y_true, "y_true"), _flat_binary(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} values but y_pred has {y_pred.size}")
    tp = int(np.count_nonzero(y_true & y_pred))
    fp = int(np.count_nonzero(~y_true & y_pred))
    fn = int(np.count_nonzero(y_true & ~y_pred))
    tn = int(y_true.size - tp - fp - fn)
    return {
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "accuracy": _ratio(tp + tn, y_true.size),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "jaccard": _ratio(tp, tp + fp + fn),
    }


def evaluate(y_true: np.ndarray, y_score: np.ndarray, threshold: float = THRESHOLD) -> dict:
    """All published metrics for vessel probabilities ``y_score`` against 0/1 truths ``y_true``.

    ``auc_pr`` is the published area under the precision-recall curve (trapezoid rule over the
    curve); ``average_precision`` is scikit-learn's step-wise estimate, given beside it.
    """
    y_true = _flat_binary(y_true, "y_true")
    y_score = np.asarray(y_score, dtype=np.float64).ravel()
    if np.unique(y_true).size < 2:
        raise ValueError("the ground truth holds a single class; AUC needs vessel and background pixels")
    precision, recall, _ = precision_recall_curve(y_true, y_score)
    metrics = {
        "pixels": int(y_true.size),
        "auc_roc": float(roc_auc_score(y_true, y_score)),
        "auc_pr": float(np.trapezoid(precision[::-1], recall[::-1])),
        "average_precision": float(average_precision_score(y_true, y_score)),
        "threshold": threshold,
    }
    return metrics | binary_metrics(y_true, y_score >= threshold)


def roc_points(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of the ROC curve, for plotting."""
    fpr, tpr, _ = roc_curve(_flat_binary(y_true, "y_true"), np.ravel(y_score))
    return fpr, tpr


def pr_points(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision of the precision-recall curve, for plotting."""
    precision, recall, _ = precision_recall_curve(_flat_binary(y_true, "y_true"), np.ravel(y_score))
    return recall, precision


def performances_text(metrics: dict) -> str:
    """The published ``performances.txt`` layout, with the true Jaccard index and average precision added."""
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    return (
        f"Area under the ROC curve: {metrics['auc_roc']:.11f}\n"
        f"Area under Precision-Recall curve: {metrics['auc_pr']:.11f}\n"
        f"Average precision: {metrics['average_precision']:.11f}\n"
        f"Jaccard index (IoU of vessel pixels): {metrics['jaccard']:.11f}\n"
        f"F1 score (F-measure): {metrics['f1']:.11f}\n\n"
        f"Confusion matrix (threshold {metrics['threshold']}):[[{tn} {fp}]\n [{fn} {tp}]]\n"
        f"ACCURACY: {metrics['accuracy']:.11f}\n"
        f"SENSITIVITY: {metrics['sensitivity']:.11f}\n"
        f"SPECIFICITY: {metrics['specificity']:.11f}\n"
        f"PRECISION: {metrics['precision']:.11f}\n"
    )


def metrics_json(metrics: dict) -> str:
    return json.dumps(metrics, indent=2, sort_keys=True) + "\n"


def _flat_binary(values: np.ndarray, name: str) -> np.ndarray:
    flat = np.asarray(values).ravel()
    if flat.dtype != bool:
        if not np.isin(flat, (0, 1)).all():
            raise ValueError(f"{name} must hold only 0 and 1")
        flat = flat.astype(bool)
    return flat


def _ratio(numerator: int, denominator: int) -> float:
    return float(numerator / denominator) if denominator else 0.0
