"""Turn a training sweep into the paper's Table III and Table IV with exact Friedman statistics.

    python evaluate.py sweep=outputs/train/multiruns/<time>
    python evaluate.py scores=tests/fixtures/paper_table4_scores.csv
"""

import hydra
from omegaconf import DictConfig

import erc  # noqa: F401  (registers the ${erc.root:} resolver)
from erc.evaluation import evaluate


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
