"""What a person sees in the terminal while a job runs, and what only its log file gets.

Every entry point's job logs through Hydra's ``job_logging`` (conf/hydra/default.yaml): the job's log file
(``<output folder>/<task>.log``) gets every record at INFO and above, the console only what a reader needs:

- quiet (the default, ``verbose=false``): warnings and errors, and this project's own INFO lines (what a job
  resumed or reused, where its results are); libraries' INFO lines (one httpx line per HTTP request,
  Lightning's hardware lines and "Tip" adverts) and library warnings that say nothing about the job's results
  (:data:`DEMOTED`) stay in the log file. W&B prints nothing but its warnings (:func:`erc.tracking.wandb_settings`).
- verbose (``verbose=true``): every record the log file gets, and W&B's full output.

Console lines go to stderr through ``tqdm.write``, so they appear above a live progress bar instead of
breaking it; stdout is left to what a command outputs (evaluation's tables). Python warnings are logged
(``py.warnings``), so they reach the log file too.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

# Loggers whose INFO lines are the project's own report of a job (modules log as ``erc.*``).
PROJECT_LOGGERS: tuple[str, ...] = ("erc", "__main__")

# (logger, message pattern): library warnings that say nothing about the job's results, shown only with verbose=true.
DEMOTED: tuple[tuple[str, re.Pattern[str]], ...] = (
    # pytorch_lightning 2.6 calls a torch pytree API deprecated in torch 2.13, once per data loader
    ("py.warnings", re.compile(r"isinstance\(treespec, LeafSpec\)` is deprecated")),
    # an epoch shorter than trainer.log_every_n_steps (small data): step losses are not logged, epoch metrics are
    ("py.warnings", re.compile(r"The number of training batches \(\d+\) is smaller than the logging interval")),
)

_verbose = False


def configure_console(verbose: bool) -> None:
    """Called once per job (by :func:`erc.cli.hydra_task`): route Python warnings through logging and
    remember ``verbose`` for the libraries that print on their own (W&B)."""
    global _verbose
    _verbose = bool(verbose)
    logging.captureWarnings(True)


def is_verbose() -> bool:
    """Whether this job asked for the full console output (``verbose=true``)."""
    return _verbose


def shown_when_quiet(record: logging.LogRecord) -> bool:
    """Whether a quiet console shows ``record`` (see the module docstring)."""
    if record.levelno >= logging.WARNING:
        return not any(record.name == name and pattern.search(record.getMessage()) for name, pattern in DEMOTED)
    own = any(record.name == name or record.name.startswith(f"{name}.") for name in PROJECT_LOGGERS)
    return own and record.levelno >= logging.INFO


class ConsoleHandler(logging.StreamHandler):
    """The console handler of every job (``hydra.job_logging.handlers.console``): quiet unless ``verbose``,
    written with ``tqdm.write`` so a live progress bar is cleared and redrawn below the line."""

    def __init__(self, stream: TextIO | None = None, verbose: bool = False) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self.verbose = bool(verbose)

    def filter(self, record: logging.LogRecord) -> bool:
        return (self.verbose or shown_when_quiet(record)) and bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record).rstrip(), file=self.stream)   # a logged warning ends in a newline
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
