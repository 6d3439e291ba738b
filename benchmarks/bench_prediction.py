"""Your own photographs at clinic scale: seconds per image end to end beside the network's own time, peak memory.

    python -m benchmarks.bench_prediction [--photos DIR | --stare DIR] [--images 10] [--weights PATH]

Without --photos, the first --images STARE photographs are enlarged into 3504x2336 frames (a 3:2 camera sensor;
the disc keeps its shape) and written as JPEGs (quality 95) into a temporary folder: ``--frame sides`` (default)
enlarges them to the frame's height, black at the sides; ``--frame width`` to its width, the FOV across nearly
all of it and cut at the top and bottom, as a 45° camera frames it.
Modes, each in its own process (so its peak memory is its own), on the same photographs, default settings:
``network``: the U-Net's pass alone, ``predict_image`` on each photograph's prepared input;
``all`` and ``probability``: ``src.segment.segment`` end to end, from reading each JPEG to its last file and
summary row, with all four outputs or ``--outputs probability``;
``first_run`` and ``rerun``: ``run_prediction.py`` as a user runs it (start-up and model loading included), into
a new folder and then again into the finished one, counting the files the rerun rewrote.
The first three predict one photograph untimed first: tracing the network's graph is not segmenting.
Each mode runs with each of ``--engines`` (rows ``mode/engine``), the first_run and rerun of each engine into a
folder of its own.
Beside the wall-clock seconds, the CPU seconds (user + system, every thread): on a machine shared with other
work, the wall clock depends on the others' load and the CPU time much less. ``--rounds R`` runs the modes R
times in turn and reports the mean of each, so that a change of load between modes weighs on all of them.
"""

import argparse
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from benchmarks import common
from lib.atomic import atomic_path
from lib.experiment import REFERENCE_MODEL, Experiment
from lib.files import expand
from lib.imageio import read_rgb
from lib.run_folder import OUTPUTS

REPO = Path(__file__).resolve().parents[1]
MODES = ("network", "all", "probability", "first_run", "rerun")
SENSOR_HW = (2336, 3504)  # a 3:2 fundus camera's full-resolution frame
FRAMES = {  # how an enlarged STARE photograph fills the frame (--frame)
    "sides": "enlarged to the frame's height, black at the sides",
    "width": "enlarged to the frame's width, its FOV across nearly all of it and cut at the top and bottom, as a 45° "
    "camera's 3504x2336 photographs usually are (a smaller share of black: the network's input is smaller)",
}
JPEG_QUALITY = 95
POLL = 0.01  # s between two looks at a running script's memory


def default_stare() -> Path:
    return Path(os.environ.get("RETINA_DATA") or REPO.parent / "shared" / "data") / "STARE" / "stare-images"


def write_large_photographs(stare: Path, count: int, folder: Path, frame: str = "sides") -> None:
    """The first ``count`` STARE photographs enlarged into SENSOR_HW frames, the disc's shape kept, as JPEGs in
    ``folder``. FRAMES says how each fills its frame."""
    height, width = SENSOR_HW
    for path in expand(str(stare))[:count]:
        rgb = read_rgb(path)
        factor = height / rgb.shape[0] if frame == "sides" else width / rgb.shape[1]
        size = round(rgb.shape[1] * factor), round(rgb.shape[0] * factor)
        enlarged = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
        top, left = (size[1] - height) // 2, (width - size[0]) // 2
        frame_pixels = np.zeros((height, width, 3), np.uint8)
        if frame == "sides":
            frame_pixels[:, left : left + size[0]] = enlarged
        else:
            frame_pixels[:] = enlarged[top : top + height]
        with atomic_path(folder / f"{path.name.split('.')[0]}.jpg", suffix=".jpg") as temp:
            Image.fromarray(frame_pixels).save(temp, format="JPEG", quality=JPEG_QUALITY)


