"""Writing files so that a reader never sees half of one, and reading append-only JSONL logs.

Every file the project writes in place (results, cards, splits, caches) goes through
:func:`write_atomic`: a temporary file beside the target, then a rename, the temporary file removed
whatever happens. The result gets the mode an ordinary ``open()`` would give it (``0666`` less the
umask), so colleagues sharing a group folder can read results; ``mkstemp`` alone would leave ``0600``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from erc.errors import DataError, UserError

log = logging.getLogger(__name__)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path | str, write: Callable[[IO[Any]], None], binary: bool = False) -> Path:
    """Create ``path`` through ``write(handle)`` on a temporary file in the same folder and a rename.

    A full disk or another OS error is a :class:`UserError` naming the file; the target is left as it
    was and the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            write(handle)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        cause = os_error_of(err)
        if cause is None:
            raise
        raise UserError(f"{path}: could not write ({cause.strerror or cause}); the previous version, if any, is "
                        f"unchanged. Free disk space or fix the folder's permissions and rerun.") from err
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def os_error_of(err: BaseException) -> OSError | None:
    """The OS error (a full disk, a file size limit, a permission) behind ``err``: itself, or the one a library
    wrapped (``torch.save`` turns a failed write into a ``RuntimeError`` naming no file), else None."""
    seen: BaseException | None = err
    while seen is not None and not isinstance(seen, OSError):
        seen = seen.__cause__ or seen.__context__
    return seen


def write_folder_atomic(folder: Path | str, write: Callable[[Path], None]) -> Path:
    """Create the folder ``folder`` through ``write(tmp)`` on a temporary folder beside it and a rename, so a
    reader never sees it half written. When another process created ``folder`` first (two DDP ranks building the
    same cache), theirs is kept. The temporary folder is removed whatever happens."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        write(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, folder)
    except OSError as err:
        if not folder.is_dir():       # not a lost race: a real failure
            raise UserError(f"{folder}: could not write ({err.strerror or err}). Free disk space or fix the "
                            f"folder's permissions and rerun.") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`write_atomic`)."""
    return write_atomic(path, lambda handle: handle.write(text))


def write_json_atomic(path: Path | str, payload: Any) -> Path:
    """Write ``payload`` as indented JSON atomically (see :func:`write_atomic`)."""
    return write_text_atomic(path, json.dumps(payload, indent=2, default=str) + "\n")


def write_jsonl_atomic(path: Path | str, records: Iterable[Any]) -> Path:
    """Write one JSON document per line atomically (see :func:`write_atomic`)."""
    def write(handle: IO[str]) -> None:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return write_atomic(path, write)


def read_jsonl(path: Path | str, repair: bool = False) -> list[Any]:
    """Every complete record of an append-only JSONL log (none if it is absent).

    A record is written as one line ending in a newline, so a write cut short by a crash leaves a last
    line without one: that torn line is dropped with a warning and, with ``repair``, cut off so the next
    append starts cleanly. A complete line that is not JSON is a :class:`DataError` naming the line."""
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    records = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            records.append(json.loads(raw))
        except ValueError as err:
            raise DataError(f"{path}: line {number}: corrupt record ({err}); move the file away or delete "
                            f"that line") from None
    if tail:
        log.warning("%s: line %d is a torn record from an interrupted run (%d bytes); dropped",
                    path, len(lines) + 1, len(tail))
        if repair:
            with open(path, "r+b") as handle:
                handle.truncate(len(data) - len(tail))
    return records


def append_jsonl(path: Path | str, record: Any) -> None:
    """Append one record (one line) to a small log such as ``runs.jsonl``; a write the OS refuses (a full disk) is a
    :class:`UserError` naming the file."""
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    except OSError as err:
        raise UserError(f"{path}: could not append a record ({err.strerror or err}); free disk space and rerun") \
            from err


def unreadable_reason(path: Path) -> str | None:
    """Why the torch file (a checkpoint, a cache written by ``torch.save``) at ``path`` cannot be loaded (truncated, a
    damaged entry), or None when it can.

    ``torch.save`` writes a zip archive: a truncated file has no central directory, and every entry carries a CRC,
    which ``testzip`` checks without unpickling anything (one read of the file)."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return f"not a complete checkpoint ({err})"
    return f"entry {damaged} is damaged (CRC mismatch)" if damaged else None


def move_aside(path: Path) -> Path:
    """Move the unreadable file ``path`` to ``<path>.corrupt`` (replacing an older one), so that a rerun rebuilds it
    instead of failing on it again, and the damaged copy stays for a look; returns where it went."""
    aside = path.with_name(path.name + ".corrupt")
    path.replace(aside)
    return aside


def sha256_of(path: Path | str) -> str:
    """sha256 of a file's content, read in 1 MiB blocks (downloads are verified with it, job keys built on it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` (atomically) unless the file already holds exactly these bytes;
    True when it was written."""
    if path.is_file() and path.read_bytes() == data:
        return False
    write_atomic(path, lambda handle: handle.write(data), binary=True)
    return True
