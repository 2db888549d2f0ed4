"""Publish a generated set on the Hugging Face Hub as a dataset repository.

``python -m erc.publish <set folder> --repo user/name`` lists what would go up (a dry run, the default); ``--push``
uploads it in one commit through huggingface_hub, with the token from the environment variable ``HF_TOKEN`` only
(never an argument, which shells and job logs keep, and never printed). Uploaded: the splits (``train/dev/test.jsonl``,
which the README's front matter types for ``datasets``: :mod:`erc.postprocess.hub`), the README card, ``card.json``,
the prompt template (checked against the hash the requests were made with) and ``provenance.json`` (how the set was
made, in one file: :func:`provenance`); the raw LLM answers (``requests.jsonl``) only with ``--include-raw``.
Server addresses (:data:`PRIVATE_KEYS`) and secret-looking keys are left out of what goes up: they say where a lab's
servers are, not how the set was made. See docs/publishing.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from erc.errors import DataError, UserError, exit_on_user_error
from erc.llm.templates import load_template
from erc.paths import CONFIG_DIR, PROJECT_ROOT
from erc.secrets import strip_secrets

SPLIT_FILES: tuple[str, ...] = ("train.jsonl", "dev.jsonl", "test.jsonl")
RAW_FILE = "requests.jsonl"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
# Keys left out of what goes up (the card's server ``urls``, each raw answer's ``replica``): where a lab's servers
# are, not how the set was made.
PRIVATE_KEYS: frozenset[str] = frozenset({"urls", "replica"})


@dataclass(frozen=True)
class Upload:
    """One file of the repository: ``path`` in it, its bytes, and where they come from (``origin``, for the
    listing)."""

    path: str
    data: bytes
    origin: str


def read_card(folder: Path) -> dict[str, Any]:
    """The set's ``card.json``; a folder without one is not a generated set."""
    path = folder / "card.json"
    if not path.is_file():
        raise DataError(f"{path}: not found; give the folder of a set written by generate.py (it holds card.json, "
                        "README.md and train/dev/test.jsonl)")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise DataError(f"{path}: not valid JSON ({err}); rerun its generate.py command with "
                        "postprocess_only=true to write it again") from None
    if not card.get("counts", {}).get("kept"):
        raise DataError(f"{path}: the set kept no dialogue, so there is nothing to publish (see its rejections)")
    return card


def readme(folder: Path, licence: str | None) -> bytes:
    """The set's README (its dataset card), with ``licence`` in its metadata when given. A README without the
    Hub's metadata was written by an older erc: rewriting the card is a post-processing rerun, no LLM call."""
    from huggingface_hub import DatasetCard

    path = folder / "README.md"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    card = DatasetCard(text, ignore_metadata_errors=True)
    if not card.data.to_dict().get("configs"):
        raise DataError(f"{path}: no dataset-card metadata (configs); rerun the set's generate.py command with "
                        "postprocess_only=true to write its card again")
    if licence is None:
        return text.encode()
    card.data.license = licence
    return str(card).encode()


def template_file(card: dict[str, Any], given: Path | None) -> Path:
    """The prompt template the set was made with: ``given``, else the card's path, else the file of that name in
    this checkout's ``conf/prompt/templates``; the first whose effective text has the card's hash."""
    template = card["generator"]["template"]
    recorded = Path(template["path"])
    candidates = [given] if given else [recorded, CONFIG_DIR / "prompt" / "templates" / recorded.name]
    for path in candidates:
        if path.is_file() and load_template(path).hash == template["hash"]:
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise DataError(f"prompt template with hash {template['hash']} not found (looked at {looked}: missing or another "
                    "text); give the file the set was made with: --template PATH")


def code_version() -> str:
    """This checkout's ``git describe``, else the installed or declared package version of erc."""
    try:
        described = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=PROJECT_ROOT,
                                   capture_output=True, text=True, timeout=30, check=False)
        if described.returncode == 0 and described.stdout.strip():
            return f"git {described.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"erc {importlib.metadata.version('erc')}"
    except importlib.metadata.PackageNotFoundError:
        with (PROJECT_ROOT / "pyproject.toml").open("rb") as file:
            return f"erc {tomllib.load(file)['project']['version']}"


def public(value: Any) -> Any:
    """``value`` without secret-looking keys and without :data:`PRIVATE_KEYS`."""
    if isinstance(value, dict):
        return {k: public(v) for k, v in strip_secrets(value).items() if k not in PRIVATE_KEYS}
    if isinstance(value, list):
        return [public(v) for v in value]
    return value


def provenance(card: dict[str, Any], template: str, files: dict[str, bytes]) -> dict[str, Any]:
    """How the set was made, for a reader of the Hub repository: model, backend and server, the sampling parameters
    sent and those the server could not honour, the prompt template and its hash, the code version (of this
    checkout, at publishing: the card does not record the generating one), seeds, counts, tokens and the
    contamination check (null where the card has none), and the SHA-256 of each file uploaded beside it."""
    gen = card["generator"]
    served = public(gen.get("provenance", {}))
    return {
        "dataset": card["dataset"], "benchmark": card["benchmark"], "mode": card["mode"],
        "created_at": card.get("created_at"),
        "model": gen["model"], "backend": gen["backend"],
        "server": {k: v for k, v in served.items() if k != "model"},
        "sampling": {"sent": gen.get("parameters_sent"), "not_honoured": gen.get("not_honoured"),
                     "deviations_from_table_ii": gen.get("deviations_from_table_ii"),
                     "constrained": gen.get("constrained"), "format": gen.get("format")},
        "template": {"file": template, "hash": gen["template"]["hash"],
                     "reconstruction": gen["template"].get("reconstruction")},
        "chat_template": gen.get("chat_template"),
        "code_version": code_version(), "code_version_at": "publishing",
        "seeds": {"base_seed": gen.get("seed"), "max_attempts": gen.get("max_attempts"),
                  "per_dialogue": "meta.seed of each dialogue (derived from the base seed, the slot and the attempt)"},
        "counts": card["counts"],
        "tokens": card.get("tokens"),
        "contamination": card.get("contamination"),
        "filter": card.get("filter"),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }


