"""The progress store of a job: ``progress.json`` in its checkpoint folder, what earlier runs of it finished.

Each finished step (``pretrain``, ``pretrain/test``, ``finetune``, ``test``) is recorded with its metrics (and, for a
fit, its selected weights), so a rerun skips it; every time a run continues a step from an earlier one, or restarts
it because its ``last.ckpt`` was unreadable, ``resumes`` says so (saved at once: a run killed again keeps the record).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from pytorch_lightning.utilities import rank_zero_only

from erc.io import unreadable_reason, write_json_atomic
from erc.training.resume import completed_epochs, set_aside

log = logging.getLogger(__name__)

# The selected weights of a fit, beside its last.ckpt (erc.training.trainers names them so).
BEST_CHECKPOINT = "best.ckpt"


class ProgressStore:
    """``progress.json`` at ``path``; ``store[step]`` is what a finished step left (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state: dict[str, Any] = {"resumes": []}

    def load(self) -> None:
        """Read what earlier runs finished; done once the job folder is held, since a run that held it before may
        just have finished."""
        if self.path.is_file():
            self.state = {"resumes": [], **json.loads(self.path.read_text())}

    @property
    def resumes(self) -> list[dict[str, Any]]:
        return self.state["resumes"]

    def __getitem__(self, step: str) -> dict[str, Any]:
        return self.state[step]

    def done(self, step: str) -> dict[str, Any] | None:
        """The record of ``step`` when an earlier run (or this one) finished it, else None."""
        return self.state.get(step) or None

    def finish(self, step: str, record: dict[str, Any]) -> None:
        """Record ``step`` as finished, with ``record`` (``metrics``, ``confusion``, a fit's ``best`` weights)."""
        self.state[step] = record
        self.save()

    def save(self) -> None:
        if rank_zero_only.rank == 0:
            write_json_atomic(self.path, self.state)

    def record_resume(self, step: str, **details: Any) -> None:
        """Note that this run continued ``step`` from an earlier one."""
        self.resumes.append({"step": step, **details, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        self.save()

    def forget(self, step: str, why: str) -> None:
        """Mark the finished ``step`` as not done (its selected weights are lost: ``why``), so this run does it again;
        recorded in ``resumes``."""
        self.state.pop(step, None)
        self.record_resume(step, restarted=why)

    def resume_point(self, step: str, last: Path, resume: bool) -> str | None:
        """``last`` when this run should continue ``step`` from it (``resume`` and a readable file, and the step's
        best weights so far, ``best.ckpt`` beside it, readable too), else None; an unreadable one is set aside
        (with ``last``: the best weights so far would be lost) and the step restarts, before any epoch is trained.
        Either is recorded in ``resumes``."""
        if not resume or not last.is_file():
            return None
        best = last.with_name(BEST_CHECKPOINT)
        reason = unreadable_reason(last) or (best.is_file() and unreadable_reason(best) and
                                             f"{best} is unreadable ({unreadable_reason(best)})")
        if reason:
            if rank_zero_only.rank == 0:         # one process moves files; every rank restarts the step
                if best.is_file() and unreadable_reason(best):
                    set_aside(best, reason)
                aside = set_aside(last, reason)
                self.record_resume(step, restarted=f"{last} was unreadable ({reason}); moved to {aside}")
            return None
        epochs = completed_epochs(last)
        log.info("%s: resuming from %s (%d epoch(s) done)", step, last, epochs)
        self.record_resume(step, checkpoint=str(last), epochs_done=epochs)
        return str(last)
