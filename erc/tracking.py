"""What every W&B run of this project shares, training's and evaluation's alike: one rule for its mode and one
set of settings.

Mode: ``logger.mode`` / ``wandb.mode`` when configured, else ``WANDB_MODE`` (``dryrun`` read as ``offline``,
``run`` as ``online``), else ``online`` when an API key is configured (``WANDB_API_KEY`` or a ``~/.netrc`` entry
for the W&B host) and ``offline`` otherwise: a run without a key is written to disk (``wandb sync`` uploads it
later) instead of asking for a login or failing.
"""

from __future__ import annotations

import os
from typing import Any

from erc.secrets import wandb_api_key_configured

_MODE_ALIASES = {"dryrun": "offline", "run": "online"}


def wandb_mode(configured: str | None = None) -> str:
    """The mode a run starts in (see the module docstring)."""
    if configured:
        return _MODE_ALIASES.get(configured, configured)
    if os.environ.get("WANDB_MODE"):
        return _MODE_ALIASES.get(os.environ["WANDB_MODE"], os.environ["WANDB_MODE"])
    return "online" if wandb_api_key_configured() else "offline"


def wandb_settings() -> Any:
    """W&B settings for every run this project starts: no git state (a remote URL can hold a token, the diff
    uncommitted secrets) and no run metadata (it holds the command line). What ran is in the run's config
    (without secrets) and in results.json, which records the git revision. W&B prints only its warnings and
    errors (``silent``: no banner, no run history and summary at the end) unless the job is verbose
    (:func:`erc.console.is_verbose`)."""
    import wandb

    from erc.console import is_verbose

    return wandb.Settings(disable_git=True, x_disable_meta=True, silent=not is_verbose())
