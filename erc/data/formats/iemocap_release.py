"""The IEMOCAP release tree: ``Session{1..5}/dialog/transcriptions/*.txt`` and
``Session{1..5}/dialog/EmoEvaluation/*.txt`` (USC SAIL; not redistributable).

Transcription lines look like ``Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.`` and
evaluation lines like ``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5, 2.5, 2.5]``.
The speaker is the gender letter of the turn id (``F`` / ``M``), as in the ERC copies.
Only the six ERC labels are kept; every other turn is counted by reason: its raw label (``xxx``,
``sur``, ``fea``, ``dis``, ``oth``), ``unlabelled`` (a transcribed turn with no evaluation, e.g.
``..._MXX0`` overlaps) — nothing is dropped silently.

Splits: the sessions in ``files.test_sessions`` (Session 5) are test. Of the other dialogues,
sorted by id, every ``files.dev_every``-th (the 10th, 20th, ...) is dev: 12 of 120 dialogues,
the size of the usual 6-way dev split. The usual split's exact dev membership is not published
with the release, so it cannot be reproduced from the release tree.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from pathlib import Path

from erc.data.labels import benchmark_info, canonical_label, skipped_labels
from erc.data.schema import DataError, Dialogue, Utterance
from erc.data.text import normalise_text, read_text

TURN = re.compile(r"^(?P<id>Ses\d{2}[FM]_\S+_(?P<speaker>[FM])\d{3})\s+"
                  r"\[(?P<start>[\d.]+)-(?P<end>[\d.]+)\]:\s*(?P<text>.*)$")
EVALUATION = re.compile(r"^\[[\d.]+\s*-\s*[\d.]+\]\t(?P<id>\S+)\t(?P<label>\w+)\t")


def session_dirs(root: Path) -> list[Path]:
    """The ``Session*`` folders of a release tree at ``root`` (or ``root/IEMOCAP_full_release``)."""
    for base in (root, root / "IEMOCAP_full_release"):
        found = sorted(p for p in base.glob("Session[0-9]") if (p / "dialog").is_dir())
        if found:
            return found
    return []


def _read_evaluations(path: Path) -> dict[str, str]:
    labels: dict[str, str] = {}
    for line in io.StringIO(read_text(path), newline=None):
        match = EVALUATION.match(line)
        if match:
            labels[match["id"]] = match["label"]
    return labels


def _split_of(dialogue_id: str, order: dict[str, int], test_sessions: set[int], dev_every: int) -> str:
    if int(dialogue_id[3:5]) in test_sessions:
        return "test"
    return "dev" if (order[dialogue_id] + 1) % dev_every == 0 else "train"


def read_iemocap_release(root: Path, split: str, benchmark: str = "iemocap",
                         skipped: Counter[str] | None = None) -> list[Dialogue]:
    """Read the dialogues of ``split`` from an IEMOCAP release tree."""
    files = benchmark_info(benchmark)["files"]
    test_sessions = {int(s) for s in files.get("test_sessions", [5])}
    dev_every = int(files.get("dev_every", 10))
    skip = skipped_labels(benchmark)
    transcripts = sorted(
        path for session in session_dirs(root) for path in (session / "dialog" / "transcriptions").glob("*.txt")
    )
    if not transcripts:
        raise DataError(f"{root}: no Session*/dialog/transcriptions/*.txt found")
    trainable = sorted(p.stem for p in transcripts if int(p.stem[3:5]) not in test_sessions)
    order = {name: i for i, name in enumerate(trainable)}
    counts = skipped if skipped is not None else Counter()
    dialogues: list[Dialogue] = []
    for path in transcripts:
        if _split_of(path.stem, order, test_sessions, dev_every) != split:
            continue
        evaluation = path.parent.parent / "EmoEvaluation" / path.name
        if not evaluation.is_file():
            raise DataError(f"{path}: its evaluation file {evaluation} is missing")
        labels = _read_evaluations(evaluation)
        turns: list[tuple[float, Utterance]] = []
        for line in io.StringIO(read_text(path), newline=None):
            if not line.strip():
                continue
            match = TURN.match(line.strip())
            if match is None:
                counts["unlabelled"] += 1  # overlap/non-turn lines such as '..._MXX0 [..]: ..'
                continue
            raw = labels.get(match["id"])
            if raw is None:
                counts["unlabelled"] += 1
                continue
            if raw.lower() in skip:
                counts[raw.lower()] += 1
                continue
            label = canonical_label(benchmark, raw, f"{evaluation}: turn {match['id']}")
            turns.append((float(match["start"]), Utterance(
                speaker=match["speaker"], text=normalise_text(match["text"]), label=label, id=match["id"])))
        turns.sort(key=lambda item: item[0])
        if turns:
            dialogues.append(Dialogue(id=path.stem, utterances=[u for _, u in turns], benchmark=benchmark,
                                      split=split, source="org"))
    return dialogues
