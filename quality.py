"""Score every generated set of a benchmark against it: label fidelity under a probe trained on the real data,
usefulness of a probe trained on the set, diversity and form, distance to the real set. quality.json, quality.md
and plots go to the job's folder, the table to stdout. Offline: the default encoder ships as a Python package.

    python quality.py benchmark=meld
    python quality.py benchmark=meld 'sets=[meld_bal]' quality.encoder=/models/all-mpnet-base-v2
"""

import hydra
from omegaconf import DictConfig

import erc  # noqa: F401  (registers the config resolvers)
from erc.cli import check_command_line, hydra_task

CONFIG = "quality"


@hydra.main(version_base="1.3", config_path="conf", config_name=CONFIG)
@hydra_task
def main(cfg: DictConfig) -> None:
    from erc.quality import quality  # imported here: the command-line check and --help need no torch

    quality(cfg)


if __name__ == "__main__":
    check_command_line(CONFIG, __doc__)
    main()
