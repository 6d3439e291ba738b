"""Finding the photographs a user names (files, folders, glob patterns) and their masks and labels by id."""

import glob
import os
from pathlib import Path

from lib.errors import UserError
from lib.imageio import IMAGE_SUFFIXES


def file_id(path: Path) -> str:
    """The name before the first dot: ties im0001.ppm.gz to its label im0001.ah.ppm.gz."""
    return path.name.split(".")[0]


def mask_id(path: Path) -> str:
    """A mask's id, a trailing ``_mask`` ignored (DRIVE's 01_test_mask.gif is the mask of 01_test.tif)."""
    return file_id(path).removesuffix("_mask")


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


def index_files(spec: str, key) -> dict[str, list[Path]]:
    """The files of a --masks or --labels folder/pattern, grouped by ``key`` (their id)."""
    index = {}
    for path in expand(spec):
        index.setdefault(key(path), []).append(path)
    return index


def companion(index: dict[str, list[Path]] | None, image: Path, what: str, option: str) -> Path | None:
    """The one file of ``index`` with the image's id (None without an index)."""
    if index is None:
        return None
    found = index.get(file_id(image), [])
    if len(found) != 1:
        problem = f"several {what}s: {', '.join(map(str, found))}" if found else f"no {what} named {file_id(image)}.*"
        raise UserError(f"{image}: {problem} in {option}; give each image exactly one {what} with its name")
    return found[0]
