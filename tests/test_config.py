"""configuration.txt: the repo's file and the published one load; every bad value is a UserError naming the key."""

import dataclasses
from pathlib import Path

import pytest

from lib import config as cfg
from lib.augment import LIMITS, CameraAugmentation
from lib.config import load_config
from lib.errors import UserError
from lib.experiment import Experiment
from lib.inference import Inference

# The published retina-unet configuration.txt, verbatim (none of this project's optional keys).
PUBLISHED = """\
[data paths]
path_local =  ./DRIVE_datasets_training_testing/
train_imgs_original = DRIVE_dataset_imgs_train.hdf5
train_groundTruth = DRIVE_dataset_groundTruth_train.hdf5
train_border_masks = DRIVE_dataset_borderMasks_train.hdf5
test_imgs_original = DRIVE_dataset_imgs_test.hdf5
test_groundTruth = DRIVE_dataset_groundTruth_test.hdf5
test_border_masks = DRIVE_dataset_borderMasks_test.hdf5



[experiment name]
name = test


[data attributes]
#Dimensions of the patches extracted from the full images
patch_height = 48
patch_width = 48


[training settings]
#number of total patches:
N_subimgs = 190000
#if patches are extracted only inside the field of view:
inside_FOV = False
#Number of training epochs
N_epochs = 150
batch_size = 32
#if running with nohup
nohup = True


[testing settings]
#Choose the model to test: best==epoch with min loss, last==last epoch
best_last = best
#number of full images for the test (max 20)
full_images_to_test = 20
#How many original-groundTrutuh-prediction images are visualized in each image
N_group_visual = 5
#Compute average in the prediction, improve results but require more patches to be predicted
average_mode = True
#Only if average_mode==True. Stride of the average, lower value require more patches to be predicted
stride_height = 5
stride_width = 5
#if running with nohup
nohup = False
"""


@pytest.fixture
def published(tmp_path) -> Path:
    path = tmp_path / "configuration.txt"
    path.write_text(PUBLISHED)
    return path


def test_the_repos_configuration_loads(repo):
    config = load_config(repo / "configuration.txt")
    training, inference = config.training, config.testing.inference
    assert training.patch_hw == inference.patch_hw == (48, 48)
    assert training.N_subimgs == 190000 and training.N_epochs == 150 and training.batch_size == 32
    assert training.inside_FOV is False and training.initial_weights is None
    assert inference == Inference(mode="patches", patch_hw=(48, 48), stride_hw=(5, 5), batch_size=256)
    assert config.name == "test" and config.experiment == Experiment(Path("test"), "test")
    assert config.data.file("train_imgs_original") == Path(
        "DRIVE_datasets_training_testing/DRIVE_dataset_imgs_train.hdf5"
    )


# This project's optional keys, absent from the published file, and the values that keep the published behaviour.
# A new setting must be added here with its published default, or this test fails.
PUBLISHED_DEFAULTS = {
    cfg.DataPaths: {"drive_folder": Path("DRIVE"), "test_groundTruth_2nd": "DRIVE_dataset_groundTruth2nd_test.hdf5"},
    cfg.TrainingSettings: {
        "seed": 42,
        "optimizer": "sgd",
        "learning_rate": 0.01,
        "validation_split": 0.1,
        "patch_source": "in_memory",
        "augment": False,
        "lr_schedule": "constant",
        "precision": "float32",
        "initial_weights": None,
        "tensorboard": False,
        "camera_augmentation": CameraAugmentation(),
        "deterministic": False,
        "initial_weights_compete": False,
    },
    # whole_image, flip_tta, predict_batch_size and precision make up the inference value, checked below
    cfg.TestingSettings: {},
}
SET_BY_THE_PUBLISHED_FILE = {
    cfg.DataPaths: {"path_local", "train_imgs_original", "train_groundTruth", "train_border_masks",
                    "test_imgs_original", "test_groundTruth", "test_border_masks"},
    cfg.TrainingSettings: {"source", "patch_hw", "N_subimgs", "inside_FOV", "N_epochs", "batch_size", "nohup"},
    cfg.TestingSettings: {"source", "best_last", "full_images_to_test", "N_group_visual", "nohup", "inference"},
}  # fmt: skip


