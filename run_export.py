"""Export the trained U-Net for use outside Python: a TensorFlow SavedModel, a TFLite file or an ONNX model."""

import argparse
from pathlib import Path

from lib.folders import refuse_overlap
from src.cli import Parser, add_model_options, run_cli, weights_from

FORMATS = ("savedmodel", "tflite", "onnx")  # the keys of src.export.FORMATS, listed here so --help needs no TensorFlow
EPILOG = """\
The exported model takes input "image": preprocessed gray images (lib.preprocessing.preprocess), float32 in
[0, 1], shape (N, H, W, 1), zero-padded at the bottom and right to multiples of 4; it returns output "vessel":
the vessel probability, float32 (N, H, W). N, H and W are free. See docs/export.md.

Before it is moved into place, the export is run on a DRIVE-sized synthetic image (584x565, padded to 584x568)
and compared with the Keras model: a difference beyond the format's tolerance is an error and writes nothing.
ONNX needs: pip install -r requirements-export.txt

examples:
  python run_export.py --format onnx -o unet.onnx
  python run_export.py --format savedmodel -o unet_savedmodel
  python run_export.py --weights test_best_weights.h5 --format tflite -o published.tflite
"""


def parser() -> argparse.ArgumentParser:
    result = Parser(
        prog="run_export.py", description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    result.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    result.add_argument("-o", "--output", required=True, type=Path, help="the file to write (a folder for savedmodel)")
    add_model_options(result, "exported")
    return result


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    weights = weights_from(args)
    refuse_overlap(args.output, [("the weights", weights)], "-o", "write the export to a path of its own")
    from src.export import export  # imports TensorFlow: only once the arguments are known to be good

    verification = export(weights, args.format, args.output)
    print(f"wrote {args.output} ({args.format}); {verification}")


if __name__ == "__main__":
    run_cli(main)
