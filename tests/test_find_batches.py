"""range_test on batches of any shape: (inputs, targets), mappings (model(**batch), the output's loss),
anything through batch_loss(model, batch); tensors nested anywhere in a batch go to the model's device."""
import collections
from dataclasses import dataclass

import pytest
import torch
from conftest import DEVICES
from sweep_fixtures import SETTINGS, mlp, pairs
from test_find import assert_same, fingerprint

from lrfused.find import range_test
from lrfused.find.batch import to_device


def dicts():
    return [{"pixels": x, "labels": y, "note": "kept as is"} for x, y in pairs()]


@dataclass
class Output:  # as a Hugging Face ModelOutput: attributes, loss None without labels
    logits: torch.Tensor
    loss: torch.Tensor = None


class HFStyle(torch.nn.Module):
    """forward(**batch) -> an output carrying its loss when the batch has labels."""

    def __init__(self, as_dict=False):
        super().__init__()
        self.net, self.as_dict = mlp(), as_dict

    def forward(self, pixels, labels=None, note=None):
        logits = self.net(pixels)
        loss = None if labels is None else torch.nn.functional.cross_entropy(logits, labels)
        return {"logits": logits, "loss": loss} if self.as_dict else Output(logits, loss)


def pair_losses():
    return range_test(mlp(), pairs(), **SETTINGS).losses


@pytest.mark.parametrize("as_dict", [False, True], ids=["attribute", "key"])
def test_mapping_batches_train_on_the_outputs_loss(as_dict):
    model = HFStyle(as_dict)
    before = fingerprint(model)
    result = range_test(model, dicts(), **SETTINGS)
    assert result.losses == pair_losses()  # the same computation
    assert_same(before, fingerprint(model))


def test_mapping_batches_with_a_loss_fn_get_the_output_and_the_batch():
    class NoLabels(HFStyle):  # the batch's targets are for loss_fn, the model computes no loss
        def forward(self, pixels, targets=None):
            return super().forward(pixels)

    def loss_fn(output, batch):
        return torch.nn.functional.cross_entropy(output.logits, batch["targets"])

    batches = [{"pixels": x, "targets": y} for x, y in pairs()]
    assert range_test(NoLabels(), batches, loss_fn, **SETTINGS).losses == pair_losses()


Weighted = collections.namedtuple("Weighted", "x y weight")


def test_batch_loss_trains_on_any_batch():
    def batch_loss(model, batch):
        return (torch.nn.functional.cross_entropy(model(batch.x), batch.y, reduction="none") * batch.weight).mean()

    batches = [Weighted(x, y, torch.ones(len(y))) for x, y in pairs()]
    model = mlp()
    before = fingerprint(model)
    result = range_test(model, batches, batch_loss=batch_loss, **SETTINGS)
    torch.testing.assert_close(result.losses, pair_losses(), rtol=1e-5, atol=1e-6)  # a different mean: rounding
    assert_same(before, fingerprint(model))


def test_nested_tensors_move_to_the_device_and_the_structure_is_kept():
    batch = {"a": [torch.ones(2), (torch.zeros(3), "text")], "b": Weighted(torch.ones(1), 4, torch.ones(2, 2))}
    moved = to_device(batch, torch.device("meta"))
    assert moved["a"][0].is_meta and moved["a"][1][0].is_meta and moved["b"].x.is_meta and moved["b"].weight.is_meta
    assert isinstance(moved["a"], list) and isinstance(moved["a"][1], tuple) and isinstance(moved["b"], Weighted)
    assert moved["a"][1][1] == "text" and moved["b"].y == 4
    assert moved["a"][1][0].shape == (3,) and moved["b"].weight.shape == (2, 2)


@pytest.mark.parametrize("device", DEVICES)
def test_host_batches_of_every_shape_sweep_on_the_models_device(device):
    model = HFStyle().to(device)
    batches = [{"pixels": x, "labels": y} for x, y in pairs()]  # on the host
    result = range_test(model, batches, **SETTINGS)
    torch.testing.assert_close(result.losses, pair_losses(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "model, data, kwargs, error, message",
    [
        (HFStyle, lambda: [{"pixels": x} for x, _ in pairs()], {}, ValueError,
         "loss_fn: the model's output for a mapping batch .* has no loss"),
        (mlp, pairs, dict(batch_loss=lambda model, batch: model(batch[0]).sum(1)), ValueError,
         r"batch_loss\(model, batch\) must return a scalar tensor \(the loss\), got a tensor of shape \(16,\)"),
        (mlp, pairs, dict(batch_loss=lambda model, batch: 1.0), ValueError,
         r"batch_loss\(model, batch\) must return a scalar tensor \(the loss\), got float"),
        (mlp, pairs, dict(loss_fn=torch.nn.CrossEntropyLoss(reduction="none")), ValueError,
         r"loss_fn\(outputs, targets\) must return a scalar tensor"),
        (mlp, pairs, dict(loss_fn=torch.nn.CrossEntropyLoss(), batch_loss=lambda m, b: 0), ValueError,
         "loss_fn and batch_loss: give one or the other"),
        (mlp, pairs, dict(batch_loss="loss"), TypeError, "batch_loss must be callable"),
        (mlp, lambda: [(x, y, y) for x, y in pairs()], {}, TypeError,
         "data must yield .inputs, targets. pairs or mappings, got tuple; for other batches give batch_loss"),
    ],
    ids=["mapping_without_loss", "non_scalar_batch_loss", "float_batch_loss", "non_scalar_loss_fn",
         "loss_fn_and_batch_loss", "batch_loss_not_callable", "triple_without_batch_loss"],
)
def test_bad_batches_and_losses_are_rejected_with_the_model_untouched(model, data, kwargs, error, message):
    model = model()
    model.eval()
    before = fingerprint(model)
    with pytest.raises(error, match=message):
        range_test(model, data(), **SETTINGS, **kwargs)
    assert_same(before, fingerprint(model))
