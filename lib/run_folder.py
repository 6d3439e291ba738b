"""run_prediction.py's output folder: its files, the settings its results were made with, its summary (one row
per photograph, kept across runs), which photographs are done, and shards and their merge.

A photograph is done when a summary row names it and each output file chosen exists: the row is written after
the files, and every file is written atomically, so an interrupted run leaves nothing that looks done and is not.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import time
from pathlib import Path

from lib.atomic import write_csv, write_text
from lib.errors import UserError
from lib.files import file_id
from lib.folders import holder, in_use, refuse_overlap
from lib.shards import check_parts, write_record
from lib.textfiles import read_csv, read_text

# Each output's file ending: the maps are PNGs, every pixel kept; the overlay, the photograph for the eye, is a JPEG
# as photographs are (of 3504x2336 px: a quarter of the PNG's size, written in a fifth of its time)
OUTPUT_ENDINGS = {"probability": ".png", "vessels": ".png", "overlay": ".jpg", "fov": ".png"}
OUTPUTS = tuple(OUTPUT_ENDINGS)
# Endings an earlier version wrote: still the output written, so that a folder made by it is not done again
EARLIER_ENDINGS = {"overlay": ".png"}
SUMMARY = "summary.csv"
SETTINGS = "settings.json"
REPORT = "report.html"
PART = re.compile(r"summary\.part-(\d+)-of-(\d+)\.csv")
# What a run writes in its output folder (and the locks it holds there); a name starting with a dot is a temporary
# file of an interrupted write, or the system's, and never written over
THUMBNAIL = "_thumbnail.jpg"  # <id>_thumbnail.jpg: the report's picture of a photograph, whatever --outputs says
OWN_FILES = re.compile(
    rf"(summary\.csv|summary\.part-\d+-of-\d+\.(csv|json)|{SETTINGS})(\.lock)?|{re.escape(REPORT)}"
    rf"|.+_({'|'.join(OUTPUTS)})\.(png|jpg)|.+{re.escape(THUMBNAIL)}|\..*"
)
WEIGHTS_PATH = "weights"  # shown to the user; the weights' content is compared through WEIGHTS_DIGEST
WEIGHTS_DIGEST = "weights_sha256"
STAMP = ("file_bytes", "file_mtime_ns")  # the summary columns of a photograph's file_stamp


def parse_outputs(text: str) -> tuple[str, ...]:
    """The outputs named in a comma-separated list, in OUTPUTS' order; an unknown name is a UserError."""
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in OUTPUTS]
    if unknown:
        raise UserError(
            f"--outputs {text}: unknown output {unknown[0]!r}; choose from {','.join(OUTPUTS)}, comma-separated"
        )
    return tuple(name for name in OUTPUTS if name in names)


def output_names(name: str, kind: str) -> tuple[str, ...]:
    """The names the output ``kind`` of photograph ``name`` has: this version's first, then an earlier version's."""
    endings = (OUTPUT_ENDINGS[kind], *filter(None, [EARLIER_ENDINGS.get(kind)]))
    return tuple(f"{name}_{kind}{ending}" for ending in endings)


def output_path(out_dir: Path, name: str, kind: str) -> Path:
    return out_dir / output_names(name, kind)[0]


def is_written(out_dir: Path, name: str, kind: str) -> bool:
    """Whether the output ``kind`` of ``name`` is in ``out_dir``, under this version's name or an earlier one's."""
    return any((out_dir / written).is_file() for written in output_names(name, kind))


def thumbnail_path(out_dir: Path, name: str) -> Path:
    """The report's thumbnail of a photograph (written whatever --outputs chooses)."""
    return out_dir / f"{name}{THUMBNAIL}"


@dataclasses.dataclass(frozen=True)
class Shard:
    """Part ``index`` (counted from 1) of ``count``: every count-th photograph of the sorted list from the
    index-th on, so the parts are disjoint, together hold every photograph and differ in size by one at most."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
        if not match:
            raise UserError(f"--shard {text}: expected K/N, the K-th of N parts counted from 1 (for example 2/8)")
        index, count = map(int, match.groups())
        if count < 1:
            raise UserError(f"--shard {text}: N must be at least 1 (K/N is the K-th of N parts)")
        if not 1 <= index <= count:
            raise UserError(f"--shard {text}: K must be between 1 and N ({count}); parts are counted from 1")
        return cls(index, count)

    def select(self, items: list) -> list:
        return items[self.index - 1 :: self.count]


def summary_path(out_dir: Path, shard: Shard | None) -> Path:
    """``summary.csv``, or a shard's own part ``summary.part-K-of-N.csv``."""
    return out_dir / (SUMMARY if shard is None else f"summary.part-{shard.index}-of-{shard.count}.csv")


