"""``make data``: fetch the public benchmark files into ``<data_dir>`` and verify their checksums.

MELD's CSVs come from declare-lab/MELD and EmoryNLP's JSON files from emorynlp/emotion-detection,
each at a pinned commit. IEMOCAP is licensed by USC SAIL and may not be redistributed: the command
prints how to request it. Files already present with the right checksum are not fetched again; a
download goes to a temporary file and is renamed only after its checksum matched, so an
interrupted run never leaves a truncated file behind, and a failed one no empty folder (which would look like a
benchmark copy to the next reader). Offline, the error says where to download the files by hand and where to put
them.

    python -m erc.data.download [--data-dir DIR] [--base-url URL]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tqdm import tqdm

from erc.data.load import HOW_TO_GET, default_data_dir
from erc.data.schema import DataError
from erc.errors import exit_on_user_error
from erc.io import sha256_of, write_atomic

GITHUB_RAW = "https://raw.githubusercontent.com"
MELD = ("declare-lab/MELD", "2d2011b409d3ca2d7e94460cd007d434b1d0a102")
EMORYNLP = ("emorynlp/emotion-detection", "289b967a34556f0d86b52ea36571c2a0c90740ae")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a public repository at a pinned commit, and where it goes under ``data_dir``."""

    repo: str
    commit: str
    path: str
    dest: str
    sha256: str | None  # None: no trusted copy was available to pin; the hash is printed instead

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.repo}/{self.commit}/{self.path}"

    def by_hand(self, data_dir: Path) -> str:
        """Where to get this file and its siblings without ``make data``, and where to put them."""
        folder, _, name = self.path.rpartition("/")
        return (f"download {name} and its sibling files from "
                f"https://github.com/{self.repo}/tree/{self.commit}/{folder} by hand "
                f"and put them in {(data_dir / self.dest).parent}/ (or set ERC_DATA_DIR to a folder holding "
                f"{self.dest.rpartition('/')[0]}/)")


FILES: tuple[RemoteFile, ...] = (
    RemoteFile(*MELD, "data/MELD/train_sent_emo.csv", "meld/train_sent_emo.csv",
               "d2fa2d6529cf03cac2989efec05c9b27d8fd2f4c8fc5974c7ae88aa537fa02db"),
    RemoteFile(*MELD, "data/MELD/dev_sent_emo.csv", "meld/dev_sent_emo.csv",
               "2e89c6f8aa182d6f62f8c6331aece905ac7273ca4999660bfb5213e1d0370c1c"),
    RemoteFile(*MELD, "data/MELD/test_sent_emo.csv", "meld/test_sent_emo.csv",
               "8d37103938f7067600839fe29d5a114a6cd1bcdafb75bec101e06464c5006888"),
    # The train JSON (about 4 MB) could not be checked when this list was written: its hash is
    # printed after download so that users can pin it.
    RemoteFile(*EMORYNLP, "json/emotion-detection-trn.json", "emorynlp/emotion-detection-trn.json", None),
    RemoteFile(*EMORYNLP, "json/emotion-detection-dev.json", "emorynlp/emotion-detection-dev.json",
               "177f0b8ae5442045ea60e6f7940e14b1a8c15c704201f01da1ba74943f99086e"),
    RemoteFile(*EMORYNLP, "json/emotion-detection-tst.json", "emorynlp/emotion-detection-tst.json",
               "2da84b0bffbc9da2f3b9de8016c2d3ae5478e6ccb26d473313368373b427dedc"),
)


def fetch(remote: RemoteFile, data_dir: Path, base_url: str = GITHUB_RAW, timeout: float = 60.0) -> Path:
    """Download one file unless a verified copy is present; raise DataError on a checksum mismatch."""
    dest = data_dir / remote.dest
    if dest.is_file() and (remote.sha256 is None or sha256_of(dest) == remote.sha256):
        print(f"ok       {dest} (already present)")
        return dest
    url = remote.url(base_url)
    digest = hashlib.sha256()

    def download(out: IO[bytes]) -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                    for block in iter(lambda: response.read(1 << 16), b""):
                        out.write(block)
                        digest.update(block)
                        bar.update(len(block))
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
            raise DataError(f"{url}: download failed ({err}); nothing was saved to {dest}. Offline? "
                            f"{remote.by_hand(data_dir)}") from None
        if remote.sha256 is not None and digest.hexdigest() != remote.sha256:
            raise DataError(f"{url}: checksum mismatch for {remote.dest}: expected sha256 {remote.sha256}, "
                            f"got {digest.hexdigest()}; the file was not saved")

    new_folders = [f for f in (dest.parent, *dest.parent.parents) if not f.exists()]
    try:
        write_atomic(dest, download, binary=True)   # the temporary file is removed whatever happens
    except BaseException:
        for folder in new_folders:                  # innermost first; one holding another download is kept
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    note = "verified" if remote.sha256 else f"sha256 {digest.hexdigest()} (not pinned)"
    print(f"fetched  {dest} ({note})")
    return dest


def download_all(data_dir: Path, base_url: str = GITHUB_RAW) -> list[Path]:
    """Fetch every public benchmark file, then say how to obtain IEMOCAP."""
    paths = [fetch(remote, data_dir, base_url) for remote in FILES]
    print(f"\nIEMOCAP: {HOW_TO_GET['iemocap']}")
    return paths


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    """The command line; a failed download or checksum is one ``error:`` line and exit status 2."""
    parser = argparse.ArgumentParser(prog="python -m erc.data.download", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $ERC_DATA_DIR or ./data")
    parser.add_argument("--base-url", default=os.environ.get("ERC_DOWNLOAD_BASE_URL", GITHUB_RAW),
                        help="mirror serving <repo>/<commit>/<path> (default: GitHub raw)")
    args = parser.parse_args(argv)
    download_all(args.data_dir or default_data_dir(), args.base_url)


if __name__ == "__main__":
    main()
