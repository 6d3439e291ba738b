"""Reading DRIVE's layout and the HDF5 files the scripts exchange, on a synthetic DRIVE."""

import shutil

import h5py
import numpy as np
import pytest
from PIL import Image

from lib import datasets
from lib.atomic import atomic_path
from lib.errors import UserError
from lib.imageio import read_binary, read_rgb


@pytest.fixture
def drive(make_synthetic_drive):
    """A private synthetic DRIVE (3 training, 2 test images of 64x60) that a test may damage."""
    return make_synthetic_drive(n_train=3, n_test=2, height=64, width=60)


def test_read_drive_split_shapes_and_types(synthetic_drive):
    train = datasets.read_drive_split(synthetic_drive, "training")
    assert train["imgs"].shape == (4, 3, 96, 90)
    assert train["groundTruth"].shape == train["borderMasks"].shape == (4, 1, 96, 90)
    for key in ("imgs", "groundTruth", "borderMasks"):
        assert train[key].dtype == np.uint8
    assert list(train["ids"]) == ["21", "22", "23", "24"]
    assert set(np.unique(train["groundTruth"])) == {0, 255}
    assert set(np.unique(train["borderMasks"])) == {0, 255}
    assert "groundTruth2nd" not in train


def test_read_drive_split_matches_the_files(synthetic_drive):
    test = datasets.read_drive_split(synthetic_drive, "test", second_observer=True)
    assert list(test["ids"]) == ["01", "02"]
    assert test["groundTruth2nd"].shape == (2, 1, 96, 90)
    assert set(np.unique(test["groundTruth2nd"])) <= {0, 255}
    rgb = np.asarray(Image.open(synthetic_drive / "test" / "images" / "02_test.tif"))
    np.testing.assert_array_equal(test["imgs"][1], rgb.transpose(2, 0, 1))
    label = np.asarray(Image.open(synthetic_drive / "test" / "1st_manual" / "02_manual1.gif").convert("L"))
    np.testing.assert_array_equal(test["groundTruth"][1, 0], np.where(label > 127, 255, 0))


def test_ids_are_sorted_numerically_padded(drive):
    # directory order is arbitrary; ids come out sorted whatever the file system lists first
    ids = datasets.drive_ids(drive, "training")
    assert ids == sorted(ids) == ["21", "22", "23"]


def test_other_files_in_the_images_folder_are_ignored(drive):
    (drive / "training" / "images" / "Thumbs.db").write_bytes(b"junk")
    (drive / "training" / "images" / "notes.txt").write_text("hello")
    assert datasets.drive_ids(drive, "training") == ["21", "22", "23"]


@pytest.mark.parametrize(
    "relative",
    ["training/1st_manual/22_manual1.gif", "training/mask/23_training_mask.gif", "test/1st_manual/01_manual1.gif"],
)
def test_a_missing_label_or_mask_names_the_file(drive, relative):
    (drive / relative).unlink()
    split = relative.split("/")[0]
    with pytest.raises(UserError) as error:
        datasets.read_drive_split(drive, split)
    assert str(drive / relative) in str(error.value)


def test_a_missing_second_observer_names_the_file(drive):
    (drive / "test" / "2nd_manual" / "02_manual2.gif").unlink()
    with pytest.raises(UserError, match="02_manual2.gif"):
        datasets.read_drive_split(drive, "test", second_observer=True)


@pytest.mark.parametrize("folder", ["training/images", "test/images", "training", ""])
def test_a_missing_folder_is_a_user_error(drive, folder):
    shutil.rmtree(drive / folder)
    with pytest.raises(UserError, match="folder not found"):
        datasets.read_drive_split(drive, "training" if "test" not in folder else "test")


def test_an_empty_images_folder_is_a_user_error(drive):
    for path in (drive / "training" / "images").iterdir():
        path.unlink()
    with pytest.raises(UserError, match="no images"):
        datasets.read_drive_split(drive, "training")


def test_a_label_of_another_size_names_the_file(drive):
    path = drive / "training" / "1st_manual" / "22_manual1.gif"
    Image.fromarray(np.zeros((30, 30), dtype=np.uint8)).save(path, format="GIF")
    with pytest.raises(UserError, match="22_manual1.gif"):
        datasets.read_drive_split(drive, "training")


def test_images_of_mixed_sizes_name_the_odd_file(drive):
    for name, size in (
        ("images/22_training.tif", "RGB"),
        ("1st_manual/22_manual1.gif", "L"),
        ("mask/22_training_mask.gif", "L"),
    ):
        path = drive / "training" / name
        image = Image.open(path).convert(size).resize((70, 64))
        if size == "L":
            image = image.point(lambda v: 255 if v > 127 else 0)
        image.save(path, format=path.suffix[1:].upper().replace("TIF", "TIFF"))
    with pytest.raises(UserError) as error:
        datasets.read_drive_split(drive, "training")
    assert "differs from the first image" in str(error.value)
    assert "22_training.tif" in str(error.value)


def test_a_corrupt_image_names_the_file(drive):
    path = drive / "training" / "images" / "22_training.tif"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(UserError) as error:
        datasets.read_drive_split(drive, "training")
    assert str(path) in str(error.value) and "not a readable image" in str(error.value)


def test_a_truncated_image_names_the_file(drive):
    path = drive / "training" / "images" / "23_training.tif"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(UserError, match="23_training.tif"):
        datasets.read_drive_split(drive, "training")


