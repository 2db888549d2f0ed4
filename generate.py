"""Generate an ERC dataset with an LLM: natural or label-balanced dialogues in a benchmark's style, validated,
deduplicated and split into synthetic/<benchmark>_<nat|bal>/ ($ERC_SYNTHETIC_DIR). The embedded model needs no server;
llm=tgi or llm=openai talk to one. A rerun asks only for what is still missing.

    python generate.py benchmark=meld prompt=balanced n_dialogues=14
    python generate.py benchmark=meld llm=tgi llm.url=http://HOST:8080 sampling=paper n_dialogues=2000
"""

import hydra
from omegaconf import DictConfig

import erc  # noqa: F401  (registers the config resolvers)
from erc.cli import check_command_line, hydra_task

CONFIG = "generate"


@hydra.main(version_base="1.3", config_path="conf", config_name=CONFIG)
@hydra_task
def main(cfg: DictConfig) -> None:
    from erc.pipeline import generate  # imported here: the command-line check and --help need no torch

    generate(cfg)


if __name__ == "__main__":
    check_command_line(CONFIG, __doc__)
    main()
