"""How far to trust one photograph's segmentation, from its probability map and FOV alone (no label).

A sharp, well-exposed photograph gives the U-Net crisp vessels: most FOV pixels are near 0 or near 1, and the
vessels cover about a tenth of the FOV. A blurred, dark, burnt-out or hazy one gives fewer vessels and a fog of
undecided probabilities. The signals, over the FOV pixels (sampled on a grid of at most SAMPLE_SIDE px a side, so
a 3504x2336 photograph costs no more than a DRIVE one):

``vessel_share``: the share of the FOV predicted vessel (probability >= the threshold): retinas hold about 8-15 %
(DRIVE's labels 12 %), and a blurred, dark or washed-out photograph loses its small vessels first;
``certainty``: of the FOV pixels the network calls vessel or is undecided about (UNDECIDED[0] < p < UNDECIDED[1]),
the share it calls vessel;
``uncertain_ratio``: undecided FOV pixels per predicted vessel pixel (the same information, as the flag's reason
reads it).

``reliability = sqrt(certainty * min(1, vessel_share / FULL_SHARE))``, in [0, 1], higher is more trustworthy: both
a fog of undecided probabilities and missing vessels lower it. ``quality`` is ``good``, or ``check: `` and the
reasons when reliability < MIN_RELIABILITY or the vessel share is implausibly high. MIN_RELIABILITY was chosen on
the degraded copies of DRIVE's training photographs (none of the 20 undegraded ones below it, 71 of the 73 with
F1 < .70 below); docs/quality.md has how well it does on DRIVE's test and STARE's photographs
(``python -m benchmarks.bench_quality``).
"""

import numpy as np

GOOD = "good"
CHECK = "check"
COLUMNS = ("reliability", "quality")
SAMPLE_SIDE = 700  # px: the signals are computed on FOV pixels sampled on a grid this many across at most
UNDECIDED = (0.2, 0.8)  # a probability strictly between these is undecided
FULL_SHARE = 0.2  # a vessel share counted in full by reliability (no retina comes near it)
MIN_RELIABILITY = 0.5  # below: "check" (docs/quality.md: how it was chosen)
MIN_VESSEL_SHARE = 0.07  # a flagged photograph with a smaller vessel share: reason "few vessels"
MAX_UNCERTAIN_RATIO = 1.0  # a flagged photograph with more undecided pixels per vessel pixel: "uncertain vessels"
MAX_VESSEL_SHARE = 0.3  # more of the FOV predicted vessel than this is no retina's: "check: too many vessels"


def signals(probability: np.ndarray, fov: np.ndarray, threshold: float) -> dict[str, float]:
    """The signals of a (H, W) probability map inside a bool ``fov``, and the reliability made of them, as floats;
    also confident_share (vessel pixels with p >= UNDECIDED[1]) and mean_vessel_probability, which
    docs/quality.md compares. An empty FOV is a programming error (ValueError)."""
    step = max(1, -(-max(probability.shape) // SAMPLE_SIDE))
    inside = probability[::step, ::step][fov[::step, ::step]]
    if not inside.size:
        raise ValueError("the fov is empty: it must mark the field of view")
    vessel = inside >= threshold
    vessels = np.count_nonzero(vessel)
    uncertain = np.count_nonzero((inside > UNDECIDED[0]) & (inside < UNDECIDED[1]) & ~vessel)
    share = vessels / inside.size
    certainty = vessels / max(vessels + uncertain, 1)
    return {
        "reliability": float(np.sqrt(certainty * min(1.0, share / FULL_SHARE))),
        "vessel_share": share,
        "certainty": certainty,
        "uncertain_ratio": uncertain / max(vessels, 1),
        "confident_share": np.count_nonzero(inside >= UNDECIDED[1]) / max(vessels, 1),
        "mean_vessel_probability": float(inside[vessel].mean()) if vessels else 0.0,
    }


def flag(measured: dict[str, float]) -> str:
    """``good``, or ``check: `` and the reasons, from ``signals``' values."""
    if measured["vessel_share"] > MAX_VESSEL_SHARE:
        return f"{CHECK}: too many vessels"
    if measured["reliability"] >= MIN_RELIABILITY:
        return GOOD
    reasons = []
    if measured["vessel_share"] < MIN_VESSEL_SHARE:
        reasons.append("few vessels")
    if measured["uncertain_ratio"] > MAX_UNCERTAIN_RATIO:
        reasons.append("uncertain vessels")
    return f"{CHECK}: {', '.join(reasons or ['low reliability'])}"


def assess(probability: np.ndarray, fov: np.ndarray, threshold: float) -> dict[str, str]:
    """The summary's COLUMNS for one photograph, as CSV cells."""
    measured = signals(probability, fov, threshold)
    return {"reliability": f"{measured['reliability']:.4f}", "quality": flag(measured)}


def is_flagged(row: dict) -> bool:
    """Whether a summary row's photograph was flagged for a check."""
    return row.get("quality", GOOD).startswith(CHECK)
