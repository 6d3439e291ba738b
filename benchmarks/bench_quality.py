"""Does the reliability estimate predict error? Spearman correlations with each photograph's true F1, and the flag.

    python -m benchmarks.bench_quality [--set test|training] [--cache DIR] [--plot docs/quality.png]

``--set test`` (default): DRIVE's 20 test photographs and STARE's 20 (labels-ah), each also in six degraded copies
(``lib.degrade``: blur, under- and over-exposure, haze, strong JPEG, uneven illumination; seed 0), 280 in all;
``--set training``: DRIVE's 20 training photographs and their copies (seed 1), 140, the set the flag's thresholds
were chosen on. Data: RETINA_DATA (default ../shared/data). Every photograph goes through ``src.segment.segment`` as
``run_prediction.py`` runs it (with robust/, the photograph model trained on DRIVE only, so that STARE is a camera
it never saw: whole-image prediction, its stored threshold), with the FOV mask of the undegraded photograph (DRIVE's
own masks; STARE's detected) and its manual label, so the summary holds the true F1. The predictions are kept in
``--cache`` (default: a folder in the system's temporary folder), so a rerun only recomputes the signals of
``lib.quality`` from the probability maps: prints the Spearman correlation of each signal with F1, the share of
photographs with F1 < .70 that the flag catches and the share of undegraded photographs it flags.
"""

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from lib.degrade import degraded_copies
from lib.files import file_id
from lib.fov import detect_fov
from lib.imageio import read_binary, read_rgb, write_png
from lib.quality import flag, is_flagged, signals

POOR_F1 = 0.70  # a segmentation below this F1 is one a user should look at
REPO = Path(__file__).resolve().parents[1]
SIGNALS = ("reliability", "vessel_share", "certainty", "uncertain_ratio", "confident_share", "mean_vessel_probability")


def data_root() -> Path:
    """The folder holding DRIVE/ and STARE/: $RETINA_DATA, else <repo>/../shared/data."""
    root = Path(os.environ.get("RETINA_DATA") or REPO.parent / "shared" / "data")
    if not (root / "DRIVE").is_dir() or not (root / "STARE").is_dir():
        sys.exit(f"error: no DRIVE/ and STARE/ in {root}; set RETINA_DATA to the folder holding them")
    return root


def sources(which: str) -> list[tuple[str, Path, Path, Path | None]]:
    """(id, photograph, label, mask or None to detect) of the chosen set."""
    root = data_root()
    if which == "training":
        drive = root / "DRIVE" / "training"
        return [
            (path.name.split("_")[0] + "_training", path, drive / "1st_manual" / f"{path.name[:2]}_manual1.gif",
             drive / "mask" / f"{path.name[:2]}_training_mask.gif")
            for path in sorted((drive / "images").glob("*.tif"))
        ]  # fmt: skip
    drive = root / "DRIVE" / "test"
    result = [
        (path.stem, path, drive / "1st_manual" / f"{path.name[:2]}_manual1.gif",
         drive / "mask" / f"{path.name[:2]}_test_mask.gif")
        for path in sorted((drive / "images").glob("*.tif"))
    ]  # fmt: skip
    stare = root / "STARE"
    for path in sorted((stare / "stare-images").glob("*.ppm.gz")):
        name = path.name.split(".")[0]
        result.append((name, path, stare / "labels-ah" / f"{name}.ah.ppm.gz", None))
    return result


def write_inputs(folder: Path, which: str, seed: int) -> int:
    """The photographs, their degraded copies, masks and labels as PNGs named alike in ``folder``."""
    count = 0
    for index, (name, photo_path, label_path, mask_path) in enumerate(sources(which)):
        rgb = read_rgb(photo_path)
        fov = detect_fov(rgb) if mask_path is None else read_binary(mask_path)
        label = read_binary(label_path)
        copies = {"original": rgb} | degraded_copies(rgb, seed * 1000 + index)
        for kind, image in copies.items():
            stem = f"{name}-{kind}"
            write_png(folder / "photos" / f"{stem}.png", image)
            write_png(folder / "masks" / f"{stem}.png", (fov > 0).astype(np.uint8) * 255)
            write_png(folder / "labels" / f"{stem}.png", (label > 0).astype(np.uint8) * 255)
            count += 1
    return count


def segment_all(folder: Path) -> tuple[Path, float]:
    """Segment the photographs in ``folder`` (those done by an earlier run are skipped): the output folder and
    the threshold."""
    from lib.experiment import DRIVE_PHOTOGRAPH_MODEL, Experiment
    from lib.photographs import Options
    from src.segment import segment

    out = folder / "out"
    model = Experiment.in_folder(DRIVE_PHOTOGRAPH_MODEL)
    threshold = model.read_threshold()["threshold"]
    options = Options(threshold=threshold, outputs=("probability",))
    weights = model.weights("best")
    segment([str(folder / "photos")], out, weights, options, str(folder / "masks"), str(folder / "labels"))
    return out, threshold


