"""benchmarks/compare_measurements.py: rows paired by id across naming schemes, means and Pearson r per column."""

import math

import pytest

from benchmarks.compare_measurements import compare, paired_rows
from lib.atomic import write_csv
from lib.measurements import COLUMNS


def rows(names, values):
    """One row per name, every measurement column holding its value."""
    pairs = zip(names, values, strict=True)
    return [{"image": name} | {column: str(value) for column in COLUMNS} for name, value in pairs]


def test_rows_pair_by_id_and_columns_compare(tmp_path):
    write_csv(tmp_path / "a.csv", rows(["l/01_manual1.gif", "l/02_manual1.gif", "l/03_manual1.gif"], [1, 2, 4]),
              ("image", *COLUMNS))  # fmt: skip
    predicted = rows(["p/03_test.tif", "p/01_test.tif", "p/02_test.tif", "p/09_test.tif"], [9, 3, 5, 100])
    predicted[1]["tortuosity"] = "nan"
    write_csv(tmp_path / "b.csv", predicted, ("image", *COLUMNS))
    pairs = paired_rows(tmp_path / "a.csv", tmp_path / "b.csv")
    assert [(a["image"][2:4], b["image"]) for a, b in pairs] == [
        ("01", "p/01_test.tif"), ("02", "p/02_test.tif"), ("03", "p/03_test.tif")
    ]  # fmt: skip
    by_column = {row["column"]: row for row in compare(pairs)}
    assert by_column["vessel_density"]["first"] == pytest.approx(7 / 3)
    assert by_column["vessel_density"]["second"] == pytest.approx(17 / 3)
    assert by_column["vessel_density"]["pearson"] == pytest.approx(1.0)  # 2x + 1
    assert by_column["tortuosity"]["images"] == 2 and by_column["tortuosity"]["pearson"] == pytest.approx(1.0)
    constant = compare([(a, b | {"mean_width": "1"}) for a, b in pairs])
    assert math.isnan({row["column"]: row for row in constant}["mean_width"]["pearson"])
