"""python -m lrfused.find: the LR range test from the command line.

With no arguments it sweeps a small CNN on the bundled 8x8 digits. Exit codes: 0 done, 1 the sweep
could not read a curve (e.g. the loss is not finite from the first step), 2 a usage error (one line,
argparse's own included), 130 interrupted, 141 the reader of stdout went away (`| head`).
"""
import argparse
import importlib
import inspect
import json
import os
import sys
import tempfile

import torch

from lrfused.find import builtin
from lrfused.find.confirm import cannot_confirm
from lrfused.find.families import DEFAULT, FAMILIES
from lrfused.find.grid import MAX_COMBINATIONS, check_grid, range_test_grid
from lrfused.find.range_test import range_test


class UsageError(Exception):
    """A mistake in the command line: reported in one line, exit code 2."""


class OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message):
        """argparse's own errors (an unknown flag, --mode foo) in one line too, not the whole usage."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser():
    parser = OneLineErrorParser(
        prog="python -m lrfused.find",
        description="Leslie Smith's LR range test: sweep the LR, find the bounds for 1cycle / cyclical training.",
    )
    parser.add_argument("--model", metavar="MODULE:CALLABLE", help="a callable returning an nn.Module (default: a small CNN for the digits)")
    parser.add_argument("--data", metavar="MODULE:CALLABLE", help="a callable returning an iterable of (inputs, targets) batches or a DataLoader (default: the bundled 8x8 digits)")
    parser.add_argument("--loss", metavar="MODULE:CALLABLE",
                        help="loss(outputs, targets), or a class or function taking no arguments that returns such a "
                             "loss (default: cross-entropy)")
    parser.add_argument("--start-lr", type=float, default=1e-7, help="LR of the first step (default: %(default)g)")
    parser.add_argument("--end-lr", type=float, default=10.0, help="LR of the last step (default: %(default)g)")
    parser.add_argument("--num-iter", type=int, default=100, help="steps of the sweep (default: %(default)d)")
    parser.add_argument("--mode", choices=("exp", "linear"), default="exp",
                        help="geometric or linear LR ramp (default: %(default)s)")
    parser.add_argument("--smooth", type=float, default=0.95, help="EMA factor of the smoothed loss, in [0, 1) (default: %(default)g)")
    parser.add_argument("--diverge-threshold", type=float, default=4.0,
                        help="stop when the smoothed loss rises (threshold - 1) x |best| above the best (default: %(default)g)")
    parser.add_argument("--momentum", type=number_list, default=[0.9], metavar="M[,M...]",
                        help="momentum of the sweep; a comma-separated list runs one sweep per value (default 0.9)")
    parser.add_argument("--weight-decay", type=number_list, default=None, metavar="WD[,WD...]",
                        help="weight decay of the sweep; a comma-separated list runs one sweep per value "
                             f"(default {_each_family(lambda f: format(f.settings['weight_decay'], 'g') + ' for ' + f.name, ', ')})")
    parser.add_argument("--optimizer", choices=tuple(FAMILIES), default=DEFAULT,
                        help=f"the optimizer swept: lrfused's fused {_each_family(lambda f: f.title, ' or fused ')} (torch's defaults)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="the forward under autocast to bf16 or fp16 (fp16 with a GradScaler)")
    parser.add_argument("--accumulation-steps", type=int, default=1, metavar="K", help="batches per LR step (gradient accumulation)")
    parser.add_argument("--batch-loss", metavar="MODULE:CALLABLE",
                        help="batch_loss(model, batch) -> loss, for batches that are not (inputs, targets) pairs (instead of --loss)")
    parser.add_argument("--yes", action="store_true", help=f"run grids of more than {MAX_COMBINATIONS} combinations")
    parser.add_argument("--batched", choices=("auto", "yes", "no"), default="auto",
                        help="a grid as one vmap-batched computation (auto: on CUDA; falls back to one sweep "
                             "after another when the model cannot be batched)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda if available)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the model's initialisation and the data order")
    parser.add_argument("--out", default="lr_find_out", metavar="DIR", help="where lr_find.png and lr_find.json go (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the JSON to stdout instead of the table")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-cuda-graph", action="store_true", help="run the sweep eagerly on CUDA too")
    parser.add_argument("--then-train", type=int, metavar="EPOCHS", help="then train the model for EPOCHS epochs with the 1cycle optimizer of the family swept "
                             f"({_each_family(lambda f: f.one_cycle.__name__ + ' for ' + f.name, ', ')}) at the recommended max_lr")
    parser.add_argument("--total-steps", type=int, metavar="N",
                        help="the optimizer steps your 1cycle training will take: the recommended max_lr is then "
                             "confirmed by training four candidates briefly (N/4 steps in all; see README). "
                             "--then-train sets it to EPOCHS x len(data). Not for grids")
    parser.add_argument("--val-data", metavar="MODULE:CALLABLE",
                        help="validation batches: score the confirmation's candidates and --then-train's epochs "
                             "(default with the built-in data: its held-out split)")
    return parser


def _each_family(text, separator):
    """The families' text(family), joined: the help names every family of lrfused.find.families."""
    return separator.join(text(family) for family in FAMILIES.values())


