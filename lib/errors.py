"""The one exception type that means "the user's input is wrong"."""


class UserError(Exception):
    """Bad input the user can fix: the message names the file or key and the fix."""
