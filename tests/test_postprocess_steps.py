"""Post-processing as named steps (erc/postprocess): a failing step leaves the set and the other steps alone, the
card names it, the exit status is non-zero and a rerun redoes only it; a step that would write an empty set writes
none (quality.py skipping an empty set is in test_quality.py); a bad step entry is refused before any request; the
guide's example step and filter (docs/adding-a-step.md, taken from the page itself) run with one module and one
config entry each."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import pytest

from erc.errors import ConfigError
from erc.paths import PROJECT_ROOT
from erc.pipeline import PostprocessError, generate

from helpers.config import compose_config
from helpers.generation import SEED, out_dir, read_jsonl
from helpers.judge import GeneratorAndJudge, judge_requests, make_cfg
from helpers.loopback_tgi import LoopbackTGI

GUIDE = PROJECT_ROOT / "docs" / "adding-a-step.md"


def free_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_judge_server_down_writes_the_set_names_the_step_and_a_rerun_judges_only(tmp_path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    command = [sys.executable, str(PROJECT_ROOT / "generate.py"), "llm=tgi", "benchmark=iemocap", "n_dialogues=6",
               f"seed={SEED}", "judge=llm", "llm@judge.llm=tgi", "judge.llm.max_retries=1", "judge.llm.backoff_s=0.01",
               "quality.enabled=false", f"paths.data_dir={tmp_path}/data", f"hydra.run.dir={tmp_path}/hydra"]
    script = GeneratorAndJudge()
    with LoopbackTGI(script) as generator:
        job = subprocess.run([*command, f"llm.url={generator.url}", f"judge.llm.url={down}"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=120)
        assert job.returncode == 2, job.stderr[-3000:]
        assert re.search(r"error: .*post-processing step\(s\) failed \(judge: cannot connect to .* \(connection "
                         r"refused\): .* fix judge\.llm\.url", job.stderr)
        assert "judge=none" in job.stderr
        generation_requests = len(generator.requests)
        assert generation_requests and not judge_requests(generator)

        folder = out_dir(tmp_path)
        kept = read_jsonl(folder / "dialogues.jsonl")
        assert kept and sum(len(read_jsonl(folder / f"{s}.jsonl")) for s in ("train", "dev", "test")) == len(kept)
        card = json.loads((folder / "card.json").read_text())
        assert set(card["failed_steps"]) == {"judge"} and "judge" not in card
        assert "label_distribution.png" in {p.name for p in folder.iterdir()}   # the later step still ran
        assert "`judge`: " in (folder / "README.md").read_text()

        # the judge's server is back (here at another address: the address is not part of the judge's setup)
        with LoopbackTGI(script) as judge:
            generate(make_cfg(tmp_path, generator.url, "n_dialogues=6", "llm@judge.llm=tgi",
                              f"judge.llm.url={judge.url}"))
            assert len(judge_requests(judge)) >= len(kept)
        assert len(generator.requests) == generation_requests   # no generation request on the rerun
    card = json.loads((folder / "card.json").read_text())
    assert "failed_steps" not in card and card["judge"]["dialogues"]["unjudged"] == 0
    assert "Post-processing incomplete" not in (folder / "README.md").read_text()


class AlwaysDisagrees(GeneratorAndJudge):
    @staticmethod
    def disagrees(first_utterance: str) -> bool:
        return True


def test_a_filter_that_keeps_nothing_writes_no_set(tmp_path, caplog) -> None:
    filtered = tmp_path / "data" / "synthetic" / "iemocap_nat_judge"
    with LoopbackTGI(GeneratorAndJudge()) as server:   # a first run whose filter keeps some dialogues
        generate(make_cfg(tmp_path, server.url, "n_dialogues=12", "judge.filter=true", "judge.min_agreement=0.5"))
    assert (filtered / "train.jsonl").is_file()
    with LoopbackTGI(AlwaysDisagrees()) as server:
        generate(make_cfg(tmp_path / "again", server.url, "n_dialogues=12", "judge.filter=true"))
    assert not (tmp_path / "again" / "data" / "synthetic" / "iemocap_nat_judge").exists()
    kept = read_jsonl(out_dir(tmp_path / "again") / "dialogues.jsonl")
    assert f"the judge step kept none of {len(kept)} dialogue(s), so no set is written" in caplog.text
    assert (out_dir(tmp_path / "again") / "train.jsonl").is_file()   # the unfiltered set is written


def test_a_bad_step_entry_is_refused_before_any_request(tmp_path) -> None:
    with LoopbackTGI(GeneratorAndJudge()) as server:
        with pytest.raises(ConfigError, match=r"postprocess.steps.mine: cannot make erc.nowhere.Step"):
            generate(make_cfg(tmp_path, server.url, "n_dialogues=2",
                              "+postprocess.steps.mine._target_=erc.nowhere.Step"))
        with pytest.raises(ConfigError, match=r"postprocess.steps.judge must be a mapping with _target_"):
            generate(make_cfg(tmp_path, server.url, "n_dialogues=2", "postprocess.steps.judge=3"))
        assert server.requests == []


def guide_block(language: str, example: str = "turns by speaker") -> str:
    """The first fenced ``language`` block of the guide's worked example titled ``example``."""
    section = GUIDE.read_text().split(f"## A worked example: {example}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


def test_the_guides_step_runs_with_one_module_and_one_config_entry(tmp_path, monkeypatch) -> None:
    """The module as the guide prints it and its config entry as the guide's override: the step's file, card section
    and README section appear; a step done with the same inputs is not run again; a step that raises is named in
    the card while the step after it still runs."""
    (tmp_path / "speaker_turns.py").write_text(guide_block("python"))
    monkeypatch.syspath_prepend(str(tmp_path))
    override = re.search(r"python generate\.py .*?'(\+postprocess\.steps\.\S+)'", guide_block("bash")).group(1)
    assert override.endswith("=erc.postprocess.steps.speaker_turns.SpeakerTurns")
    override = override.replace("erc.postprocess.steps.speaker_turns", "speaker_turns")
    with LoopbackTGI(GeneratorAndJudge()) as server:
        generate(make_cfg(tmp_path, server.url, "n_dialogues=6", "judge=none", override))
        folder = out_dir(tmp_path)
        turns = json.loads((folder / "speaker_turns.json").read_text())
        kept = read_jsonl(folder / "dialogues.jsonl")
        assert sum(turns.values()) == sum(len(d["utterances"]) for d in kept)
        card = json.loads((folder / "card.json").read_text())
        assert card["speaker_turns"] == turns
        assert "Turns by speaker" in (folder / "README.md").read_text()
        state = json.loads((folder / "steps.json").read_text())
        assert set(state) == {"speaker_turns"}   # the label plot runs every time: it is not cacheable

        # done with the same inputs: not run again (its file removed stays removed), its card section kept
        (folder / "speaker_turns.json").unlink()
        generate(make_cfg(tmp_path, server.url, "n_dialogues=6", "judge=none", override))
        assert not (folder / "speaker_turns.json").exists()
        assert json.loads((folder / "card.json").read_text())["speaker_turns"] == turns

        # a step that raises: named in the card, the step after it still runs, the exit is an error
        (tmp_path / "broken_step.py").write_text(
            "from erc.postprocess.step import Step\n\n\nclass Broken(Step):\n"
            "    def run(self, ctx):\n        return 1 / 0\n\n\nclass After(Step):\n    cacheable = False\n\n"
            "    def run(self, ctx):\n        (ctx.out_dir / 'after.txt').write_text('ran')\n        return True\n")
        with pytest.raises(PostprocessError, match=r"broken: ZeroDivisionError"):
            generate(make_cfg(tmp_path, server.url, "n_dialogues=6", "judge=none", override,
                              "+postprocess.steps.broken._target_=broken_step.Broken",
                              "+postprocess.steps.after._target_=broken_step.After"))
        assert (folder / "after.txt").read_text() == "ran"
        card = json.loads((folder / "card.json").read_text())
        assert "ZeroDivisionError" in card["failed_steps"]["broken"] and card["speaker_turns"] == turns


def test_the_guides_filter_is_one_module_and_one_config_entry_and_trains(tmp_path, monkeypatch) -> None:
    """The guide's filter as printed (only the module path points at the copy in tmp_path): its set is written with
    its card and removed.jsonl, loads under its own name, is found by quality.py, and composes for training as
    data=generated with the two axes, all without a line changed elsewhere."""
    from erc.data import load_benchmark
    from erc.postprocess.card import readme_text
    from erc.quality.run import generated_set_folders
    from erc.training.validation import check_data_axes

    (tmp_path / "long_dialogues.py").write_text(guide_block("python", "a filter"))
    monkeypatch.syspath_prepend(str(tmp_path))
    overrides = re.findall(r"'?(\+postprocess\.steps\.\S+?)'?(?=\s|$)", guide_block("bash", "a filter"))
    assert overrides[0].endswith("=erc.postprocess.steps.long_dialogues.LongDialogues")
    overrides = [o.replace("erc.postprocess.steps.long_dialogues", "long_dialogues") for o in overrides]
    overrides = [o.replace("min_turns=6", "min_turns=4") for o in overrides]   # the loopback script's dialogues
    with LoopbackTGI(GeneratorAndJudge()) as server:
        generate(make_cfg(tmp_path, server.url, "n_dialogues=12", "judge=none", *overrides))
    kept = read_jsonl(out_dir(tmp_path) / "dialogues.jsonl")
    data = tmp_path / "data"
    folder = data / "synthetic" / "iemocap_nat_long"
    long = [d for s in ("train", "dev", "test") for d in load_benchmark("iemocap_nat_long", s, data)]
    assert {d.id for d in long} == {d["id"] for d in kept if len(d["utterances"]) >= 4}
    assert long and {d.source for d in long} == {"nat_long"}
    card = json.loads((folder / "card.json").read_text())
    assert card["filter"]["dialogues"]["kept"] == len(long) and card["dataset"] == "iemocap_nat_long"
    assert "by the `long` filter" in readme_text(card)
    assert folder in generated_set_folders(data / "synthetic", "iemocap")
    cfg = compose_config("train", ["data=generated", "data.benchmark=iemocap", "data.source=nat_long",
                                   f"paths.data_dir={data}"])
    check_data_axes(cfg.data)
    assert (cfg.data.name, cfg.data.pretrain) == ("iemocap_nat_long", "iemocap_nat_long")


def test_a_step_left_out_with_null_is_not_made() -> None:
    from erc.postprocess.step import make_steps

    cfg = compose_config("generate", ["postprocess.steps.quality=null"])
    assert [step.name for step in make_steps(cfg.postprocess.steps)] == ["contamination", "judge", "label_plot"]


def test_a_silent_judge_fails_at_its_own_deadline_naming_its_key(tmp_path) -> None:
    """The judge's errors name the judge's keys (judge.llm.request_deadline_s), not generation's."""
    with LoopbackTGI(GeneratorAndJudge()) as generator, LoopbackTGI(GeneratorAndJudge(), silent=True) as judge:
        with pytest.raises(PostprocessError, match=r"judge: judge \S+: no answer within "
                                                    r"judge\.llm\.request_deadline_s=1 s.*raise judge\.llm\."):
            generate(make_cfg(tmp_path, generator.url, "n_dialogues=2", "llm@judge.llm=tgi",
                              f"judge.llm.url={judge.url}", "judge.llm.request_deadline_s=1",
                              "judge.llm.max_retries=0"))
        assert judge.requests and not judge_requests(generator)
