"""Train an ERC classifier: pretrain it on a generated set (when the experiment has one), fine-tune it on the
benchmark's train split and test it on every test set. Each job writes results.json, its log and an offline (or,
with an API key, online) W&B run to its folder; a rerun of the same command resumes from its checkpoints.

    python train.py classifier=compm data=meld_bal
    python train.py -m classifier=compm,emoone,todkat data=meld,meld_nat,meld_bal seed=1,2,3
"""

import hydra
from omegaconf import DictConfig

import erc  # noqa: F401  (registers the config resolvers)
from erc.cli import check_command_line, hydra_task

CONFIG = "train"


@hydra.main(version_base="1.3", config_path="conf", config_name=CONFIG)
@hydra_task
def main(cfg: DictConfig) -> float:
    from erc.training import train  # imported here: the command-line check and --help need no torch

    metrics = train(cfg)
    return metrics.get(f"test/{cfg.data.benchmark}_org/wf1", float("nan"))


if __name__ == "__main__":
    check_command_line(CONFIG, __doc__)
    main()
