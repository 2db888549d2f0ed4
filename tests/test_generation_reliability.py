"""Generation under a hostile but realistic user and server: two processes on one out_dir, bad config
values, malformed and empty answers, a server that never answers, poor yields, reruns that must
change no file, and small sets that must still fill every split. All against the loopback
TGI-protocol server over real sockets (tests/helpers/loopback_tgi.py), real ``generate.py`` processes where
the entry point matters."""

from __future__ import annotations

import json
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from erc.data.labels import label_set
from erc.errors import ConfigError
from erc.generation import GenerationError
from erc.generation.split import assign_split
from erc.llm.sampling import derive_seed
from erc.paths import PROJECT_ROOT
from erc.pipeline import generate

from helpers.generation import SEED, expected_requests, expected_slots, make_cfg, out_dir, read_jsonl
from helpers.loopback_tgi import LoopbackTGI, ScriptedDialogues

LABELS = label_set("iemocap")
SPLIT_FILES = ("train.jsonl", "dev.jsonl", "test.jsonl")


def command(url: str, tmp_path: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(PROJECT_ROOT / "generate.py"), "llm=tgi", f"llm.url={url}", "benchmark=iemocap",
            f"seed={SEED}", f"paths.data_dir={tmp_path}/data", f"hydra.run.dir={tmp_path}/hydra",
            "llm.backoff_s=0.01", "llm.backoff_max_s=0.05", *overrides]


def seeds_of(slot: int, attempts: range) -> set[int]:
    return {derive_seed(SEED, slot, a) for a in attempts}


def valid_text(script: ScriptedDialogues, seed: int) -> str:
    """A dialogue the parser accepts (a natural prompt), distinct per seed."""
    return "\n".join(f"{s}: {t} ({LABELS.index(label) + 1})" for s, t, label in script.turns_for(seed, None))


# --- 1. one generate.py per out_dir -------------------------------------------------------------------------


