"""The request store: ``requests.jsonl``, append-only, one line per finished request.

Every LLM answer is kept raw with its fingerprint, so that (a) a rerun skips what is done, (b) a
SIGKILL loses at most the requests in flight (each line is flushed as soon as it is written), and
(c) parsing can be improved and rerun without a single new LLM call. A crash mid-write leaves a
torn last line: it is detected, reported and cut off before the next append, never fatal.

One fingerprint is one request, so the store holds each at most once. A file with repeats (two
processes on one folder before the lock existed, or files concatenated by hand) is read with the
first record of each fingerprint kept (the file's order, so the choice is reproducible) and a warning
saying how many were ignored; the file itself is left as it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from erc.data.schema import DataError
from erc.io import read_jsonl
from erc.llm.retry import LLMRunError

log = logging.getLogger(__name__)


def canonical_hash(payload: Any, length: int = 32) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace): equal inputs, equal hash."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def fingerprint(*, backend: str, model: str, template_hash: str, prompt: str | list[dict[str, str]],
                parameters: dict[str, Any], seed: int, grammar: str | None, route: str = "") -> str:
    """Identity of one request: same fingerprint, same request, so the answer can be reused. ``prompt`` is the
    text sent or the chat messages; ``grammar`` the constraint's identity (line grammar or JSON schema).

    ``route`` is hashed only when it is ``"chat"``: the other routes (``/v1/completions``, TGI ``/generate``, the
    embedded model) were the only ones when stores were first written, and their fingerprints must stay what they
    were so that those stores stay resumable; a chat request differs from a completions one of the same text."""
    payload = {"backend": backend, "model": model, "template_hash": template_hash, "prompt": prompt,
               "parameters": parameters, "seed": seed, "grammar": grammar}
    if route == "chat":
        payload["route"] = route
    return canonical_hash(payload)


def read_records(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """All request records of ``path`` (none if absent); a torn last line is dropped (and cut off with
    ``repair``, see :func:`erc.io.read_jsonl`). A line that is not a request record is a :class:`DataError`."""
    records = read_jsonl(path, repair=repair)
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict) or "fingerprint" not in record:
            raise DataError(f"{path}: record {number}: not a request record (no field 'fingerprint')")
    by_fingerprint: dict[str, dict[str, Any]] = {}
    for record in records:
        by_fingerprint.setdefault(record["fingerprint"], record)
    first = list(by_fingerprint.values())  # dicts keep insertion order: the file's order
    if len(first) < len(records):
        log.warning("%s: %d record(s) repeat the fingerprint of an earlier one (the same request made twice, "
                    "e.g. by two processes on one out_dir); the first of each is used, the repeats ignored",
                    path, len(records) - len(first))
    return first


class RequestStore:
    """Appends records to ``requests.jsonl``, one flushed line each."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records = read_records(self.path, repair=True)
        self.by_fingerprint = {r["fingerprint"]: r for r in self.records}
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (held open: one flushed line per append)
        self._failed = False

    def append(self, record: dict[str, Any]) -> None:
        """Write one record and flush it to the OS: a killed process keeps it (no fsync: that
        guards only against power loss and would cap throughput at the disk's sync rate). A write the OS refuses (a
        full disk) stops the task naming the file; the line it may have cut is repaired by the next run."""
        try:
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._handle.flush()
        except OSError as err:
            self._failed = True
            raise LLMRunError(f"{self.path}: could not append an answer ({err.strerror or err}). Free disk space and "
                              f"rerun the same command to resume: nothing stored before is lost") from err
        self.records.append(record)
        self.by_fingerprint[record["fingerprint"]] = record

    def close(self) -> None:
        """Close the file; after a refused write, the text still buffered is dropped (the error was raised)."""
        try:
            self._handle.close()
        except OSError:
            if not self._failed:
                raise
