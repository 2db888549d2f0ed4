"""erc.io (atomic writes, torn-line JSONL) and erc.locks (one process per folder), with real processes
and real OS limits rather than simulated failures."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from erc.errors import DataError, LockError, UserError
from erc.io import append_jsonl, read_jsonl, write_atomic, write_folder_atomic, write_text_atomic
from erc.locks import FolderLock
from erc.paths import PROJECT_ROOT


def test_atomic_write_respects_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = write_text_atomic(tmp_path / "results.json", "{}")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640          # group-readable, as open() would make it
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_full_disk_is_a_user_error_naming_the_file_and_keeps_the_old_version(tmp_path):
    """A real write failure: the process may not write files beyond 1 kB (RLIMIT_FSIZE; EFBIG like ENOSPC)."""
    target = tmp_path / "card.json"
    target.write_text('{"old": true}')
    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(PROJECT_ROOT)!r})
        from erc.errors import UserError
        from erc.io import write_json_atomic
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
        try:
            write_json_atomic({str(target)!r}, {{"x": "y" * 100000}})
        except UserError as err:
            print(err)
            sys.exit(3)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert str(target) in done.stdout and "could not write" in done.stdout
    assert target.read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]   # no temporary file left behind


def test_a_failing_writer_leaves_no_temporary_file(tmp_path):
    def half_then_fail(handle) -> None:
        handle.write("half a file")
        raise ZeroDivisionError("a bug in the writer")
    with pytest.raises(ZeroDivisionError):
        write_atomic(tmp_path / "x.json", half_then_fail)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_appears_whole_or_not_at_all_and_a_folder_won_by_another_process_is_kept(tmp_path):
    def half_then_fail(tmp: Path) -> None:
        (tmp / "vocab.json").write_text("{}")
        raise ZeroDivisionError("a bug in the writer")
    with pytest.raises(ZeroDivisionError):
        write_folder_atomic(tmp_path / "tokenizer", half_then_fail)
    assert list(tmp_path.iterdir()) == []                         # no half folder, no temporary one
    write_folder_atomic(tmp_path / "tokenizer", lambda tmp: (tmp / "vocab.json").write_text("ours"))
    write_folder_atomic(tmp_path / "tokenizer", lambda tmp: (tmp / "vocab.json").write_text("a late rank's"))
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer"]
    assert (tmp_path / "tokenizer" / "vocab.json").read_text() == "ours"   # the rename onto a full folder lost


def test_read_jsonl_drops_a_torn_last_line_and_repairs(tmp_path, caplog):
    path = tmp_path / "runs.jsonl"
    append_jsonl(path, {"a": 1})
    with open(path, "a") as handle:
        handle.write('{"b": ')
    assert read_jsonl(path, repair=True) == [{"a": 1}]
    assert "torn record" in caplog.text
    append_jsonl(path, {"c": 3})
    assert read_jsonl(path) == [{"a": 1}, {"c": 3}]


def test_read_jsonl_names_a_corrupt_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text('{"a": 1}\nnot json\n')
    with pytest.raises(DataError, match=r"runs.jsonl: line 2"):
        read_jsonl(path)
    assert issubclass(DataError, UserError)


HOLD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from erc.locks import FolderLock
    with FolderLock(sys.argv[1], what="generation"):
        print("held", flush=True)
        time.sleep(120)
""")


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(PROJECT_ROOT)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_naming_the_holder_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    proc = _holder(tmp_path)
    try:
        open_files = len(os.listdir("/proc/self/fd"))
        with pytest.raises(LockError) as refused:
            FolderLock(tmp_path, what="generation").acquire()
        assert len(os.listdir("/proc/self/fd")) == open_files        # a refusal keeps no file open (retry loops)
        message = str(refused.value)
        assert f"pid {proc.pid}" in message and socket.gethostname() in message and str(tmp_path) in message
        since = json.loads((tmp_path / ".lock").read_text())["since"]
        assert f"since {since})" in message and "another generation" in message
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == proc.pid   # the file stays, the lock does not
    deadline = time.monotonic() + 10
    while True:
        try:
            with FolderLock(tmp_path, what="generation"):
                break
        except LockError:
            assert time.monotonic() < deadline, "the lock outlived its killed holder"
            time.sleep(0.1)


