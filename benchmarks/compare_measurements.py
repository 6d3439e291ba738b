"""Vessel measurements of two sets of maps side by side: each column's mean and its Pearson correlation across
the photographs, paired by id (DRIVE's 01_manual1 and 01_test are both 01).

    python -m benchmarks.compare_measurements REFERENCE.csv OTHER.csv [--names "manual labels" "predicted"]

Either CSV may be run_measurements.py's output or run_prediction.py's summary.csv. How far the measurements of
predicted maps can be trusted: the means say how biased they are, the correlation whether they rank the
photographs as the reference does. A row with nan in a column is left out of that column.
"""

import argparse
import math
from pathlib import Path

import numpy as np

from benchmarks import common
from lib.files import pairing_key
from lib.measurements import COLUMNS
from lib.textfiles import read_csv


def paired_rows(first: Path, second: Path) -> list[tuple[dict, dict]]:
    """The rows of both files whose images pair, in the first file's order."""
    others = {pairing_key(Path(row["image"])): row for row in read_csv(second)}
    pairs = [(row, others.get(pairing_key(Path(row["image"])))) for row in read_csv(first)]
    return [(row, other) for row, other in pairs if other is not None]


def compare(pairs: list[tuple[dict, dict]]) -> list[dict]:
    """Per column: both means and the Pearson correlation over the pairs where both values are defined."""
    rows = []
    for column in COLUMNS:
        values = np.array([(float(a[column]), float(b[column])) for a, b in pairs], dtype=float)
        values = values[~np.isnan(values).any(axis=1)]
        defined = len(values) > 1 and values.std(axis=0).all()
        correlation = float(np.corrcoef(values.T)[0, 1]) if defined else math.nan
        rows.append({"column": column, "first": values[:, 0].mean(), "second": values[:, 1].mean(),
                     "pearson": correlation, "images": len(values)})  # fmt: skip
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("--names", nargs=2, default=("reference", "other"), help="the two columns' headings")
    args = parser.parse_args()
    pairs = paired_rows(args.reference, args.other)
    if not pairs:
        raise SystemExit(f"error: no image of {args.reference} pairs with one of {args.other}; check the files")
    print(f"{len(pairs)} photographs paired\n")
    common.print_table(
        [
            ("column", "measurement", "s"),
            ("first", f"mean, {args.names[0]}", ".4f"),
            ("second", f"mean, {args.names[1]}", ".4f"),
            ("pearson", "Pearson r", ".3f"),
            ("images", "images", "d"),
        ],
        compare(pairs),
    )


if __name__ == "__main__":
    main()
