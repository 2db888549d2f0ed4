"""What a training job is: its identity (the experiment's coordinates, in results.json and W&B) and its key
(the checkpoint folder's name: a hash of everything that changes what the job computes).

One function each, used by training (results.json, W&B, checkpoints) and evaluation (W&B runs logged without
an ``identity`` entry). The keys left out of the job key are listed once, in config (``not_in_job_key`` in
``conf/train.yaml``), and the same list names the run folders of a sweep (``conf/hydra/default.yaml``), so a
setting that does not change the numbers (the progress bar, DataLoader workers, W&B options) resumes a job
instead of silently starting it again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from erc.data.names import dataset_name, generated_sets
from erc.io import sha256_of
from erc.pretrained import backbone_identities
from erc.secrets import public_config

# The files of a generated set that training reads (requests.jsonl and runs.jsonl are generation's logs).
SPLIT_FILES: tuple[str, ...] = ("train.jsonl", "dev.jsonl", "test.jsonl")


def job_identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The job's coordinates from its (resolved, plain or DictConfig) training config: classifier, variant,
    data (``<benchmark>[_<source>]``), benchmark, source, seed. The benchmark and source are the config's own
    axes (``data.benchmark``, ``data.source``), never parsed back from a name."""
    classifier, data = config["classifier"], config["data"]
    return {"classifier": classifier["name"], "variant": classifier.get("variant"),
            "data": dataset_name(data["benchmark"], data["source"]), "benchmark": data["benchmark"],
            "source": data["source"], "seed": int(config["seed"])}


def left_out(key: str, excluded: Iterable[str]) -> bool:
    """Whether the dotted ``key`` is one of ``excluded`` or lies below one (``logger`` covers ``logger.mode``)."""
    return any(key == item or key.startswith(item + ".") for item in excluded)


def left_out_overrides(excluded: Iterable[str], *, _root_: DictConfig) -> list[str]:
    """The keys of the job's command-line overrides (``key=value``, ``+key=...``, ``~key``, ``group@pkg=option``)
    that ``excluded`` covers: Hydra's ``override_dirname.exclude_keys`` (which matches keys exactly) computed with
    :func:`left_out`'s rule. A resolver (``${erc.left_out_overrides:...}``); the overrides are read from the config
    root unresolved, since resolving them would evaluate an override such as ``${erc.secret_file:...}``."""
    excluded = list(excluded)
    overrides = OmegaConf.to_container(_root_.hydra.overrides.task, resolve=False)
    keys = [str(o).split("=", 1)[0].lstrip("+~").split("@", 1)[0] for o in overrides]
    return [key for key in keys if left_out(key.replace("/", "."), excluded)]   # hydra/launcher: a group


def _without(node: Any, excluded: list[str], prefix: str = "") -> Any:
    if not isinstance(node, dict):
        return node
    return {k: _without(v, excluded, f"{prefix}{k}.") for k, v in node.items() if not left_out(prefix + k, excluded)}


def _datasets_read(data: DictConfig) -> list[str]:
    """Every dataset a job reads: its pretrain set (a filtered set is not among the test sets) and its test sets."""
    names = [*([data.pretrain] if data.get("pretrain") else []), *OmegaConf.to_container(data.test, resolve=True)]
    return list(dict.fromkeys(str(name) for name in names))


def job_key(cfg: DictConfig) -> str:
    """``<classifier>-<data>-s<seed>-<hash>``: stable for the same experiment, different for any change that
    can change its numbers, including a generated set regenerated in place with other dialogues (the content
    of its split files is hashed; rewriting the same content, as a rerun of post-processing does, keeps the
    key) and a backbone folder whose files changed (:func:`erc.pretrained.backbone_identities`). Keys in
    ``cfg.not_in_job_key`` are left out."""
    excluded = [str(k) for k in cfg.get("not_in_job_key") or []]
    plain = _without(public_config(cfg), excluded)
    # classifier.fast_path=auto is how every job ran before the switch existed (the packed path on a CPU, the only
    # device jobs had run on), and its choice follows the trainer's device, which the key holds: left out, so those
    # jobs keep their keys and resume. on and off are in the key (other dropout masks: other numbers).
    if isinstance(plain.get("classifier"), dict) and plain["classifier"].get("fast_path") == "auto":
        del plain["classifier"]["fast_path"]
    plain["data_dir"] = str(cfg.paths.data_dir)
    backbones = backbone_identities(cfg.classifier)       # a model folder by its files, minilm by its version
    if backbones:
        plain["backbone_files"] = backbones
    synthetic = Path(cfg.paths.synthetic_dir)
    plain["generated_files"] = {f"{name}/{split}": sha256_of(synthetic / name / split)
                                for name in generated_sets(_datasets_read(cfg.data))
                                for split in SPLIT_FILES if (synthetic / name / split).is_file()}
    digest = hashlib.sha1(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:12]
    identity = job_identity(cfg)
    return f"{identity['classifier']}-{identity['data']}-s{identity['seed']}-{digest}"
