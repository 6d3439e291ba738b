"""The three published scripts run as a user runs them, on a tiny synthetic DRIVE: prepare -> train -> test.

One experiment (4 training / 2 test images of 96x90, 16x16 patches, 2 epochs, TensorBoard on) is shared by
the module; tests that change it work on a copy.
"""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import assert_ok, assert_user_error, make_config, run_script
from PIL import Image

pytestmark = pytest.mark.slow  # the scripts run as subprocesses around one shared training (about 80 s)

HDF5_FILES = {
    "DRIVE_dataset_imgs_train.hdf5": (4, 3, 96, 90),
    "DRIVE_dataset_groundTruth_train.hdf5": (4, 1, 96, 90),
    "DRIVE_dataset_borderMasks_train.hdf5": (4, 1, 96, 90),
    "DRIVE_dataset_imgs_test.hdf5": (2, 3, 96, 90),
    "DRIVE_dataset_groundTruth_test.hdf5": (2, 1, 96, 90),
    "DRIVE_dataset_borderMasks_test.hdf5": (2, 1, 96, 90),
    "DRIVE_dataset_groundTruth2nd_test.hdf5": (2, 1, 96, 90),
}
TRAINING_FILES = [
    "exp_architecture.json",
    "exp_best.weights.h5",
    "exp_last.weights.h5",
    "sample_input_imgs.png",
    "sample_input_masks.png",
    "configuration.txt",
    "training_history.csv",
    "training_curves.png",
]
TENSORBOARD = {"training settings": {"tensorboard": "True"}}
TESTING_FILES = [
    "performances.txt",
    "performances.json",
    "ROC.png",
    "Precision_recall.png",
    "all_originals.png",
    "all_predictions.png",
    "all_groundTruths.png",
    "exp_Original_GroundTruth_Prediction0.png",
    "per_image.csv",
    "per_image.png",
]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, synthetic_drive):
    folder = tmp_path_factory.mktemp("e2e")
    config = make_config(folder, tiny=True, overrides=TENSORBOARD)
    runs = {}
    runs["prepare"] = run_script(
        "prepare_datasets_DRIVE.py", "--drive", synthetic_drive, "--config", config, cwd=folder
    )
    assert_ok(runs["prepare"])
    runs["train"] = run_script("run_training.py", "--config", config, cwd=folder)
    assert_ok(runs["train"])
    runs["test"] = run_script("run_testing.py", "--config", config, cwd=folder)
    assert_ok(runs["test"])
    return SimpleNamespace(
        folder=folder, config=config, exp=folder / "exp", data=folder / "data", runs=runs, drive=synthetic_drive
    )


def png_shape(path):
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        return np.asarray(image).shape


def test_prepare_writes_the_hdf5_files(experiment):
    from lib.datasets import load_hdf5, read_drive_split

    assert sorted(p.name for p in experiment.data.iterdir()) == sorted(HDF5_FILES)
    for name, shape in HDF5_FILES.items():
        array = load_hdf5(experiment.data / name)
        assert array.shape == shape and array.dtype == np.uint8, name
    train = read_drive_split(experiment.drive, "training")
    np.testing.assert_array_equal(load_hdf5(experiment.data / "DRIVE_dataset_imgs_train.hdf5"), train["imgs"])
    np.testing.assert_array_equal(
        load_hdf5(experiment.data / "DRIVE_dataset_groundTruth_train.hdf5"), train["groundTruth"]
    )
    assert "wrote" in experiment.runs["prepare"].stdout