class Clock:
    """Wall-clock and CPU seconds (user + system, all threads of this process), or those and the peak memory of
    a child process (``script``)."""

    def __init__(self):
        self.wall, self.cpu, self.peak_mb = 0.0, 0.0, 0.0

    def _now(self) -> tuple[float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), usage.ru_utime + usage.ru_stime

    def __enter__(self):
        self.started = self._now()
        return self

    def __exit__(self, *exc_info):
        wall, cpu = self._now()
        self.wall += wall - self.started[0]
        self.cpu += cpu - self.started[1]


def network_alone(photos: list[Path], weights: Path, options) -> Clock:
    """The time of ``predict_image`` over the photographs, each prepared (untimed) as the pipeline prepares it."""
    from lib.photographs import load_photograph
    from src.prediction import predict_image
    from src.segment import load_model

    model = load_model(weights, options.inference)
    first = load_photograph(photos[0], None, None, options)
    predict_image(model, first.network_input, options.inference, first.network_fov)
    clock = Clock()
    for path in photos:
        photo = load_photograph(path, None, None, options)
        with clock:
            predict_image(model, photo.network_input, options.inference, photo.network_fov)
    return clock


def end_to_end(photos: list[Path], weights: Path, options, out_dir: Path) -> Clock:
    """The time of ``segment`` over the photographs, after one untimed photograph into a scratch folder."""
    from src.segment import segment

    with tempfile.TemporaryDirectory() as scratch:
        segment([str(photos[0])], Path(scratch), weights, options)
    with Clock() as clock:
        failures = segment([str(path) for path in photos], out_dir, weights, options)
    if failures:
        raise SystemExit(f"error: {failures} photographs failed")
    return clock


