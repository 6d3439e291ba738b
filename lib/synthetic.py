"""Small fake fundus datasets in the exact on-disk layout of DRIVE and STARE.

Tests run prepare -> train -> test end to end on them in seconds, and a user can try the pipeline
without downloading anything. The images only need the statistics the pipeline relies on: a disc
field of view, thin dark branching vessels (darkest in the green channel), 5-20 % vessel pixels
inside the FOV, uneven illumination and noise. Every image comes from its own seeded generator, so
an image depends only on the seed and its id, not on how many images are written.
"""

import gzip
import io
import itertools
import re
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from lib.atomic import atomic_path
from lib.errors import UserError

# DRIVE's FOV is a disc of about 540 px in 565 px wide images (lib.patches.DRIVE_FOV_RADIUS = 270).
FOV_RADIUS_FRACTION = 270 / 565
STARE_IDS = (
    "im0001",
    "im0002",
    "im0003",
    "im0004",
    "im0005",
    "im0044",
    "im0077",
    "im0081",
    "im0082",
    "im0139",
    "im0162",
    "im0163",
    "im0235",
    "im0236",
    "im0239",
    "im0240",
    "im0255",
    "im0291",
    "im0319",
    "im0324",
)
MIN_SIZE = 32  # below this the FOV is too small to hold a vessel tree
# Separate random streams per dataset and split, so no two synthetic images are alike.
_STREAM_DRIVE_TRAINING, _STREAM_DRIVE_TEST, _STREAM_STARE = 0, 1, 2
# How much a vessel darkens each channel: strongly in green, weakly in red, as in real fundus photos.
_VESSEL_CONTRAST = (0.15, 0.55, 0.35)
# A GIF keeps its full gray palette, so Pillow reads it back as "L" with 0/255 rather than "P" with 0/1.
_PILLOW_OPTIONS = {"GIF": {"optimize": False}}


def _curves(rng, starts, angles, lengths, turns, step):
    """Smooth random walks, one per row: steady bending ``turns`` (rad/px) plus a slow random wiggle.

    Returns points (N, M + 1, 2), headings (N, M + 1) and each walk's own step count (<= M); one
    generation of vessels is generated at once because per-curve numpy calls dominated the time.
    """
    counts = np.maximum(2, (lengths / step).astype(int))
    steps = int(counts.max())
    noise = np.cumsum(rng.normal(0.0, 0.05 * np.sqrt(step), (len(starts), steps + 9)), axis=1)
    wiggle = (noise[:, 9:] - noise[:, :-9]) / 9
    bending = np.cumsum(turns[:, None] * step + wiggle, axis=1)
    headings = np.concatenate([angles[:, None], angles[:, None] + bending], axis=1)
    points = np.empty((len(starts), steps + 1, 2))
    points[:, 0] = starts
    points[:, 1:, 0] = starts[:, :1] + step * np.cumsum(np.cos(headings[:, 1:]), axis=1)
    points[:, 1:, 1] = starts[:, 1:] + step * np.cumsum(np.sin(headings[:, 1:]), axis=1)
    return points, headings, counts


def _draw(canvas, points, widths):
    """Draw a polyline whose (non-increasing) thickness varies along it: one cv2 call per thickness."""
    fixed = np.round(points * 4).astype(np.int32)  # 1/4 px precision (shift=2)
    bounds = [0, *(np.flatnonzero(np.diff(widths)) + 1), len(widths)]
    for begin, end in itertools.pairwise(bounds):
        cv2.polylines(canvas, [fixed[begin : end + 1]], False, 255, thickness=int(widths[begin]), shift=2)


