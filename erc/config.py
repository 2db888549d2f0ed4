"""The project's OmegaConf resolvers, registered by ``import erc`` for every entry point.

This module sits above the layers whose functions it registers (:mod:`erc.data.names`, :mod:`erc.identity`,
:mod:`erc.secrets`) and imports them at the top: none of them imports it back (the project's folders are in
:mod:`erc.paths`).

The resolver ``${erc.root:}`` gives the project root without depending on the current working
directory, so that ``paths.data_dir`` means the same thing whether a job runs from the project,
from a test's temporary folder or from a SLURM node. ``${erc.dataset:B,S}``, ``${erc.pretrain_set:B,S}`` and
``${erc.datasets_of:B}`` derive a training experiment's datasets from its benchmark and source
(``conf/data/_dataset.yaml``) with the naming rule of :mod:`erc.data.names`.
"""

from __future__ import annotations

from omegaconf import ListConfig, OmegaConf

from erc.data import names
from erc.identity import left_out_overrides
from erc.paths import PROJECT_ROOT
from erc.secrets import read_secret_file


def register_resolvers() -> None:
    """Register the project's OmegaConf resolvers once (idempotent)."""
    if not OmegaConf.has_resolver("erc.root"):
        OmegaConf.register_new_resolver("erc.root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("erc.secret_file"):
        # Not cached: the secret is read when used, never kept in the config tree.
        OmegaConf.register_new_resolver("erc.secret_file", read_secret_file, use_cache=False)
    if not OmegaConf.has_resolver("erc.dataset"):
        OmegaConf.register_new_resolver("erc.dataset", names.dataset_name)
        OmegaConf.register_new_resolver("erc.pretrain_set", names.pretrain_set)
        # A ListConfig, not a list: OmegaConf.resolve (``--cfg job --resolve``) cannot store a plain list in place.
        OmegaConf.register_new_resolver("erc.datasets_of", lambda benchmark: ListConfig(names.datasets_of(benchmark)))
    if not OmegaConf.has_resolver("erc.left_out_overrides"):
        OmegaConf.register_new_resolver("erc.left_out_overrides", left_out_overrides)
