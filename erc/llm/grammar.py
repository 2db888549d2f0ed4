"""Constrained decoding: a grammar admitting only ``Speaker: utterance (number)`` lines, or a JSON schema.

The paper's line format is :class:`DialogueGrammar`: one dialogue shape, three spellings: GBNF for llama.cpp
(embedded or server), a regular expression for TGI's ``grammar`` and vLLM's structured outputs. JSON answers
(``prompt.format=json``, the judge) are constrained by a :class:`JsonSchema`, which servers take as a schema
(OpenAI ``response_format``, vLLM structured outputs, Ollama ``format``) and llama.cpp as the GBNF its own
converter writes. The speakers are the dialogue's own, the label
numbers the benchmark's, and the number of turns and the utterance length are bounded so that a
small model cannot loop forever. An utterance cannot contain a newline, a colon or parentheses, so
a line cannot hide a second speaker's turn or a second label.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DialogueGrammar:
    """The grammar of one dialogue's output."""

    speakers: tuple[str, ...]
    n_labels: int
    min_turns: int
    max_turns: int
    max_utterance_chars: int
    # Forbid label k+1 right after label k (GBNF only): small models fill the numbered options
    # in order (1, 2, 3...) instead of choosing emotions. Changes the distribution further.
    no_label_counting: bool = False

    def identity(self) -> str:
        """What a request fingerprint hashes for this constraint."""
        return self.gbnf()

    def gbnf(self) -> str:
        """GBNF (llama.cpp), e.g. ``line ::= speaker ": " utterance " (" label ")\\n"``."""
        if self.no_label_counting:
            return self._gbnf_without_counting()
        speakers = " | ".join(_gbnf_literal(s) for s in self.speakers)
        labels = " | ".join(f'"{n}"' for n in range(1, self.n_labels + 1))
        rest = self.max_utterance_chars - 1
        return (f"root ::= line{{{self.min_turns},{self.max_turns}}}\n"
                f'line ::= speaker ": " utterance " (" label ")\\n"\n'
                f"speaker ::= {speakers}\n"
                f"utterance ::= [^\\n(): ] [^\\n():]{{0,{rest}}}\n"
                f"label ::= {labels}\n")

    def _gbnf_without_counting(self) -> str:
        """Unrolled turns: ``t<d>-<p>`` is what may follow ``d`` lines whose last label was ``p``."""
        rest = self.max_utterance_chars - 1
        rules = ["root ::= t0-0",
                 f"speaker ::= {' | '.join(_gbnf_literal(s) for s in self.speakers)}",
                 f"utterance ::= [^\\n(): ] [^\\n():]{{0,{rest}}}"]
        for depth in range(self.max_turns + 1):
            for previous in range(1, self.n_labels + 1) if depth else [0]:  # 0: no line yet
                labels = [f'"{k})\\n" t{depth + 1}-{k}' for k in range(1, self.n_labels + 1)
                          if previous == 0 or k != previous + 1]
                options = ['""'] if depth >= self.min_turns else []
                if depth < self.max_turns:
                    options.append(f'speaker ": " utterance " (" ({" | ".join(labels)})')
                rules.append(f"t{depth}-{previous} ::= {' | '.join(options)}")
        return "\n".join(rules) + "\n"

    def regex(self) -> str:
        """A regular expression for the whole output (TGI ``grammar``, vLLM structured outputs)."""
        speakers = "|".join(re.escape(s) for s in self.speakers)
        labels = "|".join(str(n) for n in range(self.n_labels, 0, -1))  # "10" before "1"
        rest = self.max_utterance_chars - 1
        return (f"((?:{speakers}): [^\\n(): ][^\\n():]{{0,{rest}}} \\((?:{labels})\\)\\n)"
                f"{{{self.min_turns},{self.max_turns}}}")


def _gbnf_literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class JsonSchema:
    """A JSON schema the answer must follow. ``name`` is the schema's name where a server asks for one (OpenAI's
    ``json_schema.name``); ``text`` is the schema as compact JSON, so equal schemas are equal constraints and the
    dataclass stays hashable. Keys keep the order they were built in, not sorted: servers and llama.cpp's
    converter generate an object's properties in the order the schema lists them, and that order is part of
    the constraint (a dialogue turn's ``emotion`` comes after its ``text``, as the label after the line)."""

    name: str
    text: str

    @classmethod
    def of(cls, name: str, schema: dict[str, Any]) -> JsonSchema:
        return cls(name, json.dumps(schema, separators=(",", ":"), ensure_ascii=False))

    def schema(self) -> dict[str, Any]:
        return json.loads(self.text)

    def identity(self) -> str:
        """What a request fingerprint hashes for this constraint."""
        return self.text

    def gbnf(self) -> str:
        """The schema as GBNF, written by llama-cpp-python's converter (what its server does with a schema)."""
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        return json_schema_to_gbnf(self.text)


# The output constraint of a request: the line grammar, a JSON schema, or none.
Constraint = DialogueGrammar | JsonSchema
