"""The errors a user can fix, kept apart from bugs.

An entry point prints a :class:`UserError` as one line (``error: <message>``) and exits with status 2;
anything else is a bug and keeps its traceback. The message must name the file, key or field at fault
and say how to fix it.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input, a bad config value, a busy folder, a server that gave up: the user can fix it."""


class DataError(UserError, ValueError):
    """Bad or missing input data. The message names the file, the line or record, and the field."""


class MissingDataError(DataError):
    """The files of a dataset split are not there. The message says what was looked for and how to get it."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work. The message names the key (``data.limit_dialogues``) and the fix."""


class LockError(UserError):
    """Another process holds the folder this one would write (see :mod:`erc.locks`)."""
