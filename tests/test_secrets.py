"""Secrets reach the server they are for and no file: recognisable secrets are set through every route
(the environment, a secret file, the command line, a git remote) and the real entry points run as
subprocesses (generate.py against the loopback TGI server, a tiny train.py with an offline W&B run);
then every file written is searched for them, the binary W&B record included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import erc  # noqa: F401  (registers the config resolvers)
from erc.data.labels import label_set
from erc.errors import ConfigError, user_error_message
from erc.paths import PROJECT_ROOT
from erc.secrets import literal_secrets, read_secret_file, secret_overrides, strip_secrets

from helpers.loopback_tgi import LoopbackTGI, ScriptedDialogues

# Recognisable values, one per route (a W&B key must look like one: 40 characters).
ENV_SECRETS = {"HF_TOKEN": "hf_envHFTOKENsecret8c41", "OPENAI_API_KEY": "sk-envOPENAIsecret5e07",
               "ERC_TGI_TOKEN": "envTGITOKENsecret91ad", "WANDB_API_KEY": "wandbENVsecret" + "7" * 26}
FILE_SECRET = "fileSECRETvalue2b6f"
CLI_SECRET = "cliSECRETvalue4d3c"
GIT_SECRET = "ghp_gitREMOTEsecret0a9e"
ALL_SECRETS = [*ENV_SECRETS.values(), FILE_SECRET, CLI_SECRET, GIT_SECRET]


def secret_env(**changes: str | None) -> dict[str, str]:
    """The test's environment with every environment secret set (W&B offline: a key would make it go online)."""
    env = {**os.environ, **ENV_SECRETS, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def assert_no_secret_written(root: Path) -> list[Path]:
    """Every regular file below ``root`` is free of every secret, as raw bytes: binary files (the .wandb
    record, checkpoints, parquet) included. Links (to the shared benchmark data) are not followed. Returns
    the files."""
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    for path in files:
        data = path.read_bytes()
        for secret in ALL_SECRETS:
            assert secret.encode() not in data, f"{secret} written to {path}"
    return files


def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secrets" / "token"
    path.parent.mkdir()
    path.write_text(f"{FILE_SECRET}\n")
    path.chmod(0o600)
    return path


class HeaderRecordingTGI(LoopbackTGI):
    """The loopback TGI server, also recording the Authorization header of every request (/info, /generate
    and the OpenAI-compatible /v1/completions)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.authorization: list[str | None] = []

    async def _info(self, request):
        self.authorization.append(request.headers.get("Authorization"))
        return await super()._info(request)

    async def _generate(self, request):
        self.authorization.append(request.headers.get("Authorization"))
        return await super()._generate(request)

    async def _completions(self, request):
        self.authorization.append(request.headers.get("Authorization"))
        return await super()._completions(request)


def run_entry_point(script: str, args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PROJECT_ROOT / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def generate_args(tmp_path: Path, url: str, *overrides: str, llm: str = "tgi") -> list[str]:
    return [f"llm={llm}", f"llm.url={url}", "benchmark=iemocap", "seed=7", "n_dialogues=6", "max_attempts=1",
            f"paths.data_dir={tmp_path / 'data'}", f"paths.log_dir={tmp_path / 'logs'}", "llm.backoff_s=0.01",
            *overrides]


# --- generate.py: the token goes to llm.url only when configured, and to no file ---------------------------

@pytest.mark.parametrize("route", ["unset", "environment", "file"])
def test_generate_sends_only_the_configured_tgi_token_and_writes_no_secret(tmp_path, route) -> None:
    overrides, env, expected = [], secret_env(ERC_TGI_TOKEN=None), None
    if route == "environment":
        env, expected = secret_env(), f"Bearer {ENV_SECRETS['ERC_TGI_TOKEN']}"
    elif route == "file":
        overrides, expected = [f"llm.token=${{erc.secret_file:{secret_file(tmp_path)}}}"], f"Bearer {FILE_SECRET}"
    with HeaderRecordingTGI(ScriptedDialogues(label_set("iemocap"))) as server:
        job = run_entry_point("generate.py", generate_args(tmp_path, server.url, *overrides), tmp_path, env)
    assert job.returncode == 0, job.stderr[-3000:]
    # /info and every request, each with exactly the configured token; with none, no header at all, though
    # HF_TOKEN is set (the hub client would send it to any URL).
    assert len(server.authorization) == 1 + len(server.requests) > 1 and set(server.authorization) == {expected}
    for secret in ALL_SECRETS:
        assert secret not in job.stdout + job.stderr
    files = assert_no_secret_written(tmp_path / "data")  # the set, its card, runs.jsonl, requests.jsonl
    files += assert_no_secret_written(tmp_path / "logs")  # .hydra/, the job's log
    names = {p.name for p in files}
    assert {"requests.jsonl", "runs.jsonl", "config.yaml", "overrides.yaml", "hydra.yaml", "generate.log"} <= names
    if route == "file":  # where the secret is may be written down; the search would find a written secret
        assert "erc.secret_file" in next((tmp_path / "logs").rglob("overrides.yaml")).read_text()


@pytest.mark.parametrize("route", ["empty", "environment", "file"])
def test_generate_sends_the_openai_key_to_llm_url_only_and_writes_no_secret(tmp_path, route) -> None:
    overrides, env, expected = [], secret_env(), f"Bearer {ENV_SECRETS['OPENAI_API_KEY']}"
    if route == "empty":  # `export OPENAI_API_KEY=`: vLLM's placeholder, not the client's error
        env, expected = secret_env(OPENAI_API_KEY=""), "Bearer EMPTY"
    elif route == "file":
        overrides, expected = [f"llm.api_key=${{erc.secret_file:{secret_file(tmp_path)}}}"], f"Bearer {FILE_SECRET}"
    with HeaderRecordingTGI(ScriptedDialogues(label_set("iemocap"))) as server:
        args = generate_args(tmp_path, f"{server.url}/v1", "llm.server=plain", "llm.model=loopback", *overrides,
                             llm="openai")
        job = run_entry_point("generate.py", args, tmp_path, env)
    assert job.returncode == 0, job.stderr[-3000:]
    assert len(server.authorization) == len(server.requests) > 0 and set(server.authorization) == {expected}
    for secret in ALL_SECRETS:
        assert secret not in job.stdout + job.stderr
    files = assert_no_secret_written(tmp_path / "data") + assert_no_secret_written(tmp_path / "logs")
    assert {"requests.jsonl", "runs.jsonl", "config.yaml", "generate.log"} <= {p.name for p in files}


def test_a_secret_on_the_command_line_is_refused_before_anything_is_written(tmp_path) -> None:
    with HeaderRecordingTGI(ScriptedDialogues(label_set("iemocap"))) as server:
        job = run_entry_point("generate.py", generate_args(tmp_path, server.url, f"llm.token={CLI_SECRET}"),
                              tmp_path, secret_env())
    assert job.returncode == 2 and "Traceback" not in job.stderr
    assert job.stderr.strip().splitlines()[-1].startswith("error: llm.token was given on the command line")
    assert "${oc.env:" in job.stderr and "${erc.secret_file:" in job.stderr  # says how to pass it instead
    assert CLI_SECRET not in job.stdout + job.stderr
    assert server.authorization == [] and list(tmp_path.iterdir()) == []


def test_a_secret_written_out_in_a_config_file_is_refused_and_redacted_from_the_job_folder(tmp_path) -> None:
    user_conf = tmp_path / "conf" / "llm"  # a user's own llm option, added with --config-dir
    user_conf.mkdir(parents=True)
    (user_conf / "mine.yaml").write_text(f"defaults:\n  - tgi\ntoken: {CLI_SECRET}\n")
    with HeaderRecordingTGI(ScriptedDialogues(label_set("iemocap"))) as server:
        job = run_entry_point("generate.py", ["--config-dir", str(tmp_path / "conf"),
                                              *generate_args(tmp_path, server.url, llm="mine")],
                              tmp_path, secret_env())
    (user_conf / "mine.yaml").unlink()
    assert job.returncode == 2, job.stderr[-3000:]
    assert job.stderr.strip().splitlines()[-1].startswith("error: llm.token is written out in a config file")
    assert server.authorization == [] and not (tmp_path / "data").exists()  # refused before any request
    files = assert_no_secret_written(tmp_path)
    (saved,) = [p for p in files if p.name == "config.yaml"]
    assert OmegaConf.load(saved).llm.token == "<redacted>" and OmegaConf.load(saved).llm.backend == "tgi"


def test_an_unreadable_secret_file_is_one_error_line_naming_the_key(tmp_path) -> None:
    missing = tmp_path / "no_such_token"
    with HeaderRecordingTGI(ScriptedDialogues(label_set("iemocap"))) as server:
        job = run_entry_point("generate.py", generate_args(tmp_path, server.url,
                                                           f"llm.token=${{erc.secret_file:{missing}}}"),
                              tmp_path, secret_env())
    assert job.returncode == 2, job.stderr[-3000:]
    (line,) = job.stderr.strip().splitlines()
    assert line.startswith("error: llm.token: secret file") and str(missing) in line
    assert server.authorization == []


# --- train.py: results.json, checkpoints, the offline W&B run ----------------------------------------------

def test_train_with_offline_wandb_writes_no_secret_and_no_command_line(tmp_path, data_dir) -> None:
    repo = tmp_path / "work"  # the job runs in a git checkout whose remote URL carries a token
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "remote", "add", "origin", f"https://{GIT_SECRET}@example.invalid/erc.git"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "start"], check=True)
    args = ["classifier=compm", "classifier.backbone=tiny", "schedule=debug", "data=meld_bal",
            "data.limit_dialogues=2", "logger=wandb", f"paths.data_dir={data_dir}",
            f"paths.log_dir={tmp_path / 'logs'}",
            f"+logger.api_key=${{erc.secret_file:{secret_file(tmp_path)}}}", "+logger.token=${oc.env:ERC_TGI_TOKEN}"]
    job = run_entry_point("train.py", args, repo, secret_env())
    assert job.returncode == 0, job.stderr[-3000:]
    for secret in ALL_SECRETS:
        assert secret not in job.stdout + job.stderr
    assert [p.name for p in repo.iterdir()] == [".git"]  # nothing written where the job ran
    files = assert_no_secret_written(tmp_path / "logs") + assert_no_secret_written(data_dir)
    (record,) = [p for p in files if p.suffix == ".wandb"]
    data = record.read_bytes()
    assert b"meld_bal" in data and b"test/meld_org/wf1" in data  # the search reads what W&B wrote ...
    assert b"data.limit_dialogues=2" not in data and b"example.invalid" not in data  # ... no command line, no git
    assert any(p.name == "results.json" for p in files) and any(p.suffix == ".ckpt" for p in files)


def test_evaluate_with_offline_wandb_writes_no_secret(tmp_path) -> None:
    """evaluate.py's own W&B run (wandb.log=true) gets the config without secrets and without the command line."""
    scores = PROJECT_ROOT / "tests" / "fixtures" / "paper_table4_scores.csv"
    args = [f"scores={scores}", "wandb.log=true", f"paths.log_dir={tmp_path / 'logs'}",
            f"+wandb.api_key=${{erc.secret_file:{secret_file(tmp_path)}}}", "+wandb.token=${oc.env:ERC_TGI_TOKEN}"]
    job = run_entry_point("evaluate.py", args, tmp_path, secret_env())
    assert job.returncode == 0, job.stderr[-3000:]
    files = assert_no_secret_written(tmp_path / "logs")
    (record,) = [p for p in files if p.suffix == ".wandb"]
    data = record.read_bytes()
    assert b"table4" in data and b"wandb.log=true" not in data   # the search reads W&B's record; no command line


@pytest.mark.parametrize("script", ["train.py", "evaluate.py"])
def test_train_and_evaluate_refuse_a_secret_on_the_command_line(tmp_path, script) -> None:
    job = run_entry_point(script, [f"+logger.api_key={CLI_SECRET}", f"paths.log_dir={tmp_path / 'logs'}"],
                          tmp_path, secret_env())
    assert job.returncode == 2
    assert job.stderr.strip().splitlines()[-1].startswith("error: logger.api_key was given on the command line")
    assert CLI_SECRET not in job.stdout + job.stderr and list(tmp_path.iterdir()) == []


# --- the pieces ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("override, refused", [
    ("llm.token=abc", "llm.token"),
    ("llm.api_key=sk-123", "llm.api_key"),
    ("+llm.api_key=sk-123", "llm.api_key"),
    ("++llm.api_key=sk-123", "llm.api_key"),
    ("~llm.token=abc", "llm.token"),                       # a deletion matching a value writes the value too
    ("+a.b.c.hf_token=abc", "a.b.c.hf_token"),
    ("+logger.client_secret=abc", "logger.client_secret"),
    ("llm.token=a,b", "llm.token"),                        # a sweep over literals
    ("llm.token='abc'", "llm.token"),
    ("hydra.job.env_set.OPENAI_API_KEY=sk-123", "hydra.job.env_set.OPENAI_API_KEY"),
    ("llm.token=${oc.env:X}abc", "llm.token"),              # an interpolation with a literal tail
    ("llm.token=${oc.env:ERC_TGI_TOKEN}", None),
    ("llm.token='${erc.secret_file:/run/secrets/tgi}'", None),
    ("llm.api_key=${oc.env:OPENAI_API_KEY,EMPTY}", None),
    ("llm.token=null", None),
    ("llm.token=", None),
    ("~llm.token", None),                                  # deleting the key names no value
    ("sampling.max_new_tokens=250", None),
    ("data.max_utterance_tokens=64", None),
    ("+tokenizer=bert", None),
    ("llm.url=http://127.0.0.1:8080", None),
    ("llm.url=http://user:pw@127.0.0.1:8080", "llm.url"),  # a password inside a URL
    ("llm.url=[http://a:8080,https://u:p@b:8080/v1]", "llm.url"),
    ("paths.data_dir=/data/user@host:2", None),
    ("classifier.backbone=tiny", None),
])
def test_secret_overrides(override, refused) -> None:
    assert secret_overrides(["-m", override, "seed=1"]) == ([refused] if refused else [])