def number_list(text):
    """'1e-4,1e-3' -> [0.0001, 0.001] (argparse turns the ValueError into a usage error)."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or a comma-separated list of numbers, got {text!r}") from None
    return values


def load_callable(spec, what):
    if ":" not in spec:
        raise UsageError(f"--{what} must look like module:callable, got {spec!r}")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"--{what} {spec}: cannot import {module_name!r} ({error})") from None
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise UsageError(f"--{what} {spec}: {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise UsageError(f"--{what} {spec}: {attr!r} is not callable")
    return target


def build_model(args, device):
    if args.model is None:
        model = builtin.digits_cnn()
    else:
        factory = load_callable(args.model, "model")
        model = factory()
        if not isinstance(model, torch.nn.Module):
            raise UsageError(f"--model {args.model} returned {type(model).__name__}, not a torch.nn.Module")
    return model.to(device)


def build_data(args):
    if args.data is None:
        return builtin.digits_loader(seed=args.seed)
    data = load_callable(args.data, "data")()
    if not hasattr(data, "__iter__"):
        raise UsageError(f"--data {args.data} returned {type(data).__name__}, not an iterable of (inputs, targets)")
    return data


def build_val_data(args):
    if args.val_data is not None:
        data = load_callable(args.val_data, "val-data")()
        if not hasattr(data, "__iter__"):
            raise UsageError(f"--val-data {args.val_data} returned {type(data).__name__}, not an iterable")
        return data
    return builtin.digits_loader(split="test") if args.data is None else None


def build_loss(args):
    if args.loss is None:
        return torch.nn.CrossEntropyLoss()
    loss = load_callable(args.loss, "loss")
    if not isinstance(loss, torch.nn.Module) and _takes_no_arguments(loss):  # torch.nn.MSELoss, or a factory
        loss = loss()
        if not callable(loss):
            raise UsageError(f"--loss {args.loss} returned {type(loss).__name__}, not a loss(outputs, targets)")
    return loss


def _takes_no_arguments(function):
    try:
        inspect.signature(function).bind()
    except (TypeError, ValueError):  # needs arguments, or has no signature to read (a builtin)
        return False
    return True


def check_args(args):
    if not args.start_lr > 0 or not args.end_lr > 0:
        raise UsageError(f"--start-lr and --end-lr must be > 0, got {args.start_lr} and {args.end_lr}")
    if args.start_lr >= args.end_lr:
        raise UsageError(f"--start-lr must be below --end-lr, got {args.start_lr} >= {args.end_lr}")
    if args.num_iter < 2:
        raise UsageError(f"--num-iter must be >= 2, got {args.num_iter}")
    if not 0 <= args.smooth < 1:
        raise UsageError(f"--smooth must be in [0, 1), got {args.smooth}")
    if not args.diverge_threshold > 1:
        raise UsageError(f"--diverge-threshold must be > 1, got {args.diverge_threshold}")
    if args.weight_decay is None:  # each family's own default, as range_test's
        args.weight_decay = [FAMILIES[args.optimizer].settings["weight_decay"]]
    try:
        check_grid(args.weight_decay, args.momentum, 10**9 if args.yes else MAX_COMBINATIONS,
                   names=("--weight-decay", "--momentum"), more="pass --yes")
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from None
    if args.then_train is not None and args.then_train < 1:
        raise UsageError(f"--then-train must be >= 1 epochs, got {args.then_train}")
    if args.then_train is not None and args.batch_loss is not None:
        raise UsageError("--then-train trains on (inputs, targets) batches: not with --batch-loss")
    if args.accumulation_steps < 1:
        raise UsageError(f"--accumulation-steps must be >= 1, got {args.accumulation_steps}")
    if args.batch_loss is not None and args.loss is not None:
        raise UsageError("--loss and --batch-loss: give one or the other")
    if args.total_steps is not None and args.total_steps < 1:
        raise UsageError(f"--total-steps must be >= 1, got {args.total_steps}")
    if args.total_steps is not None and args.then_train is not None:
        raise UsageError("--then-train sets the total steps (EPOCHS x len(data)): give --total-steps or --then-train")
    if args.total_steps is not None and len(args.weight_decay) * len(args.momentum) > 1:
        raise UsageError("--total-steps confirms one sweep's max_lr: not with a grid of --weight-decay / --momentum")
    if args.val_data is not None and args.then_train is None and args.total_steps is None:
        raise UsageError("--val-data is only used with --total-steps or --then-train")


def resolve_device(name):
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r} is not a device (try cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA GPU is available")
    return device


def prepare_out(path):
    """Creates --out and makes sure it is writable, before any work."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise UsageError(f"--out {path}: cannot write there ({error.strerror or error})") from None


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_args(args)
        device = resolve_device(args.device)
        prepare_out(args.out)
        torch.manual_seed(args.seed)
        model = build_model(args, device)
        data = build_data(args)
        loss_fn = build_loss(args)
        if args.then_train and not hasattr(data, "__len__"):
            raise UsageError("--then-train needs --data with a length (a DataLoader or a list), to count steps")
        total_steps = args.then_train * len(data) if args.then_train else args.total_steps
        val_data = build_val_data(args) if total_steps else None
        sweep = dict(
            start_lr=args.start_lr,
            end_lr=args.end_lr,
            num_iter=args.num_iter,
            mode=args.mode,
            smooth=args.smooth,
            diverge_threshold=args.diverge_threshold,
            cuda_graph=not args.no_cuda_graph,
            progress=not args.no_progress and not args.json,
            optimizer=args.optimizer,
            precision=args.precision,
            accumulation_steps=args.accumulation_steps,
            batch_loss=None if args.batch_loss is None else load_callable(args.batch_loss, "batch-loss"),
        )
        # without --loss, range_test's own default: cross-entropy for pairs, the output's loss for mappings
        sweep_loss = None if args.loss is None else loss_fn
        if is_grid(args):
            # A fresh iterable per sweep: the same data order for every combination.
            outcome = range_test_grid(model, lambda: build_data(args), sweep_loss, weight_decays=args.weight_decay,
                                      momenta=args.momentum, max_combinations=10**9,
                                      batched={"auto": "auto", "yes": True, "no": False}[args.batched], **sweep)
        else:
            # (val_data scores the confirmation's candidates; --then-train reads it whether or not one runs)
            scores_candidates = cannot_confirm(total_steps, args.optimizer, data) is None
            outcome = range_test(model, data, sweep_loss, momentum=args.momentum[0], weight_decay=args.weight_decay[0],
                                 total_steps=total_steps, val_data=val_data if scores_candidates else None,
                                 val_every=None, **sweep)
    except UsageError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    except (TypeError, ValueError) as error:  # arguments, or a model, data and loss that do not fit
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    except KeyboardInterrupt:
        parser.exit(130, f"{parser.prog}: interrupted; the model was restored\n")
    except Exception as error:  # the user's model, data or loss failed during the sweep
        parser.exit(1, f"{parser.prog}: error: the sweep failed: {type(error).__name__}: {error}\n")

    name = "lr_find_grid" if is_grid(args) else "lr_find"
    json_path, png_path = os.path.join(args.out, name + ".json"), os.path.join(args.out, name + ".png")
    with open(json_path, "w") as f:
        f.write(outcome.to_json())
    plotted = any(run["result"].lrs for run in outcome.runs) if is_grid(args) else bool(outcome.lrs)
    if plotted:
        outcome.plot(png_path)
    if args.json:
        print(outcome.to_json())
    else:
        print(outcome.summary())
        print(f"  wrote {json_path}" + (f" and {png_path}" if plotted else ""))

    # the 1cycle call the summary printed, as data: --then-train trains it
    one_cycle = outcome.one_cycle
    if one_cycle is None:
        if not args.json:
            print("error: no usable loss curve (is the loss finite at the first step?)", file=sys.stderr)
        return 1
    if args.then_train:
        then_train(args, model, data, val_data, loss_fn, one_cycle)
    return 0


