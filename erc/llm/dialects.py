"""How each OpenAI-compatible server takes Table II and output constraints, per route (``llm.server``, ``llm.route``).

Servers agree on ``temperature``, ``top_p``, ``seed`` and ``stop`` and on little else: vLLM reads ``top_k`` and
``repetition_penalty`` but has no ``typical_p``; llama.cpp's ``llama-server`` reads ``repeat_penalty`` and ignores
``repetition_penalty``; ``llama_cpp.server`` has no ``typical_p`` in its request models; TGI's Messages API rejects
``top_p >= 1``; Ollama's ``/v1`` reads none of the extras and applies its own or the model's defaults; hosted
OpenAI answers HTTP 400 to any field it does not know. Each server also constrains decoding its own way. One
:class:`Dialect` per (server, route) in :data:`DIALECTS` holds those facts (sources:
``../shared/docs/reference-chat-servers.md``); a combination missing from the table is refused before any request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from erc.errors import ConfigError
from erc.llm.grammar import Constraint, DialogueGrammar, JsonSchema

if TYPE_CHECKING:
    from erc.llm.sampling import Sampling

ROUTES = ("completions", "chat")

# The value a parameter sent nowhere has when the server leaves that filter out. top_k has none: a server without
# the field never cuts at the paper's 10000, so it is always recorded as lost.
NEUTRAL = {"typical_p": 1.0, "repetition_penalty": 1.0, "min_p": 0.0}

Speller = Callable[[Any], dict[str, Any]]


@dataclass(frozen=True)
class Dialect:
    """How one server spells a request on one route.

    ``fields``: the request field each extra Table II parameter (top_k, typical_p, min_p, repetition_penalty) is
    sent as; one missing has no field there and is lost. ``max_tokens``: the token-limit field.
    ``top_p_below_one``: the server accepts only ``top_p < 1`` and omitting it means 1.0 (TGI).
    ``neutral_defaults``: an omitted field leaves that filter out (False: the server applies defaults of its own or
    the model's, so every parameter it has no field for is lost, whatever its value). ``grammar`` and ``json``
    spell a :class:`DialogueGrammar` and a :class:`JsonSchema` as request fields (None: the server has no field for
    that kind of constraint). ``gbnf``: the grammar reaches the model as GBNF (llama.cpp), which alone expresses
    ``sampling.grammar.no_label_counting``."""

    name: str
    fields: dict[str, str]
    grammar: Speller | None
    json: Speller | None
    max_tokens: str = "max_tokens"
    top_p_below_one: bool = False
    neutral_defaults: bool = True
    gbnf: bool = False

    def parameters(self, s: Sampling) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """``(standard fields, extra_body, not honoured)``. Every field the server has is sent, even at a neutral
        value, because servers fill omitted ones from their own or the model's ``generation_config.json``
        defaults. A temperature of 0 is sent as it is: every server here decodes greedily at 0."""
        standard: dict[str, Any] = {"temperature": s.temperature, "top_p": s.top_p, self.max_tokens: s.max_new_tokens,
                                    "stop": list(s.stop)}
        if self.top_p_below_one and s.top_p >= 1.0:
            del standard["top_p"]
        values = {"top_k": s.top_k, "typical_p": s.typical_p, "min_p": s.min_p,
                  "repetition_penalty": s.repetition_penalty}
        extra = {self.fields[name]: value for name, value in values.items() if name in self.fields}
        lost = [f"{name}={value:g} ({self.name} has no {name}"
                + ("" if self.neutral_defaults else "; its own or the model's default applies") + ")"
                for name, value in values.items()
                if name not in self.fields and (not self.neutral_defaults or NEUTRAL.get(name) != value)]
        return standard, extra, lost

    def constraint_fields(self, constraint: Constraint) -> dict[str, Any] | None:
        """The request fields of ``constraint``; None when the server has no field for its kind."""
        speller = self.grammar if isinstance(constraint, DialogueGrammar) else self.json
        return None if speller is None else speller(constraint)


# String-length keywords are outside the JSON-schema subset hosted OpenAI's strict mode accepts (it refuses a schema
# holding them), so its schema goes without them: the utterance-length bound is the only part of a schema lost.
STRICT_UNSUPPORTED = ("minLength", "maxLength")


def _strict_subset(node: Any) -> Any:
    """``node`` without the keywords of :data:`STRICT_UNSUPPORTED`, at every depth."""
    if isinstance(node, dict):
        return {key: _strict_subset(value) for key, value in node.items() if key not in STRICT_UNSUPPORTED}
    if isinstance(node, list):
        return [_strict_subset(value) for value in node]
    return node


def _json_schema_format(schema: JsonSchema, strict: bool = False) -> dict[str, Any]:
    """OpenAI's ``response_format`` of type ``json_schema`` (vLLM, SGLang and Ollama read it too); ``strict``: hosted
    OpenAI's strict mode, with the schema cut to the subset it accepts."""
    inner: dict[str, Any] = {"name": schema.name, "schema": schema.schema()}
    if strict:
        inner.update(schema=_strict_subset(inner["schema"]), strict=True)
    return {"response_format": {"type": "json_schema", "json_schema": inner}}


def _llama_grammar(grammar: DialogueGrammar) -> dict[str, Any]:
    return {"grammar": grammar.gbnf()}


_VLLM = Dialect("vLLM", {"top_k": "top_k", "min_p": "min_p", "repetition_penalty": "repetition_penalty"},
                grammar=lambda g: {"structured_outputs": {"regex": g.regex()}},
                json=lambda j: {"structured_outputs": {"json": j.schema()}})
_LLAMA_SERVER = Dialect("llama.cpp llama-server", {"top_k": "top_k", "typical_p": "typical_p", "min_p": "min_p",
                                                   "repetition_penalty": "repeat_penalty"},
                        grammar=_llama_grammar, json=lambda j: {"json_schema": j.schema()}, gbnf=True)
# llama_cpp.server's request models have no typical_p on either route and no response_format on /v1/completions,
# where a schema goes as the GBNF its own converter writes (what the chat route does with one).
_LLAMA_CPP_PYTHON = Dialect("llama_cpp.server", {"top_k": "top_k", "min_p": "min_p",
                                                 "repetition_penalty": "repeat_penalty"},
                            grammar=_llama_grammar, json=lambda j: {"grammar": j.gbnf()}, gbnf=True)
_PLAIN = Dialect("hosted OpenAI", {}, grammar=None, json=None)

DIALECTS: dict[tuple[str, str], Dialect] = {
    ("vllm", "completions"): _VLLM,
    ("vllm", "chat"): replace(_VLLM, max_tokens="max_completion_tokens"),
    ("sglang", "chat"): Dialect("SGLang", dict(_VLLM.fields), grammar=lambda g: {"regex": g.regex()},
                                json=_json_schema_format, max_tokens="max_completion_tokens"),
    ("llamacpp", "completions"): _LLAMA_SERVER,
    ("llamacpp", "chat"): _LLAMA_SERVER,
    ("llama_cpp_python", "completions"): _LLAMA_CPP_PYTHON,
    ("llama_cpp_python", "chat"): replace(
        _LLAMA_CPP_PYTHON, json=lambda j: {"response_format": {"type": "json_object", "schema": j.schema()}}),
    ("ollama", "chat"): Dialect("Ollama's /v1", {}, grammar=None, json=_json_schema_format, neutral_defaults=False),
    ("tgi", "chat"): Dialect("TGI's Messages API", {},
                             grammar=lambda g: {"response_format": {"type": "regex", "value": g.regex()}},
                             json=lambda j: {"response_format": {"type": "json", "value": j.schema()}},
                             top_p_below_one=True),
    ("plain", "completions"): _PLAIN,
    ("plain", "chat"): replace(_PLAIN, json=lambda j: _json_schema_format(j, strict=True),
                               max_tokens="max_completion_tokens"),
}
SERVERS = tuple(dict.fromkeys(server for server, _ in DIALECTS))

# What to do instead of a combination the table lacks.
INSTEAD = {("tgi", "completions"): "use llm.route=chat (TGI's Messages API), or llm=tgi: its /generate route takes "
                                   "all of Table II",
           ("ollama", "completions"): "use llm.route=chat (Ollama's /v1/chat/completions)",
           ("sglang", "completions"): "use llm.route=chat"}


def dialect(server: str, route: str) -> Dialect:
    """The dialect of ``llm.server`` on ``llm.route``; :class:`ConfigError` naming both when there is none."""
    if route not in ROUTES:
        raise ConfigError(f"llm.route must be one of {', '.join(ROUTES)}, got {route!r}")
    if server not in SERVERS:
        raise ConfigError(f"llm.server must be one of {', '.join(SERVERS)}, got {server!r}")
    if (server, route) not in DIALECTS:
        routes = [r for s, r in DIALECTS if s == server]
        raise ConfigError(f"llm.server={server} is not supported on llm.route={route} (it is on llm.route="
                          f"{'/'.join(routes)}): {INSTEAD.get((server, route), 'choose another route')}")
    return DIALECTS[(server, route)]


def template_stop(llm: Any) -> list[str]:
    """``llm.stop``, the stop strings of the client-side chat template: none on the chat route, where the server
    applies the model's own template and ends the answer at its end of turn."""
    return [] if llm.get("route") == "chat" else list(llm.stop)


def check_openai_route(llm: Any) -> None:
    """``llm.server`` and ``llm.route`` of an ``llm=openai`` config name a known dialect (called by
    :func:`erc.generation.checks.check_generation_config`, before any request)."""
    if llm.get("backend") == "openai":
        dialect(str(llm.get("server")), str(llm.get("route", "completions")))
