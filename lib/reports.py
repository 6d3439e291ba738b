"""The published comparison tables (DRIVE and STARE) and this project's results set beside them.

Every published number the project compares against lives here, once.
"""

import csv
import io

import numpy as np

PUBLISHED_DRIVE_AUC = (  # the published README's DRIVE comparison (AUC ROC)
    ("Soares et al.", 0.9614),
    ("Azzopardi et al.", 0.9614),
    ("Osareh et al.", 0.9650),
    ("Roychowdhury et al.", 0.9670),
    ("Fraz et al.", 0.9747),
    ("Qiaoliang et al.", 0.9738),
    ("Melinscak et al.", 0.9749),
    ("Liskowski et al.", 0.9790),
    ("published retina-unet", 0.9790),
)
# The published leave-one-out AUC ROC per held-out STARE image (orobix/retina-unet README) and its summary.
PUBLISHED_STARE_AUC = {
    "im0001": 0.9709, "im0002": 0.9588, "im0003": 0.9856, "im0004": 0.9732, "im0005": 0.9703,
    "im0044": 0.9883, "im0077": 0.9925, "im0081": 0.9930, "im0082": 0.9929, "im0139": 0.9845,
    "im0162": 0.9913, "im0163": 0.9952, "im0235": 0.9912, "im0236": 0.9893, "im0239": 0.9751,
    "im0240": 0.9832, "im0255": 0.9819, "im0291": 0.9635, "im0319": 0.9702, "im0324": 0.9661,
}  # fmt: skip
PUBLISHED_STARE_MEAN, PUBLISHED_STARE_STD = 0.9805, 0.0113
PUBLISHED_STARE_SUMMARY = "published (orobix/retina-unet): .9805 +- .0113 over the 20 folds"
# The published README's STARE comparison (AUC ROC); Liskowski et al. define the FOV differently.
PUBLISHED_STARE_TABLE = (
    ("Soares et al.", 0.9671),
    ("Azzopardi et al.", 0.9563),
    ("Roychowdhury et al.", 0.9688),
    ("Fraz et al.", 0.9768),
    ("Qiaoliang et al.", 0.9879),
    ("Liskowski et al. (other FOV definition)", 0.9930),
    ("published retina-unet", PUBLISHED_STARE_MEAN),
)
# The per-image table's metrics, each on that image's FOV pixels (DRIVE's per_image.csv, STARE's leave_one_out.csv)
PER_IMAGE_METRICS = ("auc_roc", "auc_pr", "f1", "accuracy", "sensitivity", "specificity", "jaccard")
# The published leave-one-out AUC of each STARE image, a column set beside this project's STARE tables
PUBLISHED_STARE_COLUMN = (
    "published_leave_one_out_auc_roc",
    PUBLISHED_STARE_AUC | {"mean": PUBLISHED_STARE_MEAN, "std": PUBLISHED_STARE_STD},
)
RATES = ("accuracy", "sensitivity", "specificity", "f1")


def short(value: float | None) -> str:
    """The published number style: .9805."""
    return "–" if value is None else f"{value:.4f}".removeprefix("0")


