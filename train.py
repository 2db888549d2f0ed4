"""Train, fine-tune and test an ERC classifier: ``python train.py classifier=compm data=meld_bal``.

A thin Hydra shell over :func:`erc.training.train` (see conf/train.yaml)."""

import hydra
from omegaconf import DictConfig

import erc  # noqa: F401  (registers the config resolvers)
from erc.cli import check_command_line, exit_on_user_error


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float:
    from erc.training import train  # imported here: the command-line check and --help need no torch

    metrics = train(cfg)
    return metrics.get(f"test/{cfg.data.benchmark}_org/wf1", float("nan"))


if __name__ == "__main__":
    check_command_line()
    main()
