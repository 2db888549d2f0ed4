"""The classifier contract (erc/models/base.py): erc/models depends on nothing in erc/training, the abstract methods
are enforced, and the guide's fourth classifier (docs/adding-a-classifier.md, taken from the page itself) trains
through the real runner with nothing but its module and its config file."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from erc.models.base import ERCClassifier, PhaseSchedule
from erc.paths import PROJECT_ROOT

from helpers.config import compose_config

MODELS = PROJECT_ROOT / "erc" / "models"
SOURCES = sorted(MODELS.rglob("*.py"))                                 # subpackages (erc/models/knowledge) too
GUIDE = PROJECT_ROOT / "docs" / "adding-a-classifier.md"


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, at any depth (function-level imports too), relative ones resolved."""
    package = ".".join(path.relative_to(PROJECT_ROOT).parent.parts)
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
    return names


def test_models_import_nothing_from_training_in_their_source() -> None:
    offenders = {str(path.relative_to(MODELS)): sorted(m for m in imported_modules(path) if m == "erc.training" or
                                                       m.startswith("erc.training."))
                 for path in SOURCES}
    assert {name: found for name, found in offenders.items() if found} == {}
    assert "erc.models.base" in imported_modules(MODELS / "compm.py") | imported_modules(MODELS / "context.py")


def test_importing_every_classifier_loads_no_training_module() -> None:
    """At run time too: no indirect path (through erc.data or erc.io, say) pulls erc.training in."""
    modules = ", ".join(".".join(p.relative_to(PROJECT_ROOT).with_suffix("").parts) for p in SOURCES
                        if p.stem != "__init__")
    code = (f"import sys, {modules}\n"
            "print(sorted(m for m in sys.modules if m == 'erc.training' or m.startswith('erc.training.')))")
    job = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert job.returncode == 0, job.stderr[-2000:]
    assert job.stdout.strip() == "[]"


def test_a_classifier_missing_an_abstract_method_cannot_be_built() -> None:
    class NoCollate(ERCClassifier):
        def encode(self, dialogues):
            return []

        def sample_length(self, sample):
            return 1

        def forward(self, batch):
            return torch.zeros(0, self.num_labels)

    with pytest.raises(TypeError, match="collate"):
        NoCollate("meld")


def test_phase_settings_come_only_through_configure_phase() -> None:
    class Constant(ERCClassifier):
        def encode(self, dialogues):
            return []

        def sample_length(self, sample):
            return 1

        def collate(self, samples):
            return {"labels": torch.zeros(0, dtype=torch.long)}

        def forward(self, batch):
            return torch.zeros(0, self.num_labels)

    model = Constant("meld")
    with pytest.raises(RuntimeError, match=r"configure_phase\(phase, schedule\) was not called"):
        _ = model.schedule
    schedule = PhaseSchedule(lr=3e-4)
    model.configure_phase("pretrain", schedule)
    assert (model.phase, model.schedule) == ("pretrain", schedule)


def guide_block(language: str) -> str:
    """The first fenced ``language`` block of the guide's worked example."""
    example = GUIDE.read_text().split("## A worked example", 1)[1]
    return re.search(rf"```{language}\n(.*?)```", example, re.S).group(1)


def test_the_guides_fourth_classifier_trains_through_the_runner(tmp_path, data_dir, monkeypatch) -> None:
    """The module and config exactly as the guide prints them (only ``_target_`` points at the copy in tmp_path),
    pretrained on meld_bal, fine-tuned and tested on MELD: the runner scores it like the built-in classifiers and
    its selected weights are trained ones, not its initial ones."""
    from erc.training import train
    from erc.training.phases import build_classifier
    from erc.training.resume import seed_everything_at

    (tmp_path / "guide_utterance.py").write_text(guide_block("python"))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "conf" / "classifier").mkdir(parents=True)
    (tmp_path / "conf" / "classifier" / "utterance.yaml").write_text(guide_block("yaml"))
    assert "_target_: erc.models.utterance.UtteranceClassifier" in guide_block("yaml")
    cfg = compose_config("train", [
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "classifier=utterance",
        "classifier._target_=guide_utterance.UtteranceClassifier", "classifier.backbone=tiny", "data=meld_bal",
        "data.limit_dialogues=4", "schedule=debug", "logger=none", "trainer.enable_progress_bar=false",
        f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path / 'logs'}", f"paths.output_dir={tmp_path / 'out'}"])

    metrics = train(cfg)
    for key in ("pretrain/dev/wf1", "pretrain/test/meld_org/wf1", "pretrain/test/meld_bal/wf1", "finetune/dev/wf1",
                "test/meld_org/wf1", "test/meld_bal/wf1"):
        assert 0.0 <= metrics[key] <= 1.0, key
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["identity"]["classifier"] == "utterance" and results["identity"]["variant"] == "max_length=128"
    assert results["labels"] == ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]

    (best,) = (tmp_path / "logs").glob("train/checkpoints/utterance-*/finetune/best.ckpt")
    trained = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
    seed_everything_at(int(cfg.seed), "init")
    initial = build_classifier(cfg.classifier, "meld").state_dict()
    assert trained.keys() == initial.keys()
    assert not torch.equal(trained["head.weight"], initial["head.weight"])
