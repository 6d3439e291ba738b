"""Configuration files written as their differences over a base.

A file whose ``[based on]`` section says ``file = PATH`` (relative to the file's own folder) changes that
configuration: the base is read first, then the file, so every key the file writes replaces the base's and
every other key is the base's. A base may have its own base; a chain that comes back to a file it holds is
refused. ``merged_text`` writes a chain out as one file without ``[based on]``: the copy an experiment keeps.
"""

import configparser
import os
import re
from pathlib import Path

from lib.errors import UserError
from lib.textfiles import read_text

BASE_SECTION, BASE_KEY = "based on", "file"


def _parser(case_sensitive: bool = False) -> configparser.ConfigParser:
    # No interpolation, as the published RawConfigParser: a value holding "%" is read as written and
    # then validated, instead of raising an interpolation error when it is looked up. Keys are
    # case-insensitive as there (n_epochs is N_epochs).
    parser = configparser.ConfigParser(inline_comment_prefixes=("#", ";"), interpolation=None)
    if case_sensitive:  # to write a key back as its file spells it
        parser.optionxform = str
    return parser


def _parse(text: str, path: Path, case_sensitive: bool = False) -> configparser.ConfigParser:
    parser = _parser(case_sensitive)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as error:
        first_line = str(error).splitlines()[0]
        raise UserError(f"{path}: not a valid INI file ({first_line}); compare it with configuration.txt") from None
    return parser


def _text(path: Path) -> str:
    """The file's text, as editors write it too (a UTF-8 byte order mark, another encoding: lib.textfiles)."""
    try:
        return read_text(path)
    except OSError as error:
        raise UserError(f"{path}: cannot read it ({error.strerror or error}); fix its permissions") from None


def _written(parser: configparser.ConfigParser, section: str) -> list[str]:
    return [key for key in parser.options(section) if key not in parser.defaults()]


def _base(parser: configparser.ConfigParser, path: Path, chain: list[Path]) -> Path | None:
    """The file named by ``path``'s [based on] file, or None; refuses a missing file and a cycle."""
    if not parser.has_section(BASE_SECTION):
        return None
    where = f"{path}: [{BASE_SECTION}]"
    value = parser[BASE_SECTION].get(BASE_KEY, "").strip()
    if _written(parser, BASE_SECTION) != [BASE_KEY] or not value or not value.isprintable():
        raise UserError(f"{where} must hold one line, {BASE_KEY} = PATH: the configuration this file changes, "
                        "relative to this file's folder (e.g. file = ../configuration.txt)")  # fmt: skip
    base = Path(os.path.normpath(path.parent / value))  # configurations/../configuration.txt: configuration.txt
    if not _is_file(base):
        raise UserError(f"{where} {BASE_KEY} = {value}: {base} not found; name an existing configuration file, "
                        f"relative to {path.parent}/")  # fmt: skip
    if any(base.resolve() == seen.resolve() for seen in chain):
        cycle = " -> ".join(str(seen) for seen in [*chain, base])
        raise UserError(f"{where} {BASE_KEY} = {value} comes back to a file of its own chain ({cycle}); "
                        "the first base must be a file without [based on]")  # fmt: skip
    return base


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system, ...
        return False


def chain(path) -> list[tuple[Path, str]]:
    """The files a configuration is read from, its first base first, the file itself last: (path, text) each."""
    path = Path(path)
    if not _is_file(path):
        raise UserError(f"{path}: configuration file not found; pass --config PATH or copy configuration.txt")
    files: list[tuple[Path, str]] = []
    while path is not None:
        text = _text(path)
        files.append((path, text))
        path = _base(_parse(text, path), path, [seen for seen, _ in files])
    return files[::-1]


def read_ini(path) -> configparser.ConfigParser:
    """The INI file at ``path`` merged over its bases (keys in any case, # comments, a UTF-8 byte order mark as
    some editors write it); without the [based on] section."""
    parser = _parser()
    for file, text in chain(path):
        parser.read_string(text, source=str(file))  # a later file's keys replace the base's
    parser.remove_section(BASE_SECTION)
    return parser


def merged_text(path) -> str:
    """The configuration at ``path`` as one file: its first base's text, comments and all, with each key that a
    later file writes set to that file's value (added at the end of its section, or in a new section, where the
    base lacks it), under a line naming the chain. A file without a base is returned as written."""
    files = chain(path)
    text = files[0][1]
    for file, later in files[1:]:
        parser = _parse(later, file, case_sensitive=True)
        for section in parser.sections():
            if section != BASE_SECTION:
                for key in _written(parser, section):
                    text = with_value(text, section, key, parser[section][key])
    if len(files) == 1:
        return text
    names = ", over ".join(str(file) for file, _ in reversed(files))
    return f"# Merged: {names}.\n# Every setting in one file; the comments are the first base's.\n{text}"


def with_value(text: str, section: str, key: str, value: str) -> str:
    """The configuration ``text`` with ``[section] key = value``, everything else as written: the key's line
    replaced (found in any case), or added at the end of the section, or in a new section at the end. A value of
    several lines keeps its later lines indented, as INI continuation lines must be."""
    first, *later = value.split("\n")
    value = "".join([first, *(f"\n    {line.strip()}" for line in later)])
    header = re.search(rf"^\[{re.escape(section)}\][^\n]*$", text, re.M)
    if header is None:
        return f"{text.rstrip(chr(10))}\n\n\n[{section}]\n{key} = {value}\n"
    following = re.compile(r"^\s*\[", re.M).search(text, header.end())
    end = following.start() if following else len(text)
    body = text[header.end() : end]
    line = re.compile(rf"^({re.escape(key)}\s*[=:]).*(?:\n[ \t]+\S.*)*$", re.M | re.I)  # and its continuation lines
    if line.search(body):
        body = line.sub(lambda m: f"{m.group(1)} {value}", body, count=1)
    else:
        content = body.rstrip("\n")
        body = f"{content}\n{key} = {value}{body[len(content) :] or chr(10)}"
    return text[: header.end()] + body + text[end:]


def with_name(text: str, name: str) -> str:
    """The configuration ``text`` with its [experiment name] name set to ``name``, everything else as written:
    the copy an experiment trained under --name keeps, so that ``--config <name>/configuration.txt`` finds it."""
    if re.search(r"^\[experiment name\]", text, re.M) is None:
        return text
    return with_value(text, "experiment name", "name", name)
