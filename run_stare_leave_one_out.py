"""STARE leave-one-out (published): one training per image on the others, each tested on the image left
out; or, with --cross-dataset, a DRIVE-trained model tested on every STARE image."""

from pathlib import Path

from lib import stare
from src import cli


def main():
    arguments = cli.parser(__doc__, config=stare.CONFIG_FILE)
    arguments.add_argument(
        "--folds", help="held-out image ids to run, e.g. im0001,im0082, or all (default: [leave-one-out] folds)"
    )
    arguments.add_argument(
        "--overwrite", action="store_true", help="train and test the chosen folds again, even the finished ones"
    )
    arguments.add_argument(
        "--cross-dataset", action="store_true", help="instead: test DRIVE-trained weights on all STARE images"
    )
    arguments.add_argument(
        "--weights",
        type=Path,
        default=Path("test/test_best.weights.h5"),
        help="with --cross-dataset: the weights, a .weights.h5 of this project or the published Keras-1 "
        "test_best_weights.h5 (default: the DRIVE experiment's test/test_best.weights.h5)",
    )
    arguments.add_argument(
        "--patches",
        action="store_true",
        help="with --cross-dataset: predict as [testing settings] says instead of whole images",
    )
    args = arguments.parse_args()
    config = cli.config_from(args)
    settings = stare.load_leave_one_out(args.config)
    folds = None if args.folds is None else stare.parse_folds(args.folds, "--folds")
    # TensorFlow loads only once the arguments are known to be valid
    from src.cross_dataset import run_cross_dataset
    from src.leave_one_out import run_leave_one_out

    if args.cross_dataset:
        summary = run_cross_dataset(config, settings, args.weights, args.patches)
        print(
            f"DRIVE-trained {args.weights} on {summary['images']} STARE images: AUC ROC "
            f"{summary['auc_roc_mean']:.4f} +- {summary['auc_roc_std']:.4f} per image, "
            f"{summary['pooled']['auc_roc']:.4f} pooled"
        )
    else:
        summary = run_leave_one_out(config, settings, folds, args.overwrite)
        if summary["folds"]:
            std = "" if summary["auc_roc_std"] is None else f" +- {summary['auc_roc_std']:.4f}"
            print(
                f"leave-one-out, {summary['folds']} of {summary['images']} folds: AUC ROC "
                f"{summary['auc_roc_mean']:.4f}{std} per image, {summary['pooled']['auc_roc']:.4f} pooled"
            )
    human = summary["second_observer"]
    print(
        f"second observer vs ground truth: accuracy {human['accuracy']:.4f}  sensitivity {human['sensitivity']:.4f}  "
        f"specificity {human['specificity']:.4f}  F1 {human['f1']:.4f}"
    )
    print(f"tables and pictures in {settings.results_folder}/")


if __name__ == "__main__":
    cli.run_cli(main)
