"""Step 4 of ``make demo`` as parallel streams: one multirun per classifier, run by a small pool of real subprocesses.

The pool is tested with ``python -c`` commands that sleep and write what they saw, so that it runs in seconds;
tests/test_demo.py runs the whole demo through it."""

import json
import sys
from pathlib import Path

import pytest

from erc.demo import CLASSIFIERS, DATASETS, available_cores, run_parallel, train_commands
from erc.errors import UserError

# Records when it ran and the thread settings it got, in the file named by argv[1]; sleeps argv[2] seconds.
RECORDER = """
import json, os, sys, time
start = time.time()
time.sleep(float(sys.argv[2]))
print("stdout of", sys.argv[1]); print("stderr of", sys.argv[1], file=sys.stderr)
json.dump({"start": start, "end": time.time(), "omp": os.environ.get("OMP_NUM_THREADS"),
           "mkl": os.environ.get("MKL_NUM_THREADS")}, open(sys.argv[1], "w"))
"""


def recorder(record: Path, seconds: float = 0.6) -> list[str]:
    return [sys.executable, "-c", RECORDER, str(record), str(seconds)]


def most_at_once(records: list[dict]) -> int:
    """The most commands that were running at one instant (one always runs at its own start)."""
    return max(sum(r["start"] <= s["start"] < r["end"] for r in records) for s in records)


def test_pool_runs_at_most_jobs_at_once_in_order_each_with_its_own_log_and_threads(tmp_path, monkeypatch, capfd):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    records = [tmp_path / f"record{i}.json" for i in range(5)]
    logs = [tmp_path / "train" / f"stream{i}.log" for i in range(5)]

    run_parallel("4/6", [recorder(r) for r in records], 2, logs)

    seen = [json.loads(r.read_text()) for r in records]
    assert most_at_once(seen) == 2                                    # side by side, never more than 2
    assert max(s["start"] for s in seen[:2]) < min(s["start"] for s in seen[2:])   # the first given start first
    threads = str(max(1, available_cores() // 2))
    assert {(s["omp"], s["mkl"]) for s in seen} == {(threads, threads)}
    for record, log in zip(records, logs, strict=True):
        assert log.read_text().split() == ["stdout", "of", str(record), "stderr", "of", str(record)]
    console = capfd.readouterr().out
    assert not any(f"of {record}" in console for record in records)   # the streams' output stays in their logs
    for log in logs:
        assert console.count(f"> {log} 2>&1") == 1                    # one line as it starts ...
        assert f"[{log.stem}] ended after" in console and f"exit status 0, log {log}" in console   # ... one at its end


def test_pool_keeps_the_users_omp_num_threads(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    records = [tmp_path / "a.json", tmp_path / "b.json"]
    run_parallel("4/6", [recorder(r, 0) for r in records], 2, [tmp_path / "a.log", tmp_path / "b.log"])
    assert {(json.loads(r.read_text())["omp"], json.loads(r.read_text())["mkl"]) for r in records} == {("3", None)}


def test_one_job_streams_to_the_console_with_every_core_and_writes_no_log(tmp_path, monkeypatch, capfd):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    records = [tmp_path / "a.json", tmp_path / "b.json"]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    run_parallel("4/6", [recorder(r, 0.3) for r in records], 1, logs)
    seen = [json.loads(r.read_text()) for r in records]
    assert most_at_once(seen) == 1 and {s["omp"] for s in seen} == {str(available_cores())}
    out, err = capfd.readouterr()
    assert f"stdout of {records[0]}" in out and f"stderr of {records[1]}" in err
    assert not any(log.exists() for log in logs)


def test_a_failing_command_names_its_log_shows_its_tail_and_lets_the_running_finish(tmp_path, capfd):
    failing = [sys.executable, "-c", "import sys, time; time.sleep(0.2); "
                                     "[print(f'line {i}', flush=True) for i in range(60)]; sys.exit(3)"]
    running, queued = tmp_path / "running.json", tmp_path / "queued.json"
    logs = [tmp_path / "train" / f"{name}.log" for name in ("broken", "slow", "queued")]

    with pytest.raises(UserError) as raised:
        run_parallel("4/6", [failing, recorder(running, 1.5), recorder(queued, 0)], 2, logs)

    message = str(raised.value)
    assert "step 4/6 failed" in message and "[broken] exit status 3" in message and str(logs[0]) in message
    assert "rerun" in message
    console = capfd.readouterr().out
    tail = console[console.index(f"the last lines of {logs[0]}"):].splitlines()
    assert "line 59" in tail and "line 20" in tail and "line 19" not in tail   # its last 40 lines
    assert running.is_file()                  # the command running beside it was left to finish ...
    assert not queued.exists() and not logs[2].exists()              # ... and no further one started


def test_a_progress_bars_redraws_show_as_its_last_state_in_the_tail(tmp_path, capfd):
    bar = [sys.executable, "-c", "import sys; sys.stderr.write('\\r 10%|#\\r 50%|#####\\r 90%|#########\\n'); "
                                 "print('boom'); sys.exit(1)"]
    logs = [tmp_path / "bar.log", tmp_path / "other.log"]
    with pytest.raises(UserError):
        run_parallel("4/6", [bar, recorder(tmp_path / "other.json", 0)], 2, logs)
    console = capfd.readouterr().out
    tail = console[console.index("the last lines of"):].splitlines()
    assert " 90%|#########" in tail and "boom" in tail and not any("10%" in line for line in tail)


@pytest.mark.parametrize("backbone,schedule,limit,own", [
    ("tiny", "demo", 250, {"compm": [], "emoone": [], "todkat": []}),
    ("minilm", "demo_pretrained", 60, {"compm": ["classifier.max_length=64"], "emoone": ["classifier.max_length=64"],
                                       "todkat": ["schedule.batch_size=4"]})])
def test_train_commands_are_one_multirun_per_classifier_with_its_own_overrides(backbone, schedule, limit, own,
                                                                              tmp_path):
    commands = train_commands("python", backbone, None, tmp_path, ["paths.data_dir=/d"], ["verbose=true"])
    assert [command[:4] for command in commands] == [
        ["python", "train.py", "-m", f"classifier={c}"] for c in CLASSIFIERS.split(",")]   # CoMPM, the longest, first
    assert CLASSIFIERS == "compm,emoone,todkat"
    shared = [f"data={DATASETS}", f"classifier.backbone={backbone}", f"schedule={schedule}",
              f"data.limit_dialogues={limit}", "paths.data_dir=/d", f"checkpoint_dir={tmp_path}/checkpoints",
              f"hydra.sweep.dir={tmp_path}/train", "hydra.sweep.subdir=${classifier.name}-${hydra.job.num}",
              "verbose=true"]
    assert {c: command[4:] for c, command in zip(CLASSIFIERS.split(","), commands, strict=True)} == {
        c: [*overrides, *shared] for c, overrides in own.items()}
