"""Convert the STARE download into the HDF5 files the leave-one-out reads, with FOV masks detected from the
image colour (STARE ships none) and a preview of them (the STARE part of the published project)."""

from pathlib import Path

from lib import stare
from lib.config import require_leave_one_out
from src import cli


def main():
    arguments = cli.parser(__doc__, config=stare.CONFIG_FILE)
    arguments.add_argument(
        "--stare",
        type=Path,
        help="the STARE folder holding stare-images/, labels-ah/ and labels-vk/ "
        "(default: [leave-one-out] stare_folder)",
    )
    args = arguments.parse_args()
    config = cli.config_from(args)
    root = args.stare or require_leave_one_out(config).stare_folder
    prepared = stare.prepare(config.data, root)
    images = prepared["imgs"]
    print(f"{len(images)} images of {images.shape[3]}x{images.shape[2]} from {root}")
    if len(images) != stare.PUBLISHED_COUNT:
        print(f"note: the published leave-one-out used STARE's {stare.PUBLISHED_COUNT} labelled images")
    print("field of view (detected: red-channel threshold, largest component, holes filled, rim eroded):")
    for image_id, fov in zip(prepared["ids"], prepared["fov"], strict=True):
        print(f"  {image_id}  {fov['share']:6.1%} of the image, diameter {fov['diameter']:.0f} px")
    for path in prepared["written"]:
        print(f"  wrote {path}")


if __name__ == "__main__":
    cli.run_cli(main)
