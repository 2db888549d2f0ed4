"""`make demo` end to end, small: real embedded generation, a real 9-job Hydra multirun, real evaluation.

The README's main command is `make demo` (= `python -m erc.demo`); this runs the same module with fewer
generated dialogues and MELD dialogues, so that the whole pipeline is exercised in a few minutes. Its benchmark
folder is a slice of real MELD in the release's own CSV format (the first dialogues of each split): the quality
report then encodes and fits its probe on ~2,000 MELD utterances instead of all 13,700 (minutes on 2 CPU cores when
the embedding cache is cold), while every step still reads MELD as a user's copy has it. The demo run twice (a
rerun resumes) is a slow test; the fast suite runs it once and checks that a rerun runs the same command lines into
the same folders, each entry point's own resume being tested in its own module."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra.core.global_hydra import GlobalHydra

from erc.demo import CLASSIFIERS, DATASETS, train_commands
from erc.paths import PROJECT_ROOT
from erc.training.validation import validate_train_config

from helpers.config import compose_config

# MELD dialogues per split in the demo's benchmark folder: enough for the 8 the jobs train and test on
# (--limit-dialogues) and for a probe that reads emotion from text in the quality report.
SLICE = {"train": 120, "dev": 20, "test": 40}


@pytest.fixture(scope="module")
def meld_slice(tmp_path_factory: pytest.TempPathFactory, benchmark_data: Path) -> Path:
    """A benchmark folder holding ``meld/{train,dev,test}_sent_emo.csv``: the first :data:`SLICE` dialogues (by
    Dialogue_ID) of each real MELD file, every column and row of theirs as released."""
    root = tmp_path_factory.mktemp("benchmark")
    (root / "meld").mkdir()
    for split, n in SLICE.items():
        name = f"{split}_sent_emo.csv"
        reader = csv.DictReader(io.StringIO((benchmark_data / "meld" / name).read_text(encoding="utf-8-sig"),
                                            newline=""))
        rows = list(reader)
        keep = set(sorted({int(row["Dialogue_ID"]) for row in rows})[:n])
        with (root / "meld" / name).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=reader.fieldnames)
            writer.writeheader()
            writer.writerows(row for row in rows if int(row["Dialogue_ID"]) in keep)
    return root


def run_demo(benchmark_data, out) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    run = subprocess.run([sys.executable, "-m", "erc.demo", "--data-dir", str(benchmark_data), "--out", str(out),
                          "--dialogues", "6", "--limit-dialogues", "8"],
                         cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def demo(meld_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One run of the demo into a fresh folder, shared by the tests that read what it wrote: ``out``, the finished
    ``run``, the ``benchmark`` folder and its files' bytes from before the run."""
    benchmark_files = {p: p.read_bytes() for p in (meld_slice / "meld").iterdir()}
    out = tmp_path_factory.mktemp("demo") / "demo"
    return SimpleNamespace(out=out, run=run_demo(meld_slice, out), benchmark=meld_slice,
                           benchmark_files=benchmark_files)


def train_results(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "train").glob("*/results.json"))]


def test_demo_runs_the_whole_pipeline_and_lists_its_artefacts(demo):
    out, run, benchmark_data = demo.out, demo.run, demo.benchmark
    for name in ("meld_nat", "meld_bal"):
        card = json.loads((out / "data" / "synthetic" / name / "card.json").read_text())
        assert card["counts"]["kept"] >= 4 and (out / "data" / "synthetic" / name / "label_distribution.png").is_file()
    results = train_results(out)
    assert sorted((r["identity"]["classifier"], r["identity"]["source"]) for r in results) == sorted(
        (c, s) for c in ("compm", "emoone", "todkat") for s in ("org", "nat", "bal"))
    assert all({"test/meld_org/wf1", "test/meld_nat/wf1", "test/meld_bal/wf1"} <= set(r["metrics"]) for r in results)
    assert all(r["resumes"] == [] for r in results)                 # a first run: every step trained here
    runs = list((out / "checkpoints").glob("*/wandb/offline-run-*"))                 # in each job's own folder
    assert len(runs) == 9 and all(str(r) in run.stdout for r in runs)               # and listed at the end

    evaluation = out / "evaluate"
    for artefact in ("table3.md", "table3.csv", "table4.md", "table4.csv", "friedman.json", "cd_diagram.png"):
        assert (evaluation / artefact).is_file(), artefact
        assert str(evaluation / artefact) in run.stdout          # the closing listing names every artefact
    assert len(json.loads((evaluation / "friedman.json").read_text())["comparisons"]["pairs"]) == 6
    assert (out / "stats" / "label_distribution_meld.png").is_file()
    # the quality report scores both generated sets against MELD; its table is printed and its file listed
    report = out / "quality" / "quality.md"
    assert report.is_file() and str(report) in run.stdout
    assert all(name in report.read_text() for name in ("meld_nat", "meld_bal")) and "kappa" in run.stdout.lower()
    for name in ("meld_nat", "meld_bal"):
        assert "quality" in json.loads((out / "data" / "synthetic" / name / "card.json").read_text())
    # the benchmark copy is only read: the generated sets live in the demo folder, MELD is linked in
    assert (out / "data" / "meld").resolve() == (benchmark_data / "meld").resolve()
    assert not (out / "data" / "synthetic").is_symlink()
    assert {p: p.read_bytes() for p in (benchmark_data / "meld").iterdir()} == demo.benchmark_files


