"""Generate an ERC dataset with an LLM: ``python generate.py benchmark=meld prompt=balanced``.

A thin Hydra shell over :func:`erc.generation.generate` (see conf/generate.yaml).
"""

import hydra
from omegaconf import DictConfig

import erc  # noqa: F401  (registers the ${erc.root:} resolver)
from erc.generation import generate


@hydra.main(version_base="1.3", config_path="conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    generate(cfg)


if __name__ == "__main__":
    main()
