"""Text files a user may have opened and saved again: a spreadsheet's CSV (a byte order mark, CRLF line ends,
a Windows or Latin-1 encoding, semicolons in many locales), JSON written by hand or cut short. Read tolerantly
where the meaning is plain, else refused in one line naming the file."""

import csv
import io
import json
from pathlib import Path

from lib.errors import UserError

ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")  # the first that decodes: UTF-8 (a BOM dropped), then Windows'
DELIMITERS = (",", ";", "\t")  # the first found in a CSV's header, as spreadsheets save it in their locale


def read_text(path) -> str:
    """The text of ``path`` in the first of ENCODINGS that decodes it (Latin-1 decodes any bytes)."""
    data = Path(path).read_bytes()
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes any bytes")


def delimiter(text: str) -> str:
    """The delimiter of a CSV: the first of DELIMITERS in its header line."""
    header = text.split("\n", 1)[0]
    return next((mark for mark in DELIMITERS if mark in header), ",")


def read_json(path, fix: str):
    """The JSON value in ``path``; a file that is no JSON (cut short, edited) is a UserError ending with ``fix``.
    FileNotFoundError goes on to the caller."""
    try:
        return json.loads(read_text(path))
    except ValueError as error:
        raise UserError(f"{path}: damaged JSON ({error}); {fix}") from None
    except (IsADirectoryError, PermissionError) as error:
        raise UserError(f"{path}: cannot read it ({error.strerror}); {fix}") from None


def read_csv(path) -> list[dict]:
    """The rows of a CSV written by ``write_csv``, as dicts of strings, also once a spreadsheet saved it again
    (``lib.textfiles``); [] when the file does not exist. A file that is no CSV is a UserError."""
    try:
        text = read_text(path)
        return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter(text)))
    except FileNotFoundError:
        return []
    except (csv.Error, IsADirectoryError, PermissionError) as error:
        raise UserError(f"{path}: not a readable CSV ({error}); restore it, or move it away") from None