def test_a_corrupt_mask_names_the_file(drive):
    path = drive / "test" / "mask" / "02_test_mask.gif"
    path.write_bytes(b"GIF89a" + bytes(100))
    with pytest.raises(UserError, match="02_test_mask.gif"):
        datasets.read_drive_split(drive, "test")


def test_a_gray_photograph_is_refused(drive):
    path = drive / "training" / "images" / "21_training.tif"
    Image.open(path).convert("L").save(path, format="TIFF")
    with pytest.raises(UserError, match="RGB"):
        datasets.read_drive_split(drive, "training")


def test_a_non_binary_label_is_refused(drive):
    path = drive / "training" / "1st_manual" / "21_manual1.gif"
    Image.fromarray(np.tile(np.arange(60, dtype=np.uint8) * 4, (64, 1))).save(path, format="GIF")
    with pytest.raises(UserError, match="binary"):
        datasets.read_drive_split(drive, "training")


def test_palette_labels_are_thresholded_at_mid_gray(tmp_path):
    """DRIVE's 2nd_manual GIFs are palette images whose two entries are dark gray and light gray."""
    indices = np.zeros((6, 5), dtype=np.uint8)
    indices[2:4, 1:3] = 1
    image = Image.fromarray(indices, mode="P")
    image.putpalette([4, 2, 4, 252, 254, 252] + [0] * 762)
    path = tmp_path / "01_manual2.gif"
    image.save(path)
    np.testing.assert_array_equal(read_binary(path), indices * 255)


def test_read_rgb_of_a_missing_file(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        read_rgb(tmp_path / "none.tif")


# ------------------------------------------------------------------ HDF5


def test_hdf5_round_trip(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (3, 1, 7, 5), dtype=np.uint8)
    path = tmp_path / "sub" / "data.hdf5"
    datasets.write_hdf5(path, array)
    with h5py.File(path, "r") as handle:
        assert list(handle) == ["image"]
    loaded = datasets.load_hdf5(path, channels=1)
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, array)
    assert [p.name for p in path.parent.iterdir()] == ["data.hdf5"]


def test_hdf5_published_float64_files_load(tmp_path):
    """The published prepare script wrote float64 arrays under the same key."""
    path = tmp_path / "published.hdf5"
    array = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 4)).astype(np.float64)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("image", data=array, dtype=array.dtype)
    np.testing.assert_array_equal(datasets.load_hdf5(path, channels=3), array)


def test_load_hdf5_missing(tmp_path):
    with pytest.raises(UserError, match="not found"):
        datasets.load_hdf5(tmp_path / "missing.hdf5")


def test_load_hdf5_corrupt(tmp_path):
    path = tmp_path / "corrupt.hdf5"
    path.write_bytes(b"this is not hdf5" * 10)
    with pytest.raises(UserError, match="corrupt.hdf5"):
        datasets.load_hdf5(path)


def test_load_hdf5_truncated(tmp_path):
    path = tmp_path / "truncated.hdf5"
    datasets.write_hdf5(path, np.zeros((4, 1, 64, 64)))
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(UserError, match="truncated.hdf5"):
        datasets.load_hdf5(path)


@pytest.mark.parametrize("shape, channels", [((4, 5, 6), None), ((2, 3, 4, 4), 1), ((2, 1, 4, 4), 3)])
def test_load_hdf5_wrong_shape(tmp_path, shape, channels):
    path = tmp_path / "wrong.hdf5"
    datasets.write_hdf5(path, np.zeros(shape, dtype=np.uint8))
    with pytest.raises(UserError, match="wrong.hdf5.*shape"):
        datasets.load_hdf5(path, channels=channels)


def test_load_hdf5_without_the_image_key(tmp_path):
    path = tmp_path / "other.hdf5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("data", data=np.zeros((1, 1, 2, 2)))
    with pytest.raises(UserError, match="no dataset 'image'"):
        datasets.load_hdf5(path)


def test_write_hdf5_never_leaves_a_partial_file(tmp_path):
    path = tmp_path / "data.hdf5"
    datasets.write_hdf5(path, np.ones((1, 1, 2, 2), dtype=np.uint8))
    with pytest.raises(TypeError):  # h5py cannot store Python objects: the writer raises midway
        datasets.write_hdf5(path, np.array([object()], dtype=object))
    np.testing.assert_array_equal(datasets.load_hdf5(path), np.ones((1, 1, 2, 2)))  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["data.hdf5"]  # no temporary file left
    with pytest.raises(TypeError):
        datasets.write_hdf5(tmp_path / "new.hdf5", np.array([object()], dtype=object))
    assert [p.name for p in tmp_path.iterdir()] == ["data.hdf5"]  # no partial new file either


def test_atomic_path_on_success_and_failure(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_path(target) as temp:
        assert temp.parent == tmp_path and temp != target
        temp.write_text("complete")
        assert not target.exists()  # nothing visible before the block ends
    assert target.read_text() == "complete"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as temp:
            temp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_files_get_the_usual_permissions(tmp_path):
    reference = tmp_path / "reference"
    reference.write_text("x")
    target = tmp_path / "atomic"
    with atomic_path(target) as temp:
        temp.write_text("x")
    assert target.stat().st_mode == reference.stat().st_mode
