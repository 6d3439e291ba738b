"""lib.degrade: every degradation keeps the photograph's shape and type, changes it, and is reproducible by seed."""

import numpy as np

from lib.degrade import DEGRADATIONS, degraded_copies
from lib.synthetic import synthetic_fundus


def test_degraded_copies_are_reproducible_and_differ():
    rgb = synthetic_fundus(np.random.default_rng(0), 90, 100)[0]
    first, again, other = degraded_copies(rgb, 3), degraded_copies(rgb, 3), degraded_copies(rgb, 4)
    assert list(first) == list(DEGRADATIONS)
    for name, image in first.items():
        assert image.shape == rgb.shape and image.dtype == np.uint8, name
        assert not np.array_equal(image, rgb), name
        assert np.array_equal(image, again[name]), name
    assert any(not np.array_equal(first[name], other[name]) for name in first)
