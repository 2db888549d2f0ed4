"""The console a person reads: each entry point's --help lists its own config groups; a training job and a generation
run print their progress bars and the warnings that matter, not library chatter (httpx request lines, Lightning's
tips and deprecations, W&B's banner and run summary); verbose=true brings it all back; the job's log file always
holds the full log."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from erc.data.labels import label_set
from erc.paths import PROJECT_ROOT

from helpers.loopback_tgi import LoopbackTGI, ScriptedDialogues

ENTRY_POINTS = ("train.py", "generate.py", "evaluate.py")
# Lines a quiet console must not show (each was printed before it was quiet).
NOISE = {
    "httpx request line": re.compile(r"HTTP Request: (GET|POST)"),
    "Lightning tip": re.compile(r"💡 Tip"),
    "Lightning hardware line": re.compile(r"GPU available: "),
    "LeafSpec deprecation": re.compile(r"LeafSpec.*deprecated"),
    "Lightning logging-interval hint": re.compile(r"smaller than the logging interval"),
    "W&B anonymous warning": re.compile(r"anonymous setting has no effect"),
    "W&B banner": re.compile(r"Tracking run with wandb"),
    "W&B run summary": re.compile(r"Run summary:|Run history:"),
}
# A job's environment as a user has it: tests/conftest.py makes W&B silent, which would hide what is tested here.
ENV = {**{k: v for k, v in os.environ.items() if k != "WANDB_SILENT"}, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}


def noise_in(text: str) -> list[str]:
    return [name for name, pattern in NOISE.items() if pattern.search(text)]


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PROJECT_ROOT / script), *args], cwd=PROJECT_ROOT, env=ENV,
                          capture_output=True, text=True, timeout=600)


def primary_groups(script: str) -> set[str]:
    """The groups named in the defaults list of the entry point's primary config (Hydra's own and _self_ aside)."""
    defaults = OmegaConf.load(PROJECT_ROOT / "conf" / script.replace(".py", ".yaml")).defaults
    return {key for entry in defaults if not isinstance(entry, str) for key in entry} - {"hydra"}


def optional_groups(script: str) -> set[str]:
    """The groups whose default in the primary config is null (chosen only on the command line: ``model=...``)."""
    defaults = OmegaConf.load(PROJECT_ROOT / "conf" / script.replace(".py", ".yaml")).defaults
    return {key for entry in defaults if not isinstance(entry, str) for key, value in entry.items() if value is None}


@pytest.mark.parametrize("script", ENTRY_POINTS)
def test_help_says_what_the_entry_point_does_and_lists_exactly_its_groups(script) -> None:
    done = run(script, "--help")
    assert done.returncode == 0, done.stderr
    docstring = (PROJECT_ROOT / script).read_text().split('"""')[1]
    assert done.stdout.startswith(docstring.strip().splitlines()[0])
    groups = dict(re.findall(r"^  ([\w@.]+): +(.+)$", done.stdout, re.MULTILINE))
    assert set(groups) == primary_groups(script)
    for group, listed in groups.items():
        options = {option.rstrip("*") for option in listed.split(", ")}
        folder = PROJECT_ROOT / "conf" / group.split("@")[0]          # llm@judge.llm: the llm group at judge.llm
        assert options == {p.stem for p in folder.glob("*.yaml") if p.name[0] != "_"}
        marked = sum(option.endswith("*") for option in listed.split(", "))
        assert marked == (group not in optional_groups(script))   # the default, marked; an optional group has none
    assert f"python {script} --cfg job" in done.stdout


def test_train_help_marks_the_defaults_of_its_primary_config_and_hydra_help_still_works() -> None:
    done = run("train.py", "--help")
    assert not re.search(r"^  (llm|prompt|sampling|benchmark):", done.stdout, re.MULTILINE)   # generation's groups
    assert "  classifier: compm*, emoone, todkat" in done.stdout
    assert "schedule:   debug, default*, demo, demo_pretrained, paper" in done.stdout  # _phase.yaml: an internal base
    # the backbones that run offline on a CPU, every one of them (the local sizes and minilm), and the GPU switch
    from erc.models.backbone import LOCAL_SIZES
    from erc.pretrained import MINILM

    offline = re.search(r"Backbones \(classifier.backbone=\): (.+?) run offline on a CPU", done.stdout, re.S).group(1)
    assert set(re.findall(r"\b(\w+)\b(?= \(| and|,)", offline)) >= {*LOCAL_SIZES, MINILM}
    assert "trainer=gpu" in done.stdout
    hydra_help = run("train.py", "--hydra-help")
    assert hydra_help.returncode == 0 and "== Flags ==" in hydra_help.stdout


