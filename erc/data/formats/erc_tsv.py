"""The ERC TSV layout of CoMPM's ``dataset/`` folder, in which EmoryNLP and IEMOCAP copies circulate.

One utterance per line, ``speaker<TAB>text<TAB>label[<TAB>sentiment]``, a blank line between
dialogues, an optional header line (``Speaker<TAB>Utterance<TAB>Emotion...``). A line with more
than the expected fields (one IEMOCAP line joins two transcripts with a tab) is read as speaker =
first field, label = last field (or the one before a sentiment), text = the fields between.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

from erc.data.labels import canonical_label, skipped_labels
from erc.data.schema import DataError, Dialogue, Utterance
from erc.data.text import normalise_text, read_text

HEADER_LABELS = {"emotion", "label", "emotions"}
SENTIMENTS = {"negative", "neutral", "positive"}


def read_erc_tsv(path: Path, split: str, benchmark: str,
                 skipped: Counter[str] | None = None) -> list[Dialogue]:
    """Read one ERC TSV file. Labels outside the benchmark's set that are listed as skip labels
    (IEMOCAP's ``xxx``, ``sur``...) are dropped and counted into ``skipped``; others raise."""
    skip = skipped_labels(benchmark)
    dialogues: list[Dialogue] = []
    current: list[Utterance] = []

    def close() -> None:
        if current:
            dialogues.append(Dialogue(id=f"{split}_{len(dialogues)}", utterances=list(current),
                                      benchmark=benchmark, split=split, source="org"))
            current.clear()

    for number, line in enumerate(io.StringIO(read_text(path, "utf-8-sig"), newline=None), start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            close()
            continue
        fields = line.split("\t")
        where = f"{path}: line {number}"
        if len(fields) < 3:
            raise DataError(f"{where}: expected 'speaker<TAB>text<TAB>label', found {len(fields)} field(s)")
        if number == 1 and fields[2].strip().lower() in HEADER_LABELS:
            continue
        sentiment = None
        if len(fields) >= 4 and fields[-1].strip().lower() in SENTIMENTS:
            sentiment = fields[-1].strip().lower()
            fields = fields[:-1]
        raw_label = fields[-1].strip()
        if raw_label.lower() in skip:
            if skipped is not None:
                skipped[raw_label.lower()] += 1
            continue
        current.append(Utterance(
            speaker=normalise_text(fields[0]),
            text=normalise_text(" ".join(fields[1:-1])),
            label=canonical_label(benchmark, raw_label, f"{where}: field 'label'"),
            sentiment=sentiment,
        ))
    close()
    return dialogues
