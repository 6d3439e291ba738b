"""Vessel measurements of a binary vessel map, as research tools (AutoMorph, VascX, PVBM) report them.

Everything is measured inside the field of view, in pixels of the map given. The skeleton
(``skimage.morphology.skeletonize``'s, computed faster by ``lib.thinning``) is read as a graph whose nodes are
its pixels and whose edges join 8-neighbours: 1 px for a horizontal or vertical step, sqrt(2) for a diagonal
one. A diagonal edge is dropped when the two pixels also share a horizontal/vertical neighbour in the
skeleton: the little triangles a skeleton has at corners and junctions are then walked along their two short
sides only, never around, and a pixel's neighbour count (end point, branch point) ignores the shortcut. See
docs/measurements.md for every column's definition and edge case.
"""

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from lib.thinning import skeletonize

COLUMNS = (
    "vessel_density",
    "skeleton_length",
    "mean_width",
    "branch_points",
    "end_points",
    "tortuosity",
    "fractal_dimension",
)
MIN_SEGMENT_LENGTH = 10.0  # px: shorter segments (spurs, crossings) say nothing about how a vessel winds
BOX_FRACTION = 4  # the box-counting dimension's largest box side is at most the map's shorter side / this


def measure_vessels(vessels: np.ndarray, fov: np.ndarray | None = None) -> dict:
    """The columns of ``COLUMNS`` for a binary (H, W) vessel map, inside ``fov`` (the whole map without one).

    ``vessels`` and ``fov`` are bool arrays, or integer arrays of 0 and one other value (0/1, 0/255).
    Counts and lengths are 0 for an empty map; a value with nothing to measure is NaN: mean_width
    without skeleton length, tortuosity without a segment of MIN_SEGMENT_LENGTH px, the fractal
    dimension of an empty map or of one whose shorter side is under 16 px (fewer than two box sizes).
    Another dtype, shape or value, or an empty ``fov``, is a programming error (TypeError, ValueError).
    """
    vessels = _as_mask(vessels, "vessels")
    if fov is None:
        fov_pixels = vessels.size
    else:
        fov = _as_mask(fov, "fov")
        if fov.shape != vessels.shape:
            raise ValueError(f"fov has shape {fov.shape} but vessels has {vessels.shape}; give the map's own FOV")
        fov_pixels = np.count_nonzero(fov)
        if not fov_pixels:
            raise ValueError("the fov is empty: it must mark the field of view with nonzero pixels")
        vessels = vessels & fov
    area = np.count_nonzero(vessels)
    skeleton = _SkeletonGraph(skeletonize(_around_vessels(vessels)))
    length = skeleton.length()
    return {
        "vessel_density": float(area / fov_pixels),
        "skeleton_length": length,
        "mean_width": float(area / length) if length else float("nan"),
        "branch_points": int(skeleton.cluster_count),
        "end_points": skeleton.end_point_count(),
        "tortuosity": skeleton.tortuosity(),
        "fractal_dimension": _box_counting_dimension(vessels),
    }


def as_text(measurements: dict) -> dict[str, str]:
    """``measure_vessels``' values as CSV cells: counts as integers, the rest with 4 decimals, nan where undefined."""
    return {name: str(value) if isinstance(value, int) else f"{value:.4f}" for name, value in measurements.items()}


def _around_vessels(vessels: np.ndarray) -> np.ndarray:
    """The part of the map holding its vessel pixels, with one pixel of background around them where the map
    has it: thinning and the skeleton's graph look at 3x3 neighbourhoods only, so they come out the same as on
    the whole map, at a fraction of the cost for a disc in a wide frame."""
    rows, columns = np.flatnonzero(vessels.any(axis=1)), np.flatnonzero(vessels.any(axis=0))
    if not rows.size:
        return vessels[:1, :1]
    return vessels[max(rows[0] - 1, 0) : rows[-1] + 2, max(columns[0] - 1, 0) : columns[-1] + 2]


