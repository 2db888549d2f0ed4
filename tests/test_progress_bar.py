"""PhaseProgressBar: one bar per fit named after the phase it selects for, over every epoch, with its rate, the
epoch, the training loss and the dev score; one bar per test set; nothing when progress bars are off."""

from __future__ import annotations

import re

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from erc.training.progress_bar import PhaseProgressBar, progress_callbacks


class Tiny(pl.LightningModule):
    """A linear model logging what the runner's classifiers log: ``<phase>/train/loss`` and ``<phase>/dev/wf1``."""

    eval_prefix = "test/meld_org"

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.layer(x), y)
        self.log("pretrain/train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("pretrain/dev/wf1", 0.25)

    def test_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader(n: int) -> DataLoader:
    torch.manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(n, 4), torch.randint(0, 2, (n,))), batch_size=2)


def bars(text: str) -> dict[str, str]:
    """The last drawing of each bar, by its label."""
    last = {}
    for line in re.split(r"[\r\n]", text):
        if ":" in line and "|" in line:
            last[line.split(":")[0].strip()] = line
    return last


def test_one_bar_per_phase_over_every_epoch_and_one_per_test_set(tmp_path, capsys) -> None:
    trainer = pl.Trainer(max_epochs=3, logger=False, enable_model_summary=False, num_sanity_val_steps=0,
                         default_root_dir=str(tmp_path), callbacks=[
                             ModelCheckpoint(dirpath=str(tmp_path), monitor="pretrain/dev/wf1", mode="max"),
                             *progress_callbacks({"enable_progress_bar": True})])
    model = Tiny()
    trainer.fit(model, train_dataloaders=loader(8), val_dataloaders=loader(4))
    trainer.test(model, dataloaders=loader(6), verbose=False)
    drawn = bars(capsys.readouterr().err)
    assert set(drawn) == {"pretrain", "test/meld_org"}
    assert re.search(r"12/12 .*batch/s, epoch=3/3, loss=\d\.\d{3}, dev_wf1=0\.250", drawn["pretrain"])
    assert "3/3" in drawn["test/meld_org"]


class Scoring(Callback):
    """A scoring callback as the runner's: it names the metrics of the test set being scored."""

    prefix = "test/meld_bal"


def test_a_test_bar_is_named_after_the_scoring_callback_when_the_module_has_no_prefix(tmp_path, capsys) -> None:
    model = Tiny()
    model.eval_prefix = None
    trainer = pl.Trainer(logger=False, enable_model_summary=False, default_root_dir=str(tmp_path),
                         callbacks=[Scoring(), *progress_callbacks({})])
    trainer.test(model, dataloaders=loader(6), verbose=False)
    assert set(bars(capsys.readouterr().err)) == {"test/meld_bal"}


def test_no_bar_callback_when_progress_bars_are_off() -> None:
    assert progress_callbacks({"enable_progress_bar": False}) == []
    assert isinstance(progress_callbacks({})[0], PhaseProgressBar)


def test_a_resumed_fit_bar_starts_at_the_batches_of_the_epochs_already_done(tmp_path, capsys) -> None:
    """A phase continued from its last.ckpt after 2 of 3 epochs: its bar counts on from 8 of 12 batches (4 per
    epoch), so the rate and time left are those of the epoch still to run."""
    def fit(epochs: int, ckpt_path: str | None) -> None:
        trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_model_summary=False, num_sanity_val_steps=0,
                             default_root_dir=str(tmp_path), callbacks=[
                                 ModelCheckpoint(dirpath=str(tmp_path), filename="last", monitor=None),
                                 *progress_callbacks({})])
        trainer.fit(Tiny(), train_dataloaders=loader(8), val_dataloaders=loader(4), ckpt_path=ckpt_path)

    fit(2, None)
    capsys.readouterr()
    fit(3, str(tmp_path / "last.ckpt"))
    drawn = [line for line in re.split(r"[\r\n]", capsys.readouterr().err) if line.startswith("train:")]
    assert re.search(r"\b8/12\b", drawn[0]) and re.search(r"\b12/12\b", drawn[-1]), drawn
