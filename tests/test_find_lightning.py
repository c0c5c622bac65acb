"""range_test on a LightningModule (its training_step gives the loss) and a LightningDataModule (its
train_dataloader gives the batches). Lightning is not installed here: duck-typed stand-ins, with
Lightning's method names and signatures."""
import pytest
import torch
from sweep_fixtures import SETTINGS, mlp, pairs
from test_find import assert_same, fingerprint

from lrfused.find import range_test


class LitClassifier(torch.nn.Module):
    """A LightningModule's shape: no forward, training_step(batch, batch_idx) -> loss or {"loss": loss}."""

    def __init__(self, returns="tensor"):
        super().__init__()
        self.net, self.returns, self.batch_indices = mlp(), returns, []

    def training_step(self, batch, batch_idx):
        self.batch_indices.append(batch_idx)
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        return {"tensor": loss, "dict": {"loss": loss, "log": {}}, "none": None}[self.returns]


class DigitsDataModule:
    """A LightningDataModule's shape: prepare_data(), setup(stage), train_dataloader()."""

    def __init__(self):
        self.calls = []

    def prepare_data(self):
        self.calls.append("prepare_data")

    def setup(self, stage):
        self.calls.append(f"setup({stage})")

    def train_dataloader(self):
        self.calls.append("train_dataloader")
        return pairs()


def pair_losses():
    return range_test(mlp(), pairs(), **SETTINGS).losses


@pytest.mark.parametrize("returns", ["tensor", "dict"])
def test_a_lightning_module_trains_on_its_training_step(returns):
    model = LitClassifier(returns)
    before = fingerprint(model)
    result = range_test(model, pairs(), **SETTINGS)
    assert result.losses == pair_losses()
    assert model.batch_indices == list(range(12))
    assert_same(before, fingerprint(model))


def test_a_lightning_data_module_gives_its_train_dataloader_after_setup():
    data = DigitsDataModule()
    assert range_test(LitClassifier(), data, **SETTINGS).losses == pair_losses()
    assert data.calls == ["prepare_data", "setup(fit)", "train_dataloader"]


def test_a_lightning_data_module_is_not_prepared_when_an_argument_is_refused():
    data = DigitsDataModule()
    with pytest.raises(ValueError, match="^accumulation_steps"):
        range_test(LitClassifier(), data, **{**SETTINGS, "accumulation_steps": 0})
    assert data.calls == []


def test_a_lightning_module_with_a_loss_fn_or_without_a_loss_is_rejected():
    model = LitClassifier("none")
    before = fingerprint(model)
    with pytest.raises(ValueError, match="loss_fn: the model .LitClassifier. has a training_step"):
        range_test(model, pairs(), torch.nn.CrossEntropyLoss(), **SETTINGS)
    with pytest.raises(ValueError, match=r"model.training_step\(batch, batch_idx\) must return a scalar tensor .* got NoneType"):
        range_test(model, pairs(), **SETTINGS)
    assert_same(before, fingerprint(model))
