"""The project's one data model for conversations, whatever file format they came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from erc.errors import DataError, MissingDataError

Split = Literal["train", "dev", "test"]

SPLITS: tuple[str, ...] = ("train", "dev", "test")

__all__ = ["SPLITS", "DataError", "Dialogue", "MissingDataError", "Utterance"]


@dataclass
class Utterance:
    """One turn. ``label`` is a canonical lower-case emotion name of the benchmark's label set."""

    speaker: str
    text: str
    label: str
    sentiment: str | None = None
    id: str | None = None


@dataclass
class Dialogue:
    """An ordered conversation: a MELD dialogue, an EmoryNLP scene, an IEMOCAP session dialogue or
    a generated dialogue. ``benchmark`` names the label set its labels come from."""

    id: str
    utterances: list[Utterance]
    benchmark: str
    split: str
    source: str = "org"
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.utterances)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``*.jsonl`` (see :mod:`erc.data.formats.synthetic_jsonl`)."""
        return asdict(self)
