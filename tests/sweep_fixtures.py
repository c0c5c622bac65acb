"""What the range-test tests sweep: a small MLP on 8x8 one-channel inputs, seeded (inputs, targets)
batches, and settings for a short sweep that never stops on divergence."""
import torch

SETTINGS = dict(start_lr=1e-3, end_lr=0.5, num_iter=12, progress=False, diverge_threshold=1e9)


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))


def pairs(count=5, size=16, seed=1, loud=()):
    """`count` batches from one seeded generator; those at the indices in `loud` get a NaN input (a NaN
    loss, and grads a GradScaler skips)."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for i in range(count):
        x, y = torch.rand(size, 1, 8, 8, generator=generator), torch.randint(0, 10, (size,), generator=generator)
        if i in loud:
            x[0, 0, 0, 0] = float("nan")
        out.append((x, y))
    return out