def writing(out_dir: Path, shard: Shard | None):
    """Hold ``out_dir`` for a run writing its summary (or shard part) there: a second run writing the same summary
    file is refused while the first runs; the parts of a sharded run go on side by side."""
    summary = summary_path(out_dir, shard)
    return in_use(out_dir, lock_name(summary), "another run_prediction.py run", "choose another output folder (-o)")


@contextlib.contextmanager
def merging(out_dir: Path):
    """Hold ``out_dir``'s summary.csv for a merge, refused while any run writes a summary part there."""
    with writing(out_dir, None):
        for part in summary_files(out_dir):
            if PART.fullmatch(part.name) and (owner := holder(out_dir, lock_name(part))):
                raise UserError(f"{part}: still being written ({owner}); merge once every part has finished")
        yield


def record_part(out_dir: Path, shard: Shard | None, images: list[Path], settings: dict) -> None:
    """For a shard, record the whole list of photographs, its share and its settings for ``--merge``."""
    if shard is not None:
        settings = {key: value for key, value in settings.items() if key != WEIGHTS_PATH}
        write_record(summary_path(out_dir, shard), images, shard.select(images), settings)


def lock_name(summary: Path) -> str:
    """The lock file held while ``summary`` is written."""
    return f"{summary.name}.lock"


def check_apart(out_dir: Path, specs: list[str], images: list[Path], weights: Path) -> None:
    """Refuse an output folder that is, is inside or contains a folder of photographs, masks or labels named, one
    of the photographs or the weights: its results would be read back as photographs or overwrite an input; and
    one holding files that a run does not write there (OWN_FILES): it is a folder of something else."""
    folders = [("the input folder", Path(spec)) for spec in specs if spec is not None and Path(spec).is_dir()]
    photographs = [("the photograph", path) for path in images]
    refuse_overlap(
        out_dir,
        [("the weights", weights), *folders, *photographs],
        "-o",
        "write the results into a folder of their own, apart from the photographs, masks, labels and weights",
    )
    names = [path.name for path in out_dir.iterdir()] if out_dir.is_dir() else []
    foreign = sorted(name for name in names if not OWN_FILES.fullmatch(name))
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise UserError(
            f"-o {out_dir} holds {foreign[0]}{more}, which run_prediction.py does not write; write the results into "
            "a new folder, or into one of earlier results"
        )


def summary_files(out_dir: Path) -> list[Path]:
    """The summary and the summary parts in ``out_dir``."""
    if not out_dir.is_dir():
        return []
    return sorted(path for path in out_dir.iterdir() if path.name == SUMMARY or PART.fullmatch(path.name))


