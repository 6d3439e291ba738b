"""The synthetic datasets must look like DRIVE and STARE on disk and be plausible fundus images."""

import gzip

import numpy as np
import pytest
from PIL import Image

from lib.errors import UserError
from lib.imageio import read_binary, read_rgb
from lib.synthetic import STARE_IDS, synthetic_fundus, write_synthetic_drive, write_synthetic_stare
from make_synthetic_data import main

SIZE = {"height": 96, "width": 90}


def relative_files(root):
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def file_bytes(root):
    return {name: (root / name).read_bytes() for name in relative_files(root)}


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    root = tmp_path_factory.mktemp("DRIVE")
    return root, write_synthetic_drive(root, n_train=4, n_test=2, seed=0, **SIZE)


def check_fundus(rgb, vessels, fov, shape):
    """Shapes, binary planes, vessels only inside the FOV, a DRIVE-like density, vessels darker in green."""
    assert rgb.shape == (*shape, 3) and rgb.dtype == np.uint8
    for plane in (vessels, fov):
        assert plane.shape == shape and plane.dtype == np.uint8
        assert set(np.unique(plane)) <= {0, 255}
    inside, vessel = fov > 0, vessels > 0
    assert not (vessel & ~inside).any()
    assert not rgb[~inside].any()
    assert 0.05 <= vessel.sum() / inside.sum() <= 0.20
    green = rgb[..., 1].astype(float)
    assert green[vessel].mean() < green[inside & ~vessel].mean() - 5
    assert rgb[inside, 0].mean() > rgb[inside, 1].mean() > rgb[inside, 2].mean()  # orange-red


def test_drive_layout_and_names(drive):
    root, written = drive
    expected = (
        [f"training/images/{i}_training.tif" for i in ("21", "22", "23", "24")]
        + [f"training/1st_manual/{i}_manual1.gif" for i in ("21", "22", "23", "24")]
        + [f"training/mask/{i}_training_mask.gif" for i in ("21", "22", "23", "24")]
        + [f"test/images/{i}_test.tif" for i in ("01", "02")]
        + [f"test/1st_manual/{i}_manual1.gif" for i in ("01", "02")]
        + [f"test/2nd_manual/{i}_manual2.gif" for i in ("01", "02")]
        + [f"test/mask/{i}_test_mask.gif" for i in ("01", "02")]
    )
    assert relative_files(root) == sorted(expected)  # no temporary files left behind either
    assert sorted(str(path.relative_to(root)) for path in written) == sorted(expected)


def test_drive_files_read_back_as_fundus_images(drive):
    root, _ = drive
    for split, ids in (("training", ("21", "22", "23", "24")), ("test", ("01", "02"))):
        for image_id in ids:
            image_path = root / split / "images" / f"{image_id}_{split}.tif"
            label_path = root / split / "1st_manual" / f"{image_id}_manual1.gif"
            mask_path = root / split / "mask" / f"{image_id}_{split}_mask.gif"
            assert Image.open(image_path).mode == "RGB"
            assert Image.open(label_path).mode == "L" and Image.open(mask_path).mode == "L"
            check_fundus(read_rgb(image_path), read_binary(label_path), read_binary(mask_path), (96, 90))


def test_drive_second_observer_is_a_close_but_different_labelling(drive):
    root, _ = drive
    for image_id in ("01", "02"):
        first = read_binary(root / "test" / "1st_manual" / f"{image_id}_manual1.gif") > 0
        second = read_binary(root / "test" / "2nd_manual" / f"{image_id}_manual2.gif") > 0
        mask = read_binary(root / "test" / "mask" / f"{image_id}_test_mask.gif") > 0
        assert not (second & ~mask).any()
        assert (first != second).any()
        assert 2 * (first & second).sum() / (first.sum() + second.sum()) > 0.6  # Dice


def test_drive_is_readable_by_the_pipeline(drive):
    from lib.datasets import read_drive_split

    root, _ = drive
    test = read_drive_split(root, "test", second_observer=True)
    assert list(test["ids"]) == ["01", "02"]
    assert test["imgs"].shape == (2, 3, 96, 90) and test["groundTruth2nd"].shape == (2, 1, 96, 90)
    assert read_drive_split(root, "training")["imgs"].shape == (4, 3, 96, 90)


def test_same_seed_same_bytes_other_seed_other_images(tmp_path, drive):
    root, _ = drive
    write_synthetic_drive(tmp_path / "again", n_train=4, n_test=2, seed=0, **SIZE)
    assert file_bytes(tmp_path / "again") == file_bytes(root)
    write_synthetic_drive(tmp_path / "other", n_train=4, n_test=2, seed=1, **SIZE)
    other = file_bytes(tmp_path / "other")
    original = file_bytes(root)
    assert all(other[name] != original[name] for name in original if "/images/" in name or "manual" in name)


