"""What the benchmark scripts share: running each mode in its own process and printing the table."""

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from lib.inference import ENGINES

ENGINE_NAMES = tuple(name for name in ENGINES if name != "auto")  # the engines a benchmark compares
# The instruction-set extensions that decide a CPU's speed at convolutions, as /proc/cpuinfo names them
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16")


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    """The cores this process may use, the CPU's model and its SIMD extensions (Linux's /proc/cpuinfo)."""
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    simd = " ".join(flag for flag in SIMD_FLAGS if flag in flags) or "none listed"
    return f"{len(os.sched_getaffinity(0))} cores ({model}), instruction set: {simd}"


def with_engines(modes: list[str], engines: list[str], keras_only: tuple[str, ...] = ()) -> list[str]:
    """``mode/engine`` for each mode and engine, the modes in ``keras_only`` with keras alone."""
    return [f"{mode}/{engine}" for mode in modes for engine in engines if engine == "keras" or mode not in keras_only]


def run_modes(module: str, modes: list[str], arguments: list[str]) -> list[dict]:
    """Run ``python -m module --single MODE`` per mode, so each peak memory figure is that mode's alone."""
    results = []
    for mode in modes:
        print(f"running {mode} ...", file=sys.stderr, flush=True)
        completed = subprocess.run(
            [sys.executable, "-m", module, "--single", mode, *arguments], capture_output=True, text=True
        )
        lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
        if completed.returncode or not lines:
            sys.stderr.write(completed.stderr[-3000:])
            raise SystemExit(f"error: mode {mode} failed (exit {completed.returncode})")
        results.append(json.loads(lines[-1]))
    return results


def print_table(columns: list[tuple[str, str, str]], rows: list[dict]) -> None:
    """A Markdown table: columns are (key, heading, format)."""
    print("| " + " | ".join(heading for _, heading, _ in columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        cells = [format(row[key], fmt) if row.get(key) is not None else "" for key, _, fmt in columns]
        print("| " + " | ".join(cells) + " |")


def mean_scores(model: Path, images: str, labels: str, out: Path, masks: str | None = None) -> dict:
    """Mean AUC ROC and F1 of the model folder ``model`` on the labelled photographs, as ``run_prediction.py``
    scores them with its defaults (whole image, DRIVE's FOV diameter, the model's stored threshold) into ``out``
    (a rerun reuses the photographs done); with the threshold used."""
    import statistics

    from lib.experiment import Experiment
    from lib.photographs import Options
    from lib.run_folder import SUMMARY
    from lib.textfiles import read_csv
    from src.segment import segment

    experiment = Experiment.in_folder(model)
    threshold = experiment.read_threshold()["threshold"]
    options = Options(threshold=threshold, outputs=("probability",))
    segment([images], out, experiment.weights("best"), options, masks=masks, labels=labels)
    rows = read_csv(out / SUMMARY)
    means = {metric: statistics.mean(float(row[metric]) for row in rows) for metric in ("auc_roc", "f1")}
    return means | {"images": len(rows), "threshold": threshold}
