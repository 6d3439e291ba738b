"""How many photographs must a team label? The photograph model in robust/ (DRIVE only) fine-tuned on k labelled
STARE photographs, scored on 10 other STARE photographs, beside no fine-tuning and the leave-one-out.

    python -m benchmarks.bench_label_budget [--stare STARE] [--ks 1,2,5,10]

The split (``benchmarks/label_budget_split.json``) was drawn and committed before any result: the first k of its
``labelled`` images fine-tune robust/ (not general/, the default start, which saw STARE) with ``run_finetune.py``'s
recipe (configurations/finetune.txt: the last of them validates; k = 1 validates on other patches of its one
photograph), and every k is scored on the same ``test`` images with ``run_prediction.py``'s defaults (whole image,
DRIVE's FOV diameter, the model's stored threshold). Each k trains into ./label_budget_k<k>/ and predicts into
./label_budget/k<k>/; a rerun reuses what is done. Prints the table and writes ``docs/figures/label_budget.png``
and ``docs/figures/label_budget.csv``.
"""

import argparse
import json
import statistics
from pathlib import Path

from benchmarks.common import mean_scores
from lib.atomic import atomic_path, write_csv
from lib.config import load_config
from lib.experiment import DRIVE_PHOTOGRAPH_MODEL, Experiment
from lib.sources import Source
from src.cli import run_cli

SPLIT = Path(__file__).with_name("label_budget_split.json")
WORK = Path("label_budget")
FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"
LEAVE_ONE_OUT = Path("STARE_results/robust_smallval")  # robust/ fine-tuned on the other 19, stride 5
COLUMNS = ("k", "auc_roc", "f1", "training_minutes", "threshold")


def linked_folder(folder: Path, files: list[Path]) -> str:
    """A folder of links to ``files``: one source of exactly these photographs (or labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        link = folder / file.name
        if not link.is_symlink():
            link.symlink_to(file.resolve())
    return str(folder)


def stare_files(stare: Path, ids: list[str]) -> tuple[list[Path], list[Path]]:
    return [stare / "stare-images" / f"{i}.ppm.gz" for i in ids], [stare / "labels-ah" / f"{i}.ah.ppm.gz" for i in ids]


def fine_tuned(k: int, stare: Path, labelled: list[str]) -> Experiment:
    """robust/ fine-tuned on the first k labelled photographs (trained once; a rerun reuses it)."""
    from src.finetune import finetune, with_initial_weights

    config = load_config("configurations/finetune.txt", f"label_budget_k{k:02d}")
    config = with_initial_weights(config, str(DRIVE_PHOTOGRAPH_MODEL))  # the default start saw STARE
    experiment = config.experiment
    if experiment.read_threshold() is None:
        images, labels = stare_files(stare, labelled[:k])
        source = Source(
            linked_folder(WORK / f"photos_k{k:02d}", images), linked_folder(WORK / f"labels_k{k:02d}", labels)
        )
        finetune(config, (source,), validate_on_training=k == 1)
    return experiment


def scored(model: Path, name: str, stare: Path, test: list[str]) -> tuple[float, float, float]:
    """Mean AUC ROC and F1 of ``model`` on the test photographs, with run_prediction.py's defaults."""
    images, labels = stare_files(stare, test)
    source = linked_folder(WORK / "test_photos", images), linked_folder(WORK / "test_labels", labels)
    scores = mean_scores(model, source[0], source[1], WORK / name)
    return scores["auc_roc"], scores["f1"], scores["threshold"]


def leave_one_out(test: list[str]) -> dict:
    """The committed leave-one-out results (robust/ fine-tuned on the other 19, stride 5) on the test images."""
    results = [json.loads((LEAVE_ONE_OUT / f"{i}_result.json").read_text()) for i in test]
    return {metric: statistics.mean(r[metric] for r in results) for metric in ("auc_roc", "f1")}


def plot(rows: list[dict], reference: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tuned = [row for row in rows if row["k"] > 0]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for axis, metric, label in zip(axes, ("auc_roc", "f1"), ("mean AUC ROC", "mean F1"), strict=True):
        axis.plot([row["k"] for row in tuned], [row[metric] for row in tuned], "o-", label="fine-tuned on k")
        axis.axhline(rows[0][metric], color="gray", linestyle=":", label="no fine-tuning (robust/)")
        axis.axhline(reference[metric], color="green", linestyle="--", label="leave-one-out (19, stride 5)")
        axis.set_xscale("log")
        axis.set_xticks([row["k"] for row in tuned], [str(row["k"]) for row in tuned])
        axis.set_xlabel("labelled STARE photographs k")
        axis.set_ylabel(label)
    axes[1].legend(fontsize=8, loc="lower right")
    figure.suptitle("robust/ fine-tuned on k STARE photographs, 10 other STARE photographs scored", fontsize=10)
    figure.tight_layout()
    FIGURES.mkdir(exist_ok=True)
    with atomic_path(FIGURES / "label_budget.png", suffix=".png") as temp:
        figure.savefig(temp, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stare", type=Path, default=Path("STARE"), help="the STARE download (default ./STARE)")
    parser.add_argument("--ks", default="1,2,5,10", help="the label budgets k (default 1,2,5,10)")
    args = parser.parse_args()
    split = json.loads(SPLIT.read_text())
    labelled, test = split["labelled"], split["test"]
    auc, f1, threshold = scored(DRIVE_PHOTOGRAPH_MODEL, "k00", args.stare, test)
    rows = [{"k": 0, "auc_roc": auc, "f1": f1, "training_minutes": 0.0, "threshold": threshold}]
    for k in (int(text) for text in args.ks.split(",")):
        experiment = fine_tuned(k, args.stare, labelled)
        auc, f1, threshold = scored(experiment.folder, f"k{k:02d}", args.stare, test)
        minutes = experiment.training_minutes()
        rows.append({"k": k, "auc_roc": auc, "f1": f1, "training_minutes": minutes, "threshold": threshold})
    reference = leave_one_out(test)
    print("\n| labelled photographs k | mean AUC ROC | mean F1 | training minutes | threshold |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['k'] or '0 (robust/, no fine-tuning)'} | {row['auc_roc']:.4f} | {row['f1']:.4f} | "
              f"{row['training_minutes']:.1f} | {row['threshold']:.3f} |")  # fmt: skip
    print(f"| 19 (leave-one-out, stride 5, threshold 0.5) | {reference['auc_roc']:.4f} | {reference['f1']:.4f} | | |")
    write_csv(FIGURES / "label_budget.csv", [{**r, "auc_roc": f"{r['auc_roc']:.4f}", "f1": f"{r['f1']:.4f}",
              "training_minutes": f"{r['training_minutes']:.2f}", "threshold": f"{r['threshold']:.4f}"} for r in rows],
              COLUMNS)  # fmt: skip
    plot(rows, reference)


if __name__ == "__main__":
    run_cli(main)
