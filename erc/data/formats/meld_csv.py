"""MELD's ``{train,dev,test}_sent_emo.csv`` (declare-lab/MELD, ``data/MELD/``).

Rows are keyed by ``(Dialogue_ID, Utterance_ID)`` as integers: ``Sr No.`` repeats and resets,
Utterance_IDs have gaps, and Dialogue_ID 60 is absent from train, so neither row order nor
``Sr No.`` is trusted.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from erc.data.labels import canonical_label
from erc.data.schema import DataError, Dialogue, Utterance
from erc.data.text import normalise_text, read_text

FILES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
REQUIRED = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")
SENTIMENTS = ("negative", "neutral", "positive")


def _int_field(row: dict[str, str], name: str, where: str) -> int:
    try:
        return int(row[name])
    except (TypeError, ValueError):
        raise DataError(f"{where}: field {name!r} must be an integer, got {row.get(name)!r}") from None


def read_meld_csv(path: Path, split: str, benchmark: str = "meld") -> list[Dialogue]:
    """Read one MELD CSV into dialogues ordered by Dialogue_ID, utterances by Utterance_ID."""
    rows: dict[tuple[int, int], Utterance] = {}
    reader = csv.DictReader(io.StringIO(read_text(path, "utf-8-sig"), newline=""))
    if reader.fieldnames is None:
        raise DataError(f"{path}: the file is empty; download it again with `make data`")
    missing = [c for c in REQUIRED if c not in reader.fieldnames]
    if missing:
        raise DataError(f"{path}: line 1: missing column(s) {missing}; found {reader.fieldnames}")
    for row in reader:
        where = f"{path}: line {reader.line_num}"
        if None in row or any(row[c] is None for c in REQUIRED):
            raise DataError(f"{where}: wrong number of fields (expected {len(reader.fieldnames)})")
        key = (_int_field(row, "Dialogue_ID", where), _int_field(row, "Utterance_ID", where))
        if key in rows:
            raise DataError(f"{where}: duplicate (Dialogue_ID, Utterance_ID) = {key}")
        sentiment = row["Sentiment"].strip().lower()
        if sentiment not in SENTIMENTS:
            raise DataError(f"{where}: field 'Sentiment': unknown value {row['Sentiment']!r}; "
                            f"valid: {', '.join(SENTIMENTS)}")
        rows[key] = Utterance(
            speaker=normalise_text(row["Speaker"]),
            text=normalise_text(row["Utterance"]),
            label=canonical_label(benchmark, row["Emotion"], f"{where}: field 'Emotion'"),
            sentiment=sentiment,
            id=f"dia{key[0]}_utt{key[1]}",
        )
    dialogues: dict[int, list[Utterance]] = {}
    for (dia, _utt), utterance in sorted(rows.items()):
        dialogues.setdefault(dia, []).append(utterance)
    return [
        Dialogue(id=f"{split}_dia{dia}", utterances=utts, benchmark=benchmark, split=split, source="org")
        for dia, utts in dialogues.items()
    ]
