"""The errors a user can fix, kept apart from bugs.

An entry point prints a :class:`UserError` as one line (``error: <message>``) and exits with status 2;
anything else is a bug and keeps its traceback. The message must name the file, key or field at fault
and say how to fix it.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from omegaconf.errors import InterpolationResolutionError

log = logging.getLogger("erc")
T = TypeVar("T")

EXIT_USER_ERROR = 2


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


def exit_on_user_error(task: Callable[..., T]) -> Callable[..., T]:
    """Wrap a command's main function: a :class:`UserError` becomes one line on stderr (and in the job's log
    file) and exit status 2; any other exception keeps its traceback. Here, below every layer, so that a
    module's own command line (``python -m erc.data.download``) needs nothing from the entry points; Hydra
    tasks add their job set-up on top (:func:`erc.cli.hydra_task`)."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return task(*args, **kwargs)
        except (UserError, InterpolationResolutionError) as err:
            message = user_error_message(err)
            if message is None:
                raise
            log.debug("user error", exc_info=True)       # the traceback stays in the job's log file only
            for handler in logging.getLogger().handlers:   # the log file gets the message too
                if isinstance(handler, logging.FileHandler):
                    handler.handle(log.makeRecord(log.name, logging.ERROR, "", 0, f"error: {message}", (), None))
            print(f"error: {message}", file=sys.stderr, flush=True)
            sys.exit(EXIT_USER_ERROR)

    return wrapper


def user_error_message(err: BaseException) -> str | None:
    """The message of ``err`` when the user can fix it, else None (a bug). A :class:`UserError` raised by a
    config resolver (``${erc.secret_file:...}`` on a missing file) reaches us wrapped by OmegaConf in an
    ``InterpolationResolutionError``: it is found in the exception's context and named by the key resolved."""
    if isinstance(err, UserError):
        return str(err)
    inner = err.__context__
    while inner is not None and not isinstance(inner, UserError):
        inner = inner.__context__
    if inner is None:
        return None
    key = getattr(err, "full_key", None)
    return f"{key}: {inner}" if key else str(inner)
