"""The classifiers' AdamW is torch's fused kernel in full precision and the for-loop one under mixed precision, where
Lightning refuses gradient clipping with an optimizer that unscales gradients itself: both train with clipping."""

import pytest
import pytorch_lightning as pl
import torch

from erc.data import load_benchmark
from erc.models.base import PhaseSchedule, fused_adamw
from erc.models.compm import CoMPM
from erc.training.data import ERCDataModule


def test_fused_only_in_full_precision_and_for_parameters_torch_has_the_kernel_for() -> None:
    weights = [torch.nn.Parameter(torch.zeros(3))]
    assert fused_adamw("32-true", weights) and fused_adamw("64-true", weights) and fused_adamw("bf16-true", weights)
    assert not fused_adamw("bf16-mixed", weights) and not fused_adamw("16-mixed", weights)
    assert not fused_adamw("32-true", [torch.nn.Parameter(torch.zeros(3, device="meta"))])


@pytest.mark.parametrize(("precision", "fused"), [("32-true", True), ("bf16-mixed", False)])
def test_a_classifier_trains_with_clipping_under_either_optimizer(precision, fused, benchmark_data, tmp_path) -> None:
    torch.manual_seed(0)
    model = CoMPM("meld", backbone="tiny")
    model.configure_phase("finetune", PhaseSchedule(lr=1e-3))
    dialogues = load_benchmark("meld", "train", benchmark_data)[:2]
    data = ERCDataModule(model, dialogues, [], batch_size=4, eval_batch_size=4)
    data.setup()
    before = [p.detach().clone() for p in model.parameters()]
    trainer = pl.Trainer(precision=precision, max_steps=2, gradient_clip_val=1.0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=str(tmp_path))
    trainer.fit(model, train_dataloaders=data.train_dataloader())
    assert trainer.optimizers[0].defaults["fused"] is fused
    assert trainer.global_step == 2
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
