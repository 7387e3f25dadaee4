"""One base for every error a user can cause or meet, so that callers (the command line,
the pages) catch ``ReflectError`` and show its message as one line, and nothing else.

The kinds say what went wrong, not where: code that needs to tell "not there" apart
from "refused" catches ``NotFound`` or ``AccessError`` instead of reading message text.
"""


class ReflectError(Exception):
    """A problem the user can act on; the message names the input and the reason."""


class InvalidInput(ReflectError, ValueError):
    """A value, setting or file that is not acceptable (kept a ValueError for callers that expect one)."""


class NotFound(ReflectError, LookupError):
    """Something named by the user (a run, a record, a model) does not exist."""


class AccessError(ReflectError, PermissionError):
    """The user may not see or change this."""


class LimitError(InvalidInput):
    """Over a resource limit or a rate limit."""