def test_training_writes_its_artifacts(experiment):
    import keras

    from src.model import build_unet, load_weights

    for name in TRAINING_FILES:
        assert (experiment.exp / name).is_file(), name
    assert (experiment.exp / "configuration.txt").read_bytes() == experiment.config.read_bytes()
    architecture = keras.models.model_from_json((experiment.exp / "exp_architecture.json").read_text())
    assert architecture.count_params() == 471_010
    for which in ("best", "last"):
        model = build_unet(16, 16)
        load_weights(model, experiment.exp / f"exp_{which}.weights.h5")
    # 40 sample patches of 16x16 in rows of 5
    assert png_shape(experiment.exp / "sample_input_imgs.png")[:2] == (8 * 16, 5 * 16)
    assert png_shape(experiment.exp / "sample_input_masks.png")[:2] == (8 * 16, 5 * 16)
    lines = (experiment.exp / "training_history.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert {"epoch", "loss", "val_loss", "accuracy", "val_accuracy"} <= set(header)
    assert [row.split(",")[0] for row in lines[1:]] == ["0", "1"]
    losses = [float(row.split(",")[header.index("val_loss")]) for row in lines[1:]]
    assert all(np.isfinite(losses))
    assert not list(experiment.exp.glob("*.tmp")) and not list(experiment.exp.glob(".*.*"))  # no temporary files


def test_testing_writes_its_results(experiment):
    from lib.datasets import load_hdf5

    for name in TESTING_FILES:
        assert (experiment.exp / name).is_file(), name
    results = json.loads((experiment.exp / "performances.json").read_text())
    assert 0.0 <= results["auc_roc"] <= 1.0 and 0.0 <= results["auc_pr"] <= 1.0
    masks = load_hdf5(experiment.data / "DRIVE_dataset_borderMasks_test.hdf5")
    assert results["pixels"] == int((masks > 0).sum())  # FOV pixels of both test images
    assert sum(map(sum, results["confusion_matrix"])) == results["pixels"]
    assert results["images"] == 2 and results["mode"]["mode"] == "patches"
    assert set(results["second_observer"]) == {"accuracy", "sensitivity", "specificity", "f1"}
    text = (experiment.exp / "performances.txt").read_text()
    assert text.startswith("Area under the ROC curve: ")
    for prefix in ("ACCURACY: ", "SENSITIVITY: ", "SPECIFICITY: ", "PRECISION: ", "F1 score (F-measure): "):
        assert f"\n{prefix}" in text
    # 2 images per row (N_group_visual = 2); the comparison stacks original, ground truth, prediction
    for name in ("all_originals.png", "all_predictions.png", "all_groundTruths.png"):
        assert png_shape(experiment.exp / name)[:2] == (96, 2 * 90), name
    assert png_shape(experiment.exp / "exp_Original_GroundTruth_Prediction0.png")[:2] == (3 * 96, 2 * 90)
    assert "AUC ROC" in experiment.runs["test"].stdout


def tensorboard_events(folder) -> dict[str, dict[str, list[int]]]:
    """{run: {tag: steps}} of the TensorBoard event files under ``folder`` (runs ``train``, ``validation``)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = {}
    for run in ("train", "validation"):
        events = EventAccumulator(str(folder / run), size_guidance={"images": 0, "tensors": 0})
        events.Reload()
        tags = events.Tags()
        runs[run] = {tag: sorted(event.step for event in events.Tensors(tag)) for tag in tags["tensors"]}
    return runs


def test_training_writes_tensorboard_events(experiment):
    """[training settings] tensorboard = True: loss, accuracy and learning rate per epoch, and the validation
    patches with their predictions as images, under <name>/tensorboard/."""
    folder = experiment.exp / "tensorboard"
    assert list(folder.glob("train/events.out.tfevents.*")) and list(folder.glob("validation/events.out.tfevents.*"))
    runs = tensorboard_events(folder)
    for tag in ("epoch_loss", "epoch_accuracy", "epoch_learning_rate"):
        assert runs["train"][tag] == [0, 1], tag
    for tag in ("epoch_loss", "epoch_accuracy"):
        assert runs["validation"][tag] == [0, 1], tag
    pictures = [tag for tag in runs["validation"] if tag.startswith("validation patches")]
    assert len(pictures) == 1 and runs["validation"][pictures[0]] == [0, 1]


def test_training_curves_show_each_epoch(experiment):
    """training_curves.png is drawn from the history after each epoch: two panels, loss and accuracy."""
    height, width, _ = png_shape(experiment.exp / "training_curves.png")
    assert (height, width) == (450, 1100)


def test_per_image_results_agree_with_each_image_evaluated_here(experiment):
    """per_image.csv and performances.json hold each test image's metrics on its own FOV pixels, as computed
    here image by image, then the mean and the sample std; performances.txt keeps the pooled figures."""
    import csv

    from lib.datasets import load_hdf5
    from lib.metrics import evaluate_fov
    from lib.preprocessing import preprocess
    from src.model import build_unet, load_weights
    from src.prediction import predict_by_patches

    images = preprocess(load_hdf5(experiment.data / "DRIVE_dataset_imgs_test.hdf5"))
    truths = load_hdf5(experiment.data / "DRIVE_dataset_groundTruth_test.hdf5")[:, 0] > 0
    masks = load_hdf5(experiment.data / "DRIVE_dataset_borderMasks_test.hdf5")[:, 0]
    model = build_unet()
    load_weights(model, experiment.exp / "exp_best.weights.h5")
    columns = ("auc_roc", "auc_pr", "f1", "accuracy", "sensitivity", "specificity", "jaccard")
    expected = []
    for image, truth, mask in zip(images, truths, masks, strict=True):
        metrics = evaluate_fov(truth, predict_by_patches(model, image, (16, 16), (8, 8)), mask).metrics
        expected.append([metrics[key] for key in columns])
    expected = np.array(expected)

    with open(experiment.exp / "per_image.csv", newline="") as handle:
        table = list(csv.reader(handle))
    assert table[0] == ["image", *columns]
    assert [row[0] for row in table[1:]] == ["01", "02", "mean", "std"]  # DRIVE's test ids: 01, 02, ...
    values = np.array([[float(value) for value in row[1:]] for row in table[1:]])
    np.testing.assert_allclose(values[:2], expected, atol=2e-6)
    np.testing.assert_allclose(values[2], expected.mean(axis=0), atol=2e-6)
    np.testing.assert_allclose(values[3], expected.std(axis=0, ddof=1), atol=2e-6)

    results = json.loads((experiment.exp / "performances.json").read_text())
    assert [row["id"] for row in results["per_image"]] == ["01", "02"]
    per_image = np.array([[row[key] for key in columns] for row in results["per_image"]])
    np.testing.assert_allclose(per_image, expected, atol=1e-5)
    # the same absolute tolerance as the images' own figures: the std of two close values magnifies relative error
    mean, std = expected.mean(axis=0), expected.std(axis=0, ddof=1)
    assert results["per_image_mean"] == pytest.approx(dict(zip(columns, mean, strict=True)), abs=1e-5)
    assert results["per_image_std"] == pytest.approx(dict(zip(columns, std, strict=True)), abs=1e-5)
    assert "per image (mean ± std over 2 images): AUC ROC" in experiment.runs["test"].stdout
    assert png_shape(experiment.exp / "per_image.png")[:2] == (200, 900)


def evaluate_in_process(experiment, predict) -> dict:
    """The library's pipeline run here with the experiment's best weights: preprocess the prepared test set,
    ``predict(model, image)`` each image, evaluate the FOV pixels."""
    from lib.datasets import load_hdf5
    from lib.metrics import evaluate_fov
    from lib.preprocessing import preprocess
    from src.model import build_unet, load_weights

    images = preprocess(load_hdf5(experiment.data / "DRIVE_dataset_imgs_test.hdf5"))
    truths = load_hdf5(experiment.data / "DRIVE_dataset_groundTruth_test.hdf5")[:, 0] > 0
    masks = load_hdf5(experiment.data / "DRIVE_dataset_borderMasks_test.hdf5")[:, 0]
    model = build_unet()
    load_weights(model, experiment.exp / "exp_best.weights.h5")
    predictions = np.stack([predict(model, image) for image in images])
    return evaluate_fov(truths, predictions, masks).metrics


def test_testing_agrees_with_an_in_process_evaluation(experiment):
    """The script's figures equal averaged overlapping patches (stride 8) predicted here."""
    from src.prediction import predict_by_patches

    expected = evaluate_in_process(experiment, lambda model, image: predict_by_patches(model, image, (16, 16), (8, 8)))
    results = json.loads((experiment.exp / "performances.json").read_text())
    assert results["auc_roc"] == pytest.approx(expected["auc_roc"], abs=1e-5)
    assert results["confusion_matrix"] == expected["confusion_matrix"]


def test_training_again_refuses_to_overwrite(experiment):
    weights = (experiment.exp / "exp_best.weights.h5").read_bytes()
    result = run_script("run_training.py", "--config", experiment.config, cwd=experiment.folder)
    assert_user_error(result, "already holds a trained model", "--resume")
    assert (experiment.exp / "exp_best.weights.h5").read_bytes() == weights


def test_whole_image_testing(experiment):
    from src.prediction import predict_whole

    config = make_config(
        experiment.folder, tiny=True, overrides={"testing settings": {"whole_image": "True"}}, filename="whole.txt"
    )
    result = run_script("run_testing.py", "--config", config, "--output", "whole", cwd=experiment.folder)
    assert_ok(result)
    out = experiment.folder / "whole"
    for name in TESTING_FILES:
        assert (out / name).is_file(), name
    results = json.loads((out / "performances.json").read_text())
    assert results["mode"] == {"mode": "whole", "precision": "float32"}
    assert "whole image" in result.stdout
    expected = evaluate_in_process(experiment, predict_whole)  # one pass per image, as run here
    assert results["auc_roc"] == pytest.approx(expected["auc_roc"], abs=1e-5)
    assert results["confusion_matrix"] == expected["confusion_matrix"]


def test_published_weights_through_the_testing_script(experiment, legacy_weights):
    config = make_config(
        experiment.folder, tiny=True, overrides={"testing settings": {"whole_image": "True"}}, filename="whole.txt"
    )
    result = run_script("run_testing.py", "--config", config, "--weights", legacy_weights, cwd=experiment.folder)
    assert_ok(result)
    out = experiment.exp / "test_best_weights"
    results = json.loads((out / "performances.json").read_text())
    assert results["weights"] == str(legacy_weights)
    assert results["auc_roc"] > 0.8  # a real model on fake fundus images: far better than chance


def test_resume_continues_to_more_epochs(experiment, tmp_path):
    shutil.copytree(experiment.exp, tmp_path / "exp")
    curves = (tmp_path / "exp" / "training_curves.png").read_bytes()
    config = make_config(
        tmp_path,
        tiny=True,
        overrides={
            "training settings": {"N_epochs": "3", "nohup": "True", "tensorboard": "True"},
            "data paths": {"path_local": experiment.data},
        },
    )
    result = run_script("run_training.py", "--config", config, "--resume", cwd=tmp_path)
    assert_ok(result)
    log = (tmp_path / "exp" / "training.log").read_text()
    assert "Epoch 3/3" in log and "Epoch 2/3" not in log
    rows = (tmp_path / "exp" / "training_history.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "1", "2"]
    assert json.loads((tmp_path / "exp" / "training_state.json").read_text())["epochs_done"] == 3
    assert (tmp_path / "exp" / "training_curves.png").read_bytes() != curves  # redrawn with the third epoch
    runs = tensorboard_events(tmp_path / "exp" / "tensorboard")  # appended: the new events follow the old ones
    assert runs["train"]["epoch_loss"] == runs["validation"]["epoch_loss"] == [0, 1, 2]
    assert len(list((tmp_path / "exp" / "tensorboard" / "train").glob("events.out.tfevents.*"))) == 2
    finished = run_script("run_training.py", "--config", config, "--resume", cwd=tmp_path)
    assert_user_error(finished, "epochs")


# ------------------------------------------------------------------ bad inputs through the scripts


def test_missing_drive_folder(tmp_path):
    config = make_config(tmp_path, tiny=True)
    result = run_script("prepare_datasets_DRIVE.py", "--drive", tmp_path / "nowhere", "--config", config, cwd=tmp_path)
    assert_user_error(result, "nowhere", "not found")
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").iterdir())


def test_missing_configuration_file(tmp_path):
    result = run_script("prepare_datasets_DRIVE.py", "--config", tmp_path / "nope.txt", cwd=tmp_path)
    assert_user_error(result, "nope.txt", "configuration file not found")


def test_missing_weights(experiment):
    result = run_script(
        "run_testing.py", "--config", experiment.config, "--weights", "none.weights.h5", cwd=experiment.folder
    )
    assert_user_error(result, "none.weights.h5", "weights file not found")


@pytest.mark.parametrize("initial", ["missing", "foreign"])
def test_bad_initial_weights_are_one_line_before_any_training(experiment, tmp_path, initial):
    path = tmp_path / "other.weights.h5"
    if initial == "foreign":  # weights of another network: a dense layer, not the U-Net
        import keras

        other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        other.save_weights(path)
    config = make_config(
        experiment.folder,
        tiny=True,
        filename="initial.txt",
        overrides={
            "experiment name": {"name": "from_initial"},
            "training settings": {"initial_weights": path},
        },
    )
    result = run_script("run_training.py", "--config", config, cwd=experiment.folder)
    fragment = "weights file not found" if initial == "missing" else "not weights of this U-Net"
    assert_user_error(result, "[training settings] initial_weights", str(path), fragment)
    assert not (experiment.folder / "from_initial").exists()


def test_training_before_prepare(tmp_path):
    config = make_config(tmp_path, tiny=True)
    result = run_script("run_training.py", "--config", config, cwd=tmp_path)
    assert_user_error(result, "DRIVE_dataset_imgs_train.hdf5", "prepare")


@pytest.mark.parametrize("script", ["prepare_datasets_DRIVE.py", "run_training.py", "run_testing.py"])
def test_invalid_configuration_key(tmp_path, script):
    config = make_config(tmp_path, tiny=True, overrides={"data attributes": {"patch_height": "50"}})
    result = run_script(script, "--config", config, cwd=tmp_path)
    assert_user_error(result, "patch_height", "multiple of 4")


def test_resume_with_the_experiments_own_configuration(experiment, tmp_path):
    """--config exp/configuration.txt: the copy of the configuration in the experiment is the one in use,
    so it is not copied onto itself."""
    shutil.copytree(experiment.exp, tmp_path / "exp")
    config = make_config(
        tmp_path / "exp",
        tiny=True,
        overrides={"training settings": {"N_epochs": "3"}, "data paths": {"path_local": experiment.data}},
    )
    written = config.read_bytes()
    result = run_script("run_training.py", "--config", "exp/configuration.txt", "--resume", cwd=tmp_path)
    assert_ok(result)
    assert "resuming after epoch 2" in result.stdout
    rows = (tmp_path / "exp" / "training_history.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "1", "2"]
    assert config.read_bytes() == written


def test_more_test_images_than_prepared_is_a_user_error(experiment, monkeypatch):
    from lib.config import load_config
    from lib.errors import UserError
    from lib.test_set import load_test_set

    monkeypatch.chdir(experiment.folder)
    config = make_config(
        experiment.folder, tiny=True, overrides={"testing settings": {"full_images_to_test": "3"}}, filename="many.txt"
    )
    with pytest.raises(UserError, match="full_images_to_test = 3"):
        loaded = load_config(config)
        load_test_set(loaded.data, loaded.testing)


def test_tensorboard_without_its_package_is_one_line_before_training(tmp_path, monkeypatch):
    import importlib.util

    from lib.config import load_config
    from lib.errors import UserError
    from src.callbacks import check_tensorboard

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "tensorboard" else find_spec(name))
    settings = load_config(make_config(tmp_path, tiny=True, overrides=TENSORBOARD)).training
    with pytest.raises(UserError, match=r"\[training settings\] tensorboard = True needs the tensorboard package"):
        check_tensorboard(settings)