def test_an_image_depends_on_its_id_not_on_the_count(tmp_path, drive):
    root, _ = drive
    write_synthetic_drive(tmp_path, n_train=1, n_test=1, seed=0, **SIZE)
    for name in ("training/images/21_training.tif", "test/2nd_manual/01_manual2.gif"):
        assert (tmp_path / name).read_bytes() == (root / name).read_bytes()


def test_drive_sized_fundus_is_plausible():
    for seed in range(3):
        rgb, vessels, fov = synthetic_fundus(np.random.default_rng(seed), 584, 565)
        check_fundus(rgb, vessels, fov, (584, 565))
        assert abs(np.count_nonzero(fov) - np.pi * 270**2) < 0.01 * np.pi * 270**2  # DRIVE's FOV radius


def test_fov_may_be_cropped_by_the_image():
    rgb, vessels, fov = synthetic_fundus(np.random.default_rng(0), 96, 90, fov_radius=60)
    assert fov[0, 45] and fov[48, 0] and not fov[0, 0]  # cut at all four sides, as STARE's is at two
    check_fundus(rgb, vessels, fov, (96, 90))


def test_stare_layout_and_formats(tmp_path):
    ids = ["im0001", "im0044"]
    written = write_synthetic_stare(tmp_path, ids=ids, height=80, width=100)
    expected = sorted(
        [f"stare-images/{i}.ppm.gz" for i in ids]
        + [f"labels-ah/{i}.ah.ppm.gz" for i in ids]
        + [f"labels-vk/{i}.vk.ppm.gz" for i in ids]
    )
    assert relative_files(tmp_path) == expected
    assert sorted(str(path.relative_to(tmp_path)) for path in written) == expected
    for image_id in ids:
        image = tmp_path / "stare-images" / f"{image_id}.ppm.gz"
        labels = [tmp_path / f"labels-{who}" / f"{image_id}.{who}.ppm.gz" for who in ("ah", "vk")]
        assert gzip.decompress(image.read_bytes()).startswith(b"P6\n")
        assert all(gzip.decompress(path.read_bytes()).startswith(b"P5\n") for path in labels)
        rgb, ah, vk = read_rgb(image), read_binary(labels[0]), read_binary(labels[1])
        fov = np.where(rgb.any(axis=2), 255, 0).astype(np.uint8)  # STARE has no masks; black is outside
        assert rgb.shape == (80, 100, 3) and ah.shape == vk.shape == (80, 100)
        assert not (ah & ~fov).any() and (ah != vk).any()
        assert 0.05 <= np.count_nonzero(ah) / np.count_nonzero(fov) <= 0.20


def test_stare_defaults_to_the_twenty_labelled_ids(tmp_path):
    assert len(STARE_IDS) == 20 and STARE_IDS[0] == "im0001" and STARE_IDS[-1] == "im0324"
    write_synthetic_stare(tmp_path, height=40, width=40)
    names = sorted(path.name for path in (tmp_path / "stare-images").iterdir())
    assert names == [f"{image_id}.ppm.gz" for image_id in STARE_IDS]


def test_bad_requests_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="training images must be at least 1"):
        write_synthetic_drive(tmp_path, n_train=0, **SIZE)
    with pytest.raises(UserError, match="at least 32x32"):
        write_synthetic_drive(tmp_path, n_train=1, n_test=1, height=20, width=90)
    with pytest.raises(UserError, match="fov_radius"):
        synthetic_fundus(np.random.default_rng(0), 96, 90, fov_radius=5)
    with pytest.raises(UserError, match="im0001"):
        write_synthetic_stare(tmp_path, ids=["0001"], height=40, width=40)
    with pytest.raises(UserError, match="--count"):
        main(["stare", str(tmp_path), "--count", "21"])
    assert not any(tmp_path.iterdir())


def test_command_line(tmp_path, capsys):
    main(["drive", str(tmp_path / "DRIVE"), "--train", "2", "--test", "1", "--height", "64", "--width", "60"])
    main(["stare", str(tmp_path / "STARE"), "--count", "3", "--height", "48", "--width", "56", "--seed", "4"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("wrote 10 files (2 training + 1 test images, 60x64") and "DRIVE" in lines[0]
    assert lines[1].startswith("wrote 9 files (3 images, 56x48, seed 4") and "STARE" in lines[1]
    assert len(relative_files(tmp_path / "DRIVE")) == 10
    assert read_rgb(tmp_path / "STARE" / "stare-images" / "im0003.ppm.gz").shape == (48, 56, 3)
