"""Training throughput (patches/s) and peak memory of the patch pipelines, on the prepared DRIVE training set.

    python -m benchmarks.bench_training [--config configuration.txt] [--steps 200] [--subimgs N]
                                        [--batch-size N] [--precision mixed_bfloat16] [--deterministic]

Modes: ``published`` (faithful port: float64 patches and float64 one-hot (N, H*W, 2) targets built
up front, the model's output reshaped as published), ``in_memory`` (this project's default: the same
patches sampled up front, float32 patches and uint8 labels) and ``streaming`` (patches sampled per
batch by tf.data, nothing materialised). Same network, optimizer and batch size in every mode;
``--precision`` applies to this project's modes (the published one stays float32, as published).
Each mode runs in its own process, so its peak memory is its own. ``--deterministic`` runs each mode
a second time with TensorFlow's op determinism (``[training settings] deterministic = True``), as
``<mode>+deterministic``, and prints what it costs. CPU seconds per patch (all threads) are printed
beside the throughput: on a machine shared with other work they vary far less than the wall clock.
"""

import argparse
import dataclasses
import json
import time

import numpy as np

from benchmarks import common
from lib import published
from lib.config import load_config
from lib.inference import PRECISIONS
from lib.training_set import fov_constraint, load_training_set
from src.backend import keras, tf
from src.model import build_unet
from src.patch_sources import in_memory_patches, streaming_patches
from src.training import compile_model

MODES = ("published", "in_memory", "streaming")
WARMUP_STEPS = 5
DETERMINISTIC = "+deterministic"


def run_single(mode: str, config, steps: int) -> dict:
    label = mode
    mode, deterministic = mode.removesuffix(DETERMINISTIC), mode.endswith(DETERMINISTIC)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    images, labels = load_training_set(config.data)
    settings = config.training
    keras.utils.set_random_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    patch_hw = settings.patch_hw
    start = time.perf_counter()
    if mode == "published":
        patches, patch_masks = published.extract_random(
            images.astype(np.float64), labels.astype(np.float64), *patch_hw, settings.N_subimgs, rng
        )
        targets = published.masks_unet(patch_masks)
        unet = build_unet(*patch_hw)
        model = keras.Model(unet.input, keras.layers.Reshape((patch_hw[0] * patch_hw[1], 2))(unet.output))
        model.compile(optimizer=keras.optimizers.SGD(settings.learning_rate), loss="categorical_crossentropy")
        x, y = patches.transpose(0, 2, 3, 1), targets
    else:
        sample = in_memory_patches if mode == "in_memory" else streaming_patches
        data = sample(settings, images, labels, fov_constraint(settings, None), rng)
        x, y = (data.train_x.repeat(), None) if data.train_y is None else (data.train_x, data.train_y)
        keras.mixed_precision.set_global_policy(settings.precision)
        model = build_unet(*patch_hw)
        compile_model(model, settings, steps)
    setup_seconds = time.perf_counter() - start
    batch = settings.batch_size if y is not None else None
    model.fit(x, y, batch_size=batch, steps_per_epoch=WARMUP_STEPS, epochs=1, verbose=0)
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(x, y, batch_size=batch, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "mode": label,
        "setup_seconds": setup_seconds,
        "patches_per_second": steps * settings.batch_size / seconds,
        "cpu_seconds_per_1000": 1000 * cpu_seconds / (steps * settings.batch_size),
        "peak_rss_mb": common.peak_rss_mb(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configuration.txt")
    parser.add_argument("--steps", type=int, default=200, help="timed training steps per mode")
    parser.add_argument("--subimgs", type=int, default=None, help="override N_subimgs (default: the config's)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {', '.join(MODES)}")
    parser.add_argument("--batch-size", type=int, default=None, help="override batch_size (default: the config's)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None, help="override precision (not published)")
    parser.add_argument(
        "--deterministic", action="store_true", help="run each mode also with op determinism, and compare"
    )
    parser.add_argument("--single", help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = load_config(args.config)
    settings = dataclasses.replace(
        config.training,
        N_subimgs=args.subimgs or config.training.N_subimgs,
        batch_size=args.batch_size or config.training.batch_size,
        precision=args.precision or config.training.precision,
        augment=False,  # the same patches in every mode
    )
    config = dataclasses.replace(config, training=settings)
    if args.single:
        print(json.dumps(run_single(args.single, config, args.steps)))
        return
    forwarded = ["--config", args.config, "--steps", str(args.steps), "--subimgs", str(settings.N_subimgs)]
    forwarded += ["--batch-size", str(settings.batch_size), "--precision", settings.precision]
    modes = args.modes.split(",")
    if args.deterministic:
        modes = [variant for mode in modes for variant in (mode, mode + DETERMINISTIC)]
    rows = common.run_modes("benchmarks.bench_training", modes, forwarded)
    by_mode = {row["mode"]: row for row in rows}
    for row in rows:
        if "published" in by_mode:
            row["throughput_ratio"] = row["patches_per_second"] / by_mode["published"]["patches_per_second"]
            row["memory_ratio"] = by_mode["published"]["peak_rss_mb"] / row["peak_rss_mb"]
    print(
        f"\nN_subimgs {settings.N_subimgs}, patch {settings.patch_hw[0]}x{settings.patch_hw[1]}, batch "
        f"{settings.batch_size}, {args.steps} timed steps, precision {settings.precision} (published mode: float32)\n"
    )
    common.print_table(
        [
            ("mode", "mode", "s"),
            ("setup_seconds", "patch set-up (s)", ".1f"),
            ("patches_per_second", "patches/s", ".0f"),
            ("cpu_seconds_per_1000", "CPU s / 1000 patches", ".1f"),
            ("peak_rss_mb", "peak RSS (MiB)", ".0f"),
            ("throughput_ratio", "throughput vs published", ".2f"),
            ("memory_ratio", "x less memory", ".1f"),
        ],
        rows,
    )
    for row in rows:
        if row["mode"].endswith(DETERMINISTIC):
            mode = row["mode"].removesuffix(DETERMINISTIC)
            plain = by_mode[mode]
            speed = row["patches_per_second"] / plain["patches_per_second"] - 1
            cpu = row["cpu_seconds_per_1000"] / plain["cpu_seconds_per_1000"] - 1
            print(
                f"op determinism, {mode}: {plain['patches_per_second']:.0f} -> {row['patches_per_second']:.0f} "
                f"patches/s ({speed:+.0%}), CPU per patch {cpu:+.0%}"
            )


if __name__ == "__main__":
    main()
