"""Fine-tune the U-Net on labelled photographs of your own camera, then segment the rest with run_prediction.py."""

import argparse

from lib.log_file import log_to
from src import cli

EPILOG = """\
Each photograph is paired with its label (and mask) by name, as run_prediction.py --labels/--masks pairs them,
and brought to the network's scale as run_prediction.py brings it. The last photograph (5 %) only validates:
it chooses the best epoch and the threshold stored with the model. Everything lands in ./NAME/, which
run_prediction.py --model NAME uses; NAME/configuration.txt records the run (--config NAME/configuration.txt
repeats or resumes it). Recipe: configurations/finetune.txt (2 epochs from general/, 1,000 patches per photograph).

examples:
  python run_finetune.py photos/ --labels labels/ --name mycamera
  python run_finetune.py "photos/*.jpg" --labels labels/ --masks masks/ --name mycamera
  python run_finetune.py photos/ --labels labels/ --name mycamera --resume    # after an interruption
  python run_finetune.py "CHASEDB1/*.jpg" --labels "CHASEDB1/*_1stHO.png" --name chase   # one folder for both
  python run_prediction.py new_photos/ --model mycamera -o vessels/
  python run_finetune.py --config configurations/general.txt                  # several sources, from a file
"""


def parser() -> argparse.ArgumentParser:
    result = cli.parser(__doc__, config="configurations/finetune.txt", name=True)
    result.epilog = EPILOG
    result.formatter_class = argparse.RawDescriptionHelpFormatter
    result.add_argument(
        "images", nargs="?", help="the labelled photographs: files, a folder or a quoted glob pattern (default: the "
        "configuration's [photographs] sources)"
    )  # fmt: skip
    result.add_argument(
        "--labels", help="their manual vessel labels: a folder or a quoted pattern (required with images)"
    )
    result.add_argument("--masks", help="their FOV masks (white inside); default: detect each FOV")
    result.add_argument(
        "--from", dest="initial_weights", help="start from this model folder or weights file instead of the "
        "configuration's initial_weights (default: general/, the photograph model)"
    )  # fmt: skip
    result.add_argument("--resume", action="store_true", help="continue an interrupted fine-tuning")
    result.add_argument(
        "--overwrite", action="store_true", help="start over although ./NAME/ holds a trained model (its files move "
        "to NAME/replaced-<time>/)"
    )  # fmt: skip
    result.add_argument(
        "--validate-on-training", action="store_true", help="with a single labelled photograph: validate on "
        "other patches of the training photographs (the threshold is then optimistic)"
    )  # fmt: skip
    return result


def main():
    arguments = parser()
    args = arguments.parse_args()
    if (args.images is None) != (args.labels is None):
        arguments.error("the photographs and --labels come together: run_finetune.py PHOTOS --labels LABELS")
    if args.masks and args.images is None:
        arguments.error("--masks needs the photographs and --labels")
    config = cli.config_from(args)
    from lib.sources import Source
    from src.finetune import finetune, with_initial_weights  # TensorFlow loads once the arguments are valid

    config = with_initial_weights(config, args.initial_weights)
    sources = () if args.images is None else (Source(args.images, args.labels, args.masks),)
    with log_to(config.experiment.training_log if config.training.nohup else None):
        folder = finetune(config, sources, args.resume, args.overwrite, args.validate_on_training)
    print(f"fine-tuning finished: model in {folder}/; segment with: python run_prediction.py PHOTOS --model {folder}")


if __name__ == "__main__":
    cli.run_cli(main)
