"""Train an ERC classifier: pretrain it on a generated set (when the experiment has one), fine-tune it on the
benchmark's train split and test it on every test set. Each job writes results.json, its log and an offline (or,
with an API key, online) W&B run to its folder; a rerun of the same command resumes from its checkpoints.

    python train.py classifier=compm data=meld_bal classifier.backbone=tiny schedule=debug data.limit_dialogues=20
    python train.py -m classifier=compm,emoone,todkat data=meld,meld_nat,meld_bal seed=1,2,3 trainer=gpu

Backbones (classifier.backbone=): tiny and small (random weights) and minilm (the installed pretrained
all-MiniLM-L6-v2) run offline on a CPU; the default, the paper's roberta-large, or any other Hugging Face encoder
needs the hub (or its cache) and, at full size, a GPU (trainer=gpu).
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
