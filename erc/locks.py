"""One process per output folder: an advisory lock that dies with its holder.

Two ``generate.py`` on one ``out_dir`` would pay for every request twice, two ``train.py`` on one job
folder would train it twice. :class:`FolderLock` takes ``fcntl.flock`` on ``<folder>/.lock``; the kernel
drops it when the process ends, however it ends (SIGKILL, OOM, a lost SLURM node's process), so a crash
never leaves a stale lock. The file holds the holder's pid, host and start time for the refusal message;
a leftover file with no lock on it means nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from erc.errors import LockError


class FolderLock:
    """``with FolderLock(folder, what="generation"):`` holds ``folder`` for this process or raises
    :class:`LockError` naming the holder. Re-entrant within a process (a multirun's jobs run in turn)."""

    _held: ClassVar[dict[Path, int]] = {}

    def __init__(self, folder: Path | str, what: str) -> None:
        self.folder = Path(folder)
        self.path = self.folder / ".lock"
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        key = self.path.resolve() if self.path.exists() else self.folder.resolve() / ".lock"
        if key in FolderLock._held:
            FolderLock._held[key] += 1
            self._key = key
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockError(f"{self.folder} is in use by another {self.what} (pid {holder.get('pid', '?')} on "
                            f"host {holder.get('host', '?')}, since {holder.get('since', '?')}): wait for it to "
                            f"finish or stop it; two processes on one folder would do the same work twice") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S"), "what": self.what}).encode())
        self._fd, self._key = fd, key
        FolderLock._held[key] = 1
        return self

    def release(self) -> None:
        count = FolderLock._held.get(self._key, 0)
        if count > 1:
            FolderLock._held[self._key] = count - 1
            return
        FolderLock._held.pop(self._key, None)
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
                 ) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, str]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        return {}