def weights_digest(path: Path) -> str:
    """The SHA-256 of a weights file: the same weights under another name are the same model, and a file
    retrained in place is another."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_settings(out_dir: Path, settings: dict) -> None:
    write_text(out_dir / SETTINGS, json.dumps(settings, indent=2) + "\n")


def read_settings(out_dir: Path) -> dict | None:
    """The settings recorded in ``out_dir`` (None when there are none); an unreadable file reads as {}."""
    try:
        settings = json.loads(read_text(out_dir / SETTINGS))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return settings if isinstance(settings, dict) else {}


def settings_difference(out_dir: Path, settings: dict) -> str | None:
    """How the settings of the results already in ``out_dir`` differ from ``settings``, for one line:
    None when they are the same or the folder holds no results."""
    if not summary_files(out_dir):  # no result yet (every photograph of the runs before failed): nothing to mix
        return None
    stored = read_settings(out_dir)
    if stored is None:
        return f"unknown settings (no {SETTINGS})"
    if not stored:
        return f"unknown settings ({SETTINGS} unreadable)"
    for key, value in settings.items():
        if key == WEIGHTS_PATH or stored.get(key) == value:
            continue
        if key == WEIGHTS_DIGEST:
            then, now = stored.get(WEIGHTS_PATH), settings[WEIGHTS_PATH]
            return f"weights {then} there, {now} now" + (" (the file changed since)" if then == now else "")
        return f"{key} {stored.get(key, 'not recorded')} there, {value} now"
    return None


def summary_rows(path: Path) -> dict[str, dict]:
    """The rows of a summary file by photograph id (the file name before its first dot). A summary without an
    ``image`` column (edited in a spreadsheet) is refused: rewritten, it would lose every row."""
    rows = read_csv(path)
    if rows and "image" not in rows[0]:
        raise UserError(
            f"{path}: no 'image' column (columns {', '.join(map(str, rows[0]))[:80]}); restore the file, or move it "
            "away to start the summary afresh"
        )
    return {file_id(Path(row["image"])): row for row in rows if row.get("image")}


class Summary:
    """A summary file's rows by photograph id, rewritten whole (atomically) by ``write`` and, while rows are added,
    at most every ``interval`` seconds: one file per run folder or shard, never appended to. ``after_write`` runs
    after each write."""

    def __init__(self, path: Path, columns: tuple[str, ...], interval: float, after_write=lambda: None):
        self.path, self.columns, self.interval, self.after_write = path, columns, interval, after_write
        self.rows = summary_rows(path)
        self.written_at = time.monotonic()

    def add(self, row: dict) -> None:
        self.rows[file_id(Path(row["image"]))] = row
        if time.monotonic() - self.written_at > self.interval:
            self.write()

    def write(self) -> None:
        write_csv(self.path, sorted(self.rows.values(), key=lambda row: row["image"]), self.columns)
        self.after_write()  # the run's report (lib.html_report), made from the summary files
        self.written_at = time.monotonic()


def is_done(row: dict | None, image: Path, out_dir: Path, outputs: tuple[str, ...]) -> bool:
    """Whether ``row`` is the summary row of ``image`` as it is now (not replaced since) and every output file of
    it exists."""
    return (
        row is not None
        and same_file(row["image"], image)
        and unchanged(row, image)
        and all(is_written(out_dir, file_id(image), kind) for kind in outputs)
    )


def file_stamp(path: Path) -> dict:
    """The size and modification time of a photograph, recorded in its row: a file replaced or edited under the same
    name since has another (a hash of thousands of large photographs would cost more than their reading)."""
    status = os.stat(path)
    return dict(zip(STAMP, (str(status.st_size), str(status.st_mtime_ns)), strict=True))


def unchanged(row: dict, image: Path) -> bool:
    """Whether ``image`` is the file ``row`` was made from; a row without a stamp (of an earlier version) is
    trusted."""
    recorded = {key: row.get(key) for key in STAMP}
    if not all(recorded.values()):
        return True
    try:
        return file_stamp(image) == recorded
    except OSError:
        return False


def same_file(first, second) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them is gone (or was given relative to another folder)
        return False


def merged_rows(out_dir: Path) -> tuple[list[dict], list[str], list[str]]:
    """The rows of every summary file in ``out_dir``, one per photograph (a later-written file's row wins),
    sorted by image; their columns; and the parts missing from each K/N series, as 'part K of N'."""
    files = sorted(summary_files(out_dir), key=lambda path: path.stat().st_mtime)
    rows, columns, parts = {}, {}, set()
    for path in files:
        for name, row in summary_rows(path).items():
            rows[name] = row
            columns |= dict.fromkeys(row)
        if match := PART.fullmatch(path.name):
            parts.add(tuple(map(int, match.groups())))
    missing = [
        f"part {index} of {count}"
        for count in sorted({count for _, count in parts})
        for index in range(1, count + 1)
        if (index, count) not in parts
    ]
    return sorted(rows.values(), key=lambda row: row["image"]), list(columns), missing


def merge_summaries(out_dir: Path) -> tuple[Path, int, list[str]]:
    """Write ``summary.csv`` from the summary parts of ``out_dir`` (and an earlier summary.csv): the file, its
    number of rows, and what is missing: parts, and photographs of a part's share without a row (UserError when there
    are no parts, or parts of different lists of photographs or settings)."""
    if not any(PART.fullmatch(path.name) for path in summary_files(out_dir)):
        raise UserError(f"{out_dir}: no summary parts (summary.part-K-of-N.csv) to merge; run with --shard K/N first")
    rows, columns, missing = merged_rows(out_dir)
    parts = [path for path in summary_files(out_dir) if PART.fullmatch(path.name)]
    missing = [f"{part} not found" for part in missing]
    missing += check_parts(parts, {file_id(Path(row["image"])): row for row in rows})
    write_csv(out_dir / SUMMARY, rows, tuple(columns))
    return out_dir / SUMMARY, len(rows), missing


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a run does in its folder: the photographs to segment, how many are done already, and a message for
    each one it refuses (its outputs would collide with another photograph's)."""

    todo: list[Path]
    done_before: int
    refused: list[str]


def plan_run(
    mine: list[Path], owners: dict[str, Path], summary: "Summary", out_dir: Path, outputs: tuple, overwrite: bool
) -> Plan:
    """Which of ``mine`` to segment into ``out_dir``; the rows of those redone leave ``summary`` (their row comes
    back once their new files are written). ``owners``: the photograph each output name belongs to."""
    todo, done_before, refused = [], 0, []
    for path in mine:
        name = file_id(path)
        earlier = summary.rows.get(name)
        if owners[name] != path:
            refused.append(f"{path}: same name as {owners[name]}, the outputs would collide; rename one")
        elif not overwrite and earlier is not None and not same_file(earlier["image"], path):
            refused.append(
                f"{path}: same name as {earlier['image']}, segmented into {out_dir} before; rename one, "
                "or add --overwrite to replace its results"
            )
        elif not overwrite and is_done(earlier, path, out_dir, outputs):
            done_before += 1
        else:
            todo.append(path)
            summary.rows.pop(name, None)
    return Plan(todo, done_before, refused)
