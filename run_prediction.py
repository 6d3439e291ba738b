"""Segment the vessels of your own fundus photographs (any camera, size and format) with a trained U-Net."""

import argparse
import sys
from pathlib import Path

from lib.experiment import Experiment
from lib.inference import PUBLISHED_PATCH_HW, Inference
from lib.metrics import THRESHOLD
from lib.rendering import SUMMARY
from lib.rescale import DRIVE_FOV_DIAMETER, RESCALE_TOLERANCE
from src.cli import run_cli

REPO = Path(__file__).resolve().parent
EPILOG = f"""\
Writes per image <id>_probability.png (8-bit), <id>_vessels.png (probability >= threshold),
<id>_overlay.png (vessels tinted on the photograph) and <id>_fov.png (the FOV used), and
{SUMMARY}; <id> is the file name before its first dot. Outside the FOV everything is 0.

examples:
  python run_prediction.py photos/ -o vessels/
  python run_prediction.py "photos/*.jpg" --masks masks/ --flips
  python run_prediction.py STARE/stare-images -o stare/ --labels STARE/labels-ah
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
    result = argparse.ArgumentParser(
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    result.add_argument(
        "images",
        nargs="+",
        help="image files, folders or quoted glob patterns: .jpg .jpeg .png .tif .tiff .gif .ppm .ppm.gz",
    )
    result.add_argument("-o", "--output", type=Path, default=Path("predictions"), help="output folder (./predictions)")
    result.add_argument(
        "--model",
        type=Path,
        default=REPO / "test",
        help="experiment folder whose <name>_best.weights.h5 is used (default: the shipped reference model, test/)",
    )
    result.add_argument(
        "--weights",
        type=Path,
        help="a weights file instead: this project's .weights.h5 or the published Keras-1 test_best_weights.h5",
    )
    result.add_argument(
        "--masks",
        help="FOV masks (white inside), a folder or quoted pattern, matched by the name before the first dot "
        "(a trailing _mask ignored); default: detect the FOV",
    )
    result.add_argument(
        "--labels",
        help="manual vessel labels, a folder or quoted pattern, matched the same way (im0001.ah.ppm.gz labels "
        "im0001.ppm.gz): adds AUC ROC, F1, accuracy, sensitivity and specificity inside the FOV",
    )
    scale = result.add_mutually_exclusive_group()
    scale.add_argument(
        "--fov-diameter",
        type=bounded(float, PUBLISHED_PATCH_HW[0], 10_000),
        default=DRIVE_FOV_DIAMETER,
        help=f"rescale each image so its FOV is this many px across (default {DRIVE_FOV_DIAMETER}, DRIVE's); "
        f"within {RESCALE_TOLERANCE:.0%}% the image is left alone",
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
    """Run the segmentation; the exit status is 1 when any input failed."""
    args = parser().parse_args(argv)
    from src.segment import Options, segment  # TensorFlow loads only once the arguments are known to be valid

    if args.stride:
        inference = Inference(mode="patches", patch_hw=PUBLISHED_PATCH_HW, stride_hw=(args.stride, args.stride))
    else:
        inference = Inference(mode="flips" if args.flips else "whole", patch_hw=PUBLISHED_PATCH_HW)
    threshold, why = prediction_threshold(args)
    print(f"threshold {threshold:.4f}: {why}", flush=True)
    options = Options(inference, fov_diameter=None if args.no_rescale else args.fov_diameter, threshold=threshold)
    weights = args.weights or Experiment.in_folder(args.model).weights("best")
    return 1 if segment(args.images, args.output, weights, options, args.masks, args.labels) else 0


if __name__ == "__main__":
    run_cli(lambda: sys.exit(main()))