def test_the_published_configuration_loads_with_published_defaults(published):
    config = load_config(published)
    data, training, testing = config.data, config.training, config.testing
    assert data.path_local == Path("DRIVE_datasets_training_testing")
    assert data.test_border_masks == "DRIVE_dataset_borderMasks_test.hdf5"
    assert training.N_subimgs == 190000 and training.N_epochs == 150 and training.batch_size == 32
    assert training.inside_FOV is False
    assert training.nohup is True and testing.nohup is False  # two 'nohup' keys, one per section
    assert testing.best_last == "best" and testing.full_images_to_test == 20 and testing.N_group_visual == 5
    # average_mode = True with stride 5: the published overlapping patches, float32, batches of 256
    assert testing.inference == Inference(mode="patches", patch_hw=(48, 48), stride_hw=(5, 5), batch_size=256)
    # every other setting is one of this project's optional keys, and takes the published behaviour
    for piece, defaults in PUBLISHED_DEFAULTS.items():
        value = {cfg.DataPaths: data, cfg.TrainingSettings: training, cfg.TestingSettings: testing}[piece]
        fields = {field.name for field in dataclasses.fields(piece)}
        assert fields - SET_BY_THE_PUBLISHED_FILE[piece] == set(defaults), piece.__name__
        typed = {key: (type(getattr(value, key)), getattr(value, key)) for key in defaults}
        assert typed == {key: (type(default), default) for key, default in defaults.items()}, piece.__name__


def test_the_repo_and_published_files_agree_on_published_keys(repo, published):
    ours, theirs = load_config(repo / "configuration.txt"), load_config(published)
    assert ours.data == theirs.data
    assert ours.testing.inference == theirs.testing.inference
    for section, keys in {
        "training": ("patch_hw", "N_subimgs", "inside_FOV", "N_epochs", "batch_size"),
        "testing": ("best_last", "full_images_to_test", "N_group_visual"),
    }.items():
        for key in keys:
            assert getattr(getattr(ours, section), key) == getattr(getattr(theirs, section), key), key


@pytest.mark.parametrize(
    "whole_image, flip_tta, average_mode, expected",
    [
        ("True", "False", "True", Inference(mode="whole")),
        ("True", "True", "True", Inference(mode="flips")),
        ("False", "False", "False", Inference(mode="patches", stride_hw=(48, 48))),  # published non-overlapping
    ],
)
def test_testing_settings_become_one_inference_value(tmp_path, whole_image, flip_tta, average_mode, expected):
    path = tmp_path / "configuration.txt"
    text = replace(PUBLISHED, "average_mode = True", f"average_mode = {average_mode}")
    path.write_text(text + f"whole_image = {whole_image}\nflip_tta = {flip_tta}\n")
    inference = load_config(path).testing.inference
    assert (inference.mode, inference.stride_hw) == (expected.mode, expected.stride_hw)


def test_flips_without_whole_image_are_refused(tmp_path):
    path = tmp_path / "configuration.txt"
    path.write_text(PUBLISHED + "flip_tta = True\n")
    with pytest.raises(UserError, match=r"flip_tta = True averages whole-image predictions but whole_image = False"):
        load_config(path)


def test_initial_weights_is_a_path(tmp_path):
    path = tmp_path / "configuration.txt"
    path.write_text(replace(PUBLISHED, "N_epochs = 150", "N_epochs = 150\ninitial_weights = test/test_best.weights.h5"))
    assert load_config(path).training.initial_weights == Path("test/test_best.weights.h5")


def replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    "old, new, fragments",
    [
        ("N_subimgs = 190000", "N_subimgs = lots", ["N_subimgs", "whole number"]),
        ("N_subimgs = 190000", "N_subimgs = 1.5", ["N_subimgs"]),
        ("N_epochs = 150", "N_epochs = 0", ["N_epochs", "at least 1"]),
        ("batch_size = 32", "batch_size =", ["batch_size", "empty"]),
        ("batch_size = 32\n", "", ["batch_size", "missing"]),
        ("patch_height = 48", "patch_height = 50", ["patch_height", "multiple of 4"]),
        ("patch_width = 48", "patch_width = 30", ["patch_width", "multiple of 4"]),
        ("patch_width = 48", "patch_width = abc", ["patch_width"]),
        ("stride_height = 5", "stride_height = 49", ["stride", "larger than the patch"]),
        ("stride_width = 5", "stride_width = 0", ["stride_width"]),
        ("inside_FOV = False", "inside_FOV = maybe", ["inside_FOV", "True or False"]),
        ("average_mode = True", "average_mode = yes please", ["average_mode"]),
        ("name = test", "name = ../elsewhere", ["name", "folder name"]),
        ("name = test", "name = my experiment", ["name"]),
        ("name = test", "name = ..", ["name"]),
        ("best_last = best", "best_last = worst", ["best_last"]),
        ("full_images_to_test = 20", "full_images_to_test = twenty", ["full_images_to_test"]),
        ("test_border_masks = DRIVE_dataset_borderMasks_test.hdf5\n", "", ["test_border_masks", "missing"]),
        ("[experiment name]\nname = test\n", "", ["experiment name", "missing"]),
        ("[testing settings]", "[test settings]", ["testing settings", "missing"]),
        ("path_local =  ./DRIVE_datasets_training_testing/", "path_local =", ["path_local"]),
        ("batch_size = 32", "batch_size = 32\nbatch_size = 64", ["batch_size"]),
        ("[data paths]", "data paths", ["not a valid INI file"]),
    ],
)
def test_bad_values_name_the_key(tmp_path, old, new, fragments):
    path = tmp_path / "configuration.txt"
    path.write_text(replace(PUBLISHED, old, new))
    with pytest.raises(UserError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    "section, line, key",
    [
        ("training settings", "optimizer = rmsprop", "optimizer"),
        ("training settings", "learning_rate = fast", "learning_rate"),
        ("training settings", "learning_rate = 0", "learning_rate"),
        ("training settings", "validation_split = 1.0", "validation_split"),
        ("training settings", "seed = -1", "seed"),
        ("training settings", "patch_source = disk", "patch_source"),
        ("testing settings", "whole_image = sometimes", "whole_image"),
        ("testing settings", "predict_batch_size = 0", "predict_batch_size"),
        ("testing settings", "precision = bfloat16", "precision"),
    ],
)
def test_bad_optional_values_name_the_key(tmp_path, section, line, key):
    path = tmp_path / "configuration.txt"
    path.write_text(replace(PUBLISHED, f"[{section}]\n", f"[{section}]\n{line}\n"))
    with pytest.raises(UserError, match=key):
        load_config(path)


@pytest.mark.parametrize("value", ["maybe", "2", "Tru"])
def test_a_bad_tensorboard_value_is_one_line(tmp_path, value):
    path = tmp_path / "configuration.txt"
    path.write_text(replace(PUBLISHED, "[training settings]\n", f"[training settings]\ntensorboard = {value}\n"))
    with pytest.raises(UserError) as error:
        load_config(path)
    message = str(error.value)
    assert message == (
        f"{path}: [training settings] tensorboard = '{value.lower()}' is not True or False; "
        "write tensorboard = True or tensorboard = False"
    )


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="configuration file not found"):
        load_config(tmp_path / "nope.txt")


def test_a_folder_is_not_a_configuration(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path)


def test_binary_garbage_is_a_user_error(tmp_path):
    path = tmp_path / "configuration.txt"
    path.write_bytes(b"\xff\xfe\x00garbage\x89")
    with pytest.raises(UserError, match="configuration.txt"):
        load_config(path)


@pytest.mark.parametrize(
    "word, value",
    [("True", True), ("true", True), ("yes", True), ("1", True), ("FALSE", False), ("no", False), ("0", False)],
)
def test_booleans(tmp_path, word, value):
    path = tmp_path / "configuration.txt"
    path.write_text(replace(PUBLISHED, "inside_FOV = False", f"inside_FOV = {word}"))
    assert load_config(path).training.inside_FOV is value