def memory_high_water_mb(pid: int) -> float:
    """A running process's peak resident memory so far (Linux's VmHWM), in MiB; 0 once it has ended."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")), 0.0)


def script(photos_dir: Path, weights: Path, out_dir: Path, engine: str) -> tuple[Clock, int]:
    """The time and peak memory of ``run_prediction.py`` into ``out_dir``, and how many files in it the run wrote or
    replaced. The CPU seconds are the child's own (``os.wait4``); its peak memory is sampled every POLL seconds
    while it runs, because the ru_maxrss that Linux reports for a child starts from its parent's (a benchmark holding
    both engines would make every script look as large as itself)."""
    before = {path: path.stat().st_mtime_ns for path in out_dir.glob("*")} if out_dir.is_dir() else {}
    command = [sys.executable, str(REPO / "run_prediction.py"), str(photos_dir), "-o", str(out_dir), "--engine", engine]
    clock = Clock()
    with tempfile.TemporaryFile("w+") as errors:
        start = time.perf_counter()
        child = subprocess.Popen([*command, "--weights", str(weights)], stdout=subprocess.DEVNULL, stderr=errors)
        while True:
            clock.peak_mb = max(clock.peak_mb, memory_high_water_mb(child.pid))
            ended, status, usage = os.wait4(child.pid, os.WNOHANG)
            if ended:
                break
            time.sleep(POLL)
        clock.wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            errors.seek(0)
            sys.stderr.write(errors.read()[-3000:])
            raise SystemExit(f"error: run_prediction.py failed (exit {child.returncode})")
    clock.cpu = usage.ru_utime + usage.ru_stime
    written = sum(before.get(path) != path.stat().st_mtime_ns for path in out_dir.glob("*"))
    return clock, written


def run_single(single: str, photos_dir: Path, weights: Path, work: Path) -> dict:
    from lib.photographs import Options

    mode, engine = single.split("/")
    photos = expand(str(photos_dir))
    row = {"mode": single, "images": len(photos)}
    options = Options(inference=dataclasses.replace(Options().inference, engine=engine))
    if mode == "network":
        clock = network_alone(photos, weights, options)
    elif mode in ("all", "probability"):
        options = dataclasses.replace(options, outputs=OUTPUTS if mode == "all" else ("probability",))
        clock = end_to_end(photos, weights, options, Path(tempfile.mkdtemp(prefix=f"{mode}.", dir=work)))
    else:
        clock, row["files_written"] = script(photos_dir, weights, work / f"script-{engine}", engine)
    peak = clock.peak_mb if mode in ("first_run", "rerun") else common.peak_rss_mb()  # the script: a child's
    count = len(photos)
    return row | {"seconds": clock.wall, "seconds_per_image": clock.wall / count,
                  "cpu_per_image": clock.cpu / count, "peak_rss_mb": peak}  # fmt: skip


def mean_rows(rows: list[dict]) -> list[dict]:
    """One row per mode, in the modes' order: its times and memory averaged over the rounds (counts: the first's)."""
    by_mode = {}
    for row in rows:
        by_mode.setdefault(row["mode"], []).append(row)
    return [
        {
            key: float(np.mean([run[key] for run in runs])) if isinstance(value, float) else value
            for key, value in runs[0].items()
        }
        for runs in by_mode.values()
    ]


def compare(rows: list[dict]) -> None:
    """Each row's times against its engine's network row, and its speed against the same mode's keras row."""
    by_mode = {row["mode"]: row for row in rows}
    for row in rows:
        mode, engine = row["mode"].split("/")
        network, keras = by_mode.get(f"network/{engine}"), by_mode.get(f"{mode}/keras")
        if network:
            row["vs_network"] = row["seconds_per_image"] / network["seconds_per_image"]
            row["cpu_vs_network"] = row["cpu_per_image"] / network["cpu_per_image"]
        if keras:
            row["vs_keras"] = keras["seconds_per_image"] / row["seconds_per_image"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, help="a folder of your own photographs (default: enlarged STARE)")
    parser.add_argument("--stare", type=Path, default=default_stare(), help="STARE's stare-images folder")
    parser.add_argument("--images", type=int, default=10, help="STARE photographs to enlarge (default 10)")
    parser.add_argument(
        "--frame", choices=FRAMES, default="sides", help="; ".join(f"{name}: {text}" for name, text in FRAMES.items())
    )
    parser.add_argument("--weights", type=Path, default=Experiment.in_folder(REFERENCE_MODEL).weights("best"))
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {', '.join(MODES)}")
    parser.add_argument("--engines", default=",".join(common.ENGINE_NAMES), help="comma-separated engines to compare")
    parser.add_argument("--rounds", type=int, default=1, help="times each mode runs, in turn (default 1)")
    parser.add_argument("--single", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(run_single(args.single, args.photos, args.weights, args.work)))
        return
    with tempfile.TemporaryDirectory(prefix="bench_prediction.") as work:
        work = Path(work)
        photos = args.photos
        if photos is None:
            photos = work / "photos"
            write_large_photographs(args.stare, args.images, photos, args.frame)
        forwarded = ["--photos", str(photos), "--weights", str(args.weights), "--work", str(work)]
        runs = common.with_engines(args.modes.split(","), args.engines.split(","))
        rows = []
        for _ in range(args.rounds):  # first_run and rerun of one round share their folder
            for engine in args.engines.split(","):
                shutil.rmtree(work / f"script-{engine}", ignore_errors=True)
            rows += common.run_modes("benchmarks.bench_prediction", runs, forwarded)
        rows = mean_rows(rows)
        size = Image.open(expand(str(photos))[0]).size
    compare(rows)
    source = args.photos or f"{args.stare} ({FRAMES[args.frame]})"
    print(f"\n{rows[0]['images']} photographs of {size[0]}x{size[1]} px from {source}; "
          f"weights {args.weights}; default settings (whole image, FOV rescaled to 540 px); "
          f"mean of {args.rounds} round(s)\n{common.machine()}\n")  # fmt: skip
    common.print_table(
        [
            ("mode", "mode", "s"),
            ("seconds_per_image", "s / image", ".2f"),
            ("vs_network", "x the network", ".2f"),
            ("cpu_per_image", "CPU s / image", ".2f"),
            ("cpu_vs_network", "CPU x the network", ".2f"),
            ("seconds", "total s", ".1f"),
            ("peak_rss_mb", "peak RSS (MiB)", ".0f"),
            ("files_written", "files written", "d"),
            ("vs_keras", "x faster than its keras row", ".2f"),
        ],
        rows,
    )


if __name__ == "__main__":
    main()
