"""`make data`'s download code against a real HTTP server on loopback serving fixture files."""

import functools
import hashlib
import http.server
import re
import threading

import pytest

from erc.data import DataError
from erc.data.download import RemoteFile, fetch


@pytest.fixture()
def mirror(tmp_path):
    """Serve ``tmp_path/www`` as ``<repo>/<commit>/<path>`` on 127.0.0.1; yields (root folder, base URL, hits)."""
    root = tmp_path / "www"
    root.mkdir()
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def _publish(root, body: bytes) -> RemoteFile:
    remote = RemoteFile("declare-lab/MELD", "abc123", "data/MELD/dev_sent_emo.csv", "meld/dev_sent_emo.csv",
                        hashlib.sha256(body).hexdigest())
    target = root / remote.repo / remote.commit / remote.path
    target.parent.mkdir(parents=True)
    target.write_bytes(body)
    return remote


def test_download_verifies_checksum_and_skips_verified_copies(tmp_path, mirror):
    root, base, hits = mirror
    remote = _publish(root, b"Sr No.,Utterance\n1,hi\n")
    path = fetch(remote, tmp_path / "data", base)
    assert path.read_bytes() == b"Sr No.,Utterance\n1,hi\n"
    assert len(hits) == 1
    fetch(remote, tmp_path / "data", base)
    assert len(hits) == 1  # already present and verified: no second request


def test_checksum_mismatch_saves_nothing(tmp_path, mirror):
    root, base, _ = mirror
    remote = _publish(root, b"tampered")
    bad = RemoteFile(remote.repo, remote.commit, remote.path, remote.dest, "0" * 64)
    with pytest.raises(DataError, match=re.escape("checksum mismatch for meld/dev_sent_emo.csv")):
        fetch(bad, tmp_path / "data", base)
    assert not (tmp_path / "data").exists()          # no file, and no empty folder that looks like a copy


def test_missing_remote_file_is_a_clear_error(tmp_path, mirror):
    _, base, _ = mirror
    remote = RemoteFile("x/y", "c0ffee", "nope.csv", "meld/nope.csv", None)
    with pytest.raises(DataError, match=r"x/y/c0ffee/nope.csv: download failed \(HTTP Error 404"):
        fetch(remote, tmp_path / "data", base)