def test_a_second_generate_on_one_out_dir_is_refused_naming_the_holder(tmp_path):
    n = 8
    requests_path = out_dir(tmp_path) / "requests.jsonl"
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        server.paused.set()  # the first process stays mid-request, holding the folder
        log = open(tmp_path / "first.log", "w+")  # noqa: SIM115 (the process writes it; closed below)
        first = subprocess.Popen(command(server.url, tmp_path, f"n_dialogues={n}"), cwd=PROJECT_ROOT,
                                 stdout=log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while len(server.requests) < n and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # every slot's first request in flight (the window opens to 8 in 0.2 s), held there
        asked = len(server.requests)
        assert asked == n, f"the first generate.py did not get going: {(tmp_path / 'first.log').read_text()}"
        second = subprocess.run(command(server.url, tmp_path, f"n_dialogues={n}"), cwd=PROJECT_ROOT,
                                capture_output=True, text=True, timeout=120)
        assert len(server.requests) == asked  # refused before any request
        server.paused.clear()
        assert first.wait(timeout=120) == 0, (tmp_path / "first.log").read_text()[-2000:]
        log.close()
    assert second.returncode == 2
    assert f"pid {first.pid} on host {socket.gethostname()}" in second.stderr
    assert "Traceback" not in second.stderr
    records = read_jsonl(requests_path)
    assert len(server.requests) == len(records) == expected_requests(n, 3, balanced=False)
    assert len({r["fingerprint"] for r in records}) == len(records)


def test_repeated_fingerprints_are_read_once_with_a_warning(tmp_path, caplog):
    """The store <-> resume join: a requests.jsonl holding each request twice (two processes before
    the lock existed) neither re-asks anything nor counts anything twice."""
    n = 6
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        card = generate(make_cfg(tmp_path, server.url, f"n_dialogues={n}"))
        path = out_dir(tmp_path) / "requests.jsonl"
        path.write_text(path.read_text() * 2)
        asked = len(server.requests)
        again = generate(make_cfg(tmp_path, server.url, f"n_dialogues={n}"))
        assert len(server.requests) == asked
    assert "repeat the fingerprint of an earlier one" in caplog.text
    assert again["counts"] == card["counts"] and again["rejections"] == card["rejections"]


# --- 2. every value checked before any request --------------------------------------------------------------


def template(tmp_path: Path, text: str) -> str:
    path = tmp_path / "template.txt"
    path.write_text(text)
    return f"prompt.template={path}"


@pytest.mark.parametrize("overrides, key", [
    (["n_dialogues=0"], "n_dialogues"),
    (["n_dialogues=-3"], "n_dialogues"),
    (["max_attempts=0"], "max_attempts"),
    (["llm.concurrency=0"], "llm.concurrency"),
    (["llm.max_retries=-1"], "llm.max_retries"),
    (["llm.timeout_s=0"], "llm.timeout_s"),
    (["llm.request_deadline_s=-5"], "llm.request_deadline_s"),
    (["llm.backoff_s=-1"], "llm.backoff_s"),
    (["split.train=0.8", "split.dev=0.3"], "split"),
    (["sampling.temperature=0"], "sampling.temperature"),
    (["sampling.top_p=1.5"], "sampling.top_p"),
    (["sampling.top_k=0"], "sampling.top_k"),
    (["sampling.typical_p=0"], "sampling.typical_p"),
    (["sampling.max_new_tokens=0"], "sampling.max_new_tokens"),
    (["dedup.minhash_threshold=0"], "dedup.minhash_threshold"),
    (["dedup.minhash_threshold=0.99"], r"dedup.minhash_threshold=0.99 with dedup.num_perm=128"),
    (["validation.min_turns=0"], "validation.min_turns"),
    (["llm.url=[http://127.0.0.1:9,http://user:pw@127.0.0.1:9]"], "llm.url"),
])
def test_bad_values_are_refused_naming_the_key_before_any_request(tmp_path, overrides, key):
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        with pytest.raises(ConfigError, match=rf"^{key} (must|cannot)"):
            generate(make_cfg(tmp_path, server.url, *overrides))
        assert server.requests == []
    assert not out_dir(tmp_path).exists()


@pytest.mark.parametrize("given, key, to_use, overrides", [
    ("{url}/generate", "llm.url", "{url}", []),
    ("{host}", "llm.url", "{url}", []),  # no scheme
    ("{url}/v1/chat/completions", "llm.url", "{url}/v1", ["llm=openai", "llm.server=plain", "llm.model=loopback"]),
    ("{url}/v1/completions/", "judge.llm.url", "{url}/v1",
     ["judge=llm", "llm@judge.llm=openai", "judge.llm.server=plain", "judge.llm.model=loopback"]),
], ids=["tgi_route", "no_scheme", "openai_route", "judge_route"])
def test_a_url_with_its_route_or_without_scheme_is_refused_with_the_url_to_use(tmp_path, given, key, to_use,
                                                                              overrides):
    """Such a URL fails at every request, which would be retried for minutes as if the server were down."""
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        names = {"url": server.url, "host": server.url.removeprefix("http://")}
        url = server.url if key.startswith("judge") else given.format(**names)
        with pytest.raises(ConfigError, match=rf"^{key}={re.escape(given.format(**names))} .*: give "
                                              rf"{key}={re.escape(to_use.format(**names))}$"):
            generate(make_cfg(tmp_path, url, *overrides, *([f"{key}={given.format(**names)}"]
                                                          if key.startswith("judge") else [])))
        assert server.requests == []
    assert not out_dir(tmp_path).exists()


@pytest.mark.parametrize("prompt, text, message", [
    ("balanced", "Talk, {participants}. Label with {label_options}.", r"lacks \{target\}"),
    ("natural", "Talk, {participants}. Label every line with an emotion.", r"lacks \{label_options\}"),
    ("natural", "Talk, {participants}. Use {label_options}. Include {target}.", r"unknown slot\(s\) \{target\}"),
    ("balanced", "{participants} {label_options} {target} {mood}", r"unknown slot\(s\) \{mood\}"),
])
def test_templates_must_carry_exactly_their_mode_s_slots(tmp_path, prompt, text, message):
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        with pytest.raises(ConfigError, match=rf"^prompt\.template .*{message}"):
            generate(make_cfg(tmp_path, server.url, f"prompt={prompt}", template(tmp_path, text)))
        assert server.requests == []


@pytest.mark.parametrize("llm", ["local", "tgi", "openai"])
def test_every_shipped_config_passes_the_checks(llm):
    from hydra import compose, initialize_config_dir

    from erc.generation.checks import check_generation_config
    from erc.paths import CONFIG_DIR

    conf = PROJECT_ROOT / "conf"
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for benchmark in sorted(p.stem for p in (conf / "benchmark").glob("*.yaml")):
            for prompt in ("natural", "balanced"):
                for sampling in sorted(p.stem for p in (conf / "sampling").glob("*.yaml")):
                    check_generation_config(compose("generate", overrides=[
                        f"llm={llm}", f"benchmark={benchmark}", f"prompt={prompt}", f"sampling={sampling}"]))


def test_generate_py_with_n_dialogues_0_exits_2_with_one_line(tmp_path):
    run = subprocess.run(command("http://127.0.0.1:9", tmp_path, "n_dialogues=0"), cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("error: n_dialogues must be a positive integer")
    assert not out_dir(tmp_path).exists()


# --- 3. malformed and empty answers --------------------------------------------------------------------------


def test_malformed_answers_are_counted_retried_failures(tmp_path):
    n = 6
    with LoopbackTGI(ScriptedDialogues(LABELS), faults=["invalid_json", "html", "foo"]) as server:
        result = generate(make_cfg(tmp_path, server.url, f"n_dialogues={n}", "llm.concurrency=1"))
    assert result["generation"]["retried_faults"] == {"MalformedAnswerError": 3}
    records = read_jsonl(out_dir(tmp_path) / "requests.jsonl")
    assert len(records) == expected_requests(n, 3, balanced=False)  # every request answered in the end
    dialogues = read_jsonl(out_dir(tmp_path) / "dialogues.jsonl")
    assert {d["meta"]["dialogue"]: d["meta"]["attempt"] for d in dialogues} == expected_slots(n, 3, False)


@pytest.mark.parametrize("fault, shown", [("html", "<!DOCTYPE html><html><head><title>Sign in"),
                                          ("invalid_json", '{"generated_text": "Joey: Hi (1)", "details": {'),
                                          ("foo", '{"foo": 1}')])
def test_a_server_that_only_answers_malformed_is_reported_after_the_retries(tmp_path, fault, shown):
    with LoopbackTGI(ScriptedDialogues(LABELS), faults=[fault] * 10) as server:
        with pytest.raises(GenerationError) as caught:
            generate(make_cfg(tmp_path, server.url, "n_dialogues=1", "llm.max_retries=2"))
        assert len(server.requests) == 3  # one try and two retries
    message = str(caught.value)
    assert "gave up after 2 retries" in message and server.url in message and shown in message


def test_the_openai_backend_retries_malformed_answers_too(tmp_path):
    n = 4
    with LoopbackTGI(ScriptedDialogues(LABELS), faults=["invalid_json", "html", "foo"]) as server:
        result = generate(make_cfg(tmp_path, server.url, "llm=openai", f"llm.url={server.url}/v1",
                                   "llm.model=loopback", "llm.server=plain", f"n_dialogues={n}",
                                   "llm.concurrency=1", "max_attempts=1", "llm.max_retries=3"))
        server.faults.extend(["html"] * 4)
        with pytest.raises(GenerationError, match=r"gave up after 3 retries.*Sign in"):
            generate(make_cfg(tmp_path, server.url, "llm=openai", f"llm.url={server.url}/v1", "llm.model=loopback",
                              "llm.server=plain", f"n_dialogues={n + 1}", "max_attempts=1", "llm.max_retries=3",
                              "llm.concurrency=1"))
    assert result["generation"]["retried_faults"] == {"MalformedAnswerError": 3}
    assert result["generation"]["requests"] == n


def test_empty_answers_are_retried_not_stored(tmp_path):
    """A server's empty 200 answer is a fault (retried, counted), not an attempt that held no dialogue."""
    script = ScriptedDialogues(LABELS)
    seen: set[int] = set()

    def answer(inputs, parameters):
        seed = parameters["seed"]
        if seed not in seen:   # every request's first answer is empty (blank), its retry the script's
            seen.add(seed)
            return " \n", "eos_token"
        return valid_text(script, seed), "eos_token"

    with LoopbackTGI(answer) as server:
        result = generate(make_cfg(tmp_path, server.url, "n_dialogues=2", "max_attempts=1", "llm.concurrency=1"))
        assert len(server.requests) == 4
        with LoopbackTGI(lambda inputs, parameters: ("", "eos_token")) as empty, \
                pytest.raises(GenerationError, match=r"gave up after 2 retries: .* answered with an empty text"):
            generate(make_cfg(tmp_path, empty.url, "n_dialogues=3", "max_attempts=1", "llm.max_retries=2"))
    assert result["generation"]["retried_faults"] == {"EmptyAnswerError": 2}
    records = read_jsonl(out_dir(tmp_path) / "requests.jsonl")
    assert len(records) == 2 and all(r["text"].strip() for r in records)


def test_slots_whose_answers_held_no_dialogue_stay_open_for_the_next_run(tmp_path, caplog):
    """Slots 0 and 1's first round answers are prose, slot 2's are all cut by the token limit: 0 and 1 are
    asked again by the next run, 2 (a dialogue, rejected for its content) is not."""
    script = ScriptedDialogues(LABELS)
    refusal, prose, truncated = seeds_of(0, range(2)), seeds_of(1, range(2)), seeds_of(2, range(2))

    def answer(inputs, parameters):
        seed = parameters["seed"]
        if seed in refusal:
            return "I cannot write that.", "eos_token"
        if seed in prose:
            return "What a lovely idea for a story! Let me think about it.", "eos_token"
        return valid_text(script, seed), "length" if seed in truncated else "eos_token"

    cfg = ("n_dialogues=4", "max_attempts=2")
    with LoopbackTGI(answer) as server:
        card = generate(make_cfg(tmp_path, server.url, *cfg))
        assert len(server.requests) == 2 + 2 + 2 + 1
        assert card["counts"]["slots_without_dialogue"] == 2 and card["counts"]["kept"] == 1
        assert "2 slot(s) got no dialogue in any answer" in caplog.text
        asked = len(server.requests)
        card = generate(make_cfg(tmp_path, server.url, *cfg))
        again = {body["parameters"]["seed"] for body in server.requests[asked:]}
        assert again == {derive_seed(SEED, 0, 2), derive_seed(SEED, 1, 2)}  # the next seeds, slot 2 untouched
        assert card["counts"]["slots_without_dialogue"] == 0 and card["counts"]["kept"] == 3
        assert read_jsonl(out_dir(tmp_path) / "runs.jsonl")[-1]["slots_reopened"] == 2
        asked = len(server.requests)
        generate(make_cfg(tmp_path, server.url, *cfg))
        assert len(server.requests) == asked  # now every slot is finished


def limit_file_size(size: int) -> Callable[[], None]:
    """A child process's setup: files it writes may not grow past ``size`` bytes (the OS refuses with EFBIG, as a
    full disk refuses with ENOSPC), and the signal that would kill it there is ignored."""
    def setup() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
    return setup


def test_a_full_disk_under_requests_jsonl_is_an_error_naming_it(tmp_path):
    from erc.llm.retry import LLMRunError
    from erc.llm.store import RequestStore

    store = RequestStore(tmp_path / "requests.jsonl")
    store._handle.close()
    store._handle = open("/dev/full", "a", encoding="utf-8")  # noqa: SIM115 (the OS layer: every write is ENOSPC)
    with pytest.raises(LLMRunError, match=rf"^{re.escape(str(store.path))}: could not append an answer \(No space "
                                          r"left on device\)\. Free disk space and rerun"):
        store.append({"fingerprint": "f", "text": "x" * 10_000})
    store.close()   # the text still buffered is dropped, not a second error
    assert store.records == []


@pytest.mark.slow
def test_a_refused_write_to_requests_jsonl_is_one_line_naming_it_and_a_rerun_resumes(tmp_path):
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        run = subprocess.run(command(server.url, tmp_path, "n_dialogues=6", "llm.concurrency=2"), cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=120, preexec_fn=limit_file_size(8_000))
        store = out_dir(tmp_path) / "requests.jsonl"
        assert run.returncode == 2, run.stderr[-2000:]
        assert run.stderr.strip().splitlines()[-1] == (
            f"error: {store}: could not append an answer (File too large). Free disk space and rerun the same "
            f"command to resume: nothing stored before is lost")
        assert "Traceback" not in run.stderr and 0 < store.stat().st_size <= 8_000
        generate(make_cfg(tmp_path, server.url, "n_dialogues=6", "quality.enabled=false"))
    records = read_jsonl(store)   # the cut last line repaired, nothing stored twice
    assert len(records) == len({r["fingerprint"] for r in records}) == expected_requests(6, 3, balanced=False)


# --- 4. poor yields are said, none is an error ----------------------------------------------------------------


def test_all_answers_truncated_exits_2_naming_max_new_tokens(tmp_path):
    script = ScriptedDialogues(LABELS)
    with LoopbackTGI(lambda inputs, p: (valid_text(script, p["seed"]), "length")) as server:
        run = subprocess.run(command(server.url, tmp_path, "n_dialogues=3", "max_attempts=1",
                                     "sampling.max_new_tokens=250"), cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=120)
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no dialogue kept") and "0 of 3 dialogues kept" in last
    assert '"truncated": 3' in last and "sampling.max_new_tokens (now 250)" in last
    warning = [line for line in (run.stdout + run.stderr).splitlines() if "WARNING" in line and "cut by" in line]
    assert warning and "sampling.max_new_tokens (now 250)" in warning[0]


def test_a_low_yield_is_a_warning_with_the_rejection_counts(tmp_path, caplog):
    script = ScriptedDialogues(LABELS)
    keep = seeds_of(0, range(1))

    def answer(inputs, parameters):
        seed = parameters["seed"]
        if seed in keep:
            return valid_text(script, seed), "eos_token"
        return "Joey: Hi. (1)\nRachel: Hey. (2)", "eos_token"  # too few turns

    with LoopbackTGI(answer) as server:
        card = generate(make_cfg(tmp_path, server.url, "n_dialogues=4", "max_attempts=1"))
    assert card["counts"]["kept"] == 1
    warning = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "far fewer" in r.getMessage()]
    assert warning and "1 of 4 dialogues kept" in warning[0] and '"too_few_turns": 3' in warning[0]


# --- 5. a total deadline per request ---------------------------------------------------------------------------


def test_a_silent_server_fails_at_the_request_deadline(tmp_path):
    with LoopbackTGI(ScriptedDialogues(LABELS), silent=True) as server:
        started = time.monotonic()
        with pytest.raises(GenerationError, match=r"no answer within llm.request_deadline_s=1 s"):
            generate(make_cfg(tmp_path, server.url, "n_dialogues=2", "llm.request_deadline_s=1", "llm.timeout_s=20",
                              "llm.max_retries=1"))
        assert time.monotonic() - started < 10  # not llm.timeout_s x (llm.max_retries + 1)
        assert server.requests


def test_the_deadline_bounds_the_retries_and_their_waits(tmp_path):
    with LoopbackTGI(ScriptedDialogues(LABELS), faults=[503] * 50) as server:
        with pytest.raises(GenerationError, match=r"within llm.request_deadline_s=1 s.*HTTP 503"):
            generate(make_cfg(tmp_path, server.url, "n_dialogues=1", "llm.request_deadline_s=1",
                              "llm.backoff_s=0.3", "llm.backoff_max_s=10"))
        assert 1 <= len(server.requests) < 9  # stopped before the 8 retries were used


# --- 6. a rerun with nothing new changes no file ------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())
            if p.is_file() and p.name != ".lock"}


