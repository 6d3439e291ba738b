"""Smoke tests of the benchmark scripts on a tiny synthetic DRIVE: they run, and their figures are sane.

Speed is never asserted here: the benchmarks print figures, the README quotes them.
"""

import csv
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from helpers import REPO, assert_ok, make_config, run_script

pytestmark = pytest.mark.slow  # the benchmark scripts train and predict in subprocesses (about 80 s)


def run_module(module: str, *args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The printed Markdown table's rows, by their first cell."""
    rows = [line.strip("|").split("|") for line in stdout.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [cell.strip() for cell in cells[1:]] for cells in rows[1:]}


@pytest.fixture(scope="module")
def bench(tmp_path_factory, synthetic_drive):
    folder = tmp_path_factory.mktemp("bench")
    config = make_config(folder, {"training settings": {"precision": "mixed_bfloat16"}}, tiny=True)
    assert_ok(run_script("prepare_datasets_DRIVE.py", "--drive", synthetic_drive, "--config", config, cwd=folder))
    recipe = run_module("benchmarks.bench_recipe", "--config", config, cwd=folder)
    assert_ok(recipe)
    return SimpleNamespace(folder=folder, config=config, recipe=recipe)


def test_recipe_curve_has_one_auc_per_epoch(bench):
    with open(bench.folder / "exp" / "auc_curve.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    minutes = [float(row["training_minutes"]) for row in rows]
    assert 0 < minutes[0] < minutes[1]
    assert all(0 <= float(row["auc_roc_whole_image"]) <= 1 for row in rows)
    assert set(table_rows(bench.recipe.stdout)) == {"1", "2"}
    assert (bench.folder / "exp" / "exp_best.weights.h5").is_file()  # trained as run_training.py does


def test_recipe_curve_continues_an_interrupted_camera_augmented_training(bench):
    """The robust recipe runs for hours, across sittings: --resume continues the curve where it stopped."""
    recipe = {"patch_source": "streaming", "augment_scale": "0.1", "augment_gamma": "0.2", "augment_noise": "3"}

    def config(epochs, filename):
        overrides = {"experiment name": {"name": "robust"}, "training settings": {**recipe, "N_epochs": epochs}}
        return make_config(bench.folder, overrides, tiny=True, filename=filename)

    first = config(1, "first.txt")
    assert_ok(run_module("benchmarks.bench_recipe", "--config", first, cwd=bench.folder))
    curve = bench.folder / "robust" / "auc_curve.csv"
    first_row = curve.read_text().splitlines()[1]
    resumed = run_module("benchmarks.bench_recipe", "--config", config(2, "again.txt"), "--resume", cwd=bench.folder)
    assert_ok(resumed)
    lines = curve.read_text().splitlines()
    assert lines[1] == first_row  # the interrupted run's row is kept as it was
    rows = list(csv.DictReader(lines))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    assert float(rows[0]["training_minutes"]) < float(rows[1]["training_minutes"])
    assert set(table_rows(resumed.stdout)) == {"1", "2"}


def test_inference_benchmark_compares_every_mode_and_engine_with_the_published_port(bench):
    modes = "network,stride,stride_bf16,whole,published"
    args = ("--config", bench.config, "--modes", modes, "--engines", "keras,onnxruntime")
    result = run_module("benchmarks.bench_inference", *args, cwd=bench.folder)
    assert_ok(result)
    rows = table_rows(result.stdout)
    both = [f"{mode}/{engine}" for mode in ("network", "stride") for engine in ("keras", "onnxruntime")]
    assert list(rows) == [*both, "stride_bf16/keras", "whole/keras", "whole/onnxruntime", "published/keras"]
    auc = {mode: float(cells[2]) for mode, cells in rows.items() if cells[2]}
    assert auc.keys() == set(rows) - {"network/keras", "network/onnxruntime"}
    assert auc["stride/keras"] == auc["published/keras"]  # skipping patches outside the FOV changes no FOV pixel
    assert auc["stride/onnxruntime"] == pytest.approx(auc["stride/keras"], abs=1e-4)  # 4 printed digits
    assert abs(auc["stride_bf16/keras"] - auc["stride/keras"]) < 0.05
    assert all(float(cells[0]) > 0 and float(cells[1]) > 0 for cells in rows.values())  # seconds, memory
    assert float(rows["whole/onnxruntime"][5]) > 0  # x faster than its keras row
    assert "keras: stride mode end to end vs the network's forward pass alone" in result.stdout
    assert " cores (" in result.stdout and "instruction set: " in result.stdout


def test_training_benchmark_measures_each_pipeline(bench):
    args = ("--config", bench.config, "--steps", 3, "--subimgs", 160)
    result = run_module("benchmarks.bench_training", *args, cwd=bench.folder)
    assert_ok(result)
    rows = table_rows(result.stdout)
    assert list(rows) == ["published", "in_memory", "streaming"]
    assert all(float(cells[0]) > 0 for cells in rows.values())


def test_training_benchmark_compares_op_determinism(bench):
    args = ("--config", bench.config, "--steps", 3, "--subimgs", 160, "--modes", "streaming", "--deterministic")
    result = run_module("benchmarks.bench_training", *args, cwd=bench.folder)
    assert_ok(result)
    assert list(table_rows(result.stdout)) == ["streaming", "streaming+deterministic"]
    assert "op determinism, streaming: " in result.stdout
