"""Train the U-Net of an experiment on random patches of the prepared training set (published run_training.py)."""

from lib.log_file import log_to
from src import cli


def main():
    arguments = cli.parser(__doc__, name=True)
    arguments.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted training from its last finished epoch (N_epochs may be raised, nothing else)",
    )
    arguments.add_argument(
        "--overwrite",
        action="store_true",
        help="start over even though the experiment folder holds trained weights; its earlier files are moved "
        "to <name>/replaced-<time>/",
    )
    arguments.add_argument(
        "--threshold-only",
        action="store_true",
        help="train nothing: choose the threshold that maximises F1 on the experiment's validation patches with "
        "its best weights and store it in <name>/<name>_threshold.json (training does this itself)",
    )
    args = arguments.parse_args()
    config = cli.config_from(args)
    if args.threshold_only:
        from src.training import store_threshold

        record = store_threshold(config)
        print(f"stored threshold {record['threshold']:.4f} in {config.experiment.threshold_file}")
        return
    from src.training import train  # TensorFlow loads only after the configuration is known to be valid

    with log_to(config.experiment.training_log if config.training.nohup else None):
        folder = train(config, resume=args.resume, overwrite=args.overwrite)
    print(f"training finished: weights, architecture and history in {folder}/")


if __name__ == "__main__":
    cli.run_cli(main)