def test_a_rerun_with_nothing_to_run_rewrites_no_file(tmp_path):
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        generate(make_cfg(tmp_path, server.url, "n_dialogues=6"))
        before = snapshot(out_dir(tmp_path))
        assert {"card.json", "README.md", "utterances.parquet", "label_distribution.png", "runs.jsonl",
                *SPLIT_FILES} <= set(before)
        generate(make_cfg(tmp_path, server.url, "n_dialogues=6"))
        assert snapshot(out_dir(tmp_path)) == before
        generate(make_cfg(tmp_path, server.url, "n_dialogues=6", "postprocess_only=true"))
        assert snapshot(out_dir(tmp_path)) == before
        # New data rewrites what changed.
        generate(make_cfg(tmp_path, server.url, "n_dialogues=9"))
    after = snapshot(out_dir(tmp_path))
    assert after["dialogues.jsonl"] != before["dialogues.jsonl"] and after["card.json"] != before["card.json"]


# --- 7. small sets fill every split ----------------------------------------------------------------------------------


def test_six_dialogues_fill_every_split(tmp_path):
    n = 6
    script = ScriptedDialogues(LABELS)
    with LoopbackTGI(lambda inputs, p: (valid_text(script, p["seed"]), "eos_token")) as server:
        card = generate(make_cfg(tmp_path, server.url, f"n_dialogues={n}", "max_attempts=1", "split.train=0.5",
                                 "split.dev=0.25", "split.test=0.25"))
    hashed = [assign_split(f"iemocap_nat_{i:06d}", {"train": .5, "dev": .25, "test": .25}) for i in range(n)]
    assert "dev" not in hashed  # the case the repair is for
    assert all(card["counts"]["dialogues"][s] >= 1 for s in ("train", "dev", "test"))
    assert all(read_jsonl(out_dir(tmp_path) / name) for name in SPLIT_FILES)


