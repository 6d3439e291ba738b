"""The per-image table (DRIVE's per_image.csv, STARE's leave_one_out.csv): one writer, mean and sample std rows."""

import csv
import io

import numpy as np
import pytest

from lib import reports

COLUMNS = ["auc_roc", "auc_pr", "f1", "accuracy", "sensitivity", "specificity", "jaccard"]


def rows_of(values: np.ndarray, ids) -> list[dict]:
    pairs = zip(ids, values, strict=True)
    return [{"id": image_id, "pixels": 7} | dict(zip(COLUMNS, row, strict=True)) for image_id, row in pairs]


def test_the_table_has_each_image_then_mean_and_sample_std():
    values = np.random.default_rng(0).random((3, len(COLUMNS)))
    table = list(csv.reader(io.StringIO(reports.per_image_csv(rows_of(values, ["01", "02", "03"])))))
    assert table[0] == ["image", *COLUMNS]
    assert [row[0] for row in table[1:]] == ["01", "02", "03", "mean", "std"]
    numbers = np.array([[float(value) for value in row[1:]] for row in table[1:]])
    np.testing.assert_allclose(numbers[:3], values, atol=5e-7)
    np.testing.assert_allclose(numbers[3], values.mean(axis=0), atol=5e-7)
    np.testing.assert_allclose(numbers[4], values.std(axis=0, ddof=1), atol=5e-7)


def test_the_stare_table_has_the_same_columns_and_the_published_auc_beside():
    values = np.full((2, len(COLUMNS)), 0.5)
    text = reports.per_image_csv(rows_of(values, ["im0001", "im9999"]), reports.PUBLISHED_STARE_COLUMN)
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == ["image", *COLUMNS, "published_leave_one_out_auc_roc"]
    assert [row[-1] for row in table[1:]] == ["0.9709", "", "0.9805", "0.0113"]


def test_the_summary_holds_the_rows_mean_and_std_and_one_image_has_no_std():
    values = np.random.default_rng(1).random((2, len(COLUMNS)))
    summary = reports.per_image_summary(rows_of(values, ["01", "02"]))
    assert summary["per_image"][1] == {"id": "02"} | dict(zip(COLUMNS, values[1], strict=True))  # pixels left out
    assert summary["per_image_std"] == pytest.approx(dict(zip(COLUMNS, values.std(axis=0, ddof=1), strict=True)))
    single = reports.per_image_summary(rows_of(values[:1], ["01"]))
    assert single["per_image_std"] == dict.fromkeys(COLUMNS)
    assert reports.per_image_csv(rows_of(values[:1], ["01"])).splitlines()[-1] == "std," + ",".join(["nan"] * 7)