def is_grid(args):
    return len(args.weight_decay) * len(args.momentum) > 1


def then_train(args, model, data, val_data, loss_fn, one_cycle):
    """Trains the (restored) model with the recommended 1cycle call `one_cycle` (a Recommendation);
    prints and plots each epoch."""
    from lrfused.find import train

    max_lr = one_cycle.kwargs["max_lr"]
    print(one_cycle.training_text(args.then_train))

    def report(r):
        accuracy = "" if r["val_accuracy"] is None else f"  val accuracy {100 * r['val_accuracy']:.2f}%"
        val = "" if r["val_loss"] is None else f"  val loss {r['val_loss']:.4f}"
        print(f"  epoch {r['epoch']:3d}  train loss {r['train_loss']:.4f}{val}{accuracy}  ({r['seconds']:.2f}s)", flush=True)

    opt = one_cycle.one_cycle_optimizer(model.parameters(), args.then_train, len(data))
    history = train.train(model, data, val_data, loss_fn, args.then_train, opt, on_epoch=report)
    with open(os.path.join(args.out, "train.json"), "w") as f:
        json.dump({"max_lr": max_lr, "epochs": history}, f, indent=1)
    train.plot_history(history, os.path.join(args.out, "train.png"), f"1cycle at max_lr {max_lr:.3g}")
    print(f"  wrote {os.path.join(args.out, 'train.json')} and {os.path.join(args.out, 'train.png')}")


def run():
    """main() as a command. Output piped into a reader that stops early (`| head -1`) ends quietly,
    with the exit code of a process killed by SIGPIPE."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python's recipe: stdout to devnull, so that the interpreter's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 141
    return code


if __name__ == "__main__":
    sys.exit(run())
