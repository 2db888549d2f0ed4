"""What every entry point (``train.py``, ``generate.py``, ``evaluate.py``, ``python -m erc....``) shares:
secrets refused on the command line before Hydra writes anything, and in a config file before any work
(see :mod:`erc.secrets`), a quiet console (see :mod:`erc.console`), a ``--help`` that lists only the config
groups the entry point composes, and user errors printed as one line.

A :class:`erc.errors.UserError` (bad data, a bad config value, a busy folder) is the user's to fix: it is
logged to the job's log, printed as ``error: <message>`` and the process exits with status 2. Any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from omegaconf import DictConfig

from erc.console import configure_console
from erc.errors import EXIT_USER_ERROR, UserError, exit_on_user_error
from erc.paths import CONFIG_DIR
from erc.secrets import refuse_literal_secrets, refuse_on_command_line

T = TypeVar("T")


def hydra_task(task: Callable[[DictConfig], T]) -> Callable[[DictConfig], T]:
    """Wrap a Hydra task (its argument the job's config): the console set up (``verbose``) and the config's
    secrets checked before any work, then user errors handled as :func:`erc.errors.exit_on_user_error` does."""

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> T:
        configure_console(bool(cfg.get("verbose", False)))
        refuse_literal_secrets(cfg)
        return task(cfg)

    return exit_on_user_error(wrapper)


HELP_FLAGS = ("--help", "-h")


def check_command_line(config_name: str | None = None, description: str = "", argv: list[str] | None = None) -> None:
    """Before Hydra starts: refuse secrets given as overrides (see :mod:`erc.secrets`) before Hydra writes them
    anywhere, and answer ``--help`` with :func:`help_text` for primary config ``config_name`` (exit status 0;
    without one, ``--help`` is Hydra's). ``--hydra-help`` is always Hydra's."""
    args = sys.argv[1:] if argv is None else argv
    try:
        refuse_on_command_line(args)
        refuse_unchosen_package_keys(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)
    if config_name and any(arg in HELP_FLAGS for arg in args):
        print(help_text(config_name, description, Path(sys.argv[0]).name), flush=True)
        sys.exit(0)


# Config nodes that are a config group composed at another package (``llm@judge.llm``), null until chosen: a
# key under one is settable only once its group option is (Hydra's own "Could not override" suggests a ``+``).
PACKAGE_GROUPS = {"judge.llm": "llm"}


def refuse_unchosen_package_keys(args: list[str]) -> None:
    """Raise :class:`UserError` for an override of ``judge.llm.<key>`` without ``llm@judge.llm=<option>``."""
    chosen = {arg.lstrip("+~").split("=", 1)[0] for arg in args}
    for arg in args:
        key = arg.lstrip("+~").split("=", 1)[0]
        for package, group in PACKAGE_GROUPS.items():
            choice = f"{group}@{package}"
            if key.startswith(f"{package}.") and choice not in chosen:
                options = "|".join(sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml")))
                raise UserError(f"{arg}: {package} is {group}.* as composed until it has a config of its own: choose "
                                f"one first, {choice}=<{options}> (conf/{group}/), then set {key} on it")


def config_groups(config_name: str) -> dict[str, tuple[str, list[str]]]:
    """``group -> (default option, every option)`` for the groups that ``conf/<config_name>.yaml`` composes
    (Hydra's own left out), read from Hydra's composition rather than listed by hand; an optional group
    (``model: null``) has no default; a group composed at another package is listed as such (``llm@judge.llm``).
    Files starting with ``_`` are internal bases (``schedule/_phase.yaml``), not options."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        choices = compose(config_name, return_hydra_config=True).hydra.runtime.choices
    groups = {}
    for group, default in sorted(choices.items()):
        folder = CONFIG_DIR / group.split("@")[0]          # llm@judge.llm: the llm group at judge.llm
        if group == "hydra" or group.startswith("hydra/") or not folder.is_dir():
            continue
        options = sorted(p.stem for p in folder.glob("*.yaml") if not p.name.startswith("_"))
        groups[group] = (str(default), options)
    return groups


def help_text(config_name: str, description: str, program: str) -> str:
    """What ``<program> --help`` prints: what it does, its config groups and options, how to see the config."""
    groups = config_groups(config_name)
    width = max(map(len, groups)) + 1
    lines = [description.strip(), "",
             f"Config groups of conf/{config_name}.yaml (choose one option with group=option; * marks the default):"]
    for group, (default, options) in groups.items():
        listed = ", ".join(f"{option}*" if option == default else option for option in options)
        lines.append(f"  {group + ':':<{width}} {listed}")
    lines += ["", "Any key of the config is an override too (key=value); -m runs a sweep over comma-separated values.",
              f"  python {program} --cfg job [overrides]   print the composed config",
              f"  python {program} verbose=true ...        every log line on the console (the job's log file has them)",
              f"  python {program} --hydra-help            Hydra's own options"]
    return "\n".join(lines)
