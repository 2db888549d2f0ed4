"""Batches for any ERC classifier: the classifier encodes dialogues into samples once, this module
shuffles, buckets by length, shards across DDP ranks and collates (dynamic padding is the classifier's
``collate``: each batch is padded to its own longest sample, never to a fixed length).

Length bucketing: each epoch a seeded permutation of the samples is cut into pools of
``bucket_batches * batch_size`` samples; a pool is sorted by length and cut into batches, and the
batches are shuffled. Batches then hold samples of similar length (little padding) while the order stays
random. With ``batch_size=1`` this is a plain uniform shuffle (the reference's one-sample steps).
Evaluation batches are sorted by length and never shuffled.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler

from erc.data import Dialogue
from erc.models.base import ERCClassifier
from erc.training.resume import loader_generator


class EpochPermutation(Sampler[int]):
    """A seeded permutation of ``range(n)`` that changes with ``set_epoch`` (Lightning calls it on
    ``batch_sampler.sampler`` each epoch, also after resuming, so a resumed run sees the same order)."""

    def __init__(self, n: int, seed: int, shuffle: bool) -> None:
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


class BucketBatchSampler(Sampler[list[int]]):
    """Length-bucketed batches of sample indices (see the module docstring), sharded across DDP ranks."""

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool, seed: int = 0,
                 bucket_batches: int = 50, rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = list(lengths)
        self.batch_size, self.shuffle, self.bucket_batches = batch_size, shuffle, max(1, bucket_batches)
        self.rank, self.world_size = rank, world_size
        self.sampler = EpochPermutation(len(self.lengths), seed, shuffle)

    def _batches(self) -> list[list[int]]:
        if not self.shuffle:
            # Evaluation: ranks take every world_size-th sample of the length order (each rank gets a
            # batch whenever there are as many samples as ranks), then cut their share into batches.
            order = sorted(range(len(self.lengths)), key=lambda i: self.lengths[i])[self.rank::self.world_size]
            return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        order = list(self.sampler)
        pool = self.batch_size * self.bucket_batches
        batches = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start:start + pool], key=lambda i: self.lengths[i])
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        rng = np.random.default_rng([self.sampler.seed, self.sampler.epoch, 1])
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[list[int]]:
        # A generator: the batches are drawn at the first ``next``, not when the iterator is made. Lightning
        # makes a resumed run's first iterator before it calls ``set_epoch``; drawn eagerly, the resumed
        # epoch would replay epoch 0's order.
        batches = self._batches()
        if self.world_size == 1 or not self.shuffle:
            yield from batches
            return
        # Training ranks must take the same number of steps (gradient all-reduce): wrap around.
        per_rank = math.ceil(len(batches) / self.world_size)
        batches = (batches * 2)[: per_rank * self.world_size]
        yield from batches[self.rank::self.world_size]

    def __len__(self) -> int:
        bs = self.batch_size
        if not self.shuffle:
            return math.ceil(len(range(self.rank, len(self.lengths), self.world_size)) / bs)
        full, rest = divmod(len(self.lengths), bs * self.bucket_batches)   # pools are cut separately
        return math.ceil((full * self.bucket_batches + math.ceil(rest / bs)) / self.world_size)


def loader(classifier: ERCClassifier, samples: list[Any], batch_size: int, shuffle: bool, seed: int,
           bucket_batches: int = 50, num_workers: int = 0) -> DataLoader:
    """A DataLoader over ``samples`` with length-bucketed batches (train, dev and every test set) collated by
    ``classifier``, sharded across DDP ranks."""
    rank, world = _rank_and_world()
    sampler = BucketBatchSampler([classifier.sample_length(s) for s in samples], batch_size, shuffle=shuffle,
                                 seed=seed, bucket_batches=bucket_batches, rank=rank, world_size=world)
    # Pinned host memory makes the copy to a GPU asynchronous; it only costs on CPU-only machines. The
    # loader's own generator: making an iterator draws its worker seed from it, not from the global
    # stream that dropout uses (see erc.training.resume).
    return DataLoader(samples, batch_sampler=sampler, collate_fn=classifier.collate,
                      num_workers=num_workers, persistent_workers=num_workers > 0,
                      pin_memory=torch.cuda.is_available(),
                      generator=loader_generator(seed, "train" if shuffle else "eval"))


class ERCDataModule(pl.LightningDataModule):
    """Train and dev data of one phase, encoded by ``classifier`` (its ``encode``/``collate``)."""

    def __init__(self, classifier: ERCClassifier, train: list[Dialogue], dev: list[Dialogue], batch_size: int,
                 eval_batch_size: int, seed: int = 0, bucket_batches: int = 50, num_workers: int = 0) -> None:
        super().__init__()
        self.classifier = classifier
        self.train_dialogues, self.dev_dialogues = train, dev
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.seed, self.bucket_batches, self.num_workers = seed, bucket_batches, num_workers
        self.train_samples: list[Any] | None = None
        self.dev_samples: list[Any] | None = None

    def for_classifier(self, classifier: ERCClassifier) -> ERCDataModule:
        """The same dialogues and loader settings, encoded by another classifier (e.g. EmoOne's teacher)."""
        return ERCDataModule(classifier, self.train_dialogues, self.dev_dialogues, self.batch_size,
                             self.eval_batch_size, self.seed, self.bucket_batches, self.num_workers)

    def setup(self, stage: str | None = None) -> None:
        if self.train_samples is None:
            self.train_samples = self.classifier.encode(self.train_dialogues)
            self.dev_samples = self.classifier.encode(self.dev_dialogues)

    def loader(self, samples: list[Any], shuffle: bool) -> DataLoader:
        return loader(self.classifier, samples, self.batch_size if shuffle else self.eval_batch_size, shuffle,
                      self.seed, self.bucket_batches, self.num_workers)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        return self.loader(self.train_samples, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self.loader(self.dev_samples, shuffle=False)


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1
