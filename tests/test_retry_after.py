"""``Retry-After`` on a 429 or 503 is honoured, by generation and the judge alike (they retry through one layer,
erc/llm/retry.py): the retry comes no sooner than the server asked, against the loopback TGI and OpenAI-compatible
servers sending real HTTP answers with the header, in seconds or as an HTTP date."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from erc.data.labels import label_set
from erc.llm.backends.base import retry_after_seconds
from erc.pipeline import generate

from helpers.config import compose_config
from helpers.generation import SEED, make_cfg
from helpers.judge import GeneratorAndJudge, judge_requests
from helpers.judge import make_cfg as judge_cfg
from helpers.loopback_openai import LoopbackOpenAI
from helpers.loopback_tgi import LoopbackTGI, ScriptedDialogues


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(429, {"Retry-After": "2"}) == 2.0
    assert retry_after_seconds(503, {"retry-after": "0.5"}) == 0.5
    assert 25 < retry_after_seconds(429, {"Retry-After": soon}) <= 30
    assert retry_after_seconds(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0   # past: now
    assert retry_after_seconds(500, {"Retry-After": "2"}) is None      # only 429 and 503 ask the client to wait
    assert retry_after_seconds(429, {"Retry-After": "soon"}) is None   # unreadable: the usual backoff
    assert retry_after_seconds(429, {}) is None


@pytest.mark.parametrize("fault", ["429:1", "503:1"])
def test_generation_waits_as_long_as_the_tgi_server_asks(tmp_path, fault) -> None:
    with LoopbackTGI(ScriptedDialogues(label_set("iemocap")), faults=[fault]) as server:
        generate(make_cfg(tmp_path, server.url, "n_dialogues=1", "max_attempts=1", "quality.enabled=false"))
    assert len(server.requests) == 2 and server.times[1] - server.times[0] >= 1.0   # backoff_s=0.01 would not


def test_the_openai_route_waits_for_an_http_date(tmp_path) -> None:
    now, started = datetime.now(UTC), time.monotonic()
    date = (now + timedelta(seconds=3)).replace(microsecond=0)   # an HTTP date has whole seconds
    later = format_datetime(date, usegmt=True)
    with LoopbackOpenAI(ScriptedDialogues(label_set("iemocap")), faults=[f"429:{later}"]) as server:
        generate(compose_config("generate", [
            "llm=openai", "llm.route=chat", f"llm.url={server.v1}", "benchmark=iemocap", f"seed={SEED}",
            f"paths.data_dir={tmp_path}/data", "llm.backoff_s=0.01", "llm.backoff_max_s=0.05", "n_dialogues=1",
            "max_attempts=1", "quality.enabled=false"]))
    assert len(server.requests) == 2 and server.times[1] - started >= (date - now).total_seconds() - 0.01


def test_the_judge_waits_as_long_as_its_server_asks(tmp_path) -> None:
    script = GeneratorAndJudge(wrong_count_every=10**9)   # every judge answer usable: one request per dialogue
    with LoopbackTGI(script) as generator, LoopbackTGI(script, faults=["429:1"]) as judge:
        generate(judge_cfg(tmp_path, generator.url, "n_dialogues=1", "max_attempts=1", "llm@judge.llm=tgi",
                           f"judge.llm.url={judge.url}"))
        assert len(judge_requests(judge)) == 1 and len(judge.requests) == 2
    assert judge.times[1] - judge.times[0] >= 1.0
