"""Does the range test + 1cycle train faster? The same model, data and epoch budget, five policies:

  (a) 1cycle at the range test's recommended max_lr (lrfused.FusedOneCycleSGD)
  (b) step decay: SGD at that max_lr, divided by 10 at 50% and again at 75% of the budget
  (c) a constant LR at the range test's `minimum` suggestion (LR at the loss minimum / 10)
  (d) torch.optim.SGD + OneCycleLR at the same max_lr: the numerical control. Trained in float64
      it must equal (a) trained in float64 (checked for every seed). In float32 the two runs round
      differently (torch's CPU kernels use fused multiply-adds, lrfused does not), and at a high LR
      training amplifies those ulp differences, so their float32 accuracies are close, not equal.

Each seed runs its own sweep from its own initial weights; every policy then trains from those
weights. Reports the final validation accuracy and the epochs to reach a target accuracy (mean and
spread over seeds), and plots the mean validation accuracy per epoch.

    python benchmarks/experiment_one_cycle.py [--seeds 5] [--epochs 6] [--target 0.97] [--hard]
                                              [--width 1] [--device cpu] [--sweep-steps 100]

--hard makes the task harder: a third of the training data and random pixel shifts of +-1.
--width multiplies the CNN's channels (a larger model; gpu_check.sh runs --width 8 on the GPU).
"""
import argparse
import copy
import json
import os
import statistics
import sys

# The repo root first: lrfused is built in place there, not installed (this file's folder, which
# Python puts first, has only the benchmark helpers).
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import lrfused  # noqa: E402
from lrfused.find import range_test  # noqa: E402
from lrfused.find.builtin import digits_cnn, digits_split  # noqa: E402
from lrfused.find.train import train  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MOMENTUM, WEIGHT_DECAY, BATCH = 0.9, 5e-4, 64


class ShiftedDigits(torch.utils.data.Dataset):
    """Random shifts of up to one pixel (zero padded): a cheap augmentation for 8x8 digits."""

    def __init__(self, images, labels, seed):
        self.images, self.labels = images, labels
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        dx, dy = torch.randint(-1, 2, (2,), generator=self.generator).tolist()
        image = torch.nn.functional.pad(self.images[i], (1, 1, 1, 1))[:, 1 + dy : 9 + dy, 1 + dx : 9 + dx]
        return image, self.labels[i]


def loaders(seed, hard):
    images, labels = digits_split("train")
    if hard:
        images, labels = images[: len(labels) // 3], labels[: len(labels) // 3]
        dataset = ShiftedDigits(images, labels, seed)
    else:
        dataset = torch.utils.data.TensorDataset(images, labels)
    train_loader = torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(seed)
    )
    test_images, test_labels = digits_split("test")
    test_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(test_images, test_labels), batch_size=512)
    return train_loader, test_loader


