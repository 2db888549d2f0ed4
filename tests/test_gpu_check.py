"""The GPU check's CPU form (``bench/gpu_check.py --device cpu``): the code that runs unattended on a GPU, with tiny
encoders, so that it cannot rot between the rare GPU runs. Its JSON must say something true, not only exist: every
classifier trained and timed, CoMPM's reference loop and its ratio, the packed path equal to the plain forward within
the stated tolerances; and a part that fails, crashes or outlives the budget is reported while the others still run.
"""

from __future__ import annotations

import importlib
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from erc.paths import PROJECT_ROOT

BENCH = PROJECT_ROOT / "bench"
TINY = ["--device", "cpu", "--in-process", "--steps", "1", "--warmup", "1", "--dialogues", "6",
        "--reference-steps", "1", "--packed-repeats", "1", "--packed-batches", "1"]


@pytest.fixture(scope="module")
def gpu_check() -> ModuleType:
    """bench/gpu_check.py as a module (bench/ holds scripts, not a package: its modules import one another by name)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCH))
        yield importlib.import_module("gpu_check")


@pytest.fixture(scope="module")
def report(gpu_check: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One CPU run of the whole check (every classifier), in this process, on one torch thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    try:
        code = gpu_check.main([*TINY, "--json", str(out)])
    finally:
        torch.set_num_threads(threads)
    found = json.loads(out.read_text())
    found["exit_code"] = code
    return found


def test_every_classifier_is_trained_timed_and_measured(report: dict[str, Any]) -> None:
    assert report["exit_code"] == 0 and report["ok"]
    assert [row["classifier"] for row in report["summary"]] == ["compm", "emoone", "todkat"]
    for name, result in report["classifiers"].items():
        train = result["train"]
        assert train["status"] == "ok", name
        assert train["batch_size"] == 8                      # schedule=default's
        assert train["steps"] == 1 and train["utterances"] > 0 and train["seconds"] > 0
        assert train["utterances_per_s"] == pytest.approx(train["utterances"] / train["seconds"])
        assert train["tokens_per_s"] > train["utterances_per_s"]          # every utterance has tokens
        assert 0 < train["mfu"] < 20 and train["peak_tflops"] > 0 and train["peak_memory_mib"] > 100
        assert train["precision"] == "bf16-mixed" and 0 <= train["padding"] < 1
        assert train["fast_path"] == "auto" and train["packed_path"]        # auto: packed on the CPU
        assert result["encoder"]["hidden_size"] == 32                     # the tiny encoders on a CPU
    assert report["classifiers"]["todkat"]["train"]["utterances"] > 6     # TODKAT's samples are dialogues


def test_compm_runs_its_reference_loop_beside_and_the_ratio_is_reported(report: dict[str, Any]) -> None:
    reference = report["classifiers"]["compm"]["reference"]
    assert reference["status"] == "ok" and reference["steps"] == 1 and reference["utterances_per_s"] > 0
    row = next(row for row in report["summary"] if row["classifier"] == "compm")
    train = report["classifiers"]["compm"]["train"]
    assert row["batched_over_reference"] == pytest.approx(train["utterances_per_s"] / reference["utterances_per_s"])
    assert report["goals"]["compm_vs_reference"]["value"] == row["batched_over_reference"]
    assert all("reference" not in report["classifiers"][name] for name in ("emoone", "todkat"))


def test_the_packed_path_equals_the_plain_forward_within_the_stated_tolerances(
        report: dict[str, Any], gpu_check: ModuleType) -> None:
    assert report["tolerances"]["fp32"] == 1e-5
    for name, result in report["classifiers"].items():
        packed = result["packed"]
        assert packed["status"] == "ok", name
        for precision, tolerance in (("fp32", 1e-5), ("mixed", gpu_check.BF16_TOLERANCE)):
            check = packed[precision]
            assert check["ok"] and check["finite"], (name, precision)
            assert check["logits"] <= tolerance and check["gradients"] <= tolerance, (name, precision, check)
            assert check["gradients_global"] <= tolerance and not check["parameters_without_a_gradient_on_one_path"]
        # bf16 rounding shows in the mixed run's distance from fp32: it ran under autocast
        assert packed["mixed"]["plain_vs_fp32"]["gradients"] > 1e-4
        for precision in ("bf16-mixed", "32-true"):
            speed = packed["speed"][precision]
            assert speed["packed_ms"] > 0 and speed["plain_ms"] > 0
            assert speed["plain_over_packed"] == pytest.approx(speed["plain_ms"] / speed["packed_ms"])


def test_a_part_that_raises_is_reported_and_the_next_part_still_runs(
        gpu_check: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> dict:
        raise RuntimeError("CUDA out of memory (planted)")

    monkeypatch.setattr(gpu_check, "train_part", broken)
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main([*TINY, "--classifiers", "emoone", "--json", str(out)]) == 1
    report = json.loads(out.read_text())
    result = report["classifiers"]["emoone"]
    assert result["train"]["status"] == "failed: RuntimeError: CUDA out of memory (planted)"
    assert result["packed"]["status"] == "ok" and result["packed"]["fp32"]["ok"]
    assert not report["ok"] and "train: failed: RuntimeError" in report["summary"][0]["status"]


def _child(tmp_path: Path, body: str) -> tuple[list[str], Path]:
    """A stand-in for a part's process: it records a setup and a train result, then runs ``body``."""
    result = tmp_path / "part.json"
    recorded = {"setup": {"status": "ok"}, "train": {"status": "ok", "utterances_per_s": 5.0}}
    code = f"import json, os, sys, time; open(sys.argv[1], 'w').write({json.dumps(recorded)!r}); {body}"
    return [sys.executable, "-c", code, str(result)], result


