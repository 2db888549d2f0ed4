"""Turn a training sweep (or a scores table) into the paper's Table III and Table IV with exact Friedman
statistics, a critical-difference diagram and rank plots, written to the job's folder.

    python evaluate.py sweep=outputs/train/multiruns/<time>
    python evaluate.py scores=tests/fixtures/paper_table4_scores.csv
"""

import hydra
from omegaconf import DictConfig

import erc  # noqa: F401  (registers the config resolvers)
from erc.cli import check_command_line, hydra_task

CONFIG = "evaluate"


@hydra.main(version_base="1.3", config_path="conf", config_name=CONFIG)
@hydra_task
def main(cfg: DictConfig) -> None:
    from erc.evaluation import evaluate  # imported here: the command-line check and --help need no torch

    evaluate(cfg)


if __name__ == "__main__":
    check_command_line(CONFIG, __doc__)
    main()
