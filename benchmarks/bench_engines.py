"""Keras against the default engine, side by side in one run, on the same weights and inputs.

    python -m benchmarks.bench_engines [--rounds 3] [--patches 2048] [--photographs 6] [--frame sides|width]
                                       [--weights PATH]

``photograph``: the network's pass (``predict_image``, whole image) on a STARE photograph enlarged into a 3504x2336
frame (``--frame``: see ``bench_prediction``) and prepared as ``run_prediction.py`` prepares it (its FOV rescaled to
DRIVE's, the FOV's box alone predicted); ``drive stride 5``: the network on the first ``--patches`` 48x48 patches at
stride 5 of DRIVE test image 01 (those touching its FOV, in the order ``run_testing.py`` predicts them,
``predict_patches``), scaled to all of the image's patches; ``drive whole``: that image in one pass;
``run_prediction.py``: the script as a user runs it on ``--photographs`` such photographs, each run into a new
folder, per photograph with start-up (Python, TensorFlow, the model) included and, from a run on one photograph,
without it, and the script's peak memory. Both engines are loaded in this process; each measure runs the engines in
turn, ``--rounds`` times, so that a change of the machine's load weighs on both; the table gives the median and the
range of the rounds, and the ratio of the medians. ``keras`` is the project's Keras path (``predict_on_batch`` per
batch, faster than Keras' ``predict``). The ONNX model is built (untimed) into a scratch copy of the weights'
folder.
"""

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from benchmarks import common
from benchmarks.bench_prediction import FRAMES, Clock, default_stare, script, write_large_photographs
from lib.experiment import REFERENCE_MODEL, Experiment

DRIVE_IMAGE = 0  # test image 01
# Untimed calls of each engine before a measure: the first calls of an engine on a new input size allocate its
# memory and, right after loading, share the cores with the frameworks' own start-up (measured: ONNX Runtime's
# first timed photograph 0.53 s after one warm-up, 0.44-0.47 s from then on)
WARM_UPS = 2


def default_drive() -> Path:
    return default_stare().parents[1] / "DRIVE"


def interleaved(runs: dict, rounds: int, warm_ups: int = WARM_UPS) -> dict[str, list[Clock]]:
    """Wall-clock and CPU seconds of each of ``runs`` (name → function), called ``warm_ups`` times untimed and then
    in turn ``rounds`` times; a run that returns a Clock (a child process's) is timed by it."""
    for _ in range(warm_ups):
        for run in runs.values():
            run()
    clocks = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            with Clock() as clock:
                result = run()
            clocks[name].append(result if isinstance(result, Clock) else clock)
    return clocks


def photograph_runs(engines: dict, photos: Path) -> dict:
    from lib.files import expand
    from lib.inference import fov_window
    from lib.photographs import Options, load_photograph
    from src.prediction import predict_image

    options = Options()
    photo = load_photograph(expand(str(photos))[0], None, None, options)
    _, height, width = photo.network_input.shape
    _, box_height, box_width = photo.network_input[(slice(None), *fov_window(photo.network_fov))].shape
    print(f"photograph: network input {width}x{height} px, the FOV's box {box_width}x{box_height} px", flush=True)
    return {
        name: lambda engine=engine: predict_image(engine, photo.network_input, options.inference, photo.network_fov)
        for name, engine in engines.items()
    }


def drive_runs(engines: dict, drive: Path, count: int) -> tuple[dict, float, dict]:
    """The runs on ``count`` stride-5 patches of a DRIVE test image, the image's patches per patch run, and the runs
    on the whole image."""
    from lib.datasets import read_drive_split
    from lib.inference import Inference
    from lib.preprocessing import preprocess
    from src.prediction import overlapping_patches, predict_image, predict_patches

    data = read_drive_split(drive, "test")
    image = preprocess(data["imgs"])[DRIVE_IMAGE]  # the whole split's statistics, as run_testing.py
    inference = Inference()  # the published test: 48x48 patches at stride 5
    fov = data["borderMasks"][DRIVE_IMAGE, 0] > 0
    patches, _, _ = overlapping_patches(image, inference.patch_hw, inference.stride_hw, fov)
    subset = patches[:count]
    print(f"drive stride 5: {len(subset)} of the {len(patches)} patches of test image 01", flush=True)
    runs = {
        name: lambda engine=engine: predict_patches(engine, subset, inference.batch_size)
        for name, engine in engines.items()
    }
    whole = Inference(mode="whole")
    whole_runs = {name: lambda engine=engine: predict_image(engine, image, whole) for name, engine in engines.items()}
    return runs, len(patches) / len(subset), whole_runs


def script_runs(names: dict[str, str], photos: Path, weights: Path, work: Path) -> dict:
    """run_prediction.py on ``photos`` for each engine (name → --engine value), each time into a new folder."""

    def run(engine: str):
        return lambda: script(photos, weights, Path(tempfile.mkdtemp(prefix="out.", dir=work)), engine)[0]

    return {name: run(engine) for name, engine in names.items()}


