"""Turn a training sweep into the paper's Table III and Table IV with exact Friedman statistics.

    python evaluate.py sweep=outputs/train/multiruns/<time>
    python evaluate.py scores=tests/fixtures/paper_table4_scores.csv
"""

import hydra
from omegaconf import DictConfig

import erc  # noqa: F401  (registers the config resolvers)
from erc.cli import check_command_line, exit_on_user_error


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    from erc.evaluation import evaluate  # imported here: the command-line check and --help need no torch

    evaluate(cfg)


if __name__ == "__main__":
    check_command_line()
    main()
