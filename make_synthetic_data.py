"""Write a small synthetic dataset in DRIVE's or STARE's exact layout, to try the pipeline without downloading."""

import argparse
from pathlib import Path

from lib.errors import UserError
from lib.synthetic import STARE_IDS, write_synthetic_drive, write_synthetic_stare
from src import cli


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="dataset", required=True)
    drive = commands.add_parser("drive", help="DRIVE layout: training/ and test/")
    drive.add_argument("out_dir", type=Path)
    drive.add_argument("--train", type=int, default=20, help="training images (ids 21, 22, ...)")
    drive.add_argument("--test", type=int, default=20, help="test images (ids 01, 02, ...)")
    drive.add_argument("--height", type=int, default=584)
    drive.add_argument("--width", type=int, default=565)
    drive.add_argument("--seed", type=int, default=0)
    stare = commands.add_parser("stare", help="STARE layout: stare-images/, labels-ah/, labels-vk/")
    stare.add_argument("out_dir", type=Path)
    stare.add_argument("--count", type=int, default=len(STARE_IDS), help="the first N of the 20 STARE ids")
    stare.add_argument("--height", type=int, default=605)
    stare.add_argument("--width", type=int, default=700)
    stare.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.dataset == "drive":
        files = write_synthetic_drive(args.out_dir, args.train, args.test, args.height, args.width, args.seed)
        what = f"{args.train} training + {args.test} test images"
    else:
        if not 1 <= args.count <= len(STARE_IDS):
            raise UserError(f"--count = {args.count} must be between 1 and {len(STARE_IDS)}")
        ids = STARE_IDS[: args.count]
        files = write_synthetic_stare(args.out_dir, ids, args.height, args.width, args.seed)
        what = f"{args.count} images"
    print(
        f"wrote {len(files)} files ({what}, {args.width}x{args.height}, seed {args.seed}, "
        f"synthetic {args.dataset.upper()} layout) under {args.out_dir}"
    )


if __name__ == "__main__":
    cli.run_cli(main)
