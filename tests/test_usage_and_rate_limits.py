"""Tokens, cost and rate limits (erc/llm/usage.py, erc/llm/ratelimit.py): the tokens every request used equal the
server's own usage figures exactly, generation and judge alike; prices give the cost in runs.jsonl, the card and the
README; a run killed by SIGKILL still leaves its runs.jsonl line; against an API limited to 20 requests/s the window
adapts so that few requests are refused and the limit is used; published limits pace the requests."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from erc.data.labels import label_set
from erc.errors import ConfigError
from erc.llm.ratelimit import DOUBLING_S, START, AdaptiveLimiter
from erc.paths import PROJECT_ROOT
from erc.pipeline import generate

from helpers.config import compose_config
from helpers.generation import SEED, expected_slots, kill_once_written, out_dir, read_jsonl
from helpers.judge import GeneratorAndJudge
from helpers.judge import make_cfg as judge_cfg
from helpers.loopback_openai import LoopbackOpenAI
from helpers.loopback_tgi import LoopbackTGI, ScriptedDialogues

LABELS = label_set("iemocap")


def chat_cfg(tmp_path: Path, url: str, *overrides: str):
    return compose_config("generate", [
        "llm=openai", "llm.route=chat", f"llm.url={url}", "benchmark=iemocap", f"seed={SEED}",
        f"paths.data_dir={tmp_path}/data", "llm.backoff_s=0.01", "llm.backoff_max_s=0.05", "quality.enabled=false",
        *overrides])


def test_tgi_generation_and_judge_tokens_equal_the_servers_usage(tmp_path: Path) -> None:
    with LoopbackTGI(GeneratorAndJudge()) as server:
        generate(judge_cfg(tmp_path, server.url, "n_dialogues=6", "llm.price.input_per_mtok=2",
                           "llm.price.output_per_mtok=6"))
        usage = dict(server.usage)
        answered = len(server.answered)
    card = json.loads((out_dir(tmp_path) / "card.json").read_text())
    generation, judge = card["tokens"], card["judge"]["tokens"]
    assert generation["prompt_tokens"] > 0 and judge["prompt_tokens"] > 0        # TGI's prefill counted
    assert generation["prompt_tokens"] + judge["prompt_tokens"] == usage["prompt_tokens"]
    assert generation["completion_tokens"] + judge["completion_tokens"] == usage["completion_tokens"]
    assert generation["requests"] + judge["requests"] == answered
    assert generation["requests_without_usage"] == judge["requests_without_usage"] == 0
    # the judge asks llm.* as composed (judge.llm null), its prices included; the cost is the tokens at the prices
    for tokens in (generation, judge):
        expected = (2 * tokens["prompt_tokens"] + 6 * tokens["completion_tokens"]) / 1e6
        assert tokens["cost_usd"] == pytest.approx(expected)
    run = read_jsonl(out_dir(tmp_path) / "runs.jsonl")[-1]
    assert run["status"] == "complete" and run["prompt_tokens"] == generation["prompt_tokens"]
    assert run["cost_usd"] == pytest.approx(generation["cost_usd"])
    readme = (out_dir(tmp_path) / "README.md").read_text()
    assert f"Tokens: {generation['prompt_tokens']:,} prompt + {generation['completion_tokens']:,} completion" in readme
    assert f"${generation['cost_usd']:.4f} at the prices given" in readme
    assert f"The judge's tokens: {judge['prompt_tokens']:,} prompt" in readme


def test_chat_route_tokens_equal_the_servers_usage_without_prices(tmp_path: Path) -> None:
    with LoopbackOpenAI(ScriptedDialogues(LABELS)) as server:
        generate(chat_cfg(tmp_path, server.v1, "n_dialogues=5"))
        usage = dict(server.usage)
    tokens = json.loads((out_dir(tmp_path) / "card.json").read_text())["tokens"]
    assert (tokens["prompt_tokens"], tokens["completion_tokens"]) == (usage["prompt_tokens"],
                                                                       usage["completion_tokens"])
    assert "cost_usd" not in tokens and "at the prices given" not in (out_dir(tmp_path) / "README.md").read_text()


def test_a_run_killed_by_sigkill_leaves_its_runs_line(tmp_path: Path) -> None:
    with LoopbackTGI(ScriptedDialogues(LABELS), latency_s=0.05) as server:
        command = [sys.executable, str(PROJECT_ROOT / "generate.py"), "llm=tgi", f"llm.url={server.url}",
                   "benchmark=iemocap", f"seed={SEED}", "n_dialogues=12", "llm.concurrency=1",
                   "quality.enabled=false", f"paths.data_dir={tmp_path}/data", f"hydra.run.dir={tmp_path}/hydra"]
        kill_once_written(command, out_dir(tmp_path) / "requests.jsonl", 3)
        killed = read_jsonl(out_dir(tmp_path) / "runs.jsonl")
        assert [(r["status"], r["slots_to_run"]) for r in killed] == [("running", 12)]
        generate(compose_config("generate", [*[c for c in command[2:] if "hydra" not in c]]))
    runs = read_jsonl(out_dir(tmp_path) / "runs.jsonl")
    assert [r["status"] for r in runs] == ["running", "complete"] and runs[0]["run_id"] == killed[0]["run_id"]


@pytest.mark.parametrize(("override", "key"), [("llm.price.input_per_mtok=-1", "llm.price.input_per_mtok"),
                                               ("llm.max_requests_per_minute=0", "llm.max_requests_per_minute")])
def test_bad_prices_and_limits_are_refused_before_any_request(tmp_path: Path, override: str, key: str) -> None:
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            generate(compose_config("generate", ["llm=tgi", f"llm.url={server.url}", "benchmark=iemocap",
                                                 f"paths.data_dir={tmp_path}/data", override]))
        assert not server.requests


def served_rate(server: LoopbackTGI) -> tuple[int, float]:
    """Requests the server accepted, and their rate from the first to the last (per second)."""
    accepted = server.accepted_times
    return len(accepted), (len(accepted) - 1) / (accepted[-1] - accepted[0])


@pytest.mark.parametrize(("dialogues", "least_rate"), [
    # the case (200 dialogues, >= 0.9 x the limit): about 16 s, in make test-all and bench/rate_limit.py
    pytest.param(200, 0.9, marks=pytest.mark.slow),
    # a shorter run for the default suite: the first second (the burst that meets the limit, then its Retry-After)
    # and the last refused request's wait weigh more in 120 dialogues, hence 0.85
    (120, 0.85)])
def test_a_rate_limited_chat_api_is_used_at_its_limit_with_few_refusals(tmp_path: Path, dialogues: int,
                                                                       least_rate: float) -> None:
    """20 requests/s, 429 with Retry-After: 1 beyond, at llm.concurrency=64 (the issue's case)."""
    with LoopbackOpenAI(ScriptedDialogues(LABELS), rate_limit=20, latency_s=0.05) as server:
        started = time.monotonic()
        generate(chat_cfg(tmp_path, server.v1, f"n_dialogues={dialogues}", "llm.concurrency=64",
                          "llm.max_retries=20"))
        wall = time.monotonic() - started
        served, rate = served_rate(server)
        refused = server.rate_limited
    card = json.loads((out_dir(tmp_path) / "card.json").read_text())
    assert card["counts"]["accepted"] == len(expected_slots(dialogues, 3, balanced=False))   # every slot done
    print(f"served {served}, refused {refused} ({refused / served:.1%}), rate {rate:.1f}/s, wall {wall:.1f} s")
    assert refused <= 0.1 * served, (refused, served)
    assert rate >= least_rate * 20, (rate, wall)
    run = read_jsonl(out_dir(tmp_path) / "runs.jsonl")[-1]
    assert run["rate_limited_answers"] == refused and run["window_smallest"] < 64


def test_max_requests_per_minute_paces_the_requests(tmp_path: Path) -> None:
    with LoopbackOpenAI(ScriptedDialogues(LABELS)) as server:
        generate(chat_cfg(tmp_path, server.v1, "n_dialogues=8", "llm.concurrency=8",
                          "llm.max_requests_per_minute=600"))           # one request every 0.1 s
        gaps = [b - a for a, b in zip(server.times, server.times[1:], strict=False)]
    assert len(server.times) >= 8 and min(gaps) >= 0.09


def test_the_window_opens_by_the_clock_to_concurrency_and_stays_there() -> None:
    """Slow start doubles the window every DOUBLING_S from START up to concurrency, however long a run without a 429
    lasts (the embedded model's hours-long runs overflowed 2 ** t once)."""
    limiter = AdaptiveLimiter(32)
    limiter._slow_start(100.0)                                    # the first request
    assert limiter.window == START
    limiter._slow_start(100.0 + 2 * DOUBLING_S)
    assert limiter.window == pytest.approx(4 * START)
    for later in (1.0, 3600.0, 1e7):
        limiter._slow_start(100.0 + later)
        assert limiter.window == 32
    single = AdaptiveLimiter(1)
    single._slow_start(0.0)
    single._slow_start(1e6)
    assert single.window == 1
