"""lib.fov: automatic FOV masks on drawn fundus images, and on real STARE and DRIVE where present."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from lib.errors import UserError
from lib.fov import detect_fov, fov_diameter, fov_stats
from lib.imageio import read_binary, read_rgb

DATA_ROOT = Path(os.environ.get("RETINA_DATA") or Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
STARE_IDS = (
    "im0001", "im0002", "im0003", "im0004", "im0005", "im0044", "im0077", "im0081", "im0082", "im0139",
    "im0162", "im0163", "im0235", "im0236", "im0239", "im0240", "im0255", "im0291", "im0319", "im0324",
)  # fmt: skip
DRIVE_TEST_IDS = tuple(f"{i:02d}" for i in range(1, 21))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float((a & b).sum() / (a | b).sum())


def fundus(height=584, width=565, radius=270, centre=None, exposure=1.0, seed=0):
    """A drawn fundus photo and its true FOV disc: vignetted reddish retina with noise, dark vessels
    and a dark lesion (a hole to fill) on a noisy near-black surround."""
    rng = np.random.default_rng(seed)
    cx, cy = centre if centre is not None else (width // 2, height // 2)
    disc = np.zeros((height, width), np.uint8)
    cv2.circle(disc, (cx, cy), radius, 255, cv2.FILLED)
    yy, xx = np.mgrid[:height, :width]
    falloff = 1 - 0.6 * (np.hypot(xx - cx, yy - cy) / radius) ** 2  # the rim is at 40 % of the centre
    image = np.array([200.0, 100.0, 45.0]) * falloff[..., None]
    vessels = np.zeros((height, width), np.uint8)
    for _ in range(12):
        angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.2) * radius
        end = (int(cx + length * np.cos(angle)), int(cy + length * np.sin(angle)))
        cv2.line(vessels, (cx, cy), end, 255, int(rng.integers(2, 8)))
    image[vessels > 0] *= (0.75, 0.45, 0.6)
    lesion = np.zeros_like(disc)
    cv2.circle(lesion, (cx + radius // 3, cy), radius // 8, 255, cv2.FILLED)
    image[lesion > 0] = (15, 10, 5)
    image[disc == 0] = (10, 12, 4)
    image += rng.normal(0, 4, image.shape)
    return np.clip(image * exposure, 0, 255).astype(np.uint8), disc


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    _, buffer = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)


# Drawn images


@pytest.mark.parametrize("exposure", [1.0, 0.3, 1.3])
def test_disc_is_found_at_any_exposure(exposure):
    rgb, disc = fundus(exposure=exposure)
    mask = detect_fov(rgb)
    assert mask.dtype == np.uint8 and mask.shape == disc.shape and set(np.unique(mask)) == {0, 255}
    assert iou(mask, disc) > 0.97
    assert fov_stats(mask)["components"] == 1  # vessels and the lesion are inside, not holes


def test_jpeg_compressed_disc():
    rgb, disc = fundus(seed=1)
    assert iou(detect_fov(jpeg(rgb, 30)), disc) > 0.97


def test_disc_clipped_by_the_frame():
    # As in STARE and many cameras: the disc is taller than the frame.
    rgb, disc = fundus(height=500, width=700, radius=320, seed=2)
    mask = detect_fov(rgb)
    assert iou(mask, disc) > 0.97
    assert mask[0].any() and mask[-1].any()  # the clipped edges stay on the frame
    # The diameter is the optical disc's, not the clipped height; the erosion costs a few pixels.
    assert fov_diameter(disc) == pytest.approx(640, abs=1.5)
    assert fov_diameter(mask) == pytest.approx(640, rel=0.02)


@pytest.mark.slow  # drawing and segmenting an 8-megapixel photo
def test_large_photo():
    rgb, disc = fundus(height=2336, width=3504, radius=1100, seed=3)
    mask = detect_fov(rgb)
    assert iou(mask, disc) > 0.97
    assert fov_diameter(mask) == pytest.approx(2200, rel=0.02)


def test_black_border_around_a_gray_surround():
    # A photo padded with pure black: the threshold must still clear the camera's gray surround
    # (red about 22 here, as in STARE), though the black is now the darkest and largest level.
    rgb, disc = fundus(seed=4)
    rgb[disc == 0] += np.array([12, 10, 4], np.uint8)
    padded, padded_disc = (np.pad(a, ((100, 100), (200, 200)) + ((0, 0),) * (a.ndim - 2)) for a in (rgb, disc))
    assert iou(detect_fov(padded), padded_disc) > 0.97


def test_black_image_is_an_error():
    with pytest.raises(UserError, match="could not detect the field of view.*mask file"):
        detect_fov(np.zeros((100, 120, 3), np.uint8))


def test_photo_cropped_inside_the_fov_is_an_error():
    rgb, _ = fundus(seed=5)
    with pytest.raises(UserError, match="no bright retina on a dark surround"):
        detect_fov(rgb[180:330, 180:330])  # clear of the dark lesion


def test_tiny_bright_spot_is_an_error():
    rgb = np.full((400, 400, 3), 8, np.uint8)
    cv2.circle(rgb, (200, 200), 40, (200, 100, 40), cv2.FILLED)
    with pytest.raises(UserError, match=r"covers only .*% of the image"):
        detect_fov(rgb)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((50, 60, 3), np.float32),
        np.zeros((50, 60), np.uint8),
        np.zeros((50, 60, 4), np.uint8),
        [[0, 0, 0]],
    ],
    ids=["float", "gray", "rgba", "list"],
)
def test_bad_input_is_an_error(bad):
    with pytest.raises(TypeError, match="uint8 array \\(H, W, 3\\)"):
        detect_fov(bad)


def test_stats_of_a_mask():
    mask = np.zeros((200, 300), np.uint8)
    cv2.circle(mask, (100, 100), 60, 255, cv2.FILLED)
    mask[10:20, 250:260] = 1  # a stray blob: any nonzero value is inside
    stats = fov_stats(mask)
    assert stats["components"] == 2
    assert stats["bbox"] == (40, 10, 220, 151)
    assert stats["share"] == np.count_nonzero(mask) / mask.size
    assert stats["diameter"] == pytest.approx(121, abs=3)  # the fit sets the stray blob aside


@pytest.mark.parametrize(
    "mask, message",
    [
        (np.zeros((50, 50), np.uint8), "empty"),
        (np.full((50, 50), 255, np.uint8), "no edge inside the image"),
    ],
    ids=["empty", "full-frame"],
)
def test_unmeasurable_masks_are_errors(mask, message):
    with pytest.raises(UserError, match=message):
        fov_diameter(mask)


def test_a_mask_that_is_not_2d_is_a_programming_error():
    with pytest.raises(TypeError, match="2-D"):
        fov_diameter(np.zeros((50, 50, 3), np.uint8))


# Real data, where present


@pytest.fixture(scope="module")
def stare_dir() -> Path:
    root = DATA_ROOT / "STARE"
    if not (root / "stare-images").is_dir():
        pytest.skip(f"STARE not found: no {root / 'stare-images'} (set RETINA_DATA to the folder holding STARE/)")
    return root


@pytest.mark.parametrize("image_id", STARE_IDS)
def test_stare(stare_dir, image_id):
    mask = detect_fov(read_rgb(stare_dir / "stare-images" / f"{image_id}.ppm.gz"))
    stats = fov_stats(mask)
    assert stats["components"] == 1
    assert 0.6 < stats["share"] < 0.88  # measured 0.71-0.79
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    assert cv2.countNonZero(mask) / cv2.contourArea(cv2.convexHull(contours[0])) > 0.95  # a filled disc
    # STARE clips its discs at the top and bottom only, so the width is the diameter.
    assert stats["diameter"] == pytest.approx(stats["bbox"][2], rel=0.02)
    vessels = read_binary(stare_dir / "labels-ah" / f"{image_id}.ah.ppm.gz") > 0
    assert vessels[mask > 0].sum() / vessels.sum() >= 0.97


@pytest.fixture(scope="module")
def drive_test_dir() -> Path:
    root = DATA_ROOT / "DRIVE" / "test"
    if not (root / "images").is_dir():
        pytest.skip(f"DRIVE not found: no {root / 'images'} (set RETINA_DATA to the folder holding DRIVE/)")
    return root


@pytest.mark.parametrize("image_id", DRIVE_TEST_IDS)
def test_drive_matches_the_official_masks(drive_test_dir, image_id):
    official = read_binary(drive_test_dir / "mask" / f"{image_id}_test_mask.gif")
    mask = detect_fov(read_rgb(drive_test_dir / "images" / f"{image_id}_test.tif"))
    assert iou(mask, official) > 0.95
    assert fov_diameter(mask) == pytest.approx(fov_diameter(official), rel=0.02)
