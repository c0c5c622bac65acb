"""Training after a range test: the recommended 1cycle run, evaluated every epoch."""
import time

import torch


@torch.no_grad()
def evaluate(model, data, loss_fn):
    """(mean loss, accuracy or None) over `data`; accuracy where targets are class indices."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_loss, correct, count, classify = 0.0, 0, 0, True
    for x, y in data:
        x, y = x.to(device), y.to(device)
        out = model(x)
        total_loss += float(loss_fn(out, y)) * len(y)
        count += len(y)
        if classify and out.dim() == 2 and y.dim() == 1 and not y.is_floating_point():
            correct += int((out.argmax(dim=1) == y).sum())
        else:
            classify = False
    model.train(was_training)
    if count == 0:
        return float("nan"), None
    return total_loss / count, (correct / count if classify else None)


def train(model, train_data, val_data, loss_fn, epochs, optimizer, scheduler=None, on_epoch=None):
    """Trains for `epochs` passes over train_data; returns one record per epoch.

    `optimizer` steps once per batch (a torch `scheduler`, if given, too)."""
    device = next(model.parameters()).device
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        running, seen = 0.0, 0
        for x, y in train_data:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            running += float(loss.detach()) * len(y)
            seen += len(y)
        val_loss, val_accuracy = evaluate(model, val_data, loss_fn) if val_data is not None else (None, None)
        record = {
            "epoch": epoch,
            "train_loss": running / max(seen, 1),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "lr_end": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - start,
        }
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return history


def plot_history(history, path, title):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, loss_ax = plt.subplots(figsize=(7, 4.5))
    loss_ax.plot(epochs, [r["train_loss"] for r in history], "o-", label="train loss")
    if history and history[0]["val_loss"] is not None:
        loss_ax.plot(epochs, [r["val_loss"] for r in history], "s-", label="validation loss")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.grid(True, alpha=0.3)
    handles, labels = loss_ax.get_legend_handles_labels()
    if history and history[0]["val_accuracy"] is not None:
        acc_ax = loss_ax.twinx()
        acc_ax.plot(epochs, [100 * r["val_accuracy"] for r in history], "^-", color="C2", label="validation accuracy (%)")
        acc_ax.set_ylabel("accuracy (%)")
        more_handles, more_labels = acc_ax.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    loss_ax.legend(handles, labels, fontsize=8, loc="center right")
    loss_ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
