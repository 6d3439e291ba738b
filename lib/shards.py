"""What each part of a sharded run was given, so that ``--merge`` can tell a complete merge from one that misses
photographs: beside its summary part ``summary.part-K-of-N.csv``, each part records in
``summary.part-K-of-N.json`` how many photographs the whole list held (and a digest of their names), the names of
its own share and the settings it ran with. Parts made from different lists or with other settings are refused;
photographs of a share without a row are named.
"""

import hashlib
import json
from pathlib import Path

from lib.atomic import write_text
from lib.errors import UserError
from lib.files import file_id
from lib.textfiles import read_text

SHOWN = 5  # names listed in a message before "and N more"


def record_path(part: Path) -> Path:
    """``summary.part-K-of-N.json`` beside the part ``summary.part-K-of-N.csv``."""
    return part.with_suffix(".json")


def list_digest(images: list[Path]) -> str:
    """The SHA-256 of the photographs' names in the order the parts are drawn from: the same list on any machine."""
    return hashlib.sha256("\n".join(file_id(path) for path in images).encode()).hexdigest()


def write_record(part: Path, images: list[Path], share: list[Path], settings: dict) -> None:
    """Record, beside the summary part ``part``, the whole list (``images``), this part's ``share`` and settings."""
    record = {
        "photographs": len(images),
        "list_sha256": list_digest(images),
        "share": [file_id(path) for path in share],
        "settings": settings,
    }
    write_text(record_path(part), json.dumps(record, indent=1) + "\n")


def read_record(part: Path) -> dict | None:
    """The record of ``part``; None when there is none (a part of an earlier version) or it is damaged."""
    try:
        record = json.loads(read_text(record_path(part)))
    except (OSError, ValueError):
        return None
    fields = {"photographs": int, "list_sha256": str, "share": list, "settings": dict}
    if not isinstance(record, dict) or not all(isinstance(record.get(key), kind) for key, kind in fields.items()):
        return None
    return record


def check_parts(parts: list[Path], rows: dict[str, dict]) -> list[str]:
    """Refuse (UserError) parts made from different lists of photographs or with other settings; the photographs
    of each part's share that have no row in ``rows`` (by name), as 'part K of N: a, b and 3 more'."""
    records = {part: record for part in parts if (record := read_record(part)) is not None}
    if not records:
        return []
    first, reference = next(iter(records.items()))
    for part, record in records.items():
        if (record["photographs"], record["list_sha256"]) != (reference["photographs"], reference["list_sha256"]):
            raise UserError(
                f"{part.name} was made from another list of photographs ({record['photographs']}) than "
                f"{first.name} ({reference['photographs']}); run every part again on the same photographs"
            )
        changed = [key for key in {**record["settings"], **reference["settings"]}
                   if record["settings"].get(key) != reference["settings"].get(key)]  # fmt: skip
        if changed:
            key = changed[0]
            raise UserError(
                f"{part.name} was made with other settings than {first.name} ({key} "
                f"{record['settings'].get(key)} there, {reference['settings'].get(key)} in {first.name}); run the "
                "parts again with the same settings"
            )
    missing = []
    for part, record in records.items():
        absent = [name for name in record["share"] if name not in rows]
        if absent:
            more = f" and {len(absent) - SHOWN} more" if len(absent) > SHOWN else ""
            missing.append(f"{len(absent)} photographs of {part.name} have no row ({', '.join(absent[:SHOWN])}{more})")
    return missing