def drive_comparison(results: dict, label: str) -> str:
    """The published DRIVE table with this run inserted, and the second observer as the human reference."""
    rows = [(name, f"{auc:.4f}", "", "", "") for name, auc in PUBLISHED_DRIVE_AUC]
    rows.append((f"**{label}**", f"**{results['auc_roc']:.4f}**", *(f"{results[key]:.4f}" for key in RATES[:3])))
    rows.sort(key=lambda row: float(row[1].strip("*")))
    if "second_observer" in results:
        human = results["second_observer"]
        rows.append(("2nd human observer (reference)", "", *(f"{human[key]:.4f}" for key in RATES[:3])))
    lines = ["| Method | AUC ROC | Accuracy | Sensitivity | Specificity |", "|---|---|---|---|---|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def auc_summary(rows: list[dict]) -> dict:
    """Mean and sample standard deviation (n - 1, as the published ± .0113) of the per-image AUC ROC."""
    summary = per_image_summary(rows)
    return {
        "auc_roc_per_image": {row["id"]: row["auc_roc"] for row in rows},
        "auc_roc_mean": summary["per_image_mean"]["auc_roc"],
        "auc_roc_std": summary["per_image_std"]["auc_roc"],
    }


def per_image_summary(rows: list[dict]) -> dict:
    """``PER_IMAGE_METRICS`` of each image (``id`` first), their mean and sample standard deviation (n - 1,
    as papers report mean ± std over images; None for a single image)."""
    values = np.array([[row[key] for key in PER_IMAGE_METRICS] for row in rows], dtype=np.float64)
    mean = values.mean(axis=0) if rows else np.full(len(PER_IMAGE_METRICS), np.nan)
    spread = values.std(axis=0, ddof=1) if len(rows) > 1 else np.full(len(PER_IMAGE_METRICS), np.nan)

    def named(numbers) -> dict:
        pairs = zip(PER_IMAGE_METRICS, numbers, strict=True)
        return {key: None if np.isnan(value) else float(value) for key, value in pairs}

    return {
        "per_image": [{"id": row["id"]} | {key: float(row[key]) for key in PER_IMAGE_METRICS} for row in rows],
        "per_image_mean": named(mean),
        "per_image_std": named(spread),
    }


def per_image_csv(rows: list[dict], beside: tuple[str, dict] | None = None) -> str:
    """One row per image (``PER_IMAGE_METRICS``), then the mean and std rows; ``beside`` is an extra column,
    (header, value by image id, "mean" and "std"), e.g. ``PUBLISHED_STARE_COLUMN``."""
    summary = per_image_summary(rows)
    header, extra = beside or (None, {})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", *PER_IMAGE_METRICS, *([header] if header else [])])
    labelled = [(row["id"], row) for row in summary["per_image"]]
    if rows:
        labelled += [("mean", summary["per_image_mean"]), ("std", summary["per_image_std"])]
    for label, values in labelled:
        numbers = ["nan" if values[key] is None else f"{values[key]:.6f}" for key in PER_IMAGE_METRICS]
        writer.writerow([label, *numbers, *([extra.get(label, "")] if header else [])])
    return buffer.getvalue()


def stare_auc_markdown(rows: list[dict], summary: dict, note: str) -> str:
    """The per-image AUC table in the published README's format, its average, and ``note`` under it."""
    lines = ["| STARE image| AUC ROC|", "| ---------- |:------:|"]
    lines += [f"| {row['id']}.ppm | {short(row['auc_roc'])} |" for row in rows]
    if not rows:
        return "\n".join(lines + ["", "No fold has finished yet."]) + "\n"
    std = summary["auc_roc_std"]
    average = short(summary["auc_roc_mean"]) + ("" if std is None else f" +- {short(std)}")
    lines += ["", f"__AVERAGE:   {average}__", "", f"{len(rows)} of {summary['images']} images; {note}"]
    return "\n".join(lines) + "\n"


def stare_comparison(summary: dict) -> str:
    """The leave-one-out U-Net beside the second observer, on FOV pixels."""
    lines = [
        "",
        "| STARE, FOV pixels | images | AUC ROC per image | AUC ROC pooled | accuracy | sensitivity | "
        "specificity | F1 |",
        "| --- | :---: | :---: | :---: | :---: | :---: | :---: | :---: |",
    ]

    def row(label, images, result, pooled):
        std = result.get("auc_roc_std")
        per_image = short(result.get("auc_roc_mean")) + ("" if std is None else f" ± {short(std)}")
        rates = " | ".join(short(pooled[key]) for key in RATES)
        lines.append(f"| {label} | {images} | {per_image} | {short(pooled.get('auc_roc'))} | {rates} |")

    if summary["folds"]:
        row("U-Net, leave-one-out", summary["folds"], summary, summary["pooled"])
    row("second observer (vk) vs ground truth (ah)", summary["images"], {}, summary["second_observer"])
    return "\n".join(lines) + "\n"


def stare_published_table(summary: dict, label: str) -> str:
    """The published STARE comparison (AUC ROC) with this leave-one-out's mean inserted."""
    return "\n".join(comparison_lines({label: summary})) + "\n"


def comparison_lines(summaries: dict[str, dict]) -> list[str]:
    """The published STARE comparison with each leave-one-out (label -> summary) inserted, saying how many
    of its folds the mean is over."""
    rows = list(PUBLISHED_STARE_TABLE) + [
        (f"**{label}, {summary['folds']} of {summary['images']} folds**", summary["auc_roc_mean"])
        for label, summary in summaries.items() if summary.get("folds")
    ]  # fmt: skip
    lines = ["", "| Method (STARE) | AUC ROC |", "| --- | :---: |"]
    return lines + [f"| {name} | {short(auc)} |" for name, auc in sorted(rows, key=lambda row: row[1])]


def stare_variants_markdown(summaries: dict[str, dict]) -> str:
    """Several leave-one-out variants (label -> summary.json) beside the published per-image AUC: the table
    and the published STARE comparison with every variant inserted."""
    labels = list(summaries)
    lines = [
        "| STARE image | published | " + " | ".join(labels) + " |",
        "| --- | :---: | " + " | ".join(":---:" for _ in labels) + " |",
    ]
    for image_id, published in PUBLISHED_STARE_AUC.items():
        cells = [short(summary["auc_roc_per_image"].get(image_id)) for summary in summaries.values()]
        lines.append(f"| {image_id} | {short(published)} | " + " | ".join(cells) + " |")

    def row(name: str, published: str, cell) -> None:
        lines.append(f"| {name} | {published} | " + " | ".join(cell(summary) for summary in summaries.values()) + " |")

    row("folds", "20", lambda s: f"{s['folds']} of {s['images']}")
    row(
        "**mean ± std**",
        f"**{short(PUBLISHED_STARE_MEAN)} ± {short(PUBLISHED_STARE_STD)}**",
        lambda s: f"**{short(s.get('auc_roc_mean'))} ± {short(s.get('auc_roc_std'))}**",
    )
    for key in ("auc_roc", *RATES):
        row(f"pooled {key.replace('_', ' ')}", "", lambda s, key=key: short(s.get("pooled", {}).get(key)))
    row(
        "training minutes per fold",
        "",
        lambda s: "–" if s.get("training_minutes_mean") is None else f"{s['training_minutes_mean']:.1f}",
    )
    human = next(iter(summaries.values()))["second_observer"]
    lines += [
        "",
        "Second observer (vk) against the ground truth (ah), same FOV pixels, all 20 images: "
        + ", ".join(f"{key} {short(human[key])}" for key in RATES)
        + ".",
    ]
    lines += comparison_lines({f"this project, {label}": summary for label, summary in summaries.items()})
    return "\n".join(lines) + "\n"