def run_policy(policy, initial, train_loader, test_loader, epochs, lrs, seed, width, device, dtype=torch.float32):
    model = digits_cnn(width).to(device=device, dtype=dtype)
    model.load_state_dict(initial)
    steps = epochs * len(train_loader)
    scheduler = None
    if policy == "1cycle (lrfused)":
        opt = lrfused.FusedOneCycleSGD(model.parameters(), max_lr=lrs["max_lr"], total_steps=steps, weight_decay=WEIGHT_DECAY)
    elif policy == "1cycle (torch control)":
        opt = torch.optim.SGD(model.parameters(), lr=lrs["max_lr"], momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lrs["max_lr"], total_steps=steps)
    elif policy == "step decay":
        opt = torch.optim.SGD(model.parameters(), lr=lrs["max_lr"], momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[steps // 2, steps * 3 // 4], gamma=0.1)
    else:  # constant
        opt = torch.optim.SGD(model.parameters(), lr=lrs["constant"], momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    torch.manual_seed(seed)  # the same batch order and augmentation for every policy
    loss_fn = torch.nn.CrossEntropyLoss()
    if dtype != torch.float32:
        train_loader = [(x.to(dtype), y) for x, y in train_loader]
        test_loader = [(x.to(dtype), y) for x, y in test_loader]
    history = train(model, train_loader, test_loader, loss_fn, epochs, opt, scheduler)
    return model, [r["val_accuracy"] for r in history]


def check_control(initial, seed, args, lrs):
    """(a) and (d) trained in float64 end equal: lrfused's 1cycle is torch's SGD + OneCycleLR."""
    models = []
    for policy in ("1cycle (lrfused)", "1cycle (torch control)"):
        train_loader, test_loader = loaders(seed, args.hard)
        initial64 = {k: v.double() for k, v in initial.items()}
        models.append(run_policy(policy, initial64, train_loader, test_loader, args.epochs, lrs, seed, args.width,
                                 args.device, torch.float64)[0])
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


POLICIES = ["1cycle (lrfused)", "step decay", "constant LR", "1cycle (torch control)"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--target", type=float, default=0.97)
    parser.add_argument("--hard", action="store_true")
    parser.add_argument("--width", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=HERE)
    parser.add_argument("--sweep-steps", type=int, default=100, help="steps of each seed's range test")
    args = parser.parse_args(argv)

    curves = {p: [] for p in POLICIES}
    sweeps = []
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        train_loader, test_loader = loaders(seed, args.hard)
        model = digits_cnn(args.width).to(args.device)
        initial = copy.deepcopy(model.state_dict())
        result = range_test(model, train_loader, num_iter=args.sweep_steps, progress=False)
        lrs = {"max_lr": result.recommendation["max_lr"], "constant": result.suggestions["minimum"]}
        sweeps.append(lrs)
        for policy in POLICIES:
            train_loader, test_loader = loaders(seed, args.hard)
            _, accuracies = run_policy(policy, initial, train_loader, test_loader, args.epochs, lrs, seed,
                                       args.width, args.device)
            curves[policy].append(accuracies)
        check_control(initial, seed, args, lrs)
        print(f"seed {seed}: max_lr {lrs['max_lr']:.3g}, constant {lrs['constant']:.3g}: "
              + ", ".join(f"{p} {100 * curves[p][-1][-1]:.1f}%" for p in POLICIES), flush=True)

    rows = []
    for policy in POLICIES:
        finals = [c[-1] for c in curves[policy]]
        reached = [next((e + 1 for e, a in enumerate(c) if a >= args.target), None) for c in curves[policy]]
        hits = [r for r in reached if r is not None]
        rows.append({
            "policy": policy,
            "final_mean": statistics.mean(finals),
            "final_std": statistics.stdev(finals) if len(finals) > 1 else 0.0,
            "epochs_to_target_mean": statistics.mean(hits) if hits else None,
            "seeds_reaching_target": len(hits),
        })
    setting = (f"{'hard: 1/3 of the data, shifted' if args.hard else 'full training split'}, {args.epochs} epochs"
               + (f", width {args.width}" if args.width != 1 else "") + f", {args.device}")
    print(f"\n{setting}, {args.seeds} seeds, target {100 * args.target:.0f}% validation accuracy")
    print("| policy | final val. accuracy (mean ± sd) | epochs to target (mean, seeds reaching) |")
    print("| --- | ---: | ---: |")
    for r in rows:
        to_target = "-" if r["epochs_to_target_mean"] is None else f"{r['epochs_to_target_mean']:.1f}"
        print(f"| {r['policy']} | {100 * r['final_mean']:.2f}% ± {100 * r['final_std']:.2f} | "
              f"{to_target} ({r['seeds_reaching_target']}/{args.seeds}) |")

    name = "experiment_one_cycle" + ("_hard" if args.hard else "") + (f"_w{args.width}" if args.width != 1 else "")
    with open(os.path.join(args.out, name + ".json"), "w") as f:
        json.dump({"setting": setting, "target": args.target, "sweeps": sweeps, "rows": rows, "curves": curves}, f, indent=1)
    plot(curves, args, os.path.join(args.out, name + ".png"), setting)
    return 0


def plot(curves, args, path, setting):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    epochs = list(range(1, args.epochs + 1))
    for policy, runs in curves.items():
        if policy == "1cycle (torch control)":
            continue  # equal to lrfused's curve
        mean = [100 * statistics.mean(r[e] for r in runs) for e in range(args.epochs)]
        low = [100 * min(r[e] for r in runs) for e in range(args.epochs)]
        high = [100 * max(r[e] for r in runs) for e in range(args.epochs)]
        ax.plot(epochs, mean, "o-", label=policy)
        ax.fill_between(epochs, low, high, alpha=0.15)
    ax.axhline(100 * args.target, color="0.5", linestyle="--", label=f"target {100 * args.target:.0f}%")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_ylim(max(0, min(ax.get_ylim()[0], 80)), 100)
    ax.set_title(f"Digits CNN, {setting}: mean and range over {args.seeds} seeds", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