def test_literal_secrets_finds_written_out_values_only() -> None:
    config = {"llm": {"token": "abc", "api_key": "EMPTY", "url": "http://h"},
              "logger": {"api_key": "${oc.env:WANDB_API_KEY}", "password": None, "secret": 1234},
              "replicas": [{"token": "${erc.secret_file:/p}"}, {"token": "xyz"}],
              "credentials": {"user": "me", "password": "pw"}, "sampling": {"max_new_tokens": 250}}
    assert literal_secrets(config) == ["llm.token", "logger.secret", "replicas.1.token", "credentials.password"]


def test_strip_secrets_keeps_settings_whose_name_only_contains_a_secret_word() -> None:
    config = {"llm": {"token": "t", "api_key": "k", "url": "u"}, "sampling": {"max_new_tokens": 5},
              "runs": [{"password": "p", "seed": 1}]}
    assert strip_secrets(config) == {"llm": {"url": "u"}, "sampling": {"max_new_tokens": 5}, "runs": [{"seed": 1}]}


def test_secret_file_resolver_reads_the_first_line(tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text("  s3cret \nignored\n")
    assert OmegaConf.create({"token": f"${{erc.secret_file:{path}}}"}).token == "s3cret"


@pytest.mark.parametrize("content", [None, "", "\n", "   \nsecret on the second line\n", b"\xff\xfe"])
def test_secret_file_resolver_names_the_file_when_it_has_no_secret(tmp_path, content) -> None:
    path = tmp_path / "token"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=f"secret file {path}"):
        read_secret_file(str(path))
    # Through a config, OmegaConf wraps the error; the entry points still print it as one line naming the key.
    cfg = OmegaConf.create({"llm": {"token": f"${{erc.secret_file:{path}}}"}})
    with pytest.raises(Exception) as wrapped:
        OmegaConf.to_container(cfg, resolve=True)
    message = user_error_message(wrapped.value)
    assert message is not None and message.startswith(f"llm.token: secret file {path}")
    assert "second line" not in message


def test_a_bug_inside_a_resolver_stays_a_bug() -> None:
    OmegaConf.register_new_resolver("test_secrets.broken", lambda: 1 / 0, replace=True)
    with pytest.raises(Exception) as wrapped:
        _ = OmegaConf.create({"x": "${test_secrets.broken:}"}).x
    assert user_error_message(wrapped.value) is None