def test_inline_comments_are_ignored(tmp_path):
    path = tmp_path / "configuration.txt"
    path.write_text(replace(PUBLISHED, "N_epochs = 150", "N_epochs = 7   # a few"))
    assert load_config(path).training.N_epochs == 7


def test_the_write_config_fixture(write_config, tmp_path):
    config = load_config(write_config(tiny=True, overrides={"testing settings": {"whole_image": "True"}}))
    assert config.data.path_local == tmp_path / "data"
    assert config.name == "exp" and Path.cwd() == tmp_path  # ./exp lands in tmp_path
    assert (config.training.patch_hw, config.training.N_epochs, config.testing.inference.mode) == ((16, 16), 2, "whole")
    dropped = write_config(drop=[("testing settings", "whole_image")], filename="other.txt")
    assert load_config(dropped).testing.inference.mode == "patches"


# ------------------------------------------------------------------ as the published parser read it


def test_a_byte_order_mark_is_accepted(tmp_path):
    """Windows editors save UTF-8 with a byte order mark; the published parser (Python 2) read such files."""
    path = tmp_path / "configuration.txt"
    path.write_bytes(b"\xef\xbb\xbf" + PUBLISHED.encode())
    assert load_config(path).training.N_epochs == 150


def test_keys_in_any_case(tmp_path):
    """The published ConfigParser matched keys in any case: n_epochs is N_epochs."""
    path = tmp_path / "configuration.txt"
    path.write_text(replace(replace(PUBLISHED, "N_epochs = 150", "n_epochs = 7"), "inside_FOV", "INSIDE_fov"))
    training = load_config(path).training
    assert training.N_epochs == 7 and training.inside_FOV is False


def test_an_unknown_key_is_a_warning_naming_the_closest_known_one(tmp_path):
    from lib.config import ConfigWarning

    path = tmp_path / "configuration.txt"
    path.write_text(PUBLISHED + "lr_shedule = cosine\ncolour = blue\n")
    with pytest.warns(ConfigWarning) as caught:
        config = load_config(path)
    assert config.testing.nohup is False  # appended to [testing settings]: read as written otherwise
    assert [str(warning.message) for warning in caught] == [  # [testing settings] has no lr_schedule
        f"{path}: [testing settings] unknown key 'lr_shedule' is ignored",
        f"{path}: [testing settings] unknown key 'colour' is ignored",
    ]


def test_a_misspelt_optional_key_names_the_known_one(tmp_path):
    from lib.config import ConfigWarning

    path = tmp_path / "configuration.txt"
    path.write_text(replace(PUBLISHED, "nohup = True", "nohup = True\nlr_shedule = cosine"))
    with pytest.warns(ConfigWarning, match=r"\[training settings\] unknown key 'lr_shedule' is ignored \(did you mean "
                                           r"lr_schedule\?\)"):  # fmt: skip
        assert load_config(path).training.lr_schedule == "constant"


def test_a_misspelt_published_key_is_an_error(tmp_path):
    """A published key that the file misspells would silently take its default: refused, naming both."""
    path = tmp_path / "configuration.txt"
    path.write_text(replace(PUBLISHED, "best_last = best", "best_lats = last"))
    with pytest.raises(UserError, match=r"\[testing settings\] unknown key 'best_lats' and the published key "
                                        r"'best_last' is missing"):  # fmt: skip
        load_config(path)


def test_a_missing_key_names_its_likely_misspelling(tmp_path):
    path = tmp_path / "configuration.txt"
    path.write_text(replace(PUBLISHED, "N_epochs = 150", "N_epoch = 150"))
    with pytest.raises(UserError, match=r"key 'N_epochs' is missing \(written as 'n_epoch'\?\)"):
        load_config(path)


def test_the_published_keys_are_those_of_the_published_file():
    import configparser

    from lib.config import PUBLISHED_KEYS

    parser = configparser.ConfigParser()
    parser.optionxform = str
    parser.read_string(PUBLISHED)
    assert {section: set(parser[section]) for section in parser.sections()} == PUBLISHED_KEYS


