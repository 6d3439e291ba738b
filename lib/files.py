"""Finding the photographs a user names (files, folders, glob patterns) and their masks and labels by id."""

import glob
import os
import re
from pathlib import Path

from lib.errors import UserError
from lib.imageio import IMAGE_SUFFIXES

# run_prediction.py writes <id>_vessels.png beside <id>_fov.png; masks are often named <id>_mask; CHASE_DB1 names
# the labels of its two human observers <id>_1stHO and <id>_2ndHO.
ROLE_SUFFIX = re.compile(r"_(?:vessels|fov|mask|\d(?:st|nd|rd|th)HO)$")
# DRIVE names its labels NN_manual1/NN_manual2 and its images and masks NN_test(_mask)/NN_training(_mask):
# the same photograph has the same number NN in all of them.
DRIVE_NAME = re.compile(r"(\d+)_(?:manual\d|test|training)")
# The way out when one folder holds the images and their labels (CHASE_DB1) and the folder was named whole.
NAME_IMAGES_ALONE = 'name the images alone, e.g. with a quoted pattern "FOLDER/*.jpg"'


def file_id(path: Path) -> str:
    """The name before the first dot: ties im0001.ppm.gz to its label im0001.ah.ppm.gz."""
    return path.name.split(".")[0]


def pairing_key(path: Path) -> str:
    """What a photograph or map and its mask or label are matched by: the id without a trailing _mask,
    _vessels, _fov or observer's _1stHO/_2ndHO, and DRIVE's number for DRIVE's names (01_test.tif,
    01_manual1.gif and 01_test_mask.gif are all 01)."""
    name = ROLE_SUFFIX.sub("", file_id(path))
    match = DRIVE_NAME.fullmatch(name)
    return match.group(1) if match else name


def expand(spec: str) -> list[Path]:
    """The image files named by a file, a folder (its image files) or a glob pattern (its image matches).

    A file named explicitly is always returned, whatever its suffix, so a wrong file gets a clear error
    from the reader instead of being skipped in silence.
    """
    path = Path(spec)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))
        if not found:
            raise UserError(
                f"{spec}: no images in this folder (looked for {' '.join(IMAGE_SUFFIXES)}); check the folder"
            )
        return found
    if path.is_file():
        return [path]
    if glob.escape(spec) == spec:
        raise UserError(f"{spec}: file or folder not found; check the path")
    matches = glob.glob(spec, recursive=True)
    found = sorted(Path(p) for p in matches if p.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(p))
    if not found:
        raise UserError(f"{spec}: no image files match this pattern; check the pattern (quote it in the shell)")
    return found


def unique_files(paths: list[Path]) -> list[Path]:
    """``paths`` without repeats of one file, first mention kept: a file named twice (by a folder and a pattern,
    a relative and an absolute path, or through a link) is one file, not two photographs with one name."""
    seen, unique = set(), []
    for path in paths:
        try:
            status = path.stat()
            identity = (status.st_dev, status.st_ino)
        except OSError:  # gone or unreadable: its reader says so
            identity = path
        if identity not in seen:
            seen.add(identity)
            unique.append(path)
    return unique


def index_files(spec: str) -> dict[str, list[Path]]:
    """The files of a --masks or --labels folder/pattern, grouped by ``pairing_key``."""
    index = {}
    for path in expand(spec):
        index.setdefault(pairing_key(path), []).append(path)
    return index


def companion(index: dict[str, list[Path]] | None, image: Path, what: str, option: str) -> Path | None:
    """The one file of ``index`` paired with ``image`` (None without an index)."""
    if index is None:
        return None
    key = pairing_key(image)
    found = index.get(key, [])
    if len(found) != 1:
        problem = f"several {what}s: {', '.join(map(str, found))}" if found else f"no {what} named {key}.*"
        raise UserError(f"{image}: {problem} in {option}; give each image exactly one {what} with its name")
    if len(unique_files([image, found[0]])) == 1:
        raise UserError(
            f"{image}: this file is among the {what}s ({option}) as well as the images; {NAME_IMAGES_ALONE}"
        )
    return found[0]
