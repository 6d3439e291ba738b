"""Degraded copies of a fundus photograph, as bad cameras and bad sessions make them: seeded and reproducible.

Each degradation takes an RGB uint8 photograph and a ``numpy.random.Generator`` and returns a new photograph of
the same size. The strengths are drawn from fixed ranges with the generator, so one seed gives one set of
copies on every machine. They stand for what a screening team meets: defocus (``blur``), a dark or a burnt-out
exposure, a cataract's haze, strong JPEG compression and uneven illumination (vignetting and a bright side).
"""

import cv2
import numpy as np


def _scale(rgb: np.ndarray) -> float:
    """Strengths are given for a DRIVE-sized photograph (~565 px wide) and follow the photograph's size."""
    return max(rgb.shape[:2]) / 600.0


def blur(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sigma = rng.uniform(2.5, 5.0) * _scale(rgb)
    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def underexposure(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gain = rng.uniform(0.12, 0.25)
    return np.clip(rgb.astype(np.float32) * gain, 0, 255).round().astype(np.uint8)


def overexposure(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gain = rng.uniform(2.5, 4.0)
    return np.clip(rgb.astype(np.float32) * gain, 0, 255).round().astype(np.uint8)


def haze(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cataract: a veil of scattered light over a softened photograph."""
    veil = rng.uniform(0.55, 0.75)
    soft = cv2.GaussianBlur(rgb, (0, 0), 1.5 * _scale(rgb)).astype(np.float32)
    inside = (rgb.max(axis=2) > 10)[..., None]
    hazy = soft * (1 - veil) + veil * np.float32(200.0)
    return np.where(inside, np.clip(hazy, 0, 255), rgb).round().astype(np.uint8)


def jpeg(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    quality = int(rng.integers(3, 8))
    ok, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


def uneven_illumination(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light falling off from one side to the other: a ramp from ``low`` to bright across the photograph."""
    height, width = rgb.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    low = rng.uniform(0.05, 0.15)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    along = (x - width / 2) * np.cos(angle) + (y - height / 2) * np.sin(angle)
    ramp = (along - along.min()) / max(float(np.ptp(along)), 1.0)
    gain = low + (1.6 - low) * ramp
    return np.clip(rgb.astype(np.float32) * gain[..., None], 0, 255).round().astype(np.uint8)


DEGRADATIONS = {
    "blur": blur,
    "dark": underexposure,
    "bright": overexposure,
    "haze": haze,
    "jpeg": jpeg,
    "uneven": uneven_illumination,
}


def degraded_copies(rgb: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Every degradation of ``rgb``, each drawn with its own generator from ``seed`` (reproducible one by one)."""
    return {
        name: degrade(rgb, np.random.default_rng([seed, index]))
        for index, (name, degrade) in enumerate(DEGRADATIONS.items())
    }
