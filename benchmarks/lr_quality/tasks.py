"""The benchmark's tasks: data, model, loss, optimizer family and training budget. Nothing here was
tuned to lrfused: each is a plain, small instance of a common kind of problem."""
import functools
from dataclasses import dataclass

import torch
from torch import nn

from benchmarks.lr_quality import data


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # what it stands for, for the table
    family: str  # "sgd" | "adamw": the optimizer the user will train with (torch's, + OneCycleLR)
    weight_decay: float
    make_data: callable  # () -> train_x, train_y, val_x, val_y
    make_model: callable  # () -> nn.Module (seeded by the caller)
    batch_size: int
    epochs: int
    loss: str = "cross_entropy"  # | "mse" | "sequence_cross_entropy"
    has_batchnorm: bool = False

    @functools.cached_property
    def tensors(self):
        return self.make_data()

    @property
    def steps_per_epoch(self):
        return len(self.tensors[0]) // self.batch_size

    @property
    def total_steps(self):
        return self.steps_per_epoch * self.epochs

    @property
    def classifies(self):
        return self.loss != "mse"

    def loss_fn(self):
        if self.loss == "mse":
            return nn.MSELoss()
        if self.loss == "sequence_cross_entropy":
            return sequence_cross_entropy
        return nn.CrossEntropyLoss()


def sequence_cross_entropy(logits, targets):
    """Next-token cross-entropy over every position of (batch, time, vocab) logits."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def mlp(inputs, outputs, width=128, depth=2):
    layers, size = [nn.Flatten()], inputs
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.ReLU()]
        size = width
    return nn.Sequential(*layers, nn.Linear(size, outputs))


def bn_cnn():
    """8x8 images -> 10 classes: two 3x3 convolutions with BatchNorm, a pool, a linear classifier."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 10),
    )


def signal_cnn():
    """1-D signals -> 6 classes: two convolutions, global average pooling, a linear classifier."""
    return nn.Sequential(
        nn.Conv1d(1, 16, 7, padding=3), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(16, 32, 5, padding=2), nn.ReLU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(32, 6),
    )


class CharTransformer(nn.Module):
    """A two-layer pre-norm causal transformer over characters."""

    def __init__(self, vocab, context=48, width=64, heads=4, layers=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.zeros(context, width))
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)

    def forward(self, codes):
        t = codes.shape[1]
        h = self.embed(codes) + self.position[:t]
        h = self.blocks(h, mask=self.mask[:t, :t], is_causal=True)
        return self.head(self.norm(h))


def _vocab():
    return data.char_windows()[4]


TASKS = [
    Task("digits_bn_cnn", "small images, BatchNorm CNN", "sgd", 5e-4, data.digits, bn_cnn, 64, 12,
         has_batchnorm=True),
    Task("tabular_mlp", "tabular classification, MLP", "sgd", 1e-4, data.tabular_classes,
         lambda: mlp(20, 6), 64, 8),
    Task("signals_cnn", "1-D signals, CNN", "sgd", 1e-4, data.signals, signal_cnn, 64, 8),
    Task("friedman_mlp", "tabular regression, MLP", "adamw", 1e-2, data.friedman, lambda: mlp(10, 1), 64, 8,
         loss="mse"),
    Task("signals_mlp", "1-D signals, MLP", "adamw", 1e-2, data.signals, lambda: mlp(64, 6), 64, 8),
    Task("char_transformer", "character-level transformer LM", "adamw", 1e-2,
         lambda: data.char_windows()[:4], lambda: CharTransformer(_vocab()), 32, 2,
         loss="sequence_cross_entropy"),
]
BY_NAME = {task.name: task for task in TASKS}
