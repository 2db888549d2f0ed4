"""Training: the runner (pretrain on synthetic -> fine-tune -> test), its DataModule, metrics and tracking.

``train(cfg)`` is what ``train.py`` and the tests call. How classifiers plug in: :mod:`erc.models`.
"""

from erc.training.runner import train

__all__ = ["train"]
