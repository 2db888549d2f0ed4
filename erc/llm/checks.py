"""The ``llm.*`` and sampling settings checked before the first request, once for every task that asks an LLM.

The generator checks its ``llm`` and ``sampling`` nodes, the judge its effective ``judge.llm`` and
``judge.sampling``: the same rules, each message naming the task's own key (``judge.llm.max_retries``, not
``llm.max_retries``) and the fix.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from omegaconf import DictConfig, OmegaConf

from erc.checks import check_number, config_value
from erc.errors import ConfigError
from erc.llm.chat_templates import check_chat_template
from erc.llm.dialects import check_openai_route
from erc.llm.ratelimit import per_minute
from erc.llm.usage import Prices


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


# The routes each backend adds to ``llm.url`` itself, longest first: a URL that already ends in one would be asked at
# ``.../generate/generate`` and every request would fail as if the server were down. TGI's URL is the server's root;
# an OpenAI-compatible server's is its API base (``.../v1``), the client adding ``/completions`` and the rest.
_ROUTES = {"tgi": ("/v1/chat/completions", "/v1/completions", "/v1/models", "/generate_stream", "/generate", "/info",
                   "/health", "/v1"),
           "openai": ("/chat/completions", "/completions", "/models")}


def _url_to_use(url: str, backend: str) -> tuple[str, str] | None:
    """``(the URL to give instead of url, what is wrong with it)`` for ``backend``: ``url`` without its route, with
    ``http://`` where it has no scheme; None when ``url`` is right."""
    fixed = url if "://" in url else f"http://{url}"
    wrong = [] if fixed == url else ["has no scheme"]
    base = fixed.rstrip("/")
    for route in _ROUTES.get(backend, ()):
        if urlsplit(base).path.endswith(route):
            fixed = base[:-len(route)]
            wrong.append(f"ends in a route ({route}; the {backend} backend adds its own)")
            break
    return (fixed, " and ".join(wrong)) if wrong else None


def check_urls(llm: Any, key: str = "llm") -> None:
    """``<key>.url`` (one URL or a list): an ``http(s)://`` URL without credentials in it and without the route the
    backend adds itself. A URL without its scheme or with the route pasted fails at every request, which a run
    would retry for minutes as if the server were down; a URL is recorded in requests.jsonl, runs.jsonl and the
    data card, so ``http://user:password@host`` would write the password there."""
    urls = llm.get("url")
    backend = str(llm.get("backend") or "")
    for url in [urls] if isinstance(urls, str) else list(urls or []):
        url = str(url)
        parts = urlsplit(url)
        if parts.username or parts.password:
            host = parts.hostname or "?"
            raise ConfigError(f"{key}.url must not hold credentials ({parts.scheme}://***@{host}...): a URL is "
                              f"written to requests.jsonl and the data card. Give the URL without them and the secret "
                              f"as a bearer token ({key}.token for tgi, {key}.api_key for openai; from the "
                              f"environment)")
        if "://" in url and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ConfigError(f"{key}.url={url} is not an http:// or https:// URL with a host: give the server's "
                              f"URL, e.g. {key}.url=http://HOST:8080")
        if (fix := _url_to_use(url, backend)) is not None:
            raise ConfigError(f"{key}.url={url} {fix[1]}: give {key}.url={fix[0]}")


def check_llm(llm: DictConfig, key: str, system: str | None = None) -> None:
    """Every server setting of ``llm`` (the node the user writes as ``key``: ``llm`` or ``judge.llm``), before any
    request; ``system`` is the task's system message, rendered once through the chat template."""
    root = {"llm": llm}
    for name, ok, need, integer, nullable in (
            ("concurrency", lambda v: v >= 1, "an integer >= 1 (requests in flight)", True, False),
            ("max_retries", lambda v: v >= 0, "an integer >= 0", True, False),
            ("timeout_s", lambda v: v > 0, "a number of seconds > 0", False, True),
            ("request_deadline_s", lambda v: v > 0, "a number of seconds > 0", False, True),
            ("backoff_s", lambda v: v >= 0, "a number of seconds >= 0", False, False),
            ("backoff_max_s", lambda v: v >= 0, "a number of seconds >= 0", False, False)):
        check_number(root, f"llm.{name}", ok, need, integer=integer, nullable=nullable,
                     prefix=key.removesuffix("llm"))
    check_urls(llm, key)
    Prices.from_config(llm, key)
    for name in ("max_requests_per_minute", "max_tokens_per_minute"):
        per_minute(llm, name, key)
    try:
        check_openai_route(llm)
        # auto loads the model's tokenizer here (once: the run reuses it), before any request.
        check_chat_template(OmegaConf.create({"llm": llm, "prompt": {"system": system}}))
    except ConfigError as err:
        message = str(err)
        raise ConfigError(f"{key}{message[3:]}" if message.startswith("llm") and key != "llm" else message) from None
