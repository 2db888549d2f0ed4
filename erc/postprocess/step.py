"""The contract of a post-processing step, and the loop that runs the configured steps in order.

After the set is built and written (:mod:`erc.postprocess.build`, :mod:`erc.postprocess.export`), the steps of
``postprocess.steps`` run in their config order, each a plug-in named by ``_target_`` (``conf/generate.yaml``;
docs/adding-a-step.md). A step reads the set from the context, writes its own files, adds its own section to the
card, renders that section in the README, and may write a filtered variant of the set beside it.

A failing step does not take the others down: its error is recorded (the card names the step and why), the
remaining steps run, the set and the card are written, and the caller exits non-zero. What a step completed is
remembered in ``<out_dir>/steps.json`` by the hash of its inputs (the set, its config, the card sections it reads),
so a rerun redoes only the steps that failed or whose inputs changed (the judge once its server is back, not the
quality report that succeeded), restoring the card sections of the others.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from erc.data.sets import jsonl_bytes
from erc.errors import UserError
from erc.io import write_if_changed
from erc.llm.store import canonical_hash
from erc.postprocess.build import BuiltSet

log = logging.getLogger(__name__)

STATE_FILE = "steps.json"


@dataclass
class FilteredSet:
    """A filtered variant a step wrote beside the set: its folder, its sizes (the card's ``counts`` and ``labels``
    of its dialogues), the filter's card entry and the step's own sections of its card (e.g. its quality)."""

    folder: str
    sizes: dict[str, Any]
    entry: dict[str, Any]
    sections: dict[str, Any] = field(default_factory=dict)


@dataclass
class SetContext:
    """What the steps share: the config, the built set, the card so far, the filtered sets written, and whether the
    LLM may be asked (``generate.py`` without ``postprocess_only``)."""

    cfg: DictConfig
    built: BuiltSet
    card: dict[str, Any]
    ask: bool
    filtered: list[FilteredSet] = field(default_factory=list)

    @property
    def out_dir(self) -> Path:
        return self.built.out_dir


class Step(ABC):
    """One named post-processing step (see the module docstring)."""

    #: The step's name (its key in ``postprocess.steps``), set by :func:`make_steps`.
    name: str = ""
    #: The card keys this step writes (restored from ``steps.json`` when it is skipped).
    sections: tuple[str, ...] = ()
    #: The card keys of earlier steps this step reads: a change there reruns it.
    reads: tuple[str, ...] = ()
    #: Whether a completed run with the same inputs may be skipped; a cheap step whose inputs are not all known
    #: (the label plot overlays whichever sets lie beside the set) runs every time.
    cacheable: bool = True

    def enabled(self, ctx: SetContext) -> bool:
        """Whether the config asks for this step (e.g. ``judge=llm``)."""
        return True

    def disabled(self, ctx: SetContext) -> None:  # noqa: B027 (optional: most steps leave nothing behind)
        """Called instead of :meth:`run` when the step is not asked for: remove what an earlier run of it left
        that would now be taken for this set's."""

    def config(self, ctx: SetContext) -> Any:
        """The settings the step's result depends on (hashed into its inputs; never written)."""
        return None

    @abstractmethod
    def run(self, ctx: SetContext) -> bool:
        """Do the step: write its files, set its card sections, append any filtered set to ``ctx.filtered``.
        Returns whether it is complete (an incomplete step, e.g. a judge not asked yet, runs again next time)."""

    def readme(self, card: dict[str, Any]) -> str:
        """The step's section of a set's README, from its card section (empty when the card has none)."""
        return ""


def make_steps(steps: Any) -> list[Step]:
    """The steps of ``postprocess.steps`` (a mapping of name to ``{_target_: ...}``; a null entry leaves a step
    out), in order. Raises :class:`erc.errors.ConfigError` naming the key of a bad entry."""
    from hydra.utils import instantiate

    from erc.errors import ConfigError

    made = []
    for name, node in (steps or {}).items():
        if node is None:
            continue
        if not isinstance(node, (dict, DictConfig)) or "_target_" not in node:
            raise ConfigError(f"postprocess.steps.{name} must be a mapping with _target_ (a Step class) or null "
                              f"(leave the step out), got {node!r}")
        try:
            step = instantiate(node)
        except Exception as err:  # Hydra wraps import and argument errors alike
            raise ConfigError(f"postprocess.steps.{name}: cannot make {node.get('_target_')}: {err}") from None
        if not isinstance(step, Step):
            raise ConfigError(f"postprocess.steps.{name}: {node.get('_target_')} is not an erc.postprocess.Step")
        step.name = str(name)
        made.append(step)
    return made


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        log.warning("%s is not JSON: every step runs again", path)
        return {}
    return state if isinstance(state, dict) else {}


def run_steps(ctx: SetContext, steps: list[Step]) -> dict[str, str]:
    """Run ``steps`` in order on ``ctx`` (see the module docstring); returns the failed steps and why."""
    path = ctx.out_dir / STATE_FILE
    state, new_state = _read_state(path), {}
    failures: dict[str, str] = {}
    set_hash = canonical_hash(jsonl_bytes(ctx.built.kept).decode())
    for step in steps:
        if not step.enabled(ctx):
            step.disabled(ctx)
            continue
        inputs = canonical_hash({"step": type(step).__module__ + "." + type(step).__qualname__, "set": set_hash,
                                 "config": step.config(ctx), "reads": {k: ctx.card.get(k) for k in step.reads}})
        done = state.get(step.name)
        if step.cacheable and isinstance(done, dict) and done.get("inputs") == inputs:
            ctx.card.update(done["card"])
            ctx.filtered += [FilteredSet(**f) for f in done["filtered"]]
            new_state[step.name] = done
            log.info("%s: step %s done before with the same inputs: kept", ctx.out_dir, step.name)
            continue
        filtered_before = len(ctx.filtered)
        try:
            complete = step.run(ctx)
        except Exception as err:  # a failing step must not take the set or the other steps down
            why = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
            failures[step.name] = why
            log.error("%s: post-processing step %s failed: %s", ctx.out_dir, step.name, why,
                      exc_info=not isinstance(err, UserError))
            del ctx.filtered[filtered_before:]
            continue
        if complete and step.cacheable:
            new_state[step.name] = {"inputs": inputs, "card": {k: ctx.card[k] for k in step.sections if k in ctx.card},
                                    "filtered": [asdict(f) for f in ctx.filtered[filtered_before:]]}
    write_if_changed(path, (json.dumps(new_state, indent=1, ensure_ascii=False) + "\n").encode())
    return failures