def _vessel_tree(rng, fov, centre, radius, disc):
    """Binary (H, W) vessels: arcades leaving the optic disc, branching generation by generation until
    a random target density (8-14 % of the FOV, DRIVE's range) is reached. ``radius`` sets the scale."""
    height, width = fov.shape
    scale = radius / 270
    canvas = np.zeros_like(fov)
    target = rng.uniform(0.08, 0.14) * max(cv2.countNonZero(fov), 1)
    step = max(1.0, 4 * scale)
    toward_fovea = np.arctan2(centre[1] - disc[1], centre[0] - disc[0])
    bend = 1.1 / (1.5 * radius)
    # Two temporal arcades arching round the fovea and two shorter nasal trunks; widths are in px at
    # DRIVE's scale.
    angles = toward_fovea + np.array([-1.35, 1.35, np.pi - 0.8, np.pi + 0.8]) + rng.normal(0, 0.1, 4)
    turns = np.array([bend, -bend, 0.0, 0.0])
    lengths = radius * np.array([1.7, 1.7, 0.9, 0.9])
    widths = np.array([5.5, 5.5, 4.5, 4.5])
    starts = np.repeat(disc[None], 4, axis=0)
    while True:
        points, headings, counts = _curves(rng, starts, angles, lengths, turns, step)
        # Each walk ends where it leaves the image or the FOV, or at its own length.
        pixels = np.round(points).astype(int)
        in_image = (pixels >= 0).all(axis=2) & (pixels[..., 0] < width) & (pixels[..., 1] < height)
        ended = ~in_image | (fov[pixels[..., 1].clip(0, height - 1), pixels[..., 0].clip(0, width - 1)] == 0)
        ended |= np.arange(points.shape[1]) > counts[:, None]
        stops = np.where(ended.any(axis=1), ended.argmax(axis=1), points.shape[1])
        parents, branch_at = [], []
        for index in rng.permutation(len(starts)):
            stop = stops[index]
            if stop < 2:
                continue
            taper = widths[index] * (1 - 0.55 * np.arange(stop - 1) / max(stop - 2, 1))
            _draw(canvas, points[index, :stop], np.maximum(1, np.round(taper * scale)).astype(int))
            if cv2.countNonZero(canvas) >= target:
                return cv2.bitwise_and(canvas, fov)
            # Side branches, about one per 0.3 FOV radii of vessel.
            at = rng.integers(1, stop, size=1 + int(stop * step / (0.3 * radius)))
            parents.append(np.full(len(at), index))
            branch_at.append(at)
        if not parents:
            break
        parents, at = np.concatenate(parents), np.concatenate(branch_at)
        count = len(at)
        # Children leave at 30-75 degrees, thinner than their parent there, and shorter the thinner they are.
        parent_width = widths[parents] * (1 - 0.55 * (at - 1) / np.maximum(stops[parents] - 2, 1))
        widths = np.maximum(1.0, parent_width * rng.uniform(0.55, 0.8, count))
        starts = points[parents, at]
        angles = headings[parents, at] + rng.choice([-1.0, 1.0], count) * rng.uniform(0.5, 1.3, count)
        turns = rng.normal(0, 0.6 / radius, count)
        lengths = radius * rng.uniform(0.3, 0.7, count) * (widths / 5) ** 0.3
    return cv2.bitwise_and(canvas, fov)


def _gaussian(size: int, at: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((np.arange(size, dtype=np.float32) - np.float32(at)) / np.float32(sigma)) ** 2)


