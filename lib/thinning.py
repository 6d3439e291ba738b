"""The skeleton of a binary map exactly as ``skimage.morphology.skeletonize`` gives it, computed only where the map
can still change.

scikit-image thins by Zhang and Suen's two alternating subiterations: each one removes, all at once, every
foreground pixel whose eight neighbours its table marks removable in that subiteration, until a whole pass removes
nothing. It looks at every pixel of the map in every subiteration: a 3504x2336 vessel map whose widest vessels are
some 30 px across needs about 60 of them, 0.4 s on one core. A pixel's fate in a subiteration depends on its
neighbours alone, so a pixel that stayed cannot go in the next subiteration of the same kind unless a neighbour went
meanwhile: here each subiteration looks at those pixels only. Same skeleton (tests compare the two on every 4x4
pattern, random maps and real vessel maps), four to five times faster on such a map.
"""

import cv2
import numpy as np

# A pixel's neighbours as a code 0-255: bit k is set when the k-th of these (row, column) steps, clockwise from
# the top left, lands on foreground.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
# scikit-image's table: the codes whose pixel goes in the first subiteration only, the second only, or either.
_FIRST_ONLY = (3, 6, 11, 12, 14, 131, 134, 143, 159, 161, 194, 198, 207, 227, 231, 243)
_SECOND_ONLY = (24, 26, 56, 62, 63, 96, 104, 108, 126, 176, 192, 224, 248, 249, 252)
_EITHER = (7, 10, 15, 28, 30, 31, 40, 60, 112, 120, 124, 130, 135, 160, 193, 195, 199, 225, 240, 241)
_REMOVABLE = tuple(np.isin(np.arange(256), codes + _EITHER) for codes in (_FIRST_ONLY, _SECOND_ONLY))


def skeletonize(image: np.ndarray) -> np.ndarray:
    """The (H, W) bool skeleton of a 2-D map (nonzero: foreground), equal to ``skimage.morphology.skeletonize``'s."""
    padded = np.pad(image != 0, 1).view(np.uint8)  # every pixel has eight neighbours
    pixels = padded.ravel()
    width = padded.shape[1]
    offsets = np.array([dy * width + dx for dy, dx in _NEIGHBOURS])
    # Only a pixel with a background neighbour can go; one inside can once a neighbour has gone.
    inside = cv2.erode(padded, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    border = np.flatnonzero(padded > inside)
    to_check = [border, border]  # per subiteration: the pixels whose neighbours changed since it last looked
    slots = np.empty(pixels.size, dtype=np.int32)

    def distinct(indices: np.ndarray) -> np.ndarray:
        """``indices`` without repeats, in linear time: each index keeps the slot of its last occurrence."""
        order = np.arange(indices.size, dtype=np.int32)
        slots[indices] = order
        return indices[slots[indices] == order]

    step = 0
    while to_check[0].size or to_check[1].size:
        candidates = to_check[step]
        candidates = candidates[pixels[candidates] == 1]
        code = np.zeros(candidates.size, dtype=np.uint8)
        for bit, offset in enumerate(offsets):
            code |= pixels[candidates + offset] << bit
        removed = candidates[_REMOVABLE[step][code]]
        pixels[removed] = 0  # after every code is read: the subiteration removes all at once
        neighbours = (removed[:, None] + offsets).ravel()
        changed = distinct(neighbours[pixels[neighbours] == 1])
        to_check[step] = changed
        to_check[1 - step] = distinct(np.concatenate([to_check[1 - step], changed]))
        step = 1 - step
    return padded[1:-1, 1:-1].astype(bool)