def measured_rows(folder: Path, out: Path, threshold: float) -> list[dict]:
    """The summary's rows with every signal of ``lib.quality`` recomputed from the probability maps (the 8-bit
    PNGs the run wrote), so that a change to lib.quality needs no new prediction."""
    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        name = file_id(Path(row["image"]))
        probability = cv2.imread(str(out / f"{name}_probability.png"), cv2.IMREAD_UNCHANGED) / np.float32(255)
        fov = read_binary(folder / "masks" / f"{name}.png") > 0
        measured = signals(probability, fov, threshold)
        row |= {key: measured[key] for key in SIGNALS} | {"quality": flag(measured), "kind": name.rsplit("-", 1)[1]}
    return rows


def spearman(first, second) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(first, second).statistic)


def evaluate(rows: list[dict]) -> dict:
    f1 = np.array([float(row["f1"]) for row in rows])
    flagged = np.array([is_flagged(row) for row in rows])
    original = np.array([row["kind"] == "original" for row in rows])
    poor = f1 < POOR_F1
    return {
        "photographs": len(rows),
        "spearman": {key: spearman([float(row[key]) for row in rows], f1) for key in SIGNALS},
        "poor": int(poor.sum()),
        "caught": int((flagged & poor).sum()),
        "undegraded": int(original.sum()),
        "false_flags": int((flagged & original).sum()),
        "flagged_good": int((flagged & ~poor).sum()),
        "good": int((~poor).sum()),
        "flagged": int(flagged.sum()),
    }


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for kind in sorted({row["kind"] for row in rows}):
        mine = [row for row in rows if row["kind"] == kind]
        axes.scatter(
            [float(row["reliability"]) for row in mine],
            [float(row["f1"]) for row in mine],
            s=[30 if is_flagged(row) else 10 for row in mine],
            label=kind,
            alpha=0.8,
        )
    axes.axhline(POOR_F1, color="grey", linestyle="--", linewidth=0.8)
    axes.set_xlabel("reliability (summary.csv); large markers: flagged 'check'")
    axes.set_ylabel("true F1 against the manual label")
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


def share(part: int, whole: int) -> str:
    return f"{part} of {whole} ({part / max(whole, 1):.1%})"


def named(row: dict) -> str:
    return f"{file_id(Path(row['image']))} (F1 {float(row['f1']):.2f}, reliability {float(row['reliability']):.2f})"


def poor_and_missed(row: dict) -> bool:
    return float(row["f1"]) < POOR_F1 and not is_flagged(row)


def report(rows: list[dict], which: str) -> dict:
    result = evaluate(rows)
    print(f"set: {which}, {result['photographs']} photographs (undegraded and degraded copies)")
    print("Spearman correlation with true F1:")
    for key, value in result["spearman"].items():
        print(f"  {key:<24} {value:+.3f}")
    print(f"photographs with F1 < {POOR_F1:.2f}: {result['poor']}; flagged 'check': {result['flagged']}")
    print(f"flag recall (F1 < {POOR_F1:.2f} flagged): {share(result['caught'], result['poor'])}")
    print(f"flag precision (flagged with F1 < {POOR_F1:.2f}): {share(result['caught'], result['flagged'])}")
    print(f"undegraded photographs flagged: {share(result['false_flags'], result['undegraded'])}")
    print("  " + ", ".join(named(row) for row in rows if row["kind"] == "original" and is_flagged(row)))
    print("poor photographs not flagged: " + ", ".join(named(row) for row in rows if poor_and_missed(row)))
    for kind in sorted({row["kind"] for row in rows}):
        mine = [row for row in rows if row["kind"] == kind]
        f1 = np.median([float(row["f1"]) for row in mine])
        print(f"  {kind:<9} median F1 {f1:.3f}, flagged {share(sum(map(is_flagged, mine)), len(mine))}")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=("test", "training"), default="test")
    parser.add_argument("--cache", type=Path, help="keep the photographs and predictions here (reruns reuse them)")
    parser.add_argument("--plot", type=Path, help="write the reliability/F1 scatter plot here (PNG)")
    args = parser.parse_args(argv)
    folder = args.cache or Path(tempfile.gettempdir()) / f"retina_bench_quality_{args.set}"
    if not (folder / "photos").is_dir():
        count = write_inputs(folder, args.set, seed=0 if args.set == "test" else 1)
        print(f"wrote {count} photographs into {folder}", file=sys.stderr, flush=True)
    out, threshold = segment_all(folder)
    rows = measured_rows(folder, out, threshold)
    report(rows, args.set)
    if args.plot:
        plot(rows, args.plot, f"python -m benchmarks.bench_quality --set {args.set} --plot {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