def synthetic_fundus(rng: np.random.Generator, height: int, width: int, fov_radius: float | None = None):
    """A fake colour fundus photograph with its vessel label and FOV mask.

    Returns ``(rgb, vessels, fov)``: uint8 (H, W, 3), and (H, W) 0/255 planes. The FOV is a disc at the
    image centre (where lib.patches expects it) of radius ``fov_radius`` (default DRIVE's proportion of
    the size); everything outside it is black and vessel-free. Float32 and separable 2-D Gaussians
    keep a DRIVE-sized image well under 50 ms.
    """
    if min(height, width) < MIN_SIZE:
        raise UserError(f"synthetic images must be at least {MIN_SIZE}x{MIN_SIZE} px, got {width}x{height}")
    radius = FOV_RADIUS_FRACTION * min(height, width) if fov_radius is None else float(fov_radius)
    if radius < MIN_SIZE / 2:
        raise UserError(f"fov_radius must be at least {MIN_SIZE / 2:g} px, got {fov_radius}")
    centre = np.array([width // 2, height // 2], dtype=np.float64)
    dx = (np.arange(width, dtype=np.float32) - np.float32(centre[0])) / np.float32(radius)
    dy = (np.arange(height, dtype=np.float32) - np.float32(centre[1])) / np.float32(radius)
    centre_d2 = dx[None, :] ** 2 + dy[:, None] ** 2
    fov = np.where(centre_d2 <= 1, 255, 0).astype(np.uint8)

    # A FOV wider than the image (STARE's is cropped at top and bottom) is laid out at the visible scale.
    layout = min(radius, width / 2)
    side = rng.choice([-1.0, 1.0])
    disc = centre + layout * np.array([side * rng.uniform(0.5, 0.62), rng.uniform(-0.08, 0.08)])
    fovea = centre + layout * np.array([-side * 0.05, rng.uniform(-0.05, 0.05)])
    vessels = _vessel_tree(rng, fov, centre, layout, disc)
    # The fovea is avascular.
    cv2.circle(vessels, (round(fovea[0]), round(fovea[1])), round(0.07 * layout), 0, thickness=-1)

    # Illumination: vignetting, a random tilt, low-frequency mottle and a dark macula.
    tilt = rng.normal(0, 0.08, 2).astype(np.float32)
    mottle = cv2.resize(rng.normal(0, 0.04, (6, 6)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    shade = (1 - 0.35 * centre_d2) * ((1 + tilt[0] * dx)[None, :] + (tilt[1] * dy)[:, None]) * (1 + mottle)
    macula = np.outer(_gaussian(height, fovea[1], 0.15 * layout), _gaussian(width, fovea[0], 0.15 * layout))
    shade *= 1 - 0.3 * macula
    disc_glow = np.outer(_gaussian(height, disc[1], 0.09 * layout), _gaussian(width, disc[0], 0.09 * layout))
    # Vessels darken with a soft edge; blurring also makes the thinnest ones paler, as in real photos.
    darkening = cv2.GaussianBlur(vessels.astype(np.float32), (0, 0), 0.4 + 0.6 * layout / 270)
    darkening *= np.float32(rng.uniform(0.85, 1.1) / 255)

    base = (rng.uniform(190, 225), rng.uniform(75, 105), rng.uniform(25, 45))
    glow = (40, 100, 60)
    noise = rng.random((3, height, width), dtype=np.float32)
    planes = []
    for channel in range(3):  # plane by plane: broadcasting over a last axis of 3 is several times slower
        plane = np.float32(base[channel]) * shade + np.float32(glow[channel]) * disc_glow
        plane *= 1 - np.float32(_VESSEL_CONTRAST[channel]) * darkening
        plane += 10 * noise[channel] - 5
        planes.append(plane)
    rgb = np.clip(cv2.merge(planes), 0, 255).astype(np.uint8)
    return cv2.bitwise_and(rgb, rgb, mask=fov), vessels, fov


def _second_observer(rng, vessels, fov):
    """A plausible second manual labelling: thicker in some regions, thinner (twigs lost) in others."""
    height, width = vessels.shape
    field = cv2.resize(rng.random((5, 5)).astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    thicker = cv2.dilate(vessels, cross)
    thinner = cv2.erode(vessels, np.ones((1, 2), np.uint8))
    second = np.where(field > 0.65, thicker, np.where(field < 0.3, thinner, vessels))
    return cv2.bitwise_and(second, fov)


def _save(path, image: np.ndarray, file_format: str, gzipped: bool = False) -> Path:
    """Encode with Pillow and write atomically; gzip without a timestamp so bytes depend only on the seed."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=file_format, **_PILLOW_OPTIONS.get(file_format, {}))
    data = gzip.compress(buffer.getvalue(), mtime=0) if gzipped else buffer.getvalue()
    with atomic_path(path) as temp:
        temp.write_bytes(data)
    return Path(path)


def _check_count(name: str, count: int) -> None:
    if count < 1:
        raise UserError(f"{name} must be at least 1, got {count}")


def write_synthetic_drive(
    root, n_train: int = 20, n_test: int = 20, height: int = 584, width: int = 565, seed: int = 0
) -> list[Path]:
    """Write a fake DRIVE under ``root`` (training ids 21, 22, ..., test ids 01, 02, ...); return the files.

    Layout and names are DRIVE's: ``{split}/images/NN_{split}.tif`` (RGB),
    ``{split}/1st_manual/NN_manual1.gif``, ``{split}/mask/NN_{split}_mask.gif`` and, for test only,
    ``test/2nd_manual/NN_manual2.gif``; labels and masks are gray GIFs with values 0/255.
    """
    _check_count("the number of training images", n_train)
    _check_count("the number of test images", n_test)
    root = Path(root)
    written = []
    for split, count, first, stream in (
        ("training", n_train, 21, _STREAM_DRIVE_TRAINING),
        ("test", n_test, 1, _STREAM_DRIVE_TEST),
    ):
        for number in range(first, first + count):
            rng = np.random.default_rng([seed, stream, number])
            rgb, vessels, fov = synthetic_fundus(rng, height, width)
            image_id = f"{number:02d}"
            folder = root / split
            written.append(_save(folder / "images" / f"{image_id}_{split}.tif", rgb, "TIFF"))
            written.append(_save(folder / "1st_manual" / f"{image_id}_manual1.gif", vessels, "GIF"))
            if split == "test":
                second = _second_observer(rng, vessels, fov)
                written.append(_save(folder / "2nd_manual" / f"{image_id}_manual2.gif", second, "GIF"))
            written.append(_save(folder / "mask" / f"{image_id}_{split}_mask.gif", fov, "GIF"))
    return written


def write_synthetic_stare(root, ids=None, height: int = 605, width: int = 700, seed: int = 0) -> list[Path]:
    """Write a fake STARE under ``root`` as distributed; return the files.

    ``stare-images/imXXXX.ppm.gz`` (RGB PPM), ``labels-ah/imXXXX.ah.ppm.gz`` and
    ``labels-vk/imXXXX.vk.ppm.gz`` (8-bit gray PGM content despite the .ppm name, as STARE ships them; vk
    is the second observer). STARE has no FOV masks. ``ids`` defaults to the 20 labelled STARE images.
    """
    ids = list(STARE_IDS if ids is None else ids)
    _check_count("the number of STARE ids", len(ids))
    for image_id in ids:
        if not re.fullmatch(r"im\d{4}", image_id):
            raise UserError(f"STARE id {image_id!r} is not like 'im0001'")
    root = Path(root)
    written = []
    for image_id in ids:
        rng = np.random.default_rng([seed, _STREAM_STARE, int(image_id[2:])])
        rgb, vessels, fov = synthetic_fundus(rng, height, width)
        second = _second_observer(rng, vessels, fov)
        written.append(_save(root / "stare-images" / f"{image_id}.ppm.gz", rgb, "PPM", gzipped=True))
        written.append(_save(root / "labels-ah" / f"{image_id}.ah.ppm.gz", vessels, "PPM", gzipped=True))
        written.append(_save(root / "labels-vk" / f"{image_id}.vk.ppm.gz", second, "PPM", gzipped=True))
    return written
