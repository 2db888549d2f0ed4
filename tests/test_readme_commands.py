"""Every ``python train.py|generate.py|evaluate.py ...`` command in README.md and docs/ composes: its config
groups and keys exist and its values pass the entry point's config check (the one each runs before any work).
A README that breaks when followed literally (``schedule.finetune.lr=5e-6`` failing with "not in struct")
fails here, not on a user's machine."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException

from erc.evaluation.pipeline import check_config
from erc.generation.checks import check_generation_config
from erc.paths import PROJECT_ROOT
from erc.secrets import secret_overrides
from erc.training.validation import validate_train_config

from helpers.config import compose_config

ENTRY_POINTS = {"train.py": "train", "generate.py": "generate", "evaluate.py": "evaluate"}
# The check each entry point runs on its config before any work.
CHECKS = {"train": validate_train_config, "generate": check_generation_config, "evaluate": check_config}
DOCS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]


def shell_lines(text: str) -> list[str]:
    """Lines of fenced code blocks and indented code, with backslash continuations joined."""
    lines, in_fence = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence or line.startswith("    "):
            lines.append(line.strip())
    joined, pending = [], ""
    for line in lines:
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return joined


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """``(where, config name, overrides)`` of every documented entry-point command; ``...`` (elided
    arguments) and trailing comments are dropped, ``<placeholders>`` filled in, and arguments with loop
    variables (``benchmark=$b``) left out."""
    found = []
    for doc in DOCS:
        for line in shell_lines(doc.read_text(encoding="utf-8")):
            match = re.search(r"\bpython (train|generate|evaluate)\.py\b(.*)", line)
            if not match:
                continue
            # <time>, <sweep group>: placeholders the reader fills in
            args = shlex.split(re.sub(r"<[^<>]+>", "PLACEHOLDER", match.group(2)), comments=True)
            args = [a for a in args if a not in ("...", "-m", "--multirun") and not a.startswith(("$", ";"))]
            args = [a for a in args if "$" not in a and a not in ("do", "done", "done;")]
            found.append((f"{doc.name}: python {match.group(1)}.py{match.group(2)}".strip(), match.group(1), args))
    return found


def first_of_each_sweep(overrides: list[str]) -> list[str]:
    """One job of a multirun: the first value of every sweep (``classifier=compm,emoone`` -> ``compm``)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    out = []
    for text, override in zip(overrides, parsed, strict=True):
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            out.append(f"{override.get_key_element()}={first}")
        else:
            out.append(text)
    return out


COMMANDS = documented_commands()


def test_the_docs_show_commands_of_every_entry_point():
    assert {name for _, name, _ in COMMANDS} == set(ENTRY_POINTS.values())


def classifier_configs_shown(doc_name: str) -> dict[str, str]:
    """``{name: yaml}`` of every classifier config a page prints in full (a ```yaml block with a ``_target_`` and a
    ``name``), as a guide to adding a classifier does: the page's commands use it, so they compose with it."""
    text = (PROJECT_ROOT / "docs" / doc_name).read_text(encoding="utf-8") if doc_name != "README.md" else ""
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    return {m.group(1): block for block in blocks if "_target_:" in block
            for m in [re.search(r"^name: *(\w+)", block, re.M)] if m}


@pytest.mark.parametrize("where,config_name,overrides", COMMANDS, ids=[c[0][:90] for c in COMMANDS])
def test_documented_command_composes(where: str, config_name: str, overrides: list[str], tmp_path: Path,
                                     reachable_hub: str):
    assert not secret_overrides(overrides), f"{where}: the docs must not show a secret on the command line"
    shown = classifier_configs_shown(where.split(":", 1)[0])
    if shown:
        (tmp_path / "classifier").mkdir()
        for name, block in shown.items():
            (tmp_path / "classifier" / f"{name}.yaml").write_text(block)
        overrides = [f"hydra.searchpath=[file://{tmp_path}]", *overrides]
    GlobalHydra.instance().clear()
    cfg = compose_config(config_name, first_of_each_sweep(overrides), return_hydra_config=True)
    if not any("/path/to/" in o for o in overrides):     # a placeholder file cannot be read
        CHECKS[config_name](cfg)


def test_a_broken_command_fails_to_compose():
    """The check above is not vacuous: a key that does not exist is refused."""
    GlobalHydra.instance().clear()
    with pytest.raises(ConfigCompositionException, match=re.escape("Could not override 'schedule.no_such_key'")):
        compose_config("train", ["schedule.no_such_key=1"])


def test_shell_lines_join_continuations_and_skip_prose():
    text = "prose python train.py nope\n```bash\npython train.py a=1 \\\n  b=2   # note\n```\n    python -m x\n"
    assert shell_lines(text) == ["python train.py a=1  b=2   # note", "python -m x"]


def test_docs_listing_is_read_from_the_project():
    assert Path(DOCS[0]).name == "README.md" and COMMANDS


