"""The project's own JSONL dialogue format, written by ``generate.py`` and readable by every loader.

One JSON object per line::

    {"id": "meld_bal_000123", "benchmark": "meld", "source": "bal", "split": "train",
     "utterances": [{"speaker": "Joey", "text": "Hey!", "label": "joy"}, ...],
     "meta": {...}}

``utterances`` is required and not empty; each utterance needs ``speaker``, ``text`` and a canonical
``label`` of the benchmark. ``id``, ``split``, ``source`` and ``meta`` are optional (the reader fills
them from its arguments); ids must be unique within a file, since splits, caches and dedup key on them.
Files are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path

from erc.data.labels import canonical_label
from erc.data.names import is_source
from erc.data.schema import DataError, Dialogue, Utterance
from erc.data.text import read_text
from erc.io import write_jsonl_atomic


def _require(record: dict, name: str, kind: type, where: str):
    if name not in record:
        raise DataError(f"{where}: missing field {name!r}")
    if not isinstance(record[name], kind):
        raise DataError(f"{where}: field {name!r} must be {kind.__name__}, got {type(record[name]).__name__}")
    return record[name]


def read_dialogues_jsonl(path: Path, benchmark: str, split: str, source: str) -> list[Dialogue]:
    """Read a dialogue JSONL file, validating every record; labels must be ``benchmark``'s."""
    path = Path(path)
    dialogues: list[Dialogue] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(io.StringIO(read_text(path), newline=None), start=1):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: invalid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object")
        items = _require(record, "utterances", list, where)
        if not items:
            raise DataError(f"{where}: field 'utterances' is empty; a dialogue needs at least one utterance "
                            "(remove the line, or regenerate the set)")
        utterances = []
        for u, item in enumerate(items):
            at = f"{where}: utterances[{u}]"
            if not isinstance(item, dict):
                raise DataError(f"{at}: expected an object with speaker, text, label")
            utterances.append(Utterance(
                speaker=_require(item, "speaker", str, at),
                text=_require(item, "text", str, at),
                label=canonical_label(benchmark, _require(item, "label", str, at), f"{at}: field 'label'"),
                sentiment=item.get("sentiment"),
                id=item.get("id"),
            ))
        record_source = record.get("source", source)
        if not is_source(record_source):
            raise DataError(f"{where}: field 'source' must be org, nat, bal or a filtered source (<nat|bal>_<filter>), "
                            f"got {record_source!r}")
        dialogue_id = str(record.get("id", f"{path.stem}_{number}"))
        if dialogue_id in first_line:
            raise DataError(f"{where}: field 'id': dialogue id {dialogue_id!r} is already used on line "
                            f"{first_line[dialogue_id]}; ids must be unique (remove the duplicate, or regenerate "
                            "the set)")
        first_line[dialogue_id] = number
        dialogues.append(Dialogue(
            id=dialogue_id, utterances=utterances, benchmark=benchmark,
            split=record.get("split", split), source=record_source, meta=record.get("meta", {}),
        ))
    return dialogues


def write_dialogues_jsonl(path: Path, dialogues: Iterable[Dialogue]) -> None:
    """Write dialogues as JSONL atomically, so a crash never leaves a half-written file."""
    write_jsonl_atomic(path, (dialogue.to_dict() for dialogue in dialogues))