def demo_commands(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> list[list[str]]:
    """The command lines ``python -m erc.demo argv`` runs, in order (recorded, not run)."""
    import erc.demo

    commands: list[list[str]] = []
    monkeypatch.setattr(erc.demo, "run", lambda step, args: commands.append(list(args)) or 0.0)
    monkeypatch.setattr(erc.demo, "run_parallel",
                        lambda step, lines, jobs, logs: commands.extend(map(list, lines)) or 0.0)
    erc.demo.main(argv)
    return commands


def test_a_demo_rerun_runs_the_same_commands_into_the_same_folders(meld_slice, tmp_path, monkeypatch):
    """What lets a rerun of the demo resume: it runs the very same command lines, and every folder they write (the
    generated sets, the job folders, the checkpoints, the Hydra run folders) is a fixed place under ``--out``, never a
    new timestamped one. That each entry point then resumes from its folder is tested on its own (generation:
    test_generation_reliability.py::test_a_rerun_with_nothing_to_run_rewrites_no_file; training: test_experiment_
    config.py::test_a_rerun_that_changes_only_the_progress_bar_and_workers_resumes_instead_of_retraining); the whole
    demo run twice is the slow test below."""
    out = tmp_path / "demo"
    argv = ["--data-dir", str(meld_slice), "--out", str(out), "--dialogues", "6", "--limit-dialogues", "8"]
    first = demo_commands(monkeypatch, argv)
    assert demo_commands(monkeypatch, argv) == first
    scripts = [c[1] if c[1].endswith(".py") else c[2] for c in first]
    assert scripts == ["erc.data.stats", "generate.py", "generate.py", "quality.py", "train.py", "train.py",
                       "train.py", "evaluate.py"]
    written = {}
    for command in first:
        for arg in command:
            key, _, value = arg.partition("=")
            if key in ("paths.data_dir", "hydra.run.dir", "hydra.sweep.dir", "checkpoint_dir", "sweep"):
                written.setdefault(key, set()).add(value)
    assert written == {"paths.data_dir": {str(out / "data")}, "checkpoint_dir": {str(out / "checkpoints")},
                       "hydra.sweep.dir": {str(out / "train")}, "sweep": {str(out / "train")},
                       "hydra.run.dir": {str(out / "generate" / "natural"), str(out / "generate" / "balanced"),
                                         str(out / "quality"), str(out / "evaluate")}}
    assert first[0][first[0].index("--out") + 1] == str(out / "stats")


@pytest.mark.slow  # the whole demo a second time (about a minute on 2 CPU cores); the fast test above and the
# entry points' own rerun tests it names cover what makes the rerun resume
def test_a_demo_rerun_resumes_rewriting_no_generated_file_and_reusing_every_training_step(demo):
    out = demo.out
    results = train_results(out)
    generated = {p: p.stat().st_mtime_ns for p in (out / "data" / "synthetic").rglob("*.jsonl")}
    run_demo(demo.benchmark, out)
    assert {p: p.stat().st_mtime_ns for p in generated} == generated
    again = train_results(out)
    assert [r["metrics"] for r in again] == [r["metrics"] for r in results]
    assert len(list((out / "checkpoints").glob("*/wandb/offline-run-*"))) == 9   # each job's one run, not one per rerun
    for r in again:
        reused = {entry["step"] for entry in r["resumes"] if entry.get("reused")}
        steps = {"finetune", "test"} | ({"pretrain", "pretrain/test"} if r["identity"]["source"] != "org" else set())
        assert reused == steps, (r["identity"], r["resumes"])


@pytest.mark.parametrize("backbone,schedule,limit,context", [("tiny", "demo", 250, 512),
                                                             ("minilm", "demo_pretrained", 60, 64)])
def test_demo_backbone_option_trains_every_job_with_its_schedule(backbone, schedule, limit, context, benchmark_data,
                                                                 tmp_path):
    """``make demo BACKBONE=minilm``: step 4's jobs, one by one, compose and pass train.py's checks with the pretrained
    encoder's schedule, slice and context cap (tiny keeps the random-weight ones); every one of the 9 jobs runs once."""
    jobs = []
    for command in train_commands(sys.executable, backbone, None, tmp_path, [f"paths.data_dir={benchmark_data}"], []):
        assert command[1:3] == ["train.py", "-m"]
        overrides = command[3:]
        assert {f"classifier.backbone={backbone}", f"schedule={schedule}", f"data.limit_dialogues={limit}"} <= set(
            overrides)
        if backbone != "tiny" and "classifier=todkat" in overrides:
            assert "schedule.batch_size=4" in overrides
        swept = {o.split("=")[0]: o.split("=")[1].split(",")
                 for o in overrides if o.startswith(("classifier=", "data="))}
        for classifier in swept["classifier"]:
            for data in swept["data"]:
                job = [f"classifier={classifier}" if o.startswith("classifier=") else f"data={data}" if o.startswith(
                    "data=") else o for o in overrides]
                GlobalHydra.instance().clear()
                cfg = compose_config("train", job, return_hydra_config=True)
                validate_train_config(cfg)
                assert cfg.classifier.backbone == backbone and cfg.schedule.name == schedule
                assert cfg.classifier.get("max_length", context) == context
                jobs.append((classifier, data))
    assert sorted(jobs) == sorted((c, d) for c in CLASSIFIERS.split(",") for d in DATASETS.split(","))
