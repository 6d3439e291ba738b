"""Test-time inference on the prepared DRIVE test set: seconds per image, peak memory and AUC ROC per mode.

    python -m benchmarks.bench_inference [--config configuration.txt] [--weights PATH] [--images 20]

Modes: ``stride`` (average mode at the configured stride, end to end: patches, network, reassembly,
FOV selection, AUC), ``network`` (the network's forward pass alone on the same patches), ``whole``
and ``whole_flips`` (the whole image at once, with flip averaging), ``published`` (the faithful port
of the published approach in lib/published.py, same network, same stride, every patch).
A ``_bf16`` suffix (``stride_bf16``, ``whole_bf16``, ...) runs a mode with the network computing in
bfloat16 (``[testing settings] precision = mixed_bfloat16``); the others compute in float32.
Each mode runs with each of ``--engines`` (``mode/engine`` rows; bfloat16 and ``published`` with Keras alone),
each in its own process, so its peak memory is its own, after one untimed image (which also builds the ONNX model
on first use).
"""

import argparse
import dataclasses
import json
import time

import numpy as np

from benchmarks import common
from lib import published
from lib.config import load_config
from lib.metrics import evaluate, evaluate_fov
from lib.test_set import load_test_set
from src.engines import KerasEngine, load_engine
from src.prediction import overlapping_patches, predict_patches
from src.testing import predict_images

MODES = ("network", "stride", "stride_bf16", "whole", "whole_flips", "whole_bf16", "whole_flips_bf16", "published")
BF16 = "_bf16"
KERAS_ONLY = tuple(mode for mode in MODES if mode.endswith(BF16)) + ("published",)


def run_single(single: str, config, weights) -> dict:
    mode, engine_name = single.split("/")
    test_set = load_test_set(config.data, config.testing)
    images, truths, masks = test_set.images, test_set.truths, test_set.masks
    base_mode = mode.removesuffix(BF16)
    inference = dataclasses.replace(
        config.testing.inference,
        mode={"whole": "whole", "whole_flips": "flips"}.get(base_mode, "patches"),
        precision="mixed_bfloat16" if mode.endswith(BF16) else "float32",
        engine=engine_name,
    )
    model = load_engine(weights, inference)
    patch_hw, stride_hw = inference.patch_hw, inference.stride_hw

    def network(count: int) -> None:
        for image, mask in zip(images[:count], masks[:count], strict=True):
            patches, _, _ = overlapping_patches(image, patch_hw, stride_hw, mask)
            start = time.perf_counter()
            predict_patches(model, patches, inference.batch_size)
            elapsed[0] += time.perf_counter() - start

    def published_approach(count: int) -> float:
        height, width = images.shape[2:]
        padded = published.paint_border_overlap(images[:count].astype(np.float64), *patch_hw, *stride_hw)
        patches = published.extract_ordered_overlap(padded, *patch_hw, *stride_hw)
        assert isinstance(model, KerasEngine)  # the published approach runs Keras' predict, as published
        output = model.model.predict(patches.transpose(0, 2, 3, 1), batch_size=32, verbose=0)
        probabilities = output[..., 1].astype(np.float64)[:, None]  # published pred_to_imgs keeps float64
        full, _ = published.recompone_overlap(probabilities, padded.shape[2], padded.shape[3], *stride_hw)
        scores, labels = published.pred_only_FOV(
            full[:, :, :height, :width], truths[:count, None].astype(np.float64), masks[:count, None]
        )
        return evaluate(labels.ravel(), scores.ravel()).metrics["auc_roc"]

    def this_project(count: int) -> float:
        predictions, _ = predict_images(model, images[:count], inference, masks[:count])
        return evaluate_fov(truths[:count], predictions, masks[:count]).metrics["auc_roc"]

    run = {"network": network, "published": published_approach}.get(base_mode, this_project)
    elapsed = [0.0]
    run(1)  # warm-up on one image: graph tracing is not inference
    elapsed = [0.0]
    start = time.perf_counter()
    auc = run(len(images))
    seconds = elapsed[0] if base_mode == "network" else time.perf_counter() - start
    return {
        "mode": single,
        "images": len(images),
        "seconds_per_image": seconds / len(images),
        "peak_rss_mb": common.peak_rss_mb(),
        "auc_roc": auc,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configuration.txt")
    parser.add_argument("--weights", default=None, help="default: the experiment's best weights")
    parser.add_argument("--images", type=int, default=None, help="test images to use (default: full_images_to_test)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {', '.join(MODES)}")
    parser.add_argument("--engines", default=",".join(common.ENGINE_NAMES), help="comma-separated engines to compare")
    parser.add_argument("--single", help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = load_config(args.config)
    if args.images:
        testing = dataclasses.replace(config.testing, full_images_to_test=args.images)
        config = dataclasses.replace(config, testing=testing)
    testing, inference = config.testing, config.testing.inference
    weights = args.weights or str(config.experiment.weights(testing.best_last))
    if args.single:
        print(json.dumps(run_single(args.single, config, weights)))
        return
    forwarded = ["--config", args.config, "--weights", weights, "--images", str(testing.full_images_to_test)]
    runs = common.with_engines(args.modes.split(","), args.engines.split(","), KERAS_ONLY)
    rows = common.run_modes("benchmarks.bench_inference", runs, forwarded)
    by_mode = {row["mode"]: row for row in rows}
    for row in rows:
        seconds, (mode, _) = row["seconds_per_image"], row["mode"].split("/")
        if "published/keras" in by_mode:
            row["speedup"] = by_mode["published/keras"]["seconds_per_image"] / seconds
        if "stride/keras" in by_mode:
            row["vs_stride"] = by_mode["stride/keras"]["seconds_per_image"] / seconds
        if f"{mode}/keras" in by_mode:
            row["vs_keras"] = by_mode[f"{mode}/keras"]["seconds_per_image"] / seconds
    print(
        f"\nweights {weights}; {testing.full_images_to_test} DRIVE test images; stride "
        f"{inference.stride_hw[0]}x{inference.stride_hw[1]}; patch batch {inference.batch_size}\n"
        f"{common.machine()}\n"
    )
    common.print_table(
        [
            ("mode", "mode", "s"),
            ("seconds_per_image", "s / image", ".2f"),
            ("peak_rss_mb", "peak RSS (MiB)", ".0f"),
            ("auc_roc", "AUC ROC", ".4f"),
            ("speedup", "x faster than published", ".1f"),
            ("vs_stride", "x faster than stride/keras", ".1f"),
            ("vs_keras", "x faster than its keras row", ".2f"),
        ],
        rows,
    )
    for engine in args.engines.split(","):
        network, stride = by_mode.get(f"network/{engine}"), by_mode.get(f"stride/{engine}")
        if network and stride:
            overhead = stride["seconds_per_image"] / network["seconds_per_image"] - 1
            print(f"\n{engine}: stride mode end to end vs the network's forward pass alone: {overhead:+.1%}")


if __name__ == "__main__":
    main()
