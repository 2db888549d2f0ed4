"""What the judge's tests share: a loopback script that generates dialogues and answers judge prompts with the labels
it generated (so a test knows the agreement it must find), and generate.py's config with the judge on."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from omegaconf import DictConfig

from erc.data.labels import label_set

from helpers.config import compose_config
from helpers.generation import SEED
from helpers.loopback_tgi import LoopbackTGI, ScriptedDialogues

LABELS = label_set("iemocap")
LINE = re.compile(r"^(\w+): (.+) \((\d+)\)$")
QUESTION = re.compile(r"^\d+\. \w+: (.+)$", re.MULTILINE)


class GeneratorAndJudge:
    """Generation answers from :class:`ScriptedDialogues`; judge answers (prompts asking for numbered
    utterances) name, for each utterance, the label it was generated with (the script remembers it: the judge
    prompt does not show it), except that dialogues whose first utterance is in ``disagree`` get a wrong label
    everywhere, and a judge request whose seed is divisible by ``wrong_count_every`` gets one label too few."""

    def __init__(self, wrong_count_every: int = 4, judge_latency_s: float = 0.0) -> None:
        self.dialogues = ScriptedDialogues(LABELS)
        self.truth: dict[str, str] = {}
        self.wrong_count_every = wrong_count_every
        self.judge_latency_s = judge_latency_s
        self.judge_prompts: list[str] = []

    @staticmethod
    def disagrees(first_utterance: str) -> bool:
        return sum(map(ord, first_utterance)) % 3 == 0

    def __call__(self, inputs: str, parameters: dict) -> tuple[str, str]:
        if "numbered utterances" not in inputs:
            text, reason = self.dialogues(inputs, parameters)
            for line in text.splitlines():
                if found := LINE.match(line):
                    self.truth[found.group(2)] = LABELS[int(found.group(3)) - 1]
            return text, reason
        self.judge_prompts.append(inputs)
        if self.judge_latency_s:
            time.sleep(self.judge_latency_s)
        utterances = QUESTION.findall(inputs)
        judged = [self.truth[u] for u in utterances]
        if self.disagrees(utterances[0]):
            judged = [LABELS[(LABELS.index(label) + 1) % len(LABELS)] for label in judged]
        if int(parameters["seed"]) % self.wrong_count_every == 0:
            judged = judged[:-1]
        return "Sure. " + json.dumps({"emotions": judged}), "eos_token"


def make_cfg(tmp_path: Path, url: str, *overrides: str) -> DictConfig:
    """generate.py's config against the TGI server at ``url`` with the judge on (the same server) and no quality
    report."""
    return compose_config("generate", [
        "llm=tgi", f"llm.url={url}", "benchmark=iemocap", f"seed={SEED}", f"paths.data_dir={tmp_path}/data",
        f"paths.synthetic_dir={tmp_path}/data/synthetic", "llm.backoff_s=0.01", "llm.backoff_max_s=0.05",
        "quality.enabled=false", "judge=llm", *overrides])


def judge_requests(server: LoopbackTGI) -> list[dict]:
    """The bodies ``server`` answered that were judge prompts."""
    return [body for body in server.answered if "numbered utterances" in body["inputs"]]
