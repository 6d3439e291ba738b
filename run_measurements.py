"""Measure binary vessel maps (manual labels, run_prediction.py's <id>_vessels.png) into one CSV row each."""

import argparse
import math
import sys
from pathlib import Path

from lib.atomic import write_csv
from lib.errors import UserError
from lib.files import companion, expand, index_files, unique_files
from lib.folders import check_own_csv, refuse_overlap
from lib.imageio import read_binary
from lib.progress import progress
from src.cli import Parser, run_cli

EPILOG = """\
Writes one CSV row per map: image (its path), vessel_density, skeleton_length, mean_width,
branch_points, end_points, tortuosity, fractal_dimension, measured inside the FOV in pixels of the
map; docs/measurements.md defines each. A map's brighter gray level is vessel; a column with
nothing to measure (the mean width of an empty map, ...) is nan. A bad file is one error: line,
the others are still measured, and the exit status is 1. The printed means skip nan values.

examples:
  python run_measurements.py DRIVE/test/1st_manual --masks DRIVE/test/mask -o drive.csv
  python run_measurements.py "predictions/*_vessels.png" --masks "predictions/*_fov.png"
"""


def parser() -> argparse.ArgumentParser:
    result = Parser(description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument(
        "maps",
        nargs="+",
        help="binary vessel maps: files, folders or quoted glob patterns (.png .gif .tif .jpg .ppm ...)",
    )
    result.add_argument(
        "--masks",
        help="FOV masks (white inside), a folder or quoted pattern, matched by the name before the first dot "
        "(a trailing _mask, _vessels or _fov ignored; DRIVE's NN_manual1 matches NN_test_mask); "
        "default: the whole map",
    )
    result.add_argument(
        "-o", "--output", type=Path, default=Path("measurements.csv"), help="the CSV (./measurements.csv)"
    )
    return result


def read_map(path: Path, mask_path: Path | None):
    """A vessel map and its FOV (None without a mask) as bool arrays; UserError on bad input."""
    vessels = read_binary(path, "a vessel map", "threshold it first (run_prediction.py's <id>_vessels.png is binary)")
    if mask_path is None:
        return vessels > 0, None
    fov = read_binary(mask_path)
    if fov.shape != vessels.shape:
        raise UserError(
            f"{mask_path}: the mask is {fov.shape[1]}x{fov.shape[0]} px but {path} is "
            f"{vessels.shape[1]}x{vessels.shape[0]}; use the mask made for this map"
        )
    if not fov.any():
        raise UserError(f"{mask_path}: the mask is all black; white must mark the field of view")
    return vessels > 0, fov > 0


def main(argv=None) -> int:
    """Measure every map; the exit status is 1 when any input failed."""
    args = parser().parse_args(argv)
    # Imported here so that --help stays instant: lib.measurements imports scikit-image.
    from lib.measurements import COLUMNS, as_text, measure_vessels

    failures, maps = 0, []
    for spec in args.maps:
        try:
            maps += expand(spec)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            failures += 1
    maps = unique_files(maps)
    masks = None if args.masks is None else index_files(args.masks)
    given = [*maps, *(path for paths in (masks or {}).values() for path in paths)]
    refuse_overlap(args.output, [("the input", path) for path in given], "-o", "write the CSV to a file of its own")
    check_own_csv(args.output, ("image", *COLUMNS), "-o", "run_measurements.py")
    measured = []
    for path in progress(maps, "measured"):
        try:
            mask_path = companion(masks, path, "mask", args.masks)
            measured.append((path, measure_vessels(*read_map(path, mask_path))))
        except UserError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            failures += 1
    if not measured:
        print(f"0 of {len(maps)} maps measured; {args.output} not written")
        return 1
    rows = [{"image": str(path)} | as_text(values) for path, values in measured]
    write_csv(args.output, rows, ("image", *COLUMNS))
    means = {name: mean_of([values[name] for _, values in measured]) for name in COLUMNS}
    print(f"{len(measured)} of {len(maps)} maps measured; results in {args.output}")
    print(f"mean over {len(measured)} maps: " + "  ".join(f"{name} {value:.4f}" for name, value in means.items()))
    return 1 if failures else 0


def mean_of(values: list[float]) -> float:
    """The mean of the values that are not NaN (NaN when none is)."""
    defined = [value for value in values if not math.isnan(value)]
    return sum(defined) / len(defined) if defined else math.nan


if __name__ == "__main__":
    run_cli(lambda: sys.exit(main()))
