"""Segment the vessels of your own fundus photographs (any camera, size and format) with a trained U-Net."""

import argparse
import sys
from pathlib import Path

from lib.experiment import Experiment
from lib.inference import PUBLISHED_PATCH_HW, Inference
from lib.metrics import THRESHOLD
from lib.rescale import DRIVE_FOV_DIAMETER, MAX_UPSCALE, RESCALE_TOLERANCE
from lib.run_folder import OUTPUTS, REPORT, SETTINGS, SUMMARY, Shard, merge_summaries, merging, parse_outputs, writing
from src.cli import Parser, add_engine_option, add_model_options, run_cli, weights_from

EPILOG = f"""\
Writes per image <id>_probability.png (8-bit), <id>_vessels.png (probability >= threshold),
<id>_overlay.jpg (vessels tinted on the photograph) and <id>_fov.png (the FOV used), as
--outputs chooses, a small <id>_thumbnail.jpg, and one row in {SUMMARY} (size, FOV, scale, vessel
measurements, reliability and quality (good, or check: and why; docs/quality.md), a warning for
an implausible FOV); <id> is the file name before its first dot. Outside the FOV everything is 0.
{REPORT} shows every row with its thumbnail in a browser, flagged photographs first. A rerun
into the same folder skips the images already done; {SETTINGS} records the settings, and other
settings are refused unless --overwrite.

examples:
  python run_prediction.py photos/ -o vessels/
  python run_prediction.py "photos/*.jpg" --masks masks/ --flips
  python run_prediction.py STARE/stare-images -o stare/ --labels STARE/labels-ah
  python run_prediction.py photos/ -o vessels/ --shard 2/8     # the 2nd of 8 parts (a job array)
  python run_prediction.py --merge -o vessels/                 # the parts' rows into {SUMMARY}
"""


def bounded(kind, low, high):
    """An argparse type: ``kind`` within [low, high]."""

    def convert(text):
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {text}")
        return value

    return convert


