"""lib.quality: the reliability estimate and the flag, from a probability map and its FOV alone."""

import numpy as np
import pytest

from lib import quality
from lib.quality import GOOD, assess, flag, is_flagged, signals


def crisp_map(shape=(200, 220), share=0.12, seed=0):
    """A sharp prediction: ``share`` of the pixels near 1, the rest near 0."""
    rng = np.random.default_rng(seed)
    vessel = rng.random(shape) < share
    return np.where(vessel, rng.uniform(0.9, 1.0, shape), rng.uniform(0.0, 0.05, shape)).astype(np.float32)


def test_a_crisp_prediction_with_a_retina_s_vessels_is_good():
    probability, fov = crisp_map(), np.ones((200, 220), bool)
    measured = signals(probability, fov, 0.5)
    assert measured["vessel_share"] == pytest.approx(0.12, abs=0.01)
    assert measured["certainty"] == 1.0 and measured["uncertain_ratio"] == 0.0
    assert measured["reliability"] == pytest.approx(np.sqrt(measured["vessel_share"] / quality.FULL_SHARE))
    assert assess(probability, fov, 0.5) == {"reliability": f"{measured['reliability']:.4f}", "quality": GOOD}


def test_fog_and_missing_vessels_lower_the_reliability_and_are_flagged_with_their_reason():
    fov = np.ones((200, 220), bool)
    sharp = signals(crisp_map(), fov, 0.5)["reliability"]
    foggy = crisp_map(share=0.24)
    foggy[::2, :] = 0.4  # half the pixels undecided
    assert signals(foggy, fov, 0.5)["reliability"] < sharp
    assert assess(foggy, fov, 0.5)["quality"] == "check: uncertain vessels"
    sparse = crisp_map(share=0.02)
    assert assess(sparse, fov, 0.5)["quality"] == "check: few vessels"
    assert assess(crisp_map(share=0.5), fov, 0.5)["quality"] == "check: too many vessels"


def test_only_the_fov_counts_and_an_empty_fov_is_refused():
    probability, fov = crisp_map(), np.zeros((200, 220), bool)
    fov[50:150, 50:150] = True
    outside = probability.copy()
    outside[~fov] = 0.5
    assert signals(outside, fov, 0.5) == signals(probability, fov, 0.5)
    with pytest.raises(ValueError, match="fov is empty"):
        signals(probability, np.zeros_like(fov), 0.5)


def test_a_large_map_is_sampled_and_measures_like_a_small_one():
    small = crisp_map((300, 350))
    large = np.repeat(np.repeat(small, 12, axis=0), 12, axis=1)  # 3600x4200: sampled every 6th px
    fov = np.ones(large.shape, bool)
    assert signals(large, fov, 0.5)["reliability"] == pytest.approx(
        signals(small, fov[:300, :350], 0.5)["reliability"], abs=0.01
    )


def test_the_flag_reads_its_own_threshold_and_rows():
    at = {"vessel_share": 0.1, "uncertain_ratio": 0.5, "reliability": quality.MIN_RELIABILITY}
    assert flag(at) == GOOD
    assert flag(at | {"reliability": quality.MIN_RELIABILITY - 1e-6}) == "check: low reliability"
    assert is_flagged({"quality": "check: few vessels"}) and not is_flagged({"quality": GOOD})
    assert not is_flagged({})  # a row written before the quality columns existed
