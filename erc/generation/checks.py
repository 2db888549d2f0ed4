"""Every generation setting checked before the first LLM request.

A bad value found after hours of generation wastes the hours (split ratios that do not add up used to
be rejected only after every request was made); a value that silently changes the experiment is worse
(``n_dialogues=-3`` gave an empty folder, a balanced template without ``{target}`` never asked for the
target emotion). :func:`check_generation_config` raises :class:`ConfigError` naming the key and the fix.
"""

from __future__ import annotations

import string

from omegaconf import DictConfig

from erc.checks import check_number
from erc.data.contamination import check_contamination_config
from erc.data.dedup import check_dedup_config
from erc.data.labels import check_not_overridden
from erc.data.names import GENERATED_SOURCES
from erc.errors import ConfigError
from erc.generation.parsing import FORMATS
from erc.generation.split import check_ratios
from erc.llm.checks import check_llm, check_sampling_values
from erc.llm.templates import PromptTemplate, load_template

# The slots each prompt mode fills: a template must use every one and no other.
TEMPLATE_SLOTS = {"natural": {"participants", "label_options"},
                  "balanced": {"participants", "label_options", "target"}}


def check_template(template: PromptTemplate, mode: str) -> None:
    """The template's ``{slots}`` are exactly those of ``mode``: a balanced template without
    ``{target}`` would never ask for the target emotion, one without ``{label_options}`` would let the
    model choose its own labels, and an unknown slot cannot be filled."""
    if mode not in TEMPLATE_SLOTS:
        raise ConfigError(f"prompt.mode must be 'natural' or 'balanced', got {mode!r}")
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(template.text) if field is not None}
    except ValueError as err:
        raise ConfigError(f"prompt.template {template.path}: {err} (write a literal brace as {{{{ or }}}})") from None
    need = TEMPLATE_SLOTS[mode]
    slots = ", ".join("{" + s + "}" for s in sorted(need))
    if need - used:
        missing = ", ".join("{" + s + "}" for s in sorted(need - used))
        raise ConfigError(f"prompt.template {template.path} lacks {missing}: a {mode} prompt must contain {slots}")
    if used - need:
        unknown = ", ".join("{" + s + "}" for s in sorted(used - need))
        raise ConfigError(f"prompt.template {template.path} has unknown slot(s) {unknown}: a {mode} prompt fills "
                          f"only {slots}")


def check_format(prompt: DictConfig) -> None:
    """``prompt.format`` names an output format the parser reads; its template (``prompt.templates.<format>``,
    or the user's ``prompt.template``) is then checked for the mode's slots like any other."""
    if prompt.get("format") not in FORMATS:
        raise ConfigError(f"prompt.format must be one of {', '.join(FORMATS)} (lines: the paper's \"Speaker: "
                          f"utterance (number)\"; json: a JSON object, beyond the paper), got {prompt.get('format')!r}")


def check_sampling(cfg: DictConfig) -> None:
    """``sampling.*``: the Table II fields (:func:`check_sampling_values`) and the grammar's bounds."""
    check_sampling_values(cfg, "sampling")
    check_number(cfg, "sampling.grammar.max_turns", lambda v: v >= int(cfg.validation.min_turns),
            f"an integer >= validation.min_turns ({cfg.validation.min_turns})", integer=True)
    check_number(cfg, "sampling.grammar.max_utterance_chars", lambda v: v >= 1, "a positive integer", integer=True)


def check_generation_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first setting of ``cfg`` that cannot work."""
    check_number(cfg, "n_dialogues", lambda v: v >= 1, "a positive integer (the number of dialogue slots)",
                 integer=True)
    check_number(cfg, "max_attempts", lambda v: v >= 1, "an integer >= 1 (requests per dialogue slot)", integer=True)
    check_number(cfg, "seed", lambda v: v >= 0, "a non-negative integer", integer=True)
    check_number(cfg, "validation.min_turns", lambda v: v >= 1, "a positive integer", integer=True)
    check_number(cfg, "validation.repeat_ngram", lambda v: v >= 1, "a positive integer", integer=True)
    check_number(cfg, "validation.max_ngram_repeats", lambda v: v >= 1, "a positive integer", integer=True)
    check_number(cfg, "validation.enumeration_run", lambda v: v >= 2, "an integer >= 2", integer=True)
    check_dedup_config(cfg.dedup)
    check_contamination_config(cfg.get("contamination"), cfg.postprocess.get("decontaminate"))
    check_ratios(cfg.split)
    check_sampling(cfg)
    check_format(cfg.prompt)
    check_template(load_template(cfg.prompt.template), str(cfg.prompt.mode))
    check_llm(cfg.llm, "llm", cfg.prompt.get("system"))
    check_not_overridden(cfg.benchmark)
    if cfg.prompt.suffix not in GENERATED_SOURCES:
        raise ConfigError(f"prompt.suffix={cfg.prompt.suffix!r} names the set's source (its folder "
                          f"<benchmark>_<source>); valid: {', '.join(GENERATED_SOURCES)}")
