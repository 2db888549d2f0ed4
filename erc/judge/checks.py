"""The judge's settings: its effective server config and every ``judge.*`` value checked before any request.

``judge.llm`` holds the keys of ``conf/llm/*.yaml``, all null by default: null means "as the generation's
``llm.*``". When ``judge.llm.backend`` names another backend, the base is that backend's own file
(``conf/llm/<backend>.yaml``, without its defaults list: the judge has its own sampling), so a key that only the
other backend has (``token``, ``server``, ``model_path``) takes that backend's default. A key set for a backend
that has no such setting is an error naming it, not a silently ignored value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from erc.checks import check_number
from erc.errors import ConfigError, UserError
from erc.llm.checks import check_llm, check_sampling_values
from erc.llm.templates import PromptTemplate, load_template
from erc.paths import CONFIG_DIR

JUDGES = ("none", "llm")
# The slots of the judge's template: it must use every one (a prompt without {dialogue} judges nothing).
TEMPLATE_SLOTS = {"dialogue", "n_utterances", "label_options"}


def judge_enabled(cfg: DictConfig) -> bool:
    """``judge=llm`` (a config without a ``judge`` node has no judge)."""
    return "judge" in cfg and cfg.judge.get("name") == "llm"


def judge_llm_config(cfg: DictConfig) -> DictConfig:
    """The judge's server config: the base (``llm.*``, or ``conf/llm/<judge.llm.backend>.yaml``) with every
    non-null ``judge.llm`` key on top. Raises :class:`ConfigError` for a backend without a file or a key that
    backend does not have."""
    own = {key: value for key, value in cfg.judge.llm.items() if value is not None}
    backend = own.get("backend", cfg.llm.backend)
    backends = sorted(path.stem for path in (CONFIG_DIR / "llm").glob("*.yaml"))
    if backend not in backends:
        raise ConfigError(f"judge.llm.backend must be null (as llm.backend) or one of {', '.join(backends)} "
                          f"(conf/llm/), got {backend!r}")
    if backend == cfg.llm.backend:
        base = OmegaConf.to_container(cfg.llm, resolve=False)
    else:
        base = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "llm" / f"{backend}.yaml"), resolve=False)
        base.pop("defaults", None)
    unknown = sorted(set(own) - set(base))
    if unknown:
        raise ConfigError(f"judge.llm.{unknown[0]} is not a setting of the {backend} backend (conf/llm/{backend}.yaml"
                          f"): leave it null, or choose the backend that has it with judge.llm.backend")
    # The interpolations of the base (${oc.env:...}, ${erc.secret_file:...}) resolve when read, as for llm.*.
    merged = OmegaConf.merge(base, own)
    OmegaConf.set_struct(merged, True)
    return merged


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
    """The effective server settings, named ``judge.llm.*`` (a bad value inherited from ``llm.*`` is named too:
    the judge reads it). The judge sends no system message."""
    check_llm(judge_llm_config(cfg), "judge.llm")


def check_judge_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first ``judge.*`` setting that cannot work (nothing for ``judge=none``)."""
    if "judge" not in cfg:
        return
    name = cfg.judge.get("name")
    if name not in JUDGES:
        raise ConfigError(f"judge must be one of {', '.join(JUDGES)} (judge=llm asks an LLM judge), got {name!r}")
    if name == "none":
        return
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
