"""STARE leave-one-out (published): one training per image on the others, each tested on the image left
out; or, with --cross-dataset, a DRIVE-trained model tested on every STARE image; or, with --compare, the
committed results of several variants side by side."""

from pathlib import Path

from lib import stare
from lib.config import load_config, parse_folds, require_leave_one_out
from lib.errors import UserError
from lib.experiment import REFERENCE_MODEL, Experiment, LeaveOneOutResults
from lib.reports import stare_variants_markdown
from src import cli


def compare(configs: list[Path]) -> str:
    """The variants' per-image tables side by side, from their results folders' summary.json (no training)."""
    summaries = {}
    for path in configs:
        config = load_config(path)
        summary_file = LeaveOneOutResults(require_leave_one_out(config).results_folder).summary
        if not summary_file.is_file():
            raise UserError(f"{summary_file}: not found; run python run_stare_leave_one_out.py --config {path} first")
        summaries[config.name] = stare.read_variant_summary(summary_file, path)
    return stare_variants_markdown(summaries)


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
        default=Experiment.in_folder(REFERENCE_MODEL).weights("best"),
        help="with --cross-dataset: the weights, a .weights.h5 of this project or the published Keras-1 "
        "test_best_weights.h5 (default: the DRIVE reference model's test/test_best.weights.h5)",
    )
    arguments.add_argument(
        "--patches",
        action="store_true",
        help="with --cross-dataset: predict as [testing settings] says instead of whole images",
    )
    arguments.add_argument(
        "--compare",
        nargs="+",
        type=Path,
        metavar="CONFIG",
        help="instead: print the results of these variants' configurations side by side (from their tables)",
    )
    cli.add_engine_option(arguments)
    args = arguments.parse_args()
    if args.compare:
        print(compare(args.compare), end="")
        return
    config = cli.with_engine(cli.config_from(args), args.engine)
    settings = require_leave_one_out(config)
    folds = None if args.folds is None else parse_folds(args.folds, "--folds")
    # TensorFlow loads only once the arguments are known to be valid
    from src.cross_dataset import run_cross_dataset
    from src.leave_one_out import run_leave_one_out

    with stare.results_in_use(settings):
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