def _held_elsewhere(folder: Path) -> bool:
    """Whether another open file description (what another process would have) is refused ``folder``'s lock."""
    fd = os.open(folder / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with FolderLock(tmp_path, what="training"), FolderLock(tmp_path, what="training"):
        pass
    with FolderLock(tmp_path, what="training"):          # released after the outer exit
        pass


def test_each_nested_entry_is_counted_and_only_the_outermost_exit_releases(tmp_path):
    """A multirun's jobs enter the lock in turn inside the outer one: each nested exit must leave it held, and the
    next nested entry must be let in, not refused by this process's own lock."""
    with FolderLock(tmp_path, what="training"):
        for _ in range(3):
            with FolderLock(tmp_path, what="training"), FolderLock(tmp_path, what="training"):
                assert _held_elsewhere(tmp_path)
            assert _held_elsewhere(tmp_path)
    assert not _held_elsewhere(tmp_path)


def test_a_new_holder_replaces_a_longer_record_left_by_an_earlier_one(tmp_path):
    """The holder's record is rewritten whole: a longer one left behind (an earlier holder on a host with a long
    name) leaves none of its tail, so a refused process reads this holder's pid and host, not '?'."""
    (tmp_path / ".lock").write_text(json.dumps({"pid": 1, "host": "h" * 300, "since": "2026-01-01 00:00:00",
                                                "what": "generation"}))
    with FolderLock(tmp_path, what="training"):
        holder = json.loads((tmp_path / ".lock").read_text())
    assert (holder["pid"], holder["host"], holder["what"]) == (os.getpid(), socket.gethostname(), "training")


def test_a_folder_released_and_entered_again_is_locked_again(tmp_path):
    """A multirun's next job enters the folder after the previous job released it: that entry must take the kernel
    lock again (another process is refused), not be counted as a nested entry of a hold already given up. Each
    release closes its file, so a long multirun keeps no descriptor per job."""
    open_files = len(os.listdir("/proc/self/fd"))
    with FolderLock(tmp_path, what="training"):
        pass
    assert not _held_elsewhere(tmp_path)
    with FolderLock(tmp_path, what="training"):
        assert _held_elsewhere(tmp_path)
    assert not _held_elsewhere(tmp_path)
    assert len(os.listdir("/proc/self/fd")) == open_files


@pytest.mark.parametrize("umask, mode", [(0o000, 0o666), (0o002, 0o664), (0o022, 0o644)],
                         ids=["umask-000", "umask-002", "umask-022"])
def test_the_lock_file_is_as_open_as_the_umask_allows(tmp_path, umask, mode):
    """In a folder shared by a group (umask 002) another member's process must be able to open ``.lock`` to be
    refused by the lock, naming its holder, not by a permission error; nobody gets execute bits."""
    old = os.umask(umask)
    try:
        with FolderLock(tmp_path, what="generation"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / ".lock").stat().st_mode & 0o777 == mode


@pytest.mark.parametrize("first", ["absolute", "relative", "link"])
def test_the_same_folder_by_another_path_is_the_same_lock(tmp_path, monkeypatch, first):
    """A multirun names its folder once absolute, once relative or through a symlink: every spelling is a nested
    entry of this process's hold (not refused by its own lock), whichever spelling took the folder first (before its
    .lock file existed), and the hold ends with the outermost exit."""
    folder = tmp_path / "out"
    folder.mkdir()
    (tmp_path / "link").symlink_to(folder, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    spellings = {"absolute": folder, "relative": "out", "link": tmp_path / "link"}
    with FolderLock(spellings.pop(first), what="training"):
        with FolderLock(spellings.popitem()[1], what="training"), FolderLock(spellings.popitem()[1], what="training"):
            assert _held_elsewhere(folder)
        assert _held_elsewhere(folder)
    assert not _held_elsewhere(folder)


def test_the_release_frees_the_folder_even_while_a_forked_child_lives_on(tmp_path):
    """A forked child (a DataLoader worker, a multiprocessing pool) inherits the lock's file descriptor; the
    holder's exit must still free the folder for the next process, not leave it locked until the child ends."""
    lock = FolderLock(tmp_path, what="training").acquire()
    child = os.fork()
    if child == 0:                                                    # the child: keep the inherited descriptor
        time.sleep(30)
        os._exit(0)
    try:
        lock.release()
        assert not _held_elsewhere(tmp_path)
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
