"""Field-of-view (FOV) masks for fundus photographs that come without one (STARE, your own photos).

A fundus photo is a bright disc of retina on a near-black surround; the retina is brightest in the
red channel, where vessels and lesions are faint, so the published project found the FOV by
thresholding the image colour. Here the threshold is derived from each image's own red levels, so
dark, bright and JPEG-compressed photos of any camera and size get the same treatment.
"""

import cv2
import numpy as np

from lib.errors import UserError

SMOOTHING = 5  # median kernel (px): removes JPEG ringing and sensor noise before thresholding
THRESHOLD_FRACTION = 0.16  # where the threshold sits between the surround level (0) and the retina level (1)
MIN_THRESHOLD_RATIO = 0.22  # the threshold's floor, as a fraction of the retina level
MIN_CONTRAST = 20  # the retina must be at least this many red levels brighter than its surround
MAX_SURROUND_RATIO = 0.35  # the surround must be darker than this fraction of the retina level
MIN_SHARE = 0.10  # a FOV covering less of the frame is not a fundus photo's FOV
RIM_FRACTION = 0.004  # the dark rim dropped, as a fraction of the shorter image side (2 px in DRIVE/STARE)
FIT_ROUNDS = 5  # circle refits, each on the half of the edge points that lie closest to the last circle
MIN_EDGE_POINTS = 20  # fewer free edge points than this cannot place a circle
# A camera's FOV covers 30-75 % of its frame (DRIVE 69 %, a disc in a 3:2 frame about 45 %) and is a disc cut
# by the frame's edges (overlap with the fitted circle above 0.97 for DRIVE's masks and STARE's detected FOVs).
PLAUSIBLE_SHARE = 0.25
PLAUSIBLE_DISC_OVERLAP = 0.9
CHECK_SIDE = 512  # px: the plausibility checks run on a copy of the mask at most this wide
MASK_HELP = "pass a FOV mask file instead (white inside the field of view, black outside)"


def detect_fov(rgb: np.ndarray) -> np.ndarray:
    """The FOV of an RGB fundus photo (uint8 H x W x 3) as a uint8 H x W mask of 0/255.

    Threshold the median-smoothed red channel (see ``_red_threshold``), keep the largest connected
    component with its holes filled (dark lesions, the optic cup and vessels at the rim are inside
    the FOV), then erode a few pixels, scaled with the image, to drop the dark vignetted rim.
    Raises ``UserError`` when no plausible FOV is found (a user's photograph), ``TypeError`` for a non-image.
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        described = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise TypeError(f"FOV detection needs an RGB image as a uint8 array (H, W, 3), got a {described}")
    red = cv2.medianBlur(np.ascontiguousarray(rgb[..., 0]), SMOOTHING)
    _, bright = cv2.threshold(red, _red_threshold(red), 255, cv2.THRESH_BINARY)
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    mask = np.zeros_like(red)
    cv2.drawContours(mask, [max(contours, key=cv2.contourArea)], -1, 255, cv2.FILLED)
    radius = max(1, round(RIM_FRACTION * min(red.shape)))
    # Erosion leaves the frame edges alone (cv2's default border), so a disc clipped by the frame stays clipped.
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    share = cv2.countNonZero(mask) / mask.size
    if share < MIN_SHARE:
        raise UserError(
            f"could not detect the field of view: the bright region covers only {share:.1%} of the image "
            f"(at least {MIN_SHARE:.0%} expected); {MASK_HELP}"
        )
    return mask


def _red_threshold(red: np.ndarray) -> float:
    """A red level between the dark surround and the retina, from the image's own histogram.

    Otsu splits the pixels into a dark and a bright class. The surround level is the dark class's
    histogram peak, not its mean: in dim photos Otsu's split falls inside the retina, and the dark
    retina periphery must not raise the surround level. The retina level is the bright class's
    median. The threshold sits ``THRESHOLD_FRACTION`` of the way up, far enough above the surround
    for noise and the camera's glow, low enough to keep a vignetted periphery (STARE im0240's is
    about 0.3 x the retina level). A black border added around a camera's gray surround pulls the
    peak to 0, so the threshold is never below ``MIN_THRESHOLD_RATIO`` x the retina level. All
    levels scale with exposure, so dark and bright photos get the same cut.
    """
    otsu, _ = cv2.threshold(red, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    histogram = cv2.calcHist([red], [0], None, [256], (0, 256)).ravel().astype(np.int64)  # np.bincount, 5x faster
    dark, bright = histogram[: int(otsu) + 1], histogram[int(otsu) + 1 :]
    if not dark.any() or not bright.any():
        raise UserError(f"could not detect the field of view: the image's red channel is uniform; {MASK_HELP}")
    surround = int(np.argmax(np.convolve(dark, np.ones(5), mode="same")))
    retina = int(otsu) + 1 + int(np.searchsorted(np.cumsum(bright), bright.sum() / 2))
    if retina - surround < MIN_CONTRAST or surround > MAX_SURROUND_RATIO * retina:
        raise UserError(
            "could not detect the field of view: no bright retina on a dark surround "
            f"(red levels: surround {surround}, retina {retina}); the photo may be too dark or cropped "
            f"inside the field of view; {MASK_HELP}"
        )
    return max(surround + THRESHOLD_FRACTION * (retina - surround), MIN_THRESHOLD_RATIO * retina)


def fov_diameter(mask: np.ndarray) -> float:
    """The diameter in pixels of the circle fitted to the FOV's edge (``fov_circle``).

    Not the extent or the area: many cameras clip the FOV disc at the top and bottom of the frame
    (STARE, for one), which shortens the vertical extent and the area, while the scale of the retina
    in the photo is set by the full optical field. One pixel is added because the edge points are
    pixel centres, half a pixel inside the edge.
    """
    _, radius = fov_circle(mask)
    return float(2 * radius + 1)


def fov_circle(mask: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (x, y) and radius in pixels of the circle through the FOV's edge points (pixel centres).

    The edge points on the frame border are dropped and a least-squares circle is fitted to the
    rest; the refits on the points closest to the circle discard straight clip lines just inside the
    frame and small tabs such as STARE's notch. A FOV without an edge inside the frame is a UserError.
    (``skimage.measure.ransac`` with ``CircleModel`` does the same job by random sampling and a geometric fit:
    other diameters, hence other scales and other pixels for every rescaled photograph; this fit is kept.)
    """
    binary = _binary(mask)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    points = np.concatenate(contours)[:, 0].astype(np.float64)
    height, width = binary.shape
    inner = (points[:, 0] > 0) & (points[:, 0] < width - 1) & (points[:, 1] > 0) & (points[:, 1] < height - 1)
    edge = points[inner]
    if len(edge) < MIN_EDGE_POINTS:
        raise UserError(
            "cannot measure the FOV diameter: the FOV mask has no edge inside the image "
            "(it fills the frame); use a photo that shows the rim of the field of view"
        )
    chosen = edge
    for _ in range(FIT_ROUNDS):
        centre, radius = _fit_circle(chosen)
        residual = np.abs(np.hypot(*(edge - centre).T) - radius)
        chosen = edge[residual <= np.median(residual)]
    return centre, radius


