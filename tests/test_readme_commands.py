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
