"""What every entry point (``train.py``, ``generate.py``, ``evaluate.py``, ``python -m erc....``) shares:
secrets refused on the command line before Hydra writes anything, and in a config file before any work
(see :mod:`erc.secrets`), and user errors printed as one line.

A :class:`erc.errors.UserError` (bad data, a bad config value, a busy folder) is the user's to fix: it is
logged to the job's log, printed as ``error: <message>`` and the process exits with status 2. Any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from omegaconf import DictConfig
from omegaconf.errors import InterpolationResolutionError

from erc.errors import UserError
from erc.secrets import refuse_literal_secrets, refuse_on_command_line

log = logging.getLogger("erc")
T = TypeVar("T")

EXIT_USER_ERROR = 2


def exit_on_user_error(task: Callable[..., T]) -> Callable[..., T]:
    """Wrap a task function: a :class:`UserError` becomes one line on stderr and exit status 2."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            if args and isinstance(args[0], DictConfig):   # the job's config, before any work
                refuse_literal_secrets(args[0])
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


def check_command_line(argv: list[str] | None = None) -> None:
    """Refuse secrets given as overrides (see :mod:`erc.secrets`) before Hydra writes them anywhere."""
    try:
        refuse_on_command_line(sys.argv[1:] if argv is None else argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)