def test_too_few_dialogues_for_the_splits_says_how_many_are_needed(tmp_path, caplog):
    script = ScriptedDialogues(LABELS)
    with LoopbackTGI(lambda inputs, p: (valid_text(script, p["seed"]), "eos_token")) as server:
        generate(make_cfg(tmp_path, server.url, "n_dialogues=2", "max_attempts=1"))
    assert "2 dialogue(s) kept, 3 needed for one in every split" in caplog.text


# --- 8. joins of separately tested pieces --------------------------------------------------------------------------


def near_duplicates(script: ScriptedDialogues, by_seed: dict[int, int]):
    """Slot 2k+1 repeats slot 2k's dialogue with one word changed: a near-duplicate that a strict
    dedup threshold keeps and a loose one removes."""
    def answer(inputs, parameters):
        slot = by_seed[parameters["seed"]]
        text = valid_text(script, derive_seed(SEED, slot - slot % 2, 0))
        return (text.replace(" ", " zz ", 1) if slot % 2 else text), "eos_token"
    return answer


def test_changing_dedup_moves_no_dialogue_between_splits(tmp_path):
    """Post-processing <-> split: a dialogue's split follows its id, never its place in the kept list."""
    n = 40
    by_seed = {derive_seed(SEED, slot, 0): slot for slot in range(n)}
    with LoopbackTGI(near_duplicates(ScriptedDialogues(LABELS), by_seed)) as server:
        generate(make_cfg(tmp_path, server.url, f"n_dialogues={n}", "max_attempts=1",
                          "dedup.minhash_threshold=0.98"))
    strict = {d["id"]: d["split"] for d in read_jsonl(out_dir(tmp_path) / "dialogues.jsonl")}
    generate(make_cfg(tmp_path, "http://127.0.0.1:9", f"n_dialogues={n}", "max_attempts=1", "postprocess_only=true",
                      "dedup.minhash_threshold=0.3"))
    loose = {d["id"]: d["split"] for d in read_jsonl(out_dir(tmp_path) / "dialogues.jsonl")}
    assert len(strict) == n and len(loose) == n // 2  # dedup changed the kept list
    assert all(loose[i] == strict[i] for i in loose)
    ratios = {"train": 0.8, "dev": 0.1, "test": 0.1}
    assert all(split == assign_split(i, ratios) for i, split in strict.items())
    for name in SPLIT_FILES:
        assert {d["id"] for d in read_jsonl(out_dir(tmp_path) / name)} == {
            i for i, s in loose.items() if s == name.removesuffix(".jsonl")}


def test_label_0_from_the_server_is_rejected_not_read_as_the_last_class(tmp_path):
    """Parser <-> validation <-> card: ``(0)`` is out of range, counted, and never becomes a label."""
    def answer(inputs, parameters):
        return ("Male: Hello there friend. (0)\nFemale: Hi how are you. (2)\nMale: Fine thanks. (1)\n"
                "Female: Good to hear that. (2)"), "eos_token"

    with LoopbackTGI(answer) as server, pytest.raises(GenerationError, match="no dialogue kept"):
        generate(make_cfg(tmp_path, server.url, "n_dialogues=2", "max_attempts=1"))
    card = json.loads((out_dir(tmp_path) / "card.json").read_text())
    assert card["rejections"] == {"label_out_of_range": 2}
    assert card["labels"][LABELS[-1]] == 0
    assert not (out_dir(tmp_path) / "dialogues.jsonl").exists()   # an empty set is not written