def _as_mask(array, name: str) -> np.ndarray:
    """A binary map as bool; any other array is a programming error (TypeError, ValueError)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) map, got shape {array.shape}")
    if array.dtype == bool:
        return array
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must be bool or integer (0 and one other value), got {array.dtype}")
    mask = array != 0
    values = array[mask]
    if values.size and values.min() != values.max():
        raise ValueError(f"{name} is not binary: it holds more than one nonzero value; threshold it first")
    return mask


class _SkeletonGraph:
    """A skeleton as a graph on its pixels (see the module's docstring for the edges and their lengths)."""

    def __init__(self, skeleton: np.ndarray):
        padded = np.pad(skeleton, 1)  # every pixel has 8 neighbours, none wraps around a row
        self.row = padded.shape[1]
        self.flat = padded.ravel()
        self.pixels = np.flatnonzero(self.flat)  # sorted flat indices into the padded map
        self.yx = np.stack(np.divmod(self.pixels, self.row), axis=1).astype(float)
        # Each edge once, from its upper (in a row, its left) pixel. The two pixels of a diagonal step
        # both touch two others horizontally/vertically: either in the skeleton makes the step a shortcut.
        steps = []
        for step, shared, weight in (
            (1, (), 1.0),
            (self.row, (), 1.0),
            (self.row + 1, (1, self.row), np.sqrt(2)),
            (self.row - 1, (-1, self.row), np.sqrt(2)),
        ):
            keep = self.flat[self.pixels + step]
            for offset in shared:
                keep &= ~self.flat[self.pixels + offset]
            steps.append((self.pixels[keep], step, weight))
        self.start, self.end = _edges(self.pixels, steps)
        self.weight = np.concatenate([np.full(starts.size, weight) for starts, _, weight in steps])
        count = self.pixels.size
        self.degree = np.bincount(self.start, minlength=count) + np.bincount(self.end, minlength=count)
        self.branch = self.degree >= 3
        self.cluster_count, self.cluster = self._branch_clusters()

    def _branch_clusters(self) -> tuple[int, np.ndarray]:
        """Branch points: clusters of 8-adjacent pixels with 3 or more neighbours; their count and
        each pixel's cluster (-1 off the branch points)."""
        branch_pixels = self.pixels[self.branch]
        is_branch = np.zeros_like(self.flat)
        is_branch[branch_pixels] = True
        steps = [
            (branch_pixels[is_branch[branch_pixels + step]], step) for step in (1, self.row - 1, self.row, self.row + 1)
        ]
        count, labels = _components(branch_pixels.size, *_edges(branch_pixels, steps))
        cluster = np.full(self.pixels.size, -1)
        cluster[self.branch] = labels
        return count, cluster

    def length(self) -> float:
        return float(self.weight.sum())

    def end_point_count(self) -> int:
        return int(np.count_nonzero(self.degree == 1))

    def tortuosity(self) -> float:
        """Length-weighted mean arc/chord over the segments of at least MIN_SEGMENT_LENGTH px.

        A segment is a chain of pixels with fewer than 3 neighbours; it runs from an end point or the
        branch pixel it leaves to an end point or the branch pixel it reaches, the edges to those branch
        pixels included. Loops (chains without ends, or with both ends on one branch point) have no
        chord and are left out. NaN when no segment is measured.
        """
        start_branch, end_branch = self.branch[self.start], self.branch[self.end]
        inner = ~start_branch & ~end_branch
        _, segment = _components(self.pixels.size, self.start[inner], self.end[inner])
        # An edge into a branch pixel belongs to the segment of its other end; edges within a branch point to none.
        chain_side = np.where(start_branch, self.end, self.start)
        owned = ~(start_branch & end_branch)
        arc = np.bincount(segment[chain_side[owned]], self.weight[owned], minlength=self.pixels.size)
        # A chain has two ends: each is the branch pixel it attaches to, or its own end pixel (an
        # isolated pixel is both ends). Closed chains have none.
        attaching = start_branch != end_branch
        ending = ~self.branch & (self.degree < 2)
        own_ends = np.repeat(np.flatnonzero(ending), 2 - self.degree[ending])
        end_pixel = np.concatenate([np.where(start_branch, self.start, self.end)[attaching], own_ends])
        end_segment = segment[np.concatenate([chain_side[attaching], own_ends])]
        order = np.argsort(end_segment, kind="stable")
        end_pixel = end_pixel[order]
        ends_per_segment = np.bincount(end_segment, minlength=self.pixels.size)
        first = np.cumsum(ends_per_segment) - ends_per_segment
        chains = np.flatnonzero(ends_per_segment == 2)
        a, b = end_pixel[first[chains]], end_pixel[first[chains] + 1]
        chord = np.hypot(*(self.yx[a] - self.yx[b]).T)
        loop = (self.cluster[a] >= 0) & (self.cluster[a] == self.cluster[b])
        arc = arc[chains]
        measured = (arc >= MIN_SEGMENT_LENGTH) & ~loop & (chord > 0)
        if not measured.any():
            return float("nan")
        arc, chord = arc[measured], chord[measured]
        return float(np.sum(arc * arc / chord) / np.sum(arc))


def _edges(nodes: np.ndarray, steps) -> tuple[np.ndarray, np.ndarray]:
    """The edges (start, end) as indices into ``nodes`` (sorted flat indices), given as (starts, step, ...) per step."""
    starts = np.concatenate([starts for starts, *_ in steps])
    ends = np.concatenate([starts + step for starts, step, *_ in steps])
    return np.searchsorted(nodes, starts), np.searchsorted(nodes, ends)


def _components(count: int, start: np.ndarray, end: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of ``count`` nodes joined by the edges (start[i], end[i])."""
    graph = coo_matrix((np.ones(start.size, dtype=np.int8), (start, end)), shape=(count, count))
    return connected_components(graph, directed=False)


def _box_counting_dimension(vessels: np.ndarray) -> float:
    """Box-counting dimension: the least-squares slope of log(boxes holding vessel) against log(1/side).

    Boxes tile the map from its top-left corner (the last row and column of boxes may overhang);
    their sides are the powers of two from 2 px to a quarter of the map's shorter side. NaN for an
    empty map or a map whose shorter side is under 16 px (fewer than two sides).
    """
    largest = min(vessels.shape) // BOX_FRACTION
    if largest < 4 or not vessels.any():
        return float("nan")
    sides, counts = [], []
    occupied, side = vessels, 2
    while side <= largest:
        # The boxes of this side: OR over 2x2 boxes of half the side, the map zero-padded to an even size
        # (pairs of rows, then pairs of columns: 20x faster than any() over a 4-D view's axes).
        height, width = occupied.shape
        occupied = np.pad(occupied, ((0, height % 2), (0, width % 2)))
        rows = occupied[0::2] | occupied[1::2]
        occupied = rows[:, 0::2] | rows[:, 1::2]
        sides.append(side)
        counts.append(np.count_nonzero(occupied))
        side *= 2
    slope, _ = np.polyfit(np.log(1 / np.array(sides)), np.log(counts), 1)
    return float(slope)
