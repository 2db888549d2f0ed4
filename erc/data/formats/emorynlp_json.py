"""EmoryNLP's ``emotion-detection-{trn,dev,tst}.json`` (emorynlp/emotion-detection, ``json/``).

Episodes -> scenes -> utterances; a scene is a dialogue. ``speakers`` is a list (a line can be
said by two or three people). The speaker is the first name listed, as in the CoMPM TSV copy,
which is the only full copy of train there is: train, dev and test then treat speakers alike.
IDs have gaps, so list order is the order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from erc.data.labels import canonical_label
from erc.data.schema import DataError, Dialogue, Utterance
from erc.data.text import normalise_text, read_text

FILES = {"train": "emotion-detection-trn.json", "dev": "emotion-detection-dev.json",
         "test": "emotion-detection-tst.json"}


def _field(record: dict[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in record:
        raise DataError(f"{where}: missing field {name!r}")
    value = record[name]
    if not isinstance(value, kind):
        raise DataError(f"{where}: field {name!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def read_emorynlp_json(path: Path, split: str, benchmark: str = "emorynlp") -> list[Dialogue]:
    """Read one EmoryNLP JSON file into one dialogue per scene."""
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
    dialogues: list[Dialogue] = []
    for e, episode in enumerate(_field(data, "episodes", list, str(path))):
        for s, scene in enumerate(_field(episode, "scenes", list, f"{path}: episodes[{e}]")):
            scene_where = f"{path}: episodes[{e}].scenes[{s}]"
            scene_id = _field(scene, "scene_id", str, scene_where)
            utterances = []
            for u, record in enumerate(_field(scene, "utterances", list, scene_where)):
                where = f"{path}: utterance {record.get('utterance_id', f'{scene_id}[{u}]')}"
                speakers = _field(record, "speakers", list, where)
                if not speakers:
                    raise DataError(f"{where}: field 'speakers' is empty")
                utterances.append(Utterance(
                    speaker=normalise_text(str(speakers[0])),
                    text=normalise_text(_field(record, "transcript", str, where)),
                    label=canonical_label(benchmark, _field(record, "emotion", str, where),
                                          f"{where}: field 'emotion'"),
                    id=record.get("utterance_id"),
                ))
            dialogues.append(Dialogue(id=scene_id, utterances=utterances, benchmark=benchmark,
                                      split=split, source="org"))
    return dialogues
