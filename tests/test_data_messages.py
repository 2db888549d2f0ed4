"""Damaged copies of the real benchmark files give a DataError naming file, line and what to do, not a raw
UnicodeDecodeError or a silent empty dataset; ``python -m erc.data.stats`` reports a user error as one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from erc.data import DataError, MissingDataError, load_benchmark
from erc.data.download import MELD
from erc.paths import PROJECT_ROOT


def insert_byte(path: Path, line: int, column: int, byte: bytes = b"\xff") -> int:
    """Insert ``byte`` before ``column`` (1-based) of ``line`` (1-based) of ``path``; returns its byte offset."""
    raw = path.read_bytes()
    start = 0
    for _ in range(line - 1):
        start = raw.index(b"\n", start) + 1
    offset = start + column - 1
    path.write_bytes(raw[:offset] + byte + raw[offset:])
    return offset


def copy_real(benchmark_data: Path, relative: str, data_dir: Path) -> Path:
    target = data_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(benchmark_data / relative, target)
    target.chmod(0o644)
    return target


# (file under the data folder, dataset name, split): one of each on-disk format the loaders read
REAL_FILES = [
    ("meld/dev_sent_emo.csv", "meld", "dev"),
    ("emorynlp/emotion-detection-dev.json", "emorynlp", "dev"),
    ("emorynlp/tsv/EMORY_dev.txt", "emorynlp", "dev"),
]


@pytest.mark.parametrize("relative,name,split", REAL_FILES)
def test_a_non_utf8_byte_in_a_real_file_names_file_line_and_offset(benchmark_data, tmp_path, relative, name, split):
    if not (benchmark_data / relative).is_file():
        pytest.skip(f"{benchmark_data / relative} is not in this copy of the benchmarks")
    path = copy_real(benchmark_data, relative, tmp_path)
    load_benchmark(name, split, tmp_path)  # the clean copy loads
    offset = insert_byte(path, line=57, column=4)
    with pytest.raises(DataError) as err:
        load_benchmark(name, split, tmp_path)
    message = str(err.value)
    assert message.startswith(f"{path}: line 57, column 4 (byte offset {offset}): byte 0xff is not valid UTF-8")
    assert "make data" in message and "iconv" in message and "\n" not in message


def test_a_non_utf8_byte_in_a_generated_set_names_its_line(tmp_path, fixtures_dir):
    folder = tmp_path / "synthetic" / "meld_bal"
    shutil.copytree(fixtures_dir / "synthetic" / "meld_bal", folder)
    offset = insert_byte(folder / "train.jsonl", line=2, column=30, byte=b"\xe9")  # Latin-1 'é'
    with pytest.raises(DataError, match=rf"train.jsonl: line 2, column 30 \(byte offset {offset}\): byte 0xe9"):
        load_benchmark("meld_bal", "train", tmp_path, tmp_path / "synthetic")


def test_a_header_only_benchmark_csv_is_an_error_naming_the_file(benchmark_data, tmp_path):
    path = copy_real(benchmark_data, "meld/dev_sent_emo.csv", tmp_path)
    path.write_bytes(path.read_bytes().split(b"\n", 1)[0] + b"\n")
    with pytest.raises(DataError, match=r"no meld dev dialogues in it .*make data") as err:
        load_benchmark("meld", "dev", tmp_path)
    assert str(err.value).startswith(f"{path}: ")
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"dev_sent_emo.csv: the file is empty"):
        load_benchmark("meld", "dev", tmp_path)


def stats_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "erc.data.stats", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=120)


def test_stats_for_an_absent_benchmark_is_one_line(tmp_path):
    done = stats_command("--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), "meld")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: no meld train data found in {tmp_path / 'meld'}") and "make data" in line
    done = stats_command("--data-dir", str(tmp_path), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    expected = f"error: no benchmark data found under {tmp_path}; run `make data` or set ERC_DATA_DIR"
    assert done.stderr.strip().splitlines() == [expected]
    assert not (tmp_path / "out").exists()


def test_stats_on_a_damaged_copy_is_one_line(benchmark_data, tmp_path):
    for split in ("train", "dev", "test"):
        copy_real(benchmark_data, f"meld/{split}_sent_emo.csv", tmp_path)
    offset = insert_byte(tmp_path / "meld" / "test_sent_emo.csv", line=3, column=2)
    done = stats_command("--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), "meld")
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {tmp_path / 'meld' / 'test_sent_emo.csv'}: line 3, column 2 (byte offset {offset})")


def test_the_missing_benchmark_message_is_one_line(tmp_path):
    with pytest.raises(MissingDataError) as err:
        load_benchmark("emorynlp", "test", tmp_path)
    assert "\n" not in str(err.value)
    assert str(tmp_path / "emorynlp" / "emotion-detection-tst.json") in str(err.value)


def test_a_failed_download_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "erc.data.download", "--data-dir", str(tmp_path),
                           "--base-url", "http://127.0.0.1:9"], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          timeout=120)  # nothing listens on port 9: the connection is refused at once
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: http://127.0.0.1:9/declare-lab/MELD/") and "download failed" in line
    assert f"nothing was saved to {tmp_path / 'meld' / 'train_sent_emo.csv'}" in line
    # offline, where to get the files by hand and where to put them; and no empty meld/ left behind
    assert line.endswith(f"Offline? download train_sent_emo.csv and its sibling files from https://github.com/"
                         f"declare-lab/MELD/tree/{MELD[1]}/data/MELD by hand and put them in {tmp_path / 'meld'}/ (or "
                         f"set ERC_DATA_DIR to a folder holding meld/)")
    assert list(tmp_path.iterdir()) == []
