"""What the generation tests share: generate.py's config against a loopback server, the requests and slots a
script of answers must produce, and a generate.py run killed mid-write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from omegaconf import DictConfig

from erc.llm.sampling import derive_seed
from erc.paths import PROJECT_ROOT

from helpers.config import compose_config
from helpers.loopback_tgi import ScriptedDialogues

SEED = 7  # a base seed whose derived seeds hit every scripted answer kind in a few slots


def make_cfg(tmp_path: Path, url: str, *overrides: str) -> DictConfig:
    """generate.py's config against the TGI server at ``url``: IEMOCAP, :data:`SEED`, writing under ``tmp_path``,
    with retries fast enough for tests."""
    return compose_config("generate", [
        "llm=tgi", f"llm.url={url}", "benchmark=iemocap", f"seed={SEED}", f"paths.data_dir={tmp_path}/data",
        f"paths.synthetic_dir={tmp_path}/data/synthetic", "llm.backoff_s=0.01", "llm.backoff_max_s=0.05", *overrides])


def out_dir(tmp_path: Path, source: str = "nat") -> Path:
    """Where generate() writes: <paths.synthetic_dir>/iemocap_<source>."""
    return tmp_path / "data" / "synthetic" / f"iemocap_{source}"


def expected_slots(n: int, max_attempts: int, balanced: bool) -> dict[int, int]:
    """slot -> accepted attempt, from the script: what the pipeline must find, no more, no less."""
    accepted = {"valid"} if balanced else {"valid", "valid_without_target"}
    found = {}
    for slot in range(n):
        for attempt in range(max_attempts):
            if ScriptedDialogues.kind(derive_seed(SEED, slot, attempt)) in accepted:
                found[slot] = attempt
                break
    return found


def expected_requests(n: int, max_attempts: int, balanced: bool) -> int:
    found = expected_slots(n, max_attempts, balanced)
    return sum(found[s] + 1 if s in found else max_attempts for s in range(n))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def kill_once_written(command: list[str], requests_path: Path, lines: int) -> None:
    """Start ``command`` (a generate.py run) and SIGKILL it as soon as ``requests_path`` holds ``lines`` lines, while
    it is still running (asserted: a run that ends first would test nothing)."""
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if requests_path.is_file() and requests_path.read_bytes().count(b"\n") >= lines:
            break
        time.sleep(0.01)
    assert process.poll() is None, f"generate.py ended before the kill: {process.stderr.read().decode()[-2000:]}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