# ---- the README, followed literally ---------------------------------------------------------------------------------
README = PROJECT_ROOT / "README.md"
OFFLINE_BACKBONES = {"tiny", "small", "minilm"}


def fenced_blocks(text: str, heading: str | None = None) -> list[list[str]]:
    """The lines of every fenced code block (of the section under ``## heading`` only, when given)."""
    if heading is not None:
        text = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [shell_lines(f"```\n{block}```") for block in re.findall(r"```\w*\n(.*?)```", text, re.S)]


def readme_commands() -> list[tuple[str, list[str]]]:
    """``(entry point, arguments)`` of every README command run with python (``python train.py ...``)."""
    found = []
    for block in fenced_blocks(README.read_text(encoding="utf-8")):
        for line in block:
            match = re.match(r"python (train|generate|evaluate|quality)\.py\b(.*)", line)
            if match:
                found.append((match.group(1), shlex.split(match.group(2), comments=True)))
    return found


def is_gpu_or_server(args: list[str]) -> bool:
    return "trainer=gpu" in args or any(a in args for a in ("llm=tgi", "llm=openai"))


def test_every_readme_cpu_command_is_small_and_every_gpu_or_server_command_says_so():
    """A CPU command in the README trains an offline backbone on a slice of the data (the whole of MELD train on a
    CPU does not finish in minutes) and generates a few dialogues with the embedded LLM; a command at the paper's
    size carries trainer=gpu, one asking a server carries its URL."""
    commands = readme_commands()
    assert any(name == "train" and not is_gpu_or_server(args) for name, args in commands)
    assert any(name == "train" and "trainer=gpu" in args for name, args in commands)
    for name, args in commands:
        settings = dict(a.split("=", 1) for a in args if "=" in a)
        if name == "train" and "trainer=gpu" not in args:
            assert settings.get("classifier.backbone") in OFFLINE_BACKBONES, args
            assert int(settings.get("data.limit_dialogues", 10**9)) <= 100, args
        if name == "generate" and not is_gpu_or_server(args):
            assert int(settings.get("n_dialogues", 10**9)) <= 50, args
        if is_gpu_or_server(args) and name == "generate":
            assert settings.get("llm.url"), args


def test_the_readmes_cuda_torch_is_the_pinned_one():
    """The one-command CUDA torch of the README replaces the pinned build with the same version (a newer one would
    be untested with the other pins)."""
    (pin,) = re.findall(r"^torch==(\S+)$", (PROJECT_ROOT / "requirements.txt").read_text(), re.M)
    (command,) = [line for block in fenced_blocks(README.read_text(encoding="utf-8")) for line in block
                  if "pip install" in line and "torch" in line]
    assert f"torch=={pin} " in command and "--index-url https://download.pytorch.org/whl/cu" in command
    assert "--no-deps" in command            # the other pins stay as installed


def tour_script() -> str:
    """The README's tour block as one bash script: the environment activated as the README says, ``<time>`` filled
    in with the sweep the train step just made."""
    (block, *_) = fenced_blocks(README.read_text(encoding="utf-8"), "A tour: generate, train, evaluate")
    lines = [line.replace("<time>", "$(ls outputs/train/multiruns | tail -1)") for line in block
             if line and not line.startswith("#")]
    assert any(line.startswith("python evaluate.py") for line in lines)
    return "\n".join(["set -e", "source .venv/bin/activate", *lines])


def fresh_checkout(target: Path) -> Path:
    """The project's files as a clone of this working tree would have them (tracked and untracked-not-ignored: no
    outputs/, synthetic/ or data/), with the installed environment linked in as ``.venv``."""
    import shutil
    import subprocess
    import sys

    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=PROJECT_ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = PROJECT_ROOT / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return target


@pytest.mark.slow  # the whole tour on the CPU: two generated sets, nine training jobs, the evaluation (~6 min)
def test_the_readme_tour_runs_as_written_on_a_fresh_checkout_and_ends_with_table_iv(benchmark_data, tmp_path,
                                                                                   monkeypatch):
    import os
    import subprocess

    clone = fresh_checkout(tmp_path / "clone")
    monkeypatch.delenv("ERC_SYNTHETIC_DIR")           # the clone's own synthetic/, as a user's
    env = {**os.environ, "ERC_DATA_DIR": str(benchmark_data), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", "-c", tour_script()], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {p.name for p in (clone / "synthetic").iterdir()} >= {"meld_nat", "meld_bal"}
    (evaluation,) = (clone / "outputs" / "evaluate" / "runs").iterdir()
    table4 = (evaluation / "table4.md").read_text()
    # Table IV, tested in full: Nat and Bal against the Org control for each of the three classifiers
    assert table4.startswith("## Table IV") and "Bonferroni m = 6 comparisons; k = 9 instances" in table4, table4
    assert (evaluation / "table4.csv").is_file() and (evaluation / "cd_diagram.png").is_file()
    assert not any(p.name == "synthetic" for p in benchmark_data.iterdir())   # the benchmark folder only read
