"""The threshold chosen on training data: it maximises F1 on the validation patches, training stores it with
the best weights, run_testing.py reports it beside the published 0.5, run_prediction.py uses it unless told."""

import json

import numpy as np
import pytest
from helpers import make_config, run_script

import run_prediction
from lib.errors import UserError
from lib.experiment import Experiment
from lib.metrics import THRESHOLD, best_f1_threshold, binary_metrics
from lib.synthetic import synthetic_fundus
from src import segment


def scores(seed=0, count=3000):
    rng = np.random.default_rng(seed)
    truth = rng.random(count) < 0.12
    return truth, np.clip(0.35 * truth + rng.normal(0.3, 0.15, count), 0, 1).astype(np.float32)


def test_the_chosen_threshold_maximises_f1():
    truth, score = scores()
    threshold, f1 = best_f1_threshold(truth, score)
    assert binary_metrics(truth, score >= threshold)["f1"] == f1
    tried = np.r_[np.unique(score), np.linspace(0, 1, 101)]
    assert max(binary_metrics(truth, score >= t)["f1"] for t in tried) == f1
    assert not np.isin(threshold, score)  # between two probabilities, not on one pixel's value
    assert f1 > binary_metrics(truth, score >= THRESHOLD)["f1"]


def test_ties_take_the_highest_threshold_and_no_vessel_is_refused():
    truth, score = np.array([1, 0, 1, 0]), np.array([0.9, 0.6, 0.8, 0.1])
    assert best_f1_threshold(truth, score) == (pytest.approx(0.7), 1.0)  # between 0.8 and 0.6
    with pytest.raises(ValueError, match="no vessel"):
        best_f1_threshold(np.zeros(4), score)


def test_the_experiment_reads_back_its_threshold_and_names_a_damaged_file(tmp_path):
    experiment = Experiment.in_folder(tmp_path / "model")
    experiment.folder.mkdir()
    assert experiment.read_threshold() is None
    experiment.write_threshold({"threshold": 0.42, "chosen_on": "validation"})
    assert experiment.read_threshold()["threshold"] == 0.42
    assert experiment.threshold_file.name == "model_threshold.json"
    experiment.threshold_file.write_text('{"threshold": 7}')
    with pytest.raises(UserError, match="model_threshold.json: damaged threshold file.*--threshold-only"):
        experiment.read_threshold()


# ------------------------------------------------------------------ run_prediction.py


@pytest.fixture
def stand_in(monkeypatch):
    """The 'U-Net' returns 1 - the preprocessed image (vessels are dark), and no weights are loaded."""
    monkeypatch.setattr(segment, "load_model", lambda weights, precision: None)
    monkeypatch.setattr(segment, "predict_image", lambda model, image, inference, fov=None: 1 - image[0])


def photographs(folder):
    from PIL import Image

    folder.mkdir()
    for seed in range(2):
        rgb = synthetic_fundus(np.random.default_rng(seed), 90, 100)[0]
        Image.fromarray(rgb).save(folder / f"photo{seed}.png")
    return folder


def vessel_fractions(out_dir):
    import csv

    with open(out_dir / "summary.csv", newline="") as handle:
        return [row["vessel_density"] for row in csv.DictReader(handle)]


@pytest.mark.parametrize(
    "arguments, stored, expected, why",
    [
        ([], 0.3, 0.3, "stored with the model"),
        (["--threshold", "0.6"], 0.3, 0.6, "given with --threshold"),
        ([], None, THRESHOLD, "the published one"),
        (["--weights", "other.weights.h5"], 0.3, THRESHOLD, "the published one (--weights"),
    ],
)
def test_which_threshold_run_prediction_uses(tmp_path, arguments, stored, expected, why):
    model = Experiment.in_folder(tmp_path / "model")
    model.folder.mkdir()
    if stored is not None:
        model.write_threshold({"threshold": stored, "chosen_on": "validation"})
    model_or_weights = [] if "--weights" in arguments else ["--model", str(model.folder)]  # one or the other
    args = run_prediction.parser().parse_args(["photos", *model_or_weights, *arguments])
    threshold, reason = run_prediction.prediction_threshold(args)
    assert threshold == expected and why in reason


def test_run_prediction_segments_with_the_stored_threshold_and_says_so(tmp_path, stand_in, capsys):
    inputs = photographs(tmp_path / "in")
    model = Experiment.in_folder(tmp_path / "model")
    model.folder.mkdir()
    model.write_threshold({"threshold": 0.55, "chosen_on": "validation"})
    model.weights("best").write_bytes(b"stand-in weights")  # the output folder records which weights made it
    small = ["--fov-diameter", "64"]
    assert run_prediction.main([str(inputs), "-o", str(tmp_path / "stored"), "--model", str(model.folder), *small]) == 0
    assert "threshold 0.5500: stored with the model" in capsys.readouterr().out
    assert run_prediction.main([str(inputs), "-o", str(tmp_path / "given"), "--threshold", "0.55", *small]) == 0
    assert run_prediction.main([str(inputs), "-o", str(tmp_path / "half"), "--threshold", "0.5", *small]) == 0
    assert vessel_fractions(tmp_path / "stored") == vessel_fractions(tmp_path / "given")
    assert vessel_fractions(tmp_path / "stored") != vessel_fractions(tmp_path / "half")


# ------------------------------------------------------------------ training and testing


@pytest.mark.slow  # trains a tiny U-Net and tests it
def test_training_stores_the_f1_best_threshold_and_testing_reports_it_beside_0_5(
    tmp_path, synthetic_drive, monkeypatch, capsys
):
    from lib.config import load_config
    from lib.training_set import load_training_set
    from src.model import load_trained_model
    from src.patch_sources import patch_data
    from src.prediction import predict_patches
    from src.testing import run_test
    from src.training import store_threshold, train

    monkeypatch.chdir(tmp_path)
    streaming = {"patch_source": "streaming", "N_epochs": "3", "augment_scale": "0.1", "augment_gamma": "0.2"}
    path = make_config(tmp_path, {"training settings": streaming}, tiny=True)
    prepared = run_script("prepare_datasets_DRIVE.py", "--drive", synthetic_drive, "--config", path, cwd=tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    config = load_config(path)
    train(config)
    experiment, settings = config.experiment, config.training
    stored = experiment.read_threshold()
    out = capsys.readouterr().out
    assert "maximises F1 on the validation patches" in out, out

    # the best weights' F1-best threshold on the validation patches: the same patches, sampled again
    images, labels = load_training_set(config.data)
    x, y = patch_data(settings, images, labels, None, np.random.default_rng(settings.seed)).validation
    probabilities = predict_patches(load_trained_model(experiment.weights("best")), x.transpose(0, 3, 1, 2), 256)
    assert stored["threshold"] == best_f1_threshold(y, probabilities)[0]
    assert stored["validation_patches"] == len(y) == 16 and stored["weights_epoch"] == experiment.best_epoch()

    experiment.threshold_file.unlink()  # --threshold-only chooses the same again
    assert store_threshold(config)["threshold"] == stored["threshold"]

    results = run_test(config)
    assert results["threshold"] == THRESHOLD and results["stored_threshold"]["threshold"] == stored["threshold"]
    written = json.loads((experiment.folder / "performances.json").read_text())
    assert written["stored_threshold"]["f1"] == results["stored_threshold"]["f1"]
    assert "Confusion matrix (threshold 0.5)" in (experiment.folder / "performances.txt").read_text()
