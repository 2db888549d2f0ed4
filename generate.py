"""Generate an ERC dataset with an LLM: ``python generate.py benchmark=meld prompt=balanced``.

A thin Hydra shell over :func:`erc.generation.generate` (see conf/generate.yaml).
"""

import hydra
from omegaconf import DictConfig

import erc  # noqa: F401  (registers the config resolvers)
from erc.cli import check_command_line, exit_on_user_error


@hydra.main(version_base="1.3", config_path="conf", config_name="generate")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from erc.generation import generate  # imported here: the command-line check and --help need no torch

    generate(cfg)


if __name__ == "__main__":
    check_command_line()
    main()