def row(measure: str, clocks: dict[str, list[Clock]], scale: float = 1.0) -> dict:
    """A table row: each engine's median and range of wall-clock seconds times ``scale``, its median CPU seconds,
    and keras / default of both medians."""
    cells, medians = {"measure": measure}, {}
    for name, runs in clocks.items():
        wall, cpu = [run.wall * scale for run in runs], [run.cpu * scale for run in runs]
        medians[name] = statistics.median(wall), statistics.median(cpu)
        cells[name] = f"{medians[name][0]:.3f} ({min(wall):.3f}-{max(wall):.3f})"
        cells[f"{name}_cpu"] = f"{medians[name][1]:.3f}"
    (keras_wall, keras_cpu), (default_wall, default_cpu) = medians.values()
    cells["ratio"], cells["cpu_ratio"] = f"{keras_wall / default_wall:.2f}", f"{keras_cpu / default_cpu:.2f}"
    return cells


def peak_row(measure: str, clocks: dict[str, list[Clock]]) -> dict:
    """A table row of each engine's median peak memory (MiB) over the rounds, and keras / default."""
    medians = {name: statistics.median(run.peak_mb for run in runs) for name, runs in clocks.items()}
    cells = {"measure": measure, **{name: f"{peak:.0f}" for name, peak in medians.items()}}
    keras, default = medians.values()
    return cells | {"ratio": f"{keras / default:.2f}"}


def per_photograph(full: list[Clock], one: list[Clock] | None, count: int) -> list[Clock]:
    """Each round's script run on ``count`` photographs per photograph; given the runs on one, after start-up:
    (run on ``count`` - run on one) / (``count`` - 1)."""
    result = []
    for index, run in enumerate(full):
        clock, base, divisor = Clock(), one[index] if one else Clock(), count - 1 if one else count
        clock.wall, clock.cpu = (run.wall - base.wall) / divisor, (run.cpu - base.cpu) / divisor
        result.append(clock)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=Experiment.in_folder(REFERENCE_MODEL).weights("best"))
    parser.add_argument("--stare", type=Path, default=default_stare(), help="STARE's stare-images folder")
    parser.add_argument("--drive", type=Path, default=default_drive(), help="the DRIVE download")
    parser.add_argument("--rounds", type=int, default=3, help="times each engine runs each measure (default 3)")
    parser.add_argument("--patches", type=int, default=2048, help="stride-5 DRIVE patches timed (default 2048)")
    parser.add_argument("--photographs", type=int, default=6, help="3504x2336 photographs per script run (6)")
    parser.add_argument("--frame", choices=FRAMES, default="sides", help="how the photographs fill their frames")
    args = parser.parse_args()
    if args.rounds < 1 or args.patches < 1 or args.photographs < 2:
        raise SystemExit("error: --rounds and --patches must be at least 1, --photographs at least 2")
    from lib.inference import Inference
    from src.engines import announce

    default = Inference()
    default_name = engines_name(default)
    if default_name == "keras":
        raise SystemExit(f"error: {announce(default)}: nothing to compare; pip install -r requirements-export.txt")
    print(f"{common.machine()}; load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    print(f"default {announce(default)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_engines.") as scratch:
        rows = measure(args, default_name, Path(scratch))
    print(
        f"\nweights {args.weights}; {args.rounds} rounds, median (min-max); {args.photographs} photographs "
        f"per script run; load average {os.getloadavg()[0]:.1f} at the end\n"
    )

    default_heading = f"{default_name} (default)"
    columns = [("measure", "measure", "s"), ("keras", "keras", "s"), (default_name, default_heading, "s")]
    columns += [("ratio", "keras / default", "s"), ("keras_cpu", "keras CPU", "s")]
    columns += [(f"{default_name}_cpu", f"{default_heading} CPU", "s"), ("cpu_ratio", "keras / default, CPU", "s")]
    common.print_table(columns, rows)


def measure(args, default_name: str, work: Path) -> list[dict]:
    """The table's rows, each measure's engines in turn."""
    from lib.inference import Inference
    from src.engines import load_engine

    weights = work / "weights" / args.weights.name
    weights.parent.mkdir()
    shutil.copy(args.weights, weights)
    photos, one = work / "photos", work / "one"
    write_large_photographs(args.stare, args.photographs, photos, args.frame)
    write_large_photographs(args.stare, 1, one, args.frame)
    engines = {"keras": load_engine(weights, Inference(engine="keras"), quiet=True)}
    engines[default_name] = load_engine(weights, Inference(), quiet=True)  # builds the ONNX model
    rows = [row("network, 3504x2336 photograph (s)", interleaved(photograph_runs(engines, photos), args.rounds))]
    runs, scale, whole_runs = drive_runs(engines, args.drive, args.patches)
    rows.append(row("network, DRIVE image at stride 5 (s)", interleaved(runs, args.rounds), scale))
    rows.append(row("network, DRIVE image whole (s)", interleaved(whole_runs, args.rounds)))
    names = {"keras": "keras", default_name: "auto"}
    full = interleaved(script_runs(names, photos, weights, work), args.rounds, warm_ups=1)  # each a new process
    single = interleaved(script_runs(names, one, weights, work), args.rounds, warm_ups=0)
    count = args.photographs
    per_photo = {name: per_photograph(runs, None, count) for name, runs in full.items()}
    rows.append(row("run_prediction.py per photograph, start-up included (s)", per_photo))
    after = {name: per_photograph(runs, single[name], count) for name, runs in full.items()}
    rows.append(row("run_prediction.py per photograph after start-up (s)", after))
    rows.append(peak_row("run_prediction.py peak memory (MiB)", full))
    return rows


def engines_name(inference) -> str:
    from src.engines import resolve

    return resolve(inference)[0]


if __name__ == "__main__":
    main()
