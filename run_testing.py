"""Test an experiment on the prepared test set: predictions, FOV metrics and pictures (published run_testing.py)."""

from pathlib import Path

from lib.log_file import log_to
from src import cli


def main():
    arguments = cli.parser(__doc__, name=True)
    arguments.add_argument(
        "--weights",
        type=Path,
        help="test these weights instead of the experiment's: a .weights.h5 of this project or "
        "the published Keras-1 test_best_weights.h5 (results go to <name>/<weights stem>/)",
    )
    arguments.add_argument("--output", type=Path, help="results folder (default: the experiment folder)")
    cli.add_engine_option(arguments)
    args = arguments.parse_args()
    config = cli.with_engine(cli.config_from(args), args.engine)
    from lib.experiment import TestResults
    from src.testing import run_test  # TensorFlow loads only after the configuration is known to be valid

    experiment = config.experiment
    output = args.output or (TestResults.of_weights(experiment, args.weights).folder if args.weights else None)
    with log_to(experiment.testing_log if config.testing.nohup else None):
        results = run_test(config, args.weights, output)
        print(
            f"AUC ROC {results['auc_roc']:.4f}  AUC PR {results['auc_pr']:.4f}  F1 {results['f1']:.4f}  "
            f"accuracy {results['accuracy']:.4f}  sensitivity {results['sensitivity']:.4f}  "
            f"specificity {results['specificity']:.4f}  ({results['seconds_per_image']:.1f} s/image)"
        )
        mean, std = results["per_image_mean"], results["per_image_std"]
        spread = {key: "" if value is None else f" ± {value:.4f}" for key, value in std.items()}
        print(
            f"per image (mean ± std over {results['images']} images): AUC ROC {mean['auc_roc']:.4f}"
            f"{spread['auc_roc']}  F1 {mean['f1']:.4f}{spread['f1']}; table in per_image.csv"
        )
        stored = results.get("stored_threshold")
        if stored:
            print(
                f"at threshold {results['threshold']} (published): F1 {results['f1']:.4f}  accuracy "
                f"{results['accuracy']:.4f}  sensitivity {results['sensitivity']:.4f}  specificity "
                f"{results['specificity']:.4f}\n"
                f"at threshold {stored['threshold']:.4f} (stored, chosen on the validation patches): F1 "
                f"{stored['f1']:.4f}  accuracy {stored['accuracy']:.4f}  sensitivity {stored['sensitivity']:.4f}  "
                f"specificity {stored['specificity']:.4f}"
            )


if __name__ == "__main__":
    cli.run_cli(main)
