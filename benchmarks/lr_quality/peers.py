"""The untuned peers, as their READMEs use them, on the same tasks and budgets: Prodigy (lr=1, with
cosine annealing over the run) and Schedule-Free AdamW (its defaults; train()/eval() around
training and evaluation, BatchNorm statistics recomputed at the evaluation weights). Both take the
task's weight decay. Installed by `make quality`, not a dependency of lrfused."""
import torch

from benchmarks.lr_quality.training import train


def prodigy(task, seed):
    from prodigyopt import Prodigy

    return train(
        task, seed,
        lambda params: Prodigy(params, lr=1.0, weight_decay=task.weight_decay),
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=task.total_steps),
    )


def schedule_free(task, seed):
    from schedulefree import AdamWScheduleFree

    def make(params):
        opt = AdamWScheduleFree(params, weight_decay=task.weight_decay)
        opt.train()
        return opt

    def before_eval(model, opt, batches):
        opt.eval()
        if task.has_batchnorm:  # the README's recipe: BN statistics of the averaged weights
            with torch.no_grad():
                model.train()
                for i, (x, _) in enumerate(batches):
                    if i == 50:
                        break
                    model(x)

    return train(task, seed, make, before_eval=before_eval)


PEERS = {"prodigy": prodigy, "schedule_free": schedule_free}
