"""Resume after a crash: SIGKILL a real ``generate.py`` mid-run against the loopback TGI server,
tear its last line, rerun: exact count, no duplicate fingerprint, no lost record, nothing finished
asked again."""

from __future__ import annotations

import json
import subprocess
import sys

from erc.data.labels import label_set
from erc.paths import PROJECT_ROOT

from helpers.generation import SEED, expected_requests, expected_slots, kill_once_written, out_dir, read_jsonl
from helpers.loopback_tgi import LoopbackTGI, ScriptedDialogues

N = 40


def command(url: str, tmp_path) -> list[str]:
    return [sys.executable, str(PROJECT_ROOT / "generate.py"), "llm=tgi", f"llm.url={url}", "benchmark=iemocap",
            f"n_dialogues={N}", f"seed={SEED}", "llm.concurrency=4", f"paths.data_dir={tmp_path}/data",
            f"hydra.run.dir={tmp_path}/hydra"]


def test_sigkill_mid_run_then_rerun_loses_nothing(tmp_path):
    requests_path = out_dir(tmp_path) / "requests.jsonl"
    with LoopbackTGI(ScriptedDialogues(label_set("iemocap")), latency_s=0.05) as server:
        kill_once_written(command(server.url, tmp_path), requests_path, 12)
        answered_before_kill = len(server.answered)
        before = read_jsonl(requests_path)
        assert 12 <= len(before) < expected_requests(N, 3, balanced=False)
        # A crash in the middle of a write leaves a torn last line.
        with open(requests_path, "a") as handle:
            handle.write(json.dumps(before[-1])[:57])

        rerun = subprocess.run(command(server.url, tmp_path), cwd=PROJECT_ROOT, capture_output=True, text=True,
                               timeout=120)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert "torn record" in rerun.stdout + rerun.stderr  # reported, not fatal
        asked_again = {body["parameters"]["seed"] for body in server.answered[answered_before_kill:]}

    after = read_jsonl(requests_path)
    assert len(after) == expected_requests(N, 3, balanced=False)
    assert len({r["fingerprint"] for r in after}) == len(after)
    assert after[:len(before)] == before  # every record written before the kill is kept, unchanged
    assert not asked_again & {r["seed"] for r in before}  # nothing finished was asked again
    # Lost at most the requests in flight at the kill (llm.concurrency=4).
    assert answered_before_kill - len(before) <= 4
    dialogues = read_jsonl(out_dir(tmp_path) / "dialogues.jsonl")
    assert {d["meta"]["dialogue"]: d["meta"]["attempt"] for d in dialogues} == expected_slots(N, 3, balanced=False)