def plan(folder: Path, *, include_raw: bool = False, licence: str | None = None,
         template: Path | None = None) -> list[Upload]:
    """Every file the repository gets, in upload order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; give the folder of a set written by generate.py")
    card = read_card(folder)
    uploads = [Upload(name, (folder / name).read_bytes(), str(folder / name))
               for name in SPLIT_FILES if (folder / name).is_file()]
    if include_raw:
        raw = folder / RAW_FILE
        if not raw.is_file():
            where = f" (a filtered set: its raw answers are in {card['filter']['from']}/)" if "filter" in card else ""
            raise DataError(f"{raw}: not found{where}; leave out --include-raw, or publish the set that holds it")
        lines = (json.dumps(public(json.loads(line)), ensure_ascii=False) + "\n"
                 for line in raw.read_text(encoding="utf-8").splitlines() if line.strip())
        uploads.append(Upload(RAW_FILE, "".join(lines).encode(), f"{raw} without server urls"))
    prompt = template_file(card, template)
    uploads.append(Upload(f"prompt/{prompt.name}", prompt.read_bytes(), f"{prompt} (hash checked)"))
    uploads.append(Upload("card.json", (json.dumps(public(card), indent=2, ensure_ascii=False) + "\n").encode(),
                          f"{folder / 'card.json'} without server urls"))
    uploads.append(Upload("README.md", readme(folder, licence),
                          f"{folder / 'README.md'}" + (f" with license {licence}" if licence else "")))
    record = provenance(card, f"prompt/{prompt.name}", {u.path: u.data for u in uploads})
    uploads.append(Upload("provenance.json", (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode(),
                          "made here from card.json"))
    return uploads


def push(uploads: list[Upload], repo: str, *, private: bool, token: str) -> str:
    """Create the dataset repository ``repo`` if needed and commit ``uploads`` to it; returns the commit's URL."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HTTPError

    api = HfApi(token=token)
    try:
        api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        info = api.create_commit(repo, [CommitOperationAdd(u.path, u.data) for u in uploads], repo_type="dataset",
                                 commit_message="Publish an erc-generated ERC set")
    except HTTPError as err:
        raise UserError(f"pushing to the Hub dataset {repo} failed: {_one_line(err)} (check the repository name "
                        "and that HF_TOKEN is a write token with access to it)") from None
    except ValueError as err:   # huggingface_hub's word for metadata the Hub refused (a bad --license id, say)
        raise UserError(f"the Hub refused the card of {repo}: {_one_line(err)} (fix README.md's metadata, or "
                        "--license)") from None
    return info.commit_url


def _one_line(err: Exception) -> str:
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


def listing(uploads: list[Upload]) -> str:
    """The dry run's table: each file, its size and where it comes from."""
    width = max(len(u.path) for u in uploads)
    return "\n".join(f"  {u.path:<{width}}  {len(u.data):>10,} B  {u.origin}" for u in uploads)


def licence_in(uploads: list[Upload]) -> str:
    """The licence the uploaded README's metadata gives."""
    from huggingface_hub import DatasetCard

    text = next(u.data for u in uploads if u.path == "README.md").decode()
    return str(DatasetCard(text, ignore_metadata_errors=True).data.license)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    """The command line: a dry run, or ``--push``."""
    from huggingface_hub import constants

    parser = argparse.ArgumentParser(prog="python -m erc.publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the set's folder (e.g. data/synthetic/meld_bal)")
    parser.add_argument("--repo", required=True, help="the Hub dataset repository, owner/name")
    parser.add_argument("--push", action="store_true", help="upload (default: list what would go up)")
    parser.add_argument("--include-raw", action="store_true", help=f"also upload {RAW_FILE}, every raw LLM answer")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--license", dest="licence", help="the Hub licence id to put in the card (default: the "
                        "generating model's, unknown when not known)")
    parser.add_argument("--template", type=Path, help="the prompt template file, when not where the card says")
    args = parser.parse_args(argv)
    if not REPO_ID.match(args.repo):
        raise UserError(f"--repo {args.repo!r}: expected owner/name (letters, digits, '-', '_', '.')")
    token = os.environ.get("HF_TOKEN", "").strip()
    if args.push and not token:
        raise UserError("--push needs a Hub write token in the environment variable HF_TOKEN (it is read from "
                        "there only); set it, or leave out --push for a dry run")
    uploads = plan(args.folder, include_raw=args.include_raw, licence=args.licence, template=args.template)
    url = f"{constants.ENDPOINT}/datasets/{args.repo}"
    print(f"{args.folder} -> {url}: {len(uploads)} files, {sum(len(u.data) for u in uploads):,} bytes")
    print(listing(uploads))
    print(f"licence in the card: {licence_in(uploads)} (--license to set another)")
    if not args.push:
        print(f"dry run: nothing uploaded ({RAW_FILE} only with --include-raw); add --push to upload, with HF_TOKEN "
              "set in the environment")
        return
    print(f"pushed: {push(uploads, args.repo, private=args.private, token=token)}")


if __name__ == "__main__":
    main(sys.argv[1:])
