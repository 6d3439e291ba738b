"""benchmarks/bench_engines.py: its table's arithmetic, and one real run with both engines (slow)."""

import pytest
from helpers import assert_ok
from test_benchmarks import run_module

from benchmarks import bench_engines
from benchmarks.bench_prediction import Clock


def clock(wall: float, cpu: float) -> Clock:
    result = Clock()
    result.wall, result.cpu = wall, cpu
    return result


def test_a_row_gives_medians_ranges_and_the_ratios_of_the_medians():
    clocks = {
        "keras": [clock(3.0, 6.0), clock(9.0, 5.0), clock(2.0, 4.0)],
        "onnxruntime": [clock(1.0, 2.0), clock(2.0, 2.5), clock(1.5, 3.0)],
    }
    cells = bench_engines.row("m", clocks, scale=2.0)
    assert cells["keras"] == "6.000 (4.000-18.000)" and cells["onnxruntime"] == "3.000 (2.000-4.000)"
    assert cells["keras_cpu"] == "10.000" and cells["onnxruntime_cpu"] == "5.000"
    assert cells["ratio"] == "2.00" and cells["cpu_ratio"] == "2.00"


def test_per_photograph_with_and_without_the_start_up():
    full, one = [clock(25.0, 13.0)], [clock(10.0, 4.0)]
    (included,) = bench_engines.per_photograph(full, None, 5)
    (after,) = bench_engines.per_photograph(full, one, 5)
    assert (included.wall, included.cpu) == (5.0, 2.6)
    assert (after.wall, after.cpu) == (3.75, 2.25)  # (25 - 10) / 4, (13 - 4) / 4


@pytest.mark.slow  # TensorFlow, ONNX Runtime and 4 runs of run_prediction.py (about 3 min on 2 cores)
def test_one_run_compares_keras_with_the_default_engine(drive_root, stare_root, tmp_path):
    pytest.importorskip("onnxruntime", reason="pip install -r requirements-export.txt")
    args = ("--rounds", "1", "--patches", "16", "--photographs", "2", "--drive", drive_root)
    result = run_module("benchmarks.bench_engines", *args, "--stare", stare_root / "stare-images", cwd=tmp_path)
    assert_ok(result)
    first, second = result.stdout.splitlines()[:2]
    assert " cores (" in first and "instruction set: " in first and second.startswith("default engine: onnxruntime")
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| measure | keras | onnxruntime (default) | keras / default |")
    measures = [line.split(" | ")[0] for line in table[1:]]
    assert measures == [
        "| network, 3504x2336 photograph (s)",
        "| network, DRIVE image at stride 5 (s)",
        "| network, DRIVE image whole (s)",
        "| run_prediction.py per photograph, start-up included (s)",
        "| run_prediction.py per photograph after start-up (s)",
        "| run_prediction.py peak memory (MiB)",
    ]
    assert all(float(cell) > 0 for cell in table[-1].split(" | ")[1:4])  # keras, default, their ratio