def fov_warning(mask: np.ndarray) -> str:
    """What makes a FOV mask implausible for a fundus photograph ("" when nothing does).

    Two signs that the FOV (detected, or a mask given) is not a camera's field of view: it covers
    under PLAUSIBLE_SHARE of the frame (most of the photo dark), or it is not a disc, cut by the frame
    as cameras cut it: its overlap (intersection over union) with the circle ``fov_circle`` fits to
    its edge is under PLAUSIBLE_DISC_OVERLAP. Checked on a copy at most CHECK_SIDE px wide, so it
    costs a few milliseconds at any size.
    """
    binary = _binary(mask)
    problems = []
    share = cv2.countNonZero(binary) / binary.size
    if share < PLAUSIBLE_SHARE:
        problems.append(f"the field of view covers only {share:.0%} of the frame")
    factor = max(binary.shape) / CHECK_SIDE
    if factor > 1:
        size = (max(1, round(binary.shape[1] / factor)), max(1, round(binary.shape[0] / factor)))
        binary = cv2.resize(binary, size, interpolation=cv2.INTER_AREA) > 127
    try:
        centre, radius = fov_circle(binary)
    except UserError:  # no rim in the frame: nothing to compare with a disc
        return "; ".join(problems)
    ys, xs = np.ogrid[: binary.shape[0], : binary.shape[1]]
    disc = np.hypot(xs - centre[0], ys - centre[1]) <= radius + 0.5
    inside = binary > 0
    overlap = np.count_nonzero(disc & inside) / np.count_nonzero(disc | inside)
    if overlap < PLAUSIBLE_DISC_OVERLAP:
        problems.append(f"the field of view is not a disc ({overlap:.0%} overlap with the circle fitted to its edge)")
    return "; ".join(problems)


def _fit_circle(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Algebraic least-squares circle (Kasa): solve x² + y² = a x + b y + c, on centred points."""
    mean = points.mean(axis=0)
    x, y = (points - mean).T
    (a, b, c), *_ = np.linalg.lstsq(np.column_stack([x, y, np.ones_like(x)]), x * x + y * y, rcond=None)
    return mean + (a / 2, b / 2), float(np.sqrt(c + (a * a + b * b) / 4))


def fov_stats(mask: np.ndarray) -> dict:
    """Summary of a FOV mask for previews and reports.

    ``share``: fraction of the frame inside the FOV; ``components``: number of 8-connected
    components (1 for a sound mask); ``bbox``: (x, y, width, height) of the FOV in pixels;
    ``diameter``: ``fov_diameter`` in pixels.
    """
    binary = _binary(mask)
    count, _ = cv2.connectedComponents(binary, connectivity=8)
    return {
        "share": cv2.countNonZero(binary) / binary.size,
        "components": count - 1,
        "bbox": tuple(int(v) for v in cv2.boundingRect(binary)),
        "diameter": fov_diameter(binary),
    }


def _binary(mask: np.ndarray) -> np.ndarray:
    """A 2-D mask (any dtype, nonzero = inside) as uint8 0/255; an empty mask is an error."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        shape = mask.shape if isinstance(mask, np.ndarray) else type(mask).__name__
        raise TypeError(f"a FOV mask must be a 2-D array (H, W), got {shape}")
    binary = (mask > 0).view(np.uint8) * np.uint8(255)
    if not cv2.countNonZero(binary):
        raise UserError("the FOV mask is empty (no pixel inside the field of view)")
    return binary
