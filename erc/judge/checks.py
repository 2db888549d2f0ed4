"""The judge's settings: its effective server config and every ``judge.*`` value checked before any request.

``judge.llm`` is null by default: the judge then asks the generation's server, ``llm.*`` as composed (command-line
overrides included). A server of its own is the ``llm`` config group composed by Hydra at ``judge.llm``
(``llm@judge.llm=openai judge.llm.url=...``): a whole backend config, so nothing of the generation's (its token,
its URL) reaches another server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from erc.checks import check_number
from erc.errors import ConfigError, UserError
from erc.llm.checks import check_llm, check_sampling_values
from erc.llm.templates import PromptTemplate, load_template

JUDGES = ("none", "llm")
# The slots of the judge's template: it must use every one (a prompt without {dialogue} judges nothing).
TEMPLATE_SLOTS = {"dialogue", "n_utterances", "label_options"}


def judge_enabled(cfg: DictConfig) -> bool:
    """``judge=llm`` (a config without a ``judge`` node has no judge)."""
    return "judge" in cfg and cfg.judge.get("name") == "llm"


def judge_llm_config(cfg: DictConfig) -> DictConfig:
    """The judge's server config: ``judge.llm`` when ``llm@judge.llm`` composed one, else ``llm``."""
    return cfg.llm if cfg.judge.llm is None else cfg.judge.llm


def judge_llm_key(cfg: DictConfig) -> str:
    """The node the judge's server settings are read from, as messages name it: ``judge.llm`` or ``llm``."""
    return "llm" if cfg.judge.llm is None else "judge.llm"


def load_judge_template(path: str | Path) -> PromptTemplate:
    """The judge's template (``judge.template``), using exactly :data:`TEMPLATE_SLOTS`."""
    import string

    try:
        template = load_template(path)
    except UserError as err:
        raise ConfigError(f"judge.template: {err}") from None
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(template.text) if field is not None}
    except ValueError as err:
        raise ConfigError(f"judge.template {path}: {err} (write a literal brace as {{{{ or }}}})") from None
    if used != TEMPLATE_SLOTS:
        need = ", ".join("{" + s + "}" for s in sorted(TEMPLATE_SLOTS))
        raise ConfigError(f"judge.template {path} must use exactly the slots {need}, it uses "
                          f"{', '.join('{' + s + '}' for s in sorted(used)) or 'none'}")
    return template


def check_judge_sampling(cfg: DictConfig) -> None:
    """``judge.sampling.*`` in the ranges every backend accepts; the temperature may be 0 (greedy)."""
    check_sampling_values(cfg, "judge.sampling", greedy=True)
    if not isinstance(cfg.judge.sampling.constrained, bool):
        raise ConfigError(f"judge.sampling.constrained must be true or false, got {cfg.judge.sampling.constrained!r}")


def check_judge_llm(cfg: DictConfig) -> None:
    """The judge's server settings, named where they are read from (:func:`judge_llm_key`). The judge sends no
    system message."""
    check_llm(judge_llm_config(cfg), judge_llm_key(cfg))


def check_generation_sampling_kept(cfg: DictConfig) -> None:
    """``conf/llm/local.yaml`` selects ``sampling=embedded`` in its defaults list (the 135M model's settings), and
    Hydra applies that when it composes the file as the judge's server too: with ``llm@judge.llm=local`` and
    another generation backend, generation would silently leave Table II. Refused unless the command line names
    the sampling. Reads Hydra's record of the job (a config composed without it is not checked)."""
    from hydra.core.hydra_config import HydraConfig

    if "hydra" in cfg:
        hydra = cfg.hydra
    elif HydraConfig.initialized():
        hydra = HydraConfig.get()
    else:
        return
    choices, overrides = hydra.runtime.choices, list(hydra.overrides.task)
    if choices.get("llm@judge.llm") != "local" or choices.get("llm") == "local":
        return
    if not any(o.lstrip("+~").startswith("sampling=") for o in overrides):
        raise ConfigError(f"llm@judge.llm=local also selects sampling=embedded for generation (the defaults list of "
                          f"conf/llm/local.yaml), which llm={choices.get('llm')} does not want: name generation's "
                          "sampling on the command line, e.g. sampling=paper")


def check_judge_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first ``judge.*`` setting that cannot work (nothing for ``judge=none``)."""
    if "judge" not in cfg:
        return
    name = cfg.judge.get("name")
    if name not in JUDGES:
        raise ConfigError(f"judge must be one of {', '.join(JUDGES)} (judge=llm asks an LLM judge), got {name!r}")
    if name == "none":
        if cfg.judge.get("llm") is not None:
            raise ConfigError("llm@judge.llm gives the judge a server, but judge=none: add judge=llm "
                              "(or leave llm@judge.llm out)")
        return
    check_generation_sampling_kept(cfg)
    check_number(cfg, "judge.seed", lambda v: v >= 0, "a non-negative integer", integer=True)
    check_number(cfg, "judge.max_attempts", lambda v: v >= 1, "an integer >= 1 (requests per dialogue)", integer=True)
    check_number(cfg, "judge.min_agreement", lambda v: 0 <= v <= 1, "a number in [0, 1] (a share of utterances)")
    if not isinstance(cfg.judge.filter, bool):
        raise ConfigError(f"judge.filter must be true or false, got {cfg.judge.filter!r}")
    check_judge_sampling(cfg)
    check_judge_llm(cfg)
    load_judge_template(cfg.judge.template)


def public_judge_llm(llm: DictConfig) -> dict[str, Any]:
    """What the card records of the judge's server: its identity, never a secret."""
    from erc.secrets import strip_secrets

    keep = ("backend", "server", "route", "url", "model", "model_path", "chat_template")
    return strip_secrets({k: llm.get(k) for k in keep if k in llm})
