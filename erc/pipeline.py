"""``generate.py``'s job: every setting checked, then the generator asks for what is missing
(:mod:`erc.generation.task`) and the set is post-processed (:mod:`erc.postprocess`). One ``generate`` holds
``out_dir`` at a time (:class:`erc.locks.FolderLock`)."""

from __future__ import annotations

import json
import logging
from typing import Any

from omegaconf import DictConfig

from erc.errors import UserError
from erc.generation.checks import check_generation_config
from erc.generation.parsing import UNFINISHED_JSON
from erc.generation.task import GenerationError, run_requests
from erc.judge.checks import check_judge_config
from erc.locks import FolderLock
from erc.postprocess.run import postprocess
from erc.postprocess.step import make_steps
from erc.quality.checks import check_generate_quality_config

log = logging.getLogger(__name__)

# A run keeping fewer dialogues than this share of n_dialogues is reported as a warning.
LOW_YIELD = 0.5


class PostprocessError(UserError):
    """A post-processing step failed; the set and its card are written, the card names the step."""


def _mostly_cut(cfg: DictConfig, rejections: dict[str, int], requests: int) -> str | None:
    """Why most answers were cut, with the fix, when at least half were: by the token limit
    (``finish_reason=length``), or, for JSON, by the model's end of turn or a stop sequence inside the list,
    which a larger token limit would not change."""
    if rejections.get("truncated", 0) * 2 >= requests > 0:
        return (f"{rejections['truncated']} of {requests} answers were cut by the token limit (finish_reason=length): "
                f"raise sampling.max_new_tokens (now {int(cfg.sampling.max_new_tokens)})")
    if rejections.get(UNFINISHED_JSON, 0) * 2 >= requests > 0:
        return (f"{rejections[UNFINISHED_JSON]} of {requests} JSON answers ended inside the dialogue list before the "
                f"token limit (the model ended its turn, or a stop sequence of llm.stop / sampling.stop cut it; "
                f"sampling.max_new_tokens is not the cause): check those stops, or use a server that holds the model "
                f"to the JSON schema (see the card's not-honoured line)")
    return None


def check_yield(cfg: DictConfig, card: dict[str, Any]) -> None:
    """Say when a run kept far fewer dialogues than asked (a warning with the rejection counts) and
    stop with :class:`GenerationError` when it kept none: a silent exit 0 with an empty set sends the
    user on to training. Mostly cut answers name their cause and its fix."""
    kept, asked, requests = card["counts"]["kept"], int(cfg.n_dialogues), card["counts"]["requests"]
    rejections = card["rejections"]
    cut = _mostly_cut(cfg, rejections, requests)
    if cut:
        log.warning("%s: %s", cfg.out_dir, cut)
    removed = json.dumps(card["counts"]["duplicates_removed"])
    summary = (f"{cfg.out_dir}: {kept} of {asked} dialogues kept from {requests} requests; rejected requests by "
               f"reason: {json.dumps(rejections)}, duplicates removed: {removed}")
    if kept == 0:
        hint = f" Most were cut: {cut}." if cut else " See the rejected answers in requests.jsonl (field 'reasons')."
        raise GenerationError(f"no dialogue kept. {summary}.{hint}")
    if kept < LOW_YIELD * asked:
        log.warning("far fewer dialogues than asked: %s", summary)


def generate(cfg: DictConfig) -> dict[str, Any]:
    """Generate the dataset of ``cfg`` (``conf/generate.yaml``), then post-process it.
    With ``postprocess_only`` no LLM is called: parsing, dedup, split, export and the steps are redone from the
    stored answers. Every setting is checked first, then ``out_dir`` is locked for this process (a second
    ``generate`` on it is refused, naming this one's pid and host). Returns the run's figures and the card; raises
    :class:`GenerationError` when no dialogue was kept and :class:`PostprocessError` when a step failed (after the
    set and its card are written)."""
    check_generation_config(cfg)
    check_judge_config(cfg)
    if "quality" in cfg:  # the report and the filter run after the requests: check them before
        check_generate_quality_config(cfg)
    steps = make_steps(cfg.postprocess.get("steps"))  # a bad step entry is refused before any request
    result: dict[str, Any] = {}
    with FolderLock(cfg.out_dir, what="generate.py"):
        if not cfg.postprocess_only:
            result["generation"] = run_requests(cfg)
        outcome = postprocess(cfg, steps, ask=not cfg.postprocess_only)
        result.update(outcome.card)
    check_yield(cfg, result)
    if outcome.failed:
        failed = "; ".join(f"{name}: {why}" for name, why in outcome.failed.items())
        hint = " (or leave the judge out with judge=none)" if "judge" in outcome.failed else ""
        raise PostprocessError(f"{cfg.out_dir}: the set is written, but post-processing step(s) failed ({failed}); "
                               f"the card names them. Rerun the same command to redo only them{hint}.")
    return result
