"""Convert the DRIVE download into the HDF5 files the experiment reads (published prepare_datasets_DRIVE.py)."""

from pathlib import Path

from lib.atomic import atomic_group
from lib.datasets import read_drive_split, write_hdf5
from lib.folders import check_download_apart
from src import cli


def main():
    arguments = cli.parser(__doc__)
    arguments.add_argument(
        "--drive", type=Path, help="the DRIVE folder holding training/ and test/ (default: [data paths] drive_folder)"
    )
    args = arguments.parse_args()
    config = cli.config_from(args)
    root = args.drive or config.data.drive_folder
    check_download_apart(config.data.path_local, root, "DRIVE")
    outputs = {
        "training": {
            "imgs": "train_imgs_original",
            "groundTruth": "train_groundTruth",
            "borderMasks": "train_border_masks",
        },
        "test": {
            "imgs": "test_imgs_original",
            "groundTruth": "test_groundTruth",
            "borderMasks": "test_border_masks",
            "groundTruth2nd": "test_groundTruth_2nd",
        },
    }
    # Read and check both splits before writing anything, and write every file or none: a bad test image or
    # a full disk must not leave new training files beside old test files.
    splits = {
        split: read_drive_split(root, split, second_observer=(root / split / "2nd_manual").is_dir() and split == "test")
        for split in outputs
    }
    with atomic_group():
        for split, files in outputs.items():
            for key, config_key in files.items():
                if key in splits[split]:
                    write_hdf5(config.data.file(config_key), splits[split][key])
    for split, files in outputs.items():
        arrays = splits[split]
        print(
            f"{split}: {len(arrays['ids'])} images of {arrays['imgs'].shape[2]}x{arrays['imgs'].shape[3]} "
            f"(ids {arrays['ids'][0]}..{arrays['ids'][-1]})"
        )
        for key, config_key in files.items():
            if key in arrays:
                print(f"  wrote {config.data.file(config_key)}  {arrays[key].shape} {arrays[key].dtype}")


if __name__ == "__main__":
    cli.run_cli(main)
