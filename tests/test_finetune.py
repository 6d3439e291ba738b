"""Fine-tuning on labelled photographs (run_finetune.py): pairing and scale as run_prediction.py's, sources in
balance, the configuration copy that repeats a run, every bad input refused before anything is written, and the
folder → fine-tuned model → run_prediction.py path on synthetic photographs."""

import csv
import json

import numpy as np
import pytest
from helpers import REPO, assert_ok, assert_user_error, make_config, run_script
from PIL import Image
from test_determinism import history, weights

from lib.config import load_config
from lib.errors import UserError
from lib.labelled_photographs import balanced_slots, find_pairs, load_example, roles, training_set, validation_count
from lib.photographs import Options, load_photograph
from lib.sources import Source, parse_sources
from lib.synthetic import synthetic_fundus

SIDE = 300  # with a FOV of radius 140, run_prediction.py's default scale brings it to about 580 px


def write_photographs(folder, count, seed=0, side=SIDE, label_suffix=".png"):
    """``count`` synthetic photographs in folder/photos and their labels in folder/labels; returns both folders."""
    photos, labels = folder / "photos", folder / "labels"
    photos.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        rgb, vessels, _ = synthetic_fundus(np.random.default_rng([seed, index]), side, side, 140)
        Image.fromarray(rgb).save(photos / f"eye{index:02d}.png")
        Image.fromarray((vessels > 0).astype(np.uint8) * 255).save(labels / f"eye{index:02d}{label_suffix}")
    return photos, labels


def test_each_photograph_reaches_the_network_scale_run_prediction_uses(tmp_path):
    photos, labels = write_photographs(tmp_path, 1)
    example = load_example(photos / "eye00.png", labels / "eye00.png", None, Options())
    prediction_input = load_photograph(photos / "eye00.png", None, None, Options()).network_input
    np.testing.assert_array_equal(example.network_input, prediction_input)  # the same geometry and preprocessing
    assert example.rgb.shape[1:] == example.label.shape[1:] == example.fov.shape[1:] == prediction_input.shape[1:]
    assert set(np.unique(example.label)) == {0, 1} and not (example.label & (1 - example.fov)).any()


def test_sources_give_equally_many_slots_and_validation_photographs_never_train():
    slots, validation = balanced_slots([[0, 1, 2], [10, 11, 12, 13, 14]], [[3], [15]])
    training = slots[: len(slots) - validation]
    assert np.count_nonzero(training < 10) == np.count_nonzero(training >= 10) == 5  # the smaller source cycled
    assert list(slots[len(slots) - validation :]) == [3, 15]
    assert not set(training) & {3, 15}


def test_the_last_share_of_each_source_validates():
    assert validation_count(20, 0.05, "photos", False) == 1
    assert validation_count(20, 0.1, "photos", False) == 2
    assert validation_count(2, 0.5, "photos", False) == 1
    assert validation_count(1, 0.05, "photos", True) == 0
    with pytest.raises(UserError, match="at least 2"):
        validation_count(1, 0.05, "photos", False)


def test_two_sources_of_other_sizes_pad_to_one_size(tmp_path):
    first = write_photographs(tmp_path / "a", 3, seed=1)
    second = write_photographs(tmp_path / "b", 2, seed=2, side=360)
    data = training_set((Source(*map(str, first)), Source(*map(str, second))), Options(), 0.1)
    assert data.images.shape[0] == 5 and data.images.shape[2:] == data.rgb.shape[2:]
    table = {row["image"].split("/")[-2:][0] + row["image"][-6:]: row["role"] for row in roles(data)}
    assert list(table.values()).count("validate") == 2  # the last photograph of each source
    assert data.validation_split == pytest.approx(2 / len(data.slots))