def parser() -> argparse.ArgumentParser:
    result = Parser(description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument(
        "images",
        nargs="*",
        help="image files, folders or quoted glob patterns: .jpg .jpeg .png .tif .tiff .gif .ppm .ppm.gz",
    )
    result.add_argument("-o", "--output", type=Path, default=Path("predictions"), help="output folder (./predictions)")
    add_model_options(result, "used")
    result.add_argument(
        "--masks",
        help="FOV masks (white inside), a folder or quoted pattern, matched by the name before the first dot "
        "(a trailing _mask ignored; DRIVE's 01_test_mask matches 01_test); default: detect the FOV",
    )
    result.add_argument(
        "--labels",
        help="manual vessel labels, a folder or quoted pattern, matched the same way (im0001.ah.ppm.gz labels "
        "im0001.ppm.gz, 01_manual1.gif labels 01_test.tif, Image_01L_1stHO.png labels Image_01L.jpg): adds AUC "
        "ROC, F1, accuracy, sensitivity and specificity inside the FOV",
    )
    scale = result.add_mutually_exclusive_group()
    scale.add_argument(
        "--fov-diameter",
        type=bounded(float, PUBLISHED_PATCH_HW[0], 10_000),
        default=DRIVE_FOV_DIAMETER,
        help=f"rescale each image so its FOV is this many px across (default {DRIVE_FOV_DIAMETER}, DRIVE's); "
        f"within {RESCALE_TOLERANCE:.0%}% the image is left alone; enlarging more than {MAX_UPSCALE:g}x is refused",
    )
    scale.add_argument("--no-rescale", action="store_true", help="predict at each photograph's own scale")
    mode = result.add_mutually_exclusive_group()
    mode.add_argument(
        "--stride",
        type=bounded(int, 1, PUBLISHED_PATCH_HW[0]),
        help="average overlapping {}x{} patches at this stride (published, slower) instead of predicting the whole "
        "image at once".format(*PUBLISHED_PATCH_HW),
    )
    mode.add_argument("--flips", action="store_true", help="average the image's 4 flips (whole image, 4x slower)")
    result.add_argument(
        "--threshold",
        type=bounded(float, 0, 1),
        help="vessel when the probability is at least this (default: the threshold stored with the --model, "
        f"chosen on its validation patches; {THRESHOLD}, the published one, for a model without one or --weights)",
    )
    result.add_argument(
        "--outputs",
        default=",".join(OUTPUTS),
        help=f"the files written per image, comma-separated (default all: {','.join(OUTPUTS)})",
    )
    add_engine_option(result)
    result.add_argument("--shard", help="K/N: segment only the K-th of N parts of the sorted images (K from 1)")
    result.add_argument(
        "--overwrite",
        action="store_true",
        help="redo images done by an earlier run, and accept other settings than the folder's",
    )
    result.add_argument("--merge", action="store_true", help=f"merge the summary parts in -o into {SUMMARY}; no images")
    return result


def prediction_threshold(args) -> tuple[float, str]:
    """The threshold to use and why: --threshold, else the model's stored one, else the published 0.5."""
    if args.threshold is not None:
        return args.threshold, "given with --threshold"
    if args.weights:
        return THRESHOLD, "the published one (--weights come without a stored threshold; --threshold sets one)"
    stored = Experiment.in_folder(args.model).read_threshold()
    if stored is None:
        return THRESHOLD, f"the published one ({args.model}/ stores no threshold; --threshold sets one)"
    return stored["threshold"], f"stored with the model in {args.model}/, chosen on its validation patches"


def main(argv=None) -> int:
    """Run the segmentation (or merge the parts); the exit status is 1 when any input failed."""
    arguments = parser()
    args = arguments.parse_args(argv)
    if args.merge:
        if args.images:
            arguments.error("--merge takes no images: it merges the summary parts already in -o")
        from lib.html_report import write_report  # it reads the measurements' columns (skimage): not for --help

        with merging(args.output):
            summary, count, missing = merge_summaries(args.output)
            write_report(args.output)
        print(f"{count} rows merged into {summary}")
        if missing:  # exit 1 with one error line, as every incomplete result
            print(f"error: {summary} is incomplete: {'; '.join(missing)}; run those parts (--shard K/N), then --merge "
                  "again", file=sys.stderr)  # fmt: skip
        return 1 if missing else 0
    if not args.images:
        arguments.error("the following arguments are required: images (or --merge)")
    outputs = parse_outputs(args.outputs)
    shard = None if args.shard is None else Shard.parse(args.shard)
    with writing(args.output, shard):  # a second run writing the same summary is refused before TensorFlow loads
        return segment_as_told(args, outputs, shard)


def segment_as_told(args, outputs: tuple[str, ...], shard: Shard | None) -> int:
    """Segment the images as ``args`` say, into the output folder held for this run; 1 when any input failed."""
    from lib.photographs import Options
    from src.engines import announce  # imported once the arguments are known to be valid
    from src.segment import segment

    engine = args.engine or "auto"
    if args.stride:
        stride_hw = (args.stride, args.stride)
        inference = Inference(mode="patches", patch_hw=PUBLISHED_PATCH_HW, stride_hw=stride_hw, engine=engine)
    else:
        inference = Inference(mode="flips" if args.flips else "whole", patch_hw=PUBLISHED_PATCH_HW, engine=engine)
    print(announce(inference), flush=True)
    fov_diameter = None if args.no_rescale else args.fov_diameter
    threshold, why = prediction_threshold(args)
    print(f"threshold {threshold:.4f}: {why}", flush=True)
    options = Options(inference, fov_diameter=fov_diameter, threshold=threshold, outputs=outputs)
    weights = weights_from(args)
    failures = segment(args.images, args.output, weights, options, args.masks, args.labels, shard, args.overwrite)
    return 1 if failures else 0


if __name__ == "__main__":
    run_cli(lambda: sys.exit(main()))
