"""``make demo``: the paper's whole pipeline, small and offline, in one command.

1. statistics and label-distribution plots of the benchmarks found;
2. generate a small natural and a small balanced MELD set with the embedded LLM (``llm=local``);
3. score both generated sets against MELD (label fidelity, usefulness, diversity, distance: ``quality.py``);
4. pretrain / fine-tune / test CoMPM, EmoOne and TODKAT on MELD Org, Nat and Bal (one Hydra multirun per
   classifier, run side by side, W&B offline): tiny random-weight backbones by default (minutes; the tables show
   the machinery, not learning), or ``--backbone minilm``, the installed pretrained all-MiniLM-L6-v2 fine-tuned on
   a smaller MELD slice (``schedule=demo_pretrained``, CoMPM's and EmoOne's context cut to 64 tokens), so the tables
   come from models that learned (its time on 2 CPU cores: docs/training.md#training-learns);
5. Table III, Table IV and the exact Friedman test over that sweep;
6. print where every artefact is.

Each step is the real command line a researcher would type (``generate.py``, ``train.py -m``,
``quality.py``, ``evaluate.py``), run in a subprocess with its progress bars and warnings shown (``--verbose``: every
log line, as each job's log file has them). Step 4 runs its three multiruns ``--jobs`` at a time (default: one per CPU
core, at most 3), each process with ``OMP_NUM_THREADS`` = cores // jobs (unless set already): on 2 cores, two
one-thread processes side by side train these small models about twice as fast as one process with two OpenMP
threads, and the OpenMP threads of separate processes would spin-wait against each other. When more than one
runs at a time, each writes to its own log, ``<out>/train/<classifier>.log`` (their progress bars would interleave
on the console); the console gets a line when each starts and ends, and the end of the log of one that fails.
Everything goes under ``--out`` (default ``outputs/demo``): the benchmark folder is linked into ``<out>/data`` and
the generated sets go to ``<out>/data/synthetic`` (``paths.synthetic_dir``), so the benchmark copy itself (often
read-only) is never written to, and the demo's sets never mix with the user's own in ``synthetic/``. Rerunning
resumes: finished generation requests and training phases are not redone.

    python -m erc.demo [--data-dir DIR] [--out DIR] [--dialogues N] [--backbone tiny|minilm|NAME]
                       [--limit-dialogues N] [--jobs N] [--verbose]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from erc.data import DataError, MissingDataError, default_data_dir, load_benchmark
from erc.data.download import download_all
from erc.errors import UserError, exit_on_user_error
from erc.paths import PROJECT_ROOT

CLASSIFIERS = "compm,emoone,todkat"
DATASETS = "meld,meld_nat,meld_bal"


@dataclass(frozen=True)
class Training:
    """How the demo trains a kind of backbone: the schedule, the MELD dialogues per split it defaults to, the context
    cap (``classifier.max_length``) of CoMPM and EmoOne (None: the classifier's own, 512) and TODKAT's dialogues per
    step (None: the schedule's batch size)."""

    schedule: str
    limit_dialogues: int
    context_length: int | None = None
    dialogues_per_step: int | None = None

    def classifier_overrides(self, classifier: str) -> list[str]:
        """What this training sets for ``classifier`` alone (keys other classifiers do not have, or other values)."""
        if classifier in CONTEXT_CLASSIFIERS.split(",") and self.context_length is not None:
            return [f"classifier.max_length={self.context_length}"]
        if classifier == "todkat" and self.dialogues_per_step is not None:
            return [f"schedule.batch_size={self.dialogues_per_step}"]
        return []


# Random-weight sizes need a high learning rate and many steps to move at all. A pretrained encoder needs a
# fine-tuning rate and costs ~20x more per utterance (minilm vs tiny): CoMPM's and EmoOne's context is cut to the
# last 63 tokens (the target and the turns just before it), which halves their cost and lets them learn from a
# 60-dialogue slice in a few epochs; TODKAT, whose samples are dialogues, takes 4 per step (15 steps an epoch).
# tests/test_training_learns.py trains the same recipe.
CONTEXT_CLASSIFIERS = "compm,emoone"          # the classifiers with a CoM context (classifier.max_length)
RANDOM_BACKBONE = Training(schedule="demo", limit_dialogues=250)
PRETRAINED_BACKBONE = Training(schedule="demo_pretrained", limit_dialogues=60, context_length=64,
                               dialogues_per_step=4)


def training_for(backbone: str) -> Training:
    """The demo's schedule and slice for ``classifier.backbone=backbone``."""
    from erc.models.backbone import LOCAL_SIZES

    return RANDOM_BACKBONE if backbone in LOCAL_SIZES else PRETRAINED_BACKBONE


def train_commands(python: str, backbone: str, limit_dialogues: int | None, out: Path, data_overrides: list[str],
                   verbose: list[str]) -> list[list[str]]:
    """Step 4's command lines: one multirun per classifier, in :data:`CLASSIFIERS` order (the longest first, so that
    a pool of fewer processes than commands finishes evenly), each over MELD Org, Nat, Bal with ``backbone`` and the
    classifier's own settings (a context cap TODKAT has no key for, TODKAT's dialogues per step). They share one
    sweep folder, so their job folders are named ``<classifier>-<job number>``: numbers alone would collide."""
    training = training_for(backbone)
    shared = [f"data={DATASETS}", f"classifier.backbone={backbone}", f"schedule={training.schedule}",
              f"data.limit_dialogues={limit_dialogues or training.limit_dialogues}", *data_overrides,
              f"checkpoint_dir={out}/checkpoints", f"hydra.sweep.dir={out}/train",
              "hydra.sweep.subdir=${classifier.name}-${hydra.job.num}"]
    return [[python, "train.py", "-m", f"classifier={classifier}", *training.classifier_overrides(classifier),
             *shared, *verbose] for classifier in CLASSIFIERS.split(",")]


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask: a container's or ``taskset``'s share), else all."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def thread_env(threads: int) -> dict[str, str]:
    """The environment of a command that shares the cores with others: ``threads`` OpenMP/MKL threads, unless the
    user set ``OMP_NUM_THREADS`` (theirs is kept, and MKL follows it)."""
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(threads)
        env.setdefault("MKL_NUM_THREADS", str(threads))
    return env


@dataclass
class Stream:
    """One running command of :func:`run_parallel`: its log (named after it: ``compm.log`` is ``[compm]``) and
    whether its output goes there or onto the console."""

    command: list[str]
    log: Path
    to_console: bool
    process: subprocess.Popen
    start: float


def start_stream(command: list[str], log: Path, to_console: bool, env: dict[str, str]) -> Stream:
    """Start ``command`` from the project root, its output onto the console or into ``log`` (unbuffered, so the
    log can be followed with ``tail -f`` and its stdout and stderr lines keep their order)."""
    print(f"$ {shlex.join(command)}" + ("" if to_console else f" > {log} 2>&1"), flush=True)
    if to_console:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as sink:            # the child has its own copy of the file descriptor
            process = subprocess.Popen(command, cwd=PROJECT_ROOT, env={**env, "PYTHONUNBUFFERED": "1"},
                                       stdout=sink, stderr=subprocess.STDOUT)
    return Stream(command, log, to_console, process, time.perf_counter())


def log_tail(log: Path, lines: int = 40) -> list[str]:
    """The last ``lines`` lines of ``log`` as a terminal shows them: a progress bar's line redraws itself with
    ``\\r``, so only its last state is kept."""
    text = log.read_bytes().decode(errors="replace").rstrip("\n")     # read_text would turn each \r into a line
    return [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")][-lines:]


def finish_stream(stream: Stream) -> str | None:
    """Print how ``stream`` ended; None when it succeeded, else what failed (after its log's last lines)."""
    status = stream.process.returncode
    name = f"[{stream.log.stem}]"
    print(f"{name} ended after {time.perf_counter() - stream.start:.0f}s, exit status {status}"
          + ("" if stream.to_console else f", log {stream.log}"), flush=True)
    if not status:
        return None
    if stream.to_console:
        return f"{name} exit status {status}; its message is above"
    print(f"--- the last lines of {stream.log}:", *log_tail(stream.log), "---", sep="\n", flush=True)
    return f"{name} exit status {status}; the last lines of its log {stream.log} are above"


def run_parallel(step: str, commands: list[list[str]], jobs: int, logs: list[Path]) -> float:
    """Run the command lines of ``step`` (``4/6``) at most ``jobs`` at a time, in their order (the next starts when
    one ends), each with cores // jobs OpenMP threads (:func:`thread_env`); return the wall seconds. When more than
    one runs at a time, command ``i`` writes to ``logs[i]`` instead of the console (``logs[i]``'s name also names
    it in the lines that say it ended).

    When one fails, no further command starts, but those running are left to finish rather than terminated: their
    finished training phases are then reused by the rerun the error asks for, where a terminated job would lose the
    phase it was in. If this process itself is stopped (Ctrl-C, an exception), the running commands are terminated,
    so that none keeps training (and holding its job's lock) unseen."""
    jobs = min(jobs, len(commands))
    env = thread_env(max(1, available_cores() // jobs))
    pending = [(command, log, jobs == 1) for command, log in zip(commands, logs, strict=True)]
    running: list[Stream] = []
    failures: list[str] = []
    start = time.perf_counter()
    try:
        while running or (pending and not failures):
            while pending and len(running) < jobs and not failures:
                running.append(start_stream(*pending.pop(0), env))
            time.sleep(0.1)
            for stream in [s for s in running if s.process.poll() is not None]:
                running.remove(stream)
                failure = finish_stream(stream)
                if failure:
                    failures.append(failure)
    except BaseException:
        for stream in running:
            stream.process.terminate()
        for stream in running:
            stream.process.wait()
        raise
    if failures:
        raise UserError(f"step {step} failed ({'; '.join(failures)}). "
                        f"Fix it and rerun: finished generation requests and training phases are reused")
    return time.perf_counter() - start


def header(step: str) -> None:
    """Announce a step (``1/6 ...``) once, however many commands it runs."""
    print(f"\n=== {step}", flush=True)


def run(step: str, args: list[str]) -> float:
    """Run one command line of ``step`` (``2/6``) from the project root, streaming its output; return seconds."""
    print(f"$ {shlex.join(args)}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(args, cwd=PROJECT_ROOT)
    if done.returncode:
        raise UserError(f"step {step} failed (exit status {done.returncode}; its message is above). "
                        f"Fix it and rerun: finished generation requests and training phases are reused")
    return time.perf_counter() - start


def ensure_meld(data_dir: Path) -> None:
    """MELD must be readable; when it is not there, try ``make data``'s download (needs the internet)."""
    try:
        load_benchmark("meld", "test", data_dir)
        return
    except MissingDataError as err:
        print(f"MELD not found ({err}); trying to download it (make data) ...")
    try:
        download_all(data_dir)
    except DataError as err:
        raise UserError(f"the demo needs MELD and it could not be downloaded: {err}. Set ERC_DATA_DIR to a "
                        f"folder holding meld/{{train,dev,test}}_sent_emo.csv") from None


def prepare_workspace(data_dir: Path, out: Path) -> Path:
    """``<out>/data`` with ``meld`` linked to the benchmark copy and room for ``synthetic/``."""
    ensure_meld(data_dir)
    workspace = out / "data"
    workspace.mkdir(parents=True, exist_ok=True)
    link = workspace / "meld"
    if link.is_symlink() and link.resolve() != (data_dir / "meld").resolve():
        link.unlink()
    if not link.exists():
        link.symlink_to((data_dir / "meld").resolve(), target_is_directory=True)
    return workspace


def positive_int(text: str) -> int:
    """``--jobs``: a whole number of at least 1 (argparse names the option when this raises)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m erc.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="benchmark folder (default: $ERC_DATA_DIR or ./data)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "outputs" / "demo")
    parser.add_argument("--dialogues", type=int, default=20, help="dialogues to generate per set")
    parser.add_argument("--backbone", default="tiny",
                        help="classifier.backbone of step 4: tiny (random weights, default: ~10 min in all), minilm "
                             "(the installed pretrained all-MiniLM-L6-v2: the models learn; its time on 2 CPU cores: "
                             "docs/training.md) or any value classifier.backbone takes")
    parser.add_argument("--limit-dialogues", type=int, default=None,
                        help=f"MELD dialogues used per split (the full train split takes hours on a CPU); default "
                             f"{RANDOM_BACKBONE.limit_dialogues} for tiny/small, {PRETRAINED_BACKBONE.limit_dialogues} "
                             f"for a pretrained backbone")
    parser.add_argument("--jobs", type=positive_int, default=None,
                        help=f"step 4's multiruns (one per classifier) run at most this many at a time, each with "
                             f"OMP_NUM_THREADS = cores // jobs unless set; more than one at a time: each writes to "
                             f"<out>/train/<classifier>.log (default: the CPU cores available, {available_cores()} "
                             f"here, at most {len(CLASSIFIERS.split(','))})")
    parser.add_argument("--verbose", action="store_true",
                        help="every log line on the console, as in each job's log file (verbose=true)")
    args = parser.parse_args(argv)
    from erc.models.backbone import check_backbone_name

    check_backbone_name(args.backbone, "--backbone")        # before the long generation steps, not after them
    data_dir = (args.data_dir or default_data_dir()).resolve()
    out = args.out.resolve()
    workspace = prepare_workspace(data_dir, out)
    python = sys.executable
    data_overrides = [f"paths.data_dir={workspace}", f"paths.synthetic_dir={workspace / 'synthetic'}"]
    verbose = ["verbose=true"] if args.verbose else []
    timings: dict[str, float] = {}

    header("1/6 statistics of the benchmarks")
    timings["stats"] = run("1/6", [python, "-m", "erc.data.stats", "--data-dir", str(data_dir),
                                   "--out", str(out / "stats")])
    header("2/6 generate a natural and a balanced MELD set with the embedded LLM")
    for prompt in ("natural", "balanced"):
        timings[f"generate {prompt}"] = run("2/6", [
            python, "generate.py", "benchmark=meld", f"prompt={prompt}", f"n_dialogues={args.dialogues}",
            # small sets: wider dev/test shares so that every split gets dialogues
            "split.train=0.6", "split.dev=0.2", "split.test=0.2",
            *data_overrides, f"hydra.run.dir={out}/generate/{prompt}", *verbose])
    header("3/6 score both generated sets against MELD (fidelity, usefulness, diversity, distance)")
    timings["quality"] = run("3/6", [python, "quality.py", "benchmark=meld", *data_overrides,
                                     f"hydra.run.dir={out}/quality", *verbose])
    header(f"4/6 pretrain, fine-tune and test CoMPM, EmoOne and TODKAT ({args.backbone} backbones) on MELD Org, "
           f"Nat, Bal")
    commands = train_commands(python, args.backbone, args.limit_dialogues, out, data_overrides, verbose)
    timings["train"] = run_parallel("4/6", commands, args.jobs or available_cores(),
                                    [out / "train" / f"{classifier}.log" for classifier in CLASSIFIERS.split(",")])
    header("5/6 Table III, Table IV and the exact Friedman test")
    timings["evaluate"] = run("5/6", [python, "evaluate.py", f"sweep={out}/train", f"hydra.run.dir={out}/evaluate",
                                      *verbose])

    header("6/6 artefacts")
    sections = {
        "statistics": sorted((out / "stats").glob("*")),
        "generated sets (data cards, plots)": sorted(
            p for name in ("meld_nat", "meld_bal") for p in (workspace / "synthetic" / name).glob("*")
            if p.suffix in (".json", ".md", ".png", ".jsonl")),
        "training (results.json per job; W&B offline runs: `wandb sync` them later; each classifier's log)": sorted(
            (out / "train").glob("*/results.json")) + sorted((out / "checkpoints").glob("*/wandb/offline-run-*"))
        + sorted((out / "train").glob("*.log")),
        "quality report (its table is printed above)": sorted((out / "quality").glob("quality*")),
        "evaluation": sorted(p for p in (out / "evaluate").glob("*") if p.is_file()),
    }
    for title, paths in sections.items():
        print(f"{title}:")
        for path in paths:
            print(f"  {path}")
    print("timings: " + ", ".join(f"{step} {seconds:.0f}s" for step, seconds in timings.items()))


if __name__ == "__main__":
    main()