def test_a_part_that_outlives_its_deadline_is_killed_and_what_it_recorded_is_kept(
        gpu_check: ModuleType, tmp_path: Path) -> None:
    command, result = _child(tmp_path, "time.sleep(60)")
    started = time.perf_counter()
    recorded, problem = gpu_check.run_part_process(command, result, timeout=2)
    assert time.perf_counter() - started < 20
    assert problem == "timed out after 2 s"
    completed = gpu_check.complete("compm", recorded, problem)
    assert completed["train"] == {"status": "ok", "utterances_per_s": 5.0}
    assert completed["reference"]["status"] == "failed: timed out after 2 s"
    assert completed["packed"]["status"] == "not run: the reference part did not end"


def test_a_part_whose_process_crashes_is_reported_with_its_exit_status(gpu_check: ModuleType, tmp_path: Path) -> None:
    command, result = _child(tmp_path, "os._exit(3)")
    recorded, problem = gpu_check.run_part_process(command, result, timeout=30)
    assert problem == "exit status 3"
    rows, ok = gpu_check.summarise({"emoone": gpu_check.complete("emoone", recorded, problem)})
    assert not ok and rows[0]["status"] == "packed: failed: exit status 3"
    assert rows[0]["utterances_per_s"] == 5.0 and rows[0]["mfu"] is None     # what it recorded, and no more


def test_later_parts_keep_a_share_of_the_budget(gpu_check: ModuleType) -> None:
    ends = gpu_check.deadlines(1000.0, 420.0, 3)
    assert ends[-1] == 1000 + 420 - 5
    assert ends[1] == ends[2] - 70 and ends[0] == ends[2] - 140


def test_drawn_dialogues_have_meld_shape_and_the_drawn_token_counts(gpu_check: ModuleType) -> None:
    import meld_dialogues

    from erc.models.backbone import local_tokenizer

    tokenizer = local_tokenizer()
    shape = json.loads(meld_dialogues.SHAPE_FILE.read_text())
    dialogues = meld_dialogues.drawn_dialogues(400, meld_dialogues.one_token_words(tokenizer), shape)
    utterances = [u for d in dialogues for u in d.utterances]
    # each drawn word is one token of the local tokenizer, so the drawn lengths are the encoder's lengths
    assert all(len(tokenizer.tokenize(u.text)) == len(u.text.split()) for u in utterances)

    def mean(histogram: dict[str, int]) -> float:
        return sum(int(k) * v for k, v in histogram.items()) / sum(histogram.values())

    assert statistics.mean(len(d) for d in dialogues) == pytest.approx(mean(shape["turns"]), rel=0.1)
    assert statistics.mean(len(u.text.split()) for u in utterances) == pytest.approx(mean(shape["tokens"]), rel=0.1)
    assert {u.label for u in utterances} == set(shape["labels"])


def test_an_encoder_the_packed_path_cannot_take_fails_the_check_instead_of_comparing_plain_with_plain(
        gpu_check: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """On another transformers release whose layers are laid out otherwise, fast_path=on runs the plain forward:
    the two "paths" would agree exactly and prove nothing."""
    from erc.models import backbone
    from erc.models.emoone import EmoOne

    monkeypatch.setattr(backbone, "has_fast_path_layout", lambda encoder: False)
    args = gpu_check.parse_args(TINY)
    with pytest.raises(RuntimeError, match="not laid out as the packed path needs"):
        gpu_check.packed_part(EmoOne("meld", backbone="tiny"), [], args)


def _one_command(text: str) -> str:
    """The recipe's command, from its ``pip install`` to the check's options, its continuation lines joined."""
    start = text.index("python3 -m pip install")
    end = text.index("\n", text.index("bench/gpu_check.py", start))
    return " ".join(line.strip().removesuffix("\\").strip() for line in text[start:end].splitlines())


def test_the_recipe_is_the_same_one_command_in_the_guide_and_the_docstring_and_its_options_parse(
        gpu_check: ModuleType) -> None:
    command = _one_command((PROJECT_ROOT / "docs" / "full-scale.md").read_text(encoding="utf-8"))
    assert command == _one_command(gpu_check.__doc__)
    # offline: the wheels from .whl/ alone, onto the path without touching the image's packages
    assert "--no-index --no-deps" in command and "--target /tmp/site .whl/*.whl" in command
    assert "PYTHONPATH=/tmp/site" in command
    options = shlex.split(command.split("bench/gpu_check.py", 1)[1].replace("${OUT:-outputs}", "out"))
    args = gpu_check.parse_args(options)
    assert (args.device, args.size, args.precision) == ("cuda", "paper", "bf16-mixed")
    assert args.json == Path("out/gpu_check.json")
    assert args.budget <= 6 * 60                  # inside an 8-minute slot with the machine's start-up