def train_job(tmp_path: Path, data_dir: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, str]:
    """A tiny real training job with an offline W&B run: its output and its log file."""
    done = run("train.py", "classifier=compm", "data=meld_bal", "classifier.backbone=tiny", "schedule=debug",
               "data.limit_dialogues=4", "logger=wandb", f"paths.data_dir={data_dir}",
               f"paths.synthetic_dir={data_dir / 'synthetic'}",
               f"hydra.run.dir={tmp_path / 'job'}", f"checkpoint_dir={tmp_path / 'checkpoints'}", *overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, (tmp_path / "job" / "train.log").read_text()


def test_a_training_job_prints_its_bars_without_the_noise_and_logs_everything(tmp_path, data_dir) -> None:
    done, log = train_job(tmp_path, data_dir)
    assert noise_in(done.stdout + done.stderr) == []
    assert re.search(r"\d+/\d+ .*(it|batch)/s", done.stdout + done.stderr)        # a progress bar with its rate
    for line in ("GPU available: ", "💡 Tip", "LeafSpec", "logging interval"):      # the full log is in the file
        assert line in log, line
    assert list((tmp_path / "checkpoints").glob("*/wandb/offline-run-*"))           # W&B still records the run


def test_verbose_brings_the_logs_and_the_wandb_summary_back(tmp_path, data_dir) -> None:
    done, _ = train_job(tmp_path, data_dir, "verbose=true")
    assert {"Lightning hardware line", "Lightning tip", "LeafSpec deprecation", "W&B banner", "W&B run summary"} <= set(
        noise_in(done.stdout + done.stderr))
    assert "W&B anonymous warning" not in noise_in(done.stdout + done.stderr)   # gone for good: not a setting


def generation(tmp_path: Path, url: str, *overrides: str) -> tuple[subprocess.CompletedProcess, str]:
    done = run("generate.py", "llm=tgi", f"llm.url={url}", "benchmark=iemocap", "seed=7", "n_dialogues=4",
               "max_attempts=1", f"paths.data_dir={tmp_path / 'data'}",
               f"paths.synthetic_dir={tmp_path / 'data' / 'synthetic'}", f"hydra.run.dir={tmp_path / 'job'}",
               "llm.backoff_s=0.01", *overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, (tmp_path / "job" / "generate.log").read_text()


def always_valid(script: ScriptedDialogues):
    """An answer the parser accepts for every request (a natural prompt), so a rerun has nothing left to ask."""
    labels = label_set("iemocap")
    return lambda inputs, parameters: ("\n".join(f"{speaker}: {text} ({labels.index(label) + 1})" for speaker, text,
                                                 label in script.turns_for(parameters["seed"], None)), "stop")


def test_a_generation_prints_one_bar_with_its_rates_and_no_request_lines(tmp_path) -> None:
    with LoopbackTGI(always_valid(ScriptedDialogues(label_set("iemocap")))) as server:
        done, log = generation(tmp_path, server.url)
        assert noise_in(done.stdout + done.stderr) == []
        assert re.search(r"generate iemocap_nat: 100%.*4/4 .*dlg_min=.*tok_s=", done.stderr)
        assert log.count("HTTP Request: POST") == 4                      # one per request, in the log file
        again, _ = generation(tmp_path, server.url)                      # a rerun with nothing left to ask
        verbose, _ = generation(tmp_path / "verbose", server.url, "verbose=true")
    assert "0 to run" in again.stderr and "generate iemocap_nat" not in again.stderr   # no empty bar
    assert verbose.stderr.count("HTTP Request: POST") == 4
