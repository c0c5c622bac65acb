"""The built-in default: a small CNN on the bundled 8x8 handwritten digits (real data, no download)."""
import os

import numpy as np
import torch

DIGITS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "digits.npz")


def digits_tensors():
    """(images, labels): float32 images of shape (1797, 1, 8, 8) scaled to [0, 1], int64 labels."""
    with np.load(DIGITS) as f:
        images = torch.from_numpy(f["images"].astype(np.float32) / 16.0).unsqueeze(1)
        labels = torch.from_numpy(f["labels"].astype(np.int64))
    return images, labels


TEST_SIZE = 497  # held out for validation: the last 497 of a fixed permutation, 1,300 left to train on


def digits_split(split):
    """'train' (1,300 images) or 'test' (497): a fixed split, the same for every seed."""
    images, labels = digits_tensors()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1234))
    chosen = order[: len(labels) - TEST_SIZE] if split == "train" else order[len(labels) - TEST_SIZE :]
    return images[chosen], labels[chosen]


def digits_loader(batch_size=64, seed=0, split="train"):
    """A DataLoader over a split of the digits: shuffled (in an order fixed by `seed`) for 'train',
    in order for 'test'."""
    images, labels = digits_split(split)
    dataset = torch.utils.data.TensorDataset(images, labels)
    if split == "test":
        return torch.utils.data.DataLoader(dataset, batch_size=256)
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator)


def digits_cnn(width=1):
    """Two 3x3 convolutions and a linear classifier: 8x8 digits -> 10 classes. `width` multiplies
    the channels (16 and 32 at width 1)."""
    c1, c2 = 16 * width, 32 * width
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, c1, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(c1, c2, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(c2 * 4 * 4, 10),
    )