def test_a_public_dataset_pairs_in_its_own_layout(tmp_path):
    """CHASE_DB1 keeps photographs and both observers' labels in one folder; HRF keeps them in three."""
    chase, hrf = tmp_path / "CHASEDB1", tmp_path / "HRF"
    for folder in (chase, hrf / "images", hrf / "manual1", hrf / "mask"):
        folder.mkdir(parents=True)
    for eye in ("Image_01L", "Image_01R"):
        for suffix in (".jpg", "_1stHO.png", "_2ndHO.png"):
            (chase / f"{eye}{suffix}").touch()
    for eye in ("01_h", "02_g"):
        for file in (f"images/{eye}.jpg", f"manual1/{eye}.tif", f"mask/{eye}_mask.tif"):
            (hrf / file).touch()
    pairs = find_pairs(Source(f"{chase}/*.jpg", f"{chase}/*_1stHO.png"))
    assert [(image.name, label.name, mask) for image, label, mask in pairs] == [
        ("Image_01L.jpg", "Image_01L_1stHO.png", None),
        ("Image_01R.jpg", "Image_01R_1stHO.png", None),
    ]
    pairs = find_pairs(Source(str(hrf / "images"), str(hrf / "manual1"), str(hrf / "mask")))
    assert [(image.name, label.name, mask.name) for image, label, mask in pairs] == [
        ("01_h.jpg", "01_h.tif", "01_h_mask.tif"),
        ("02_g.jpg", "02_g.tif", "02_g_mask.tif"),
    ]
    with pytest.raises(UserError, match="pairs with the same label .* as .*Image_01L.jpg.*FOLDER/\\*.jpg"):
        find_pairs(Source(str(chase), f"{chase}/*_1stHO.png"))  # the labels named among the photographs
    with pytest.raises(UserError, match="among the labels .* as well as the images"):
        find_pairs(Source(f"{chase}/*_1stHO.png", f"{chase}/*_1stHO.png"))
    with pytest.raises(UserError, match="several labels"):
        find_pairs(Source(f"{chase}/*.jpg", str(chase)))


def test_sources_in_a_configuration_one_per_line():
    sources = parse_sources("\n  photos/ | labels/ | masks/\n  more/ | more_labels/\n", "f: [photographs] sources")
    assert sources == (Source("photos/", "labels/", "masks/"), Source("more/", "more_labels/"))
    with pytest.raises(UserError, match="IMAGES \\| LABELS"):
        parse_sources("photos/", "f: [photographs] sources")
    general = load_config(REPO / "configurations" / "general.txt").photographs
    assert len(general.sources) == 2 and general.patches_per_photograph == 500


def bad(tmp_path, case):
    """A folder with one bad input of the kind ``case``; returns its Source."""
    photos, labels = write_photographs(tmp_path, 3)
    if case == "no label":
        (labels / "eye01.png").unlink()
    elif case == "label of another size":
        Image.open(labels / "eye01.png").resize((200, 200), Image.NEAREST).save(labels / "eye01.png")
    elif case == "label not binary":
        gray = np.asarray(Image.open(labels / "eye01.png")).copy()
        gray[:10, :10] = 128
        Image.fromarray(gray).save(labels / "eye01.png")
    elif case == "label empty inside the FOV":
        Image.fromarray(np.zeros((SIDE, SIDE), np.uint8)).save(labels / "eye01.png")
    return Source(str(photos), str(labels))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no label", "no label named eye01"),
        ("label of another size", "the label is 200x200 px"),
        ("label not binary", "must be binary"),
        ("label empty inside the FOV", "only one class inside the field of view"),
    ],
)
def test_bad_labels_are_refused_naming_the_file(tmp_path, case, message):
    with pytest.raises(UserError, match=message) as raised:
        training_set((bad(tmp_path, case),), Options(), 0.05)
    assert "eye01" in str(raised.value) and "\n" not in str(raised.value)


# ------------------------------------------------------------------ the command, end to end


def tiny_finetune_config(folder, epochs=1, filename="finetune.txt", learning_rate="0.0003"):
    """configurations/finetune.txt made quick: 1 epoch, 64 patches per photograph, from robust/."""
    return make_config(
        folder,
        {
            "experiment name": {"name": "mycamera"},
            "training settings": {
                "N_epochs": str(epochs),
                "batch_size": "16",
                "learning_rate": learning_rate,
                "initial_weights": str(REPO / "robust" / "robust_best.weights.h5"),
            },
            "photographs": {"patches_per_photograph": "64"},
        },
        base=REPO / "configurations" / "finetune.txt",
        filename=filename,
    )


