"""The quality benchmark's data: generated, or shipped with lrfused or Python; nothing is downloaded.
Each maker returns (train_x, train_y, val_x, val_y) tensors, fixed by its own seed (the same data for
every training seed: the seeds vary the model and the batch order, not the task)."""
import importlib
import inspect
import pkgutil

import numpy as np
import torch

from lrfused.find.builtin import digits_split


def tabular_classes(n_train=3000, n_val=1000, features=20, informative=8, classes=6, flip=0.05, seed=0):
    """make_classification's recipe: Gaussian clusters (two per class) on the vertices of a hypercube
    in `informative` dimensions, mixed by a random linear map, plus redundant combinations and pure
    noise features, and a share `flip` of labels drawn at random."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    clusters = classes * 2
    vertices = rng.choice([-1.0, 1.0], size=(clusters, informative)) * 1.2
    which = rng.integers(clusters, size=n)
    x_inf = vertices[which] + rng.normal(size=(n, informative))
    x_inf = x_inf @ rng.normal(size=(informative, informative))
    redundant = x_inf @ rng.normal(size=(informative, 4))
    noise = rng.normal(size=(n, features - informative - 4))
    x = np.concatenate([x_inf, redundant, noise], axis=1)
    y = which % classes
    flipped = rng.random(n) < flip
    y[flipped] = rng.integers(classes, size=int(flipped.sum()))
    return _split(_standardise(x, n_train), y.astype(np.int64), n_train)


def friedman(n_train=3000, n_val=1000, features=10, noise=1.0, seed=0):
    """Friedman #1 regression: y = 10 sin(pi x0 x1) + 20 (x2 - 0.5)^2 + 10 x3 + 5 x4 + noise, x uniform
    in [0, 1]^features (the rest are distractors); targets standardised."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    x = rng.random((n, features))
    y = 10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3] + 5 * x[:, 4]
    y = y + noise * rng.normal(size=n)
    y = (y - y[:n_train].mean()) / y[:n_train].std()
    return _split(_standardise(x, n_train), y.astype(np.float32)[:, None], n_train)


def signals(n_train=3000, n_val=1000, length=64, noise=0.4, seed=0):
    """1-D signals of six shapes (sine, square, sawtooth, triangle, chirp, decaying pulse train), each
    at a random frequency, phase, amplitude and offset, with Gaussian noise: classify the shape."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    t = np.linspace(0, 1, length)[None, :]
    freq = rng.uniform(2, 6, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    y = rng.integers(6, size=n)
    cycles = freq * t + phase / (2 * np.pi)
    shapes = [
        np.sin(2 * np.pi * cycles),
        np.sign(np.sin(2 * np.pi * cycles)),
        2 * (cycles % 1) - 1,
        2 * np.abs(2 * (cycles % 1) - 1) - 1,
        np.sin(2 * np.pi * (freq * t + 3 * t**2) + phase),
        np.exp(-8 * (cycles % 1)) * 2 - 0.5,
    ]
    x = np.stack(shapes, axis=0)[y, np.arange(n)]
    x = x * rng.uniform(0.5, 1.5, size=(n, 1)) + rng.uniform(-0.5, 0.5, size=(n, 1))
    x = x + noise * rng.normal(size=x.shape)
    return _split(x[:, None, :].astype(np.float32), y.astype(np.int64), n_train)


def digits():
    """The bundled 8x8 digits (lrfused's built-in data), its fixed split: 1,300 train, 497 validation."""
    train_x, train_y = digits_split("train")
    val_x, val_y = digits_split("test")
    return train_x, train_y, val_x, val_y


def stdlib_text(chars=120_000):
    """English prose that ships with Python: the docstrings of the standard library's pure-Python
    modules, in name order, cut to `chars` characters."""
    import sys

    pieces = []
    for name in sorted(m.name for m in pkgutil.iter_modules() if m.module_finder.path.startswith(sys.base_prefix)):
        if name.startswith("_") or name in ("antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo"):
            continue
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module that cannot import here simply gives no text
            continue
        doc = inspect.getdoc(module)
        if doc:
            pieces.append(doc)
        if sum(map(len, pieces)) >= chars:
            break
    text = "\n\n".join(pieces)[:chars]
    return "".join(c if 32 <= ord(c) < 127 or c == "\n" else " " for c in text)


def char_windows(context=48, val_share=0.1):
    """Next-character prediction on stdlib_text(): windows of `context` characters; the last tenth of
    the text is the validation split. Targets are the windows shifted by one."""
    text = stdlib_text()
    vocab = sorted(set(text))
    codes = torch.tensor([vocab.index(c) for c in text], dtype=torch.int64)
    cut = int(len(codes) * (1 - val_share))

    def windows(part, stride):
        starts = torch.arange(0, len(part) - context - 1, stride)
        index = starts[:, None] + torch.arange(context + 1)[None, :]
        chunk = part[index]
        return chunk[:, :-1], chunk[:, 1:]

    train_x, train_y = windows(codes[:cut], context // 2)
    val_x, val_y = windows(codes[cut:], context)
    return train_x, train_y, val_x, val_y, len(vocab)


def _standardise(x, n_train):
    mean, std = x[:n_train].mean(axis=0), x[:n_train].std(axis=0) + 1e-8
    return ((x - mean) / std).astype(np.float32)


def _split(x, y, n_train):
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]
