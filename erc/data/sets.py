"""A generated set's folder as files: ``dialogues.jsonl`` (every kept dialogue with its split) and
``train/dev/test.jsonl``, written only when their bytes change (so whatever watches them sees no new data on a rerun
with nothing new), and the folder of a filtered variant beside it. Shared by post-processing and every filter."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from erc.data.schema import SPLITS, Dialogue
from erc.io import write_if_changed

log = logging.getLogger(__name__)


def jsonl_bytes(dialogues: list[Dialogue]) -> bytes:
    """The synthetic JSONL format (see :mod:`erc.data.formats.synthetic_jsonl`) as bytes."""
    return "".join(json.dumps(d.to_dict(), ensure_ascii=False) + "\n" for d in dialogues).encode()


def write_set(folder: Path, dialogues: list[Dialogue]) -> None:
    """A set's ``dialogues.jsonl`` (all, with their split) and ``train/dev/test.jsonl``."""
    write_if_changed(folder / "dialogues.jsonl", jsonl_bytes(dialogues))
    for split in SPLITS:
        write_if_changed(folder / f"{split}.jsonl", jsonl_bytes([d for d in dialogues if d.split == split]))


def filtered_folder(folder: Path, filter_name: str) -> Path:
    """``.../synthetic/meld_bal`` -> ``.../synthetic/meld_bal_probe``."""
    return folder.parent / f"{folder.name}_{filter_name}"


def write_removed(folder: Path, removed: list[dict]) -> None:
    """A filtered set's ``removed.jsonl``: one line per dialogue the filter removed, with why."""
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in removed)
    write_if_changed(folder / "removed.jsonl", lines.encode())


def write_filtered_set(folder: Path, kept: list[Dialogue], removed: list[dict], step: str) -> bool:
    """Write the filtered set ``folder`` (its dialogues and ``removed.jsonl``) unless the filter kept nothing: an
    empty set would fail every later reader (training blames its split ratios, the quality report fails for every
    set), so none is written, a set left there by an earlier run is removed, and the warning names ``step``.
    True when the set was written."""
    if kept:
        write_set(folder, kept)
        write_removed(folder, removed)
        return True
    log.warning("%s: the %s step kept none of %d dialogue(s), so no set is written (see its rule in the card of %s); "
                "loosen its threshold or leave it out", folder, step, len(removed), folder.name.rsplit("_", 1)[0])
    if folder.is_dir():
        shutil.rmtree(folder)
        log.warning("%s: removed the set an earlier run had written there", folder)
    return False
