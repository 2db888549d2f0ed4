"""Every generation setting checked before the first LLM request.

A bad value found after hours of generation wastes the hours (split ratios that do not add up used to
be rejected only after every request was made); a value that silently changes the experiment is worse
(``n_dialogues=-3`` gave an empty folder, a balanced template without ``{target}`` never asked for the
target emotion). :func:`check_generation_config` raises :class:`ConfigError` naming the key and the fix.
"""

from __future__ import annotations

import string
from urllib.parse import urlsplit

from datasketch import MinHashLSH
from omegaconf import DictConfig

from erc.data.labels import check_not_overridden
from erc.data.names import GENERATED_SOURCES
from erc.checks import check_number, config_value
from erc.errors import ConfigError
from erc.generation.chat_templates import check_chat_template
from erc.generation.dialects import check_openai_route
from erc.generation.parsing import FORMATS
from erc.generation.prompts import PromptTemplate, load_template
from erc.generation.split import check_ratios

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


def check_sampling_values(cfg: DictConfig, node: str, greedy: bool = False) -> None:
    """The Table II fields and stops of the sampling config at ``node`` (``sampling``, ``judge.sampling``) in the
    ranges every backend accepts (TGI's validation is the strictest); ``greedy``: a temperature of 0 is allowed."""
    if greedy:
        check_number(cfg, f"{node}.temperature", lambda v: v >= 0, "a number >= 0 (0: greedy)")
    else:
        check_number(cfg, f"{node}.temperature", lambda v: v > 0, "a number > 0 (requests always sample)")
    check_number(cfg, f"{node}.top_p", lambda v: 0 < v <= 1, "a number in (0, 1]")
    check_number(cfg, f"{node}.top_k", lambda v: v >= 1, "a positive integer", integer=True)
    check_number(cfg, f"{node}.repetition_penalty", lambda v: v > 0, "a number > 0")
    check_number(cfg, f"{node}.typical_p", lambda v: 0 < v <= 1, "a number in (0, 1]")
    check_number(cfg, f"{node}.min_p", lambda v: 0 <= v < 1, "a number in [0, 1)")
    check_number(cfg, f"{node}.max_new_tokens", lambda v: v >= 1, "a positive integer", integer=True)
    stop = config_value(cfg, f"{node}.stop")
    if stop is None or isinstance(stop, str) or not all(isinstance(s, str) and s for s in stop):
        raise ConfigError(f"{node}.stop must be a list of non-empty strings, got {stop!r}")


def check_sampling(cfg: DictConfig) -> None:
    """``sampling.*``: the Table II fields (:func:`check_sampling_values`) and the grammar's bounds."""
    check_sampling_values(cfg, "sampling")
    check_number(cfg, "sampling.grammar.max_turns", lambda v: v >= int(cfg.validation.min_turns),
            f"an integer >= validation.min_turns ({cfg.validation.min_turns})", integer=True)
    check_number(cfg, "sampling.grammar.max_utterance_chars", lambda v: v >= 1, "a positive integer", integer=True)


def check_dedup(threshold: float, num_perm: int) -> None:
    """MinHash LSH needs at least two bands at ``threshold``: near 1, or with few permutations, it has
    not (datasketch then fails in post-processing, after every request was made)."""
    try:
        MinHashLSH(threshold=threshold, num_perm=num_perm)
    except ValueError as err:
        raise ConfigError(f"dedup.minhash_threshold={threshold:g} with dedup.num_perm={num_perm} cannot be indexed "
                          f"({err}): lower the threshold (e.g. 0.98 at 128 permutations) or raise num_perm") from None


def check_urls(cfg: DictConfig) -> None:
    """``llm.url`` (one URL or a list) without credentials in it: a URL is recorded in requests.jsonl,
    runs.jsonl and the data card, so ``http://user:password@host`` would write the password there."""
    urls = cfg.llm.get("url")
    for url in [urls] if isinstance(urls, str) else list(urls or []):
        parts = urlsplit(str(url))
        if parts.username or parts.password:
            host = parts.hostname or "?"
            raise ConfigError(f"llm.url must not hold credentials ({parts.scheme}://***@{host}...): a URL is written "
                              f"to requests.jsonl and the data card. Give the URL without them and the secret as a "
                              f"bearer token (llm.token for tgi, llm.api_key for openai; from the environment)")


def check_generation_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first setting of ``cfg`` that cannot work."""
    check_number(cfg, "n_dialogues", lambda v: v >= 1, "a positive integer (the number of dialogue slots)", integer=True)
    check_number(cfg, "max_attempts", lambda v: v >= 1, "an integer >= 1 (requests per dialogue slot)", integer=True)
    check_number(cfg, "seed", lambda v: v >= 0, "a non-negative integer", integer=True)
    check_number(cfg, "llm.concurrency", lambda v: v >= 1, "an integer >= 1 (requests in flight)", integer=True)
    check_number(cfg, "llm.max_retries", lambda v: v >= 0, "an integer >= 0", integer=True)
    check_number(cfg, "llm.timeout_s", lambda v: v > 0, "a number of seconds > 0", nullable=True)
    check_number(cfg, "llm.request_deadline_s", lambda v: v > 0, "a number of seconds > 0", nullable=True)
    check_number(cfg, "llm.backoff_s", lambda v: v >= 0, "a number of seconds >= 0")
    check_number(cfg, "llm.backoff_max_s", lambda v: v >= 0, "a number of seconds >= 0")
    check_number(cfg, "validation.min_turns", lambda v: v >= 1, "a positive integer", integer=True)
    check_number(cfg, "validation.repeat_ngram", lambda v: v >= 1, "a positive integer", integer=True)
    check_number(cfg, "validation.max_ngram_repeats", lambda v: v >= 1, "a positive integer", integer=True)
    check_number(cfg, "validation.enumeration_run", lambda v: v >= 2, "an integer >= 2", integer=True)
    check_number(cfg, "dedup.minhash_threshold", lambda v: 0 < v <= 1, "a number in (0, 1]")
    check_number(cfg, "dedup.num_perm", lambda v: v >= 2, "an integer >= 2", integer=True)
    check_number(cfg, "dedup.shingle_words", lambda v: v >= 1, "a positive integer", integer=True)
    check_dedup(float(cfg.dedup.minhash_threshold), int(cfg.dedup.num_perm))
    check_ratios(cfg.split)
    check_sampling(cfg)
    check_format(cfg.prompt)
    check_template(load_template(cfg.prompt.template), str(cfg.prompt.mode))
    check_urls(cfg)
    check_chat_template(cfg)          # auto: loads llm.tokenizer (once) and renders a probe prompt
    check_openai_route(cfg.llm)
    check_not_overridden(cfg.benchmark)
    if "quality" in cfg:                 # the report and the filter run after the requests: check them before
        from erc.quality import check_generate_quality_config

        check_generate_quality_config(cfg)
    if cfg.prompt.suffix not in GENERATED_SOURCES:
        raise ConfigError(f"prompt.suffix={cfg.prompt.suffix!r} names the set's source (its folder "
                          f"<benchmark>_<source>); valid: {', '.join(GENERATED_SOURCES)}")
