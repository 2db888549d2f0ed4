"""Secrets (API keys, bearer tokens) reach the server they are meant for and nothing else.

A config key holds a secret when its name matches :data:`SECRET_KEY` (``api_key``, ``token``, ...).
Its value comes from the environment (``${oc.env:OPENAI_API_KEY,null}``) or a file
(``${erc.secret_file:/run/secrets/tgi}``), never from the command line: Hydra writes every override to
``.hydra/overrides.yaml`` and ``hydra.yaml``, its error line repeats them, and W&B records the command
line in every run it syncs. :func:`refuse_on_command_line` stops such an override before Hydra starts;
:func:`strip_secrets` removes secret keys from whatever config is written (results.json, W&B, cards);
:func:`erc.tracking.wandb_settings` keeps the command line and git state out of W&B runs. Backends send a token only
to their own ``llm.url`` (see ``erc.llm.backends.tgi.ConfiguredTokenClient``).
"""

from __future__ import annotations

import netrc
import os
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from erc.errors import ConfigError

# A key is a secret when its last word is one of these (``token``, ``hf_token``, ``api_key``, ``client_secret``),
# not when the word only appears inside it (``max_new_tokens``, ``tokenizer`` are settings to record).
SECRET_KEY = re.compile(r"(?:^|[_\-.])(?:(?:api|access|private|secret)[_-]?key|token|secret|password|passwd"
                        r"|credentials?)$", re.IGNORECASE)


# ``scheme://user:password@host``: a password inside a URL given on the command line.
URL_CREDENTIALS = re.compile(r"\w://[^/@\s:]+:[^/@\s]+@")


def strip_secrets(value: Any) -> Any:
    """A copy of a plain config container without any key that looks like a secret."""
    if isinstance(value, dict):
        return {k: strip_secrets(v) for k, v in value.items() if not SECRET_KEY.search(str(k))}
    if isinstance(value, list):
        return [strip_secrets(v) for v in value]
    return value


def public_config(cfg: DictConfig) -> dict[str, Any]:
    """The job's config as plain data, interpolations resolved, Hydra's own node and every secret removed:
    what may be written to results.json and uploaded to W&B."""
    plain = OmegaConf.create({k: v for k, v in cfg.items() if k != "hydra"})
    return strip_secrets(OmegaConf.to_container(plain, resolve=True))


def secret_overrides(argv: list[str]) -> list[str]:
    """The command-line overrides that set a secret key to a literal value (an interpolation such as
    ``${oc.env:MY_KEY}`` names where the secret is, so it may be written down)."""
    found = []
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        leaf = key.lstrip("+~").rsplit(".", 1)[-1]
        if (SECRET_KEY.search(leaf) and not _names_a_place(value)) or URL_CREDENTIALS.search(value):
            found.append(key.lstrip("+~"))
    return found


def _names_a_place(value: str) -> bool:
    """True for a value that holds no secret itself: empty, null, or one interpolation (``${oc.env:X}``)."""
    value = value.strip().strip("'\"")
    return value in ("", "null") or (value.startswith("${") and value.endswith("}"))


def literal_secrets(config: Any, prefix: str = "") -> list[str]:
    """The dotted keys of ``config`` (a plain container, interpolations unresolved) whose secret is written
    out in a config file rather than named by an interpolation. ``EMPTY``, the documented "no key"
    placeholder of ``llm.api_key``, is no secret."""
    items = config.items() if isinstance(config, dict) else enumerate(config) if isinstance(config, list) else ()
    found = []
    for key, value in items:
        path = f"{prefix}{key}"
        if isinstance(value, (dict, list)):
            found += literal_secrets(value, f"{path}.")
        elif SECRET_KEY.search(str(key)) and value is not None and value != "EMPTY" and not _names_a_place(str(value)):
            found.append(path)
    return found


def refuse_literal_secrets(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` when a config file writes a secret out (Hydra copies the composed config
    into ``.hydra/config.yaml``); that copy is redacted first, so the job's folder keeps no trace of it."""
    keys = literal_secrets(OmegaConf.to_container(cfg, resolve=False))
    if not keys:
        return
    _redact_saved_config(keys)
    raise ConfigError(
        f"{keys[0]} is written out in a config file, and Hydra copies the config into every job's .hydra/"
        f"config.yaml (redacted there now). Name where the secret is instead: {keys[0]}: ${{oc.env:MY_KEY}} "
        f"or {keys[0]}: ${{erc.secret_file:/path/to/file}}")


def _redact_saved_config(keys: list[str]) -> None:
    """Replace ``keys`` by ``<redacted>`` in this Hydra job's ``.hydra/config.yaml`` (nothing outside a job)."""
    from hydra.core.hydra_config import HydraConfig

    from erc.io import write_text_atomic

    if not HydraConfig.initialized() or HydraConfig.get().output_subdir is None:
        return
    path = Path(HydraConfig.get().runtime.output_dir) / HydraConfig.get().output_subdir / "config.yaml"
    if path.is_file():
        saved = OmegaConf.load(path)
        for key in keys:
            OmegaConf.update(saved, key, "<redacted>", merge=False)
        write_text_atomic(path, OmegaConf.to_yaml(saved))


def refuse_on_command_line(argv: list[str]) -> None:
    """Raise :class:`ConfigError` when ``argv`` gives a secret's value (see the module docstring)."""
    keys = secret_overrides(argv)
    if keys:
        key = keys[0]
        if not SECRET_KEY.search(key.rsplit(".", 1)[-1]):
            raise ConfigError(f"{key} holds a URL with credentials (user:password@), which Hydra would write to "
                              f".hydra/overrides.yaml and generation to requests.jsonl: give the URL without them "
                              f"and the secret as a bearer token from the environment (llm.token for tgi, "
                              f"llm.api_key for openai)")
        raise ConfigError(
            f"{key} was given on the command line, where Hydra would write it to .hydra/overrides.yaml and the "
            f"job log and W&B would record it. Pass it through the environment or a file instead, e.g. "
            f"`export MY_KEY=...` with {key}='${{oc.env:MY_KEY}}', or {key}='${{erc.secret_file:/path/to/file}}' "
            f"(llm=openai reads $OPENAI_API_KEY and llm=tgi reads $ERC_TGI_TOKEN by default)")


def read_secret_file(path: str) -> str:
    """The ``${erc.secret_file:PATH}`` resolver: the file's first line, stripped. Errors never quote the file."""
    file = Path(path).expanduser()
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ConfigError(f"secret file {file} cannot be read ({err.strerror or type(err).__name__}): give the "
                          f"path of a file holding the secret on its first line") from None
    except UnicodeDecodeError:
        raise ConfigError(f"secret file {file} is not UTF-8 text: put the secret on its first line") from None
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise ConfigError(f"secret file {file} has nothing on its first line: put the secret there")
    return secret


def wandb_api_key_configured() -> bool:
    """Whether wandb would find an API key: ``WANDB_API_KEY`` or a ``wandb login`` entry in ~/.netrc for the
    W&B host (``WANDB_BASE_URL``, default api.wandb.ai). An unreadable ~/.netrc counts as none."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