@pytest.mark.parametrize("name", ["configuration.txt", "configurations/fast.txt", "configurations/STARE.txt",
                                  "configurations/STARE_scratch.txt", "configurations/STARE_pretrained.txt",
                                  "configurations/STARE_robust.txt", "configurations/STARE_robust_smallval.txt",
                                  "test/configuration.txt"])  # fmt: skip
def test_the_shipped_configurations_have_no_unknown_key(repo, name):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = load_config(repo / name)
        assert (config.leave_one_out is not None) == ("STARE" in name)


def test_seeds_stop_below_two_to_the_32(tmp_path):
    path = tmp_path / "configuration.txt"
    path.write_text(replace(PUBLISHED, "nohup = True", "nohup = True\nseed = 4294967296"))
    with pytest.raises(UserError, match="seed = 4294967296 is too large; it must be at most 4294967295"):
        load_config(path)


# ------------------------------------------------------------------ --name


def test_another_experiment_name(published):
    config = load_config(published, name="mine")
    assert config.name == "mine" and config.experiment == Experiment(Path("mine"), "mine")
    with pytest.raises(UserError, match=r"--name '\.\./up' must be a plain folder name"):
        load_config(published, name="../up")


def test_the_copy_under_another_name_changes_the_name_alone():
    from lib.config_files import with_name

    renamed = with_name(PUBLISHED, "mine")
    assert renamed == PUBLISHED.replace("[experiment name]\nname = test\n", "[experiment name]\nname = mine\n")
    assert with_name(PUBLISHED, "test") == PUBLISHED


def with_training_lines(tmp_path, *lines: str) -> Path:
    path = tmp_path / "configuration.txt"
    added = "".join(f"{line}\n" for line in lines)
    path.write_text(replace(PUBLISHED, "[training settings]\n", "[training settings]\n" + added))
    return path


def test_camera_augmentation_and_determinism_keys_are_read(tmp_path):
    lines = [f"augment_{name} = {LIMITS[name]}" for name in LIMITS]
    training = load_config(with_training_lines(tmp_path, "patch_source = streaming", "deterministic = True", *lines))
    assert training.training.camera_augmentation == CameraAugmentation(**LIMITS)
    assert training.training.deterministic is True


@pytest.mark.parametrize(
    "line, fragments",
    [
        ("augment_scale = 0.6", ["augment_scale = 0.6 is out of range", "from 0 (off) to 0.5"]),
        ("augment_rotation = -10", ["augment_rotation = -10 is out of range", "to 180"]),
        ("augment_brightness = 1", ["augment_brightness = 1 is out of range", "to 0.9"]),
        ("augment_color = lots", ["augment_color = 'lots' is not a number"]),
        ("augment_contrast = nan", ["augment_contrast = nan is out of range"]),
        ("augment_gamma = 2", ["augment_gamma = 2 is out of range", "to 0.9"]),
        ("augment_blur = 6", ["augment_blur = 6 is out of range", "to 5"]),
        ("augment_noise = inf", ["augment_noise = inf is out of range", "to 50"]),
        ("deterministic = sometimes", ["deterministic = 'sometimes' is not True or False"]),
    ],
)
def test_bad_augmentation_and_determinism_values_are_one_line(tmp_path, line, fragments):
    path = with_training_lines(tmp_path, "patch_source = streaming", line)
    with pytest.raises(UserError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"{path}: [training settings] ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_camera_augmentation_needs_streaming_patches(tmp_path):
    with pytest.raises(UserError, match=r"augment_rotation = 30 changes each photograph .* patch_source = streaming"):
        load_config(with_training_lines(tmp_path, "augment_rotation = 30"))


def test_the_robust_recipe_is_a_deterministic_augmented_drive_training_of_at_most_3_hours(repo):
    training = load_config(repo / "configurations/robust.txt").training
    assert training.patch_source == "streaming" and training.deterministic and training.camera_augmentation.active
    assert training.initial_weights is None and training.patch_hw == (48, 48)  # the published U-Net, from scratch
    patches = training.N_epochs * (training.N_subimgs - round(training.N_subimgs * training.validation_split))
    assert patches / 100 / 3600 <= 2.75  # at 100 patches/s, leaving time for validation and checkpoints
