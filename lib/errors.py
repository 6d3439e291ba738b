"""The exception types that mean "the user's input or machine is wrong", as opposed to a bug."""

from pathlib import Path


class UserError(Exception):
    """Bad input the user can fix: the message names the file or key and the fix."""


class DiskFullError(UserError):
    """A write failed, or would fail, for lack of space: the caller may add how to continue once space is freed."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: the disk is full ({reason}); free some space and run again")
        self.path, self.reason = path, reason