@pytest.mark.slow  # trains and predicts in subprocesses
def test_folder_to_fine_tuned_model_to_prediction_and_the_copy_repeats_the_run(tmp_path):
    photos, labels = write_photographs(tmp_path, 3)
    config = tiny_finetune_config(tmp_path)
    first = run_script("run_finetune.py", photos, "--labels", labels, "--config", config, cwd=tmp_path)
    assert_ok(first)
    folder = tmp_path / "mycamera"
    assert (folder / "mycamera_best.weights.h5").is_file() and (folder / "mycamera_threshold.json").is_file()
    with open(folder / "photographs.csv", newline="") as handle:
        assert [row["role"] for row in csv.DictReader(handle)] == ["train", "train", "validate"]
    copy = load_config(folder / "configuration.txt")
    assert copy.photographs.sources == (Source(str(photos), str(labels)),)
    assert copy.training.N_subimgs == 3 * 64

    predicted = run_script("run_prediction.py", photos, "--labels", labels, "--model", folder, "-o", "out",
                           cwd=tmp_path)  # fmt: skip
    assert_ok(predicted)
    with open(tmp_path / "out" / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and all(0.5 < float(row["auc_roc"]) <= 1 for row in rows)

    again = run_script("run_finetune.py", "--config", folder / "configuration.txt", "--name", "again", cwd=tmp_path)
    assert_ok(again)  # the copy alone repeats the run, bit for bit (deterministic = True)
    for kind in ("best", "last"):
        first_weights = weights(folder / f"mycamera_{kind}.weights.h5")
        second_weights = weights(tmp_path / "again" / f"again_{kind}.weights.h5")
        assert first_weights.keys() == second_weights.keys()
        assert all(np.array_equal(first_weights[name], second_weights[name]) for name in first_weights)
    assert history(folder / "training_history.csv") == history(tmp_path / "again" / "training_history.csv")


@pytest.mark.slow  # trains twice in subprocesses
def test_an_interrupted_fine_tuning_resumes_with_more_epochs(tmp_path):
    photos, labels = write_photographs(tmp_path, 2)
    assert_ok(run_script("run_finetune.py", photos, "--labels", labels, "--config", tiny_finetune_config(tmp_path),
                         cwd=tmp_path))  # fmt: skip
    longer = tiny_finetune_config(tmp_path, epochs=2, filename="longer.txt")
    resumed = run_script("run_finetune.py", photos, "--labels", labels, "--config", longer, "--resume", cwd=tmp_path)
    assert_ok(resumed)
    assert "resuming after epoch 1" in resumed.stdout
    assert len(history(tmp_path / "mycamera" / "training_history.csv")) == 2


@pytest.mark.slow  # trains in a subprocess
def test_a_fine_tuning_that_only_makes_the_start_worse_keeps_the_start(tmp_path):
    """With a learning rate that wrecks the weights, no epoch beats the starting weights on the validation
    photograph: the best weights are robust/'s, with a threshold chosen for them."""
    photos, labels = write_photographs(tmp_path, 2)
    config = tiny_finetune_config(tmp_path, learning_rate="0.5")
    result = run_script("run_finetune.py", photos, "--labels", labels, "--config", config, cwd=tmp_path)
    assert_ok(result)
    assert "they are kept as the best" in result.stdout
    kept, start = (
        weights(tmp_path / "mycamera" / "mycamera_best.weights.h5"),
        weights(REPO / "robust" / "robust_best.weights.h5"),
    )
    assert kept.keys() == start.keys() and all(np.array_equal(kept[name], start[name]) for name in kept)
    last = weights(tmp_path / "mycamera" / "mycamera_last.weights.h5")
    assert not all(np.array_equal(last[name], start[name]) for name in last)  # the epoch did train
    assert json.loads((tmp_path / "mycamera" / "mycamera_threshold.json").read_text())["weights_epoch"] == 0


@pytest.mark.slow  # starts Python with TensorFlow for each case
@pytest.mark.parametrize(
    ("case", "extra", "message"),
    [
        ("no label", (), "no label named eye01"),
        ("label of another size", (), "the label is 200x200 px"),
        ("label not binary", (), "must be binary"),
        ("label empty inside the FOV", (), "only one class inside the field of view"),
        ("shipped name", ("--name", "robust"), "shipped model"),
        ("one photograph", (), "at least 2"),
    ],
)
def test_bad_input_one_error_line_and_nothing_written(tmp_path, case, extra, message):
    source = bad(tmp_path, case)
    if case == "one photograph":
        for name in ("eye01", "eye02"):
            (tmp_path / "photos" / f"{name}.png").unlink()
    config = tiny_finetune_config(tmp_path)
    before = sorted(path.name for path in tmp_path.iterdir())
    result = run_script("run_finetune.py", source.images, "--labels", source.labels, "--config", config, *extra,
                        cwd=tmp_path)  # fmt: skip
    assert_user_error(result, message)
    assert sorted(path.name for path in tmp_path.iterdir()) == before  # no experiment folder, nothing half-written
