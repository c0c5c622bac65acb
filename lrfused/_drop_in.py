"""Drop-ins (FusedOneCycleSGD, FusedOneCycleAdamW, ...): a family's optimizer with one schedule,
taking the schedule's arguments and the family's as one flat list, as torch's optimizer + scheduler
pair takes them. Each is declared from (family class, schedule class): the arguments, their order and
defaults are read from the two classes' own signatures, so no argument is written twice.

The constructor is generated with the declared signature (as dataclasses generate theirs), so that
it takes, shows and refuses arguments exactly as a written-out one would.
"""
import inspect

FLAGS = ("hold_final_lr", "master_weights", "count_skipped_steps")  # the keywords every family takes
_NOT_ARGUMENTS = ("self", "params", "lr", "schedule")  # lr: the schedule's; schedule: the drop-in's


def _arguments(cls, skip):
    return [p for name, p in inspect.signature(cls.__init__).parameters.items() if name not in skip]


def drop_in(name, optimizer, schedule, doc, *, defaults=None, flags=FLAGS, after_family=(), module=None):
    """The class `name`: `optimizer` (a family's class) driven by `schedule` (a Schedule class).

    Arguments, in order: params, the schedule's (but `after_family`), the family's own (with
    `defaults` overriding theirs), `after_family`, then the `flags` it takes."""
    defaults = defaults or {}
    schedule_args = _arguments(schedule, ("self",))
    family_args = _arguments(optimizer, (*_NOT_ARGUMENTS, *FLAGS))
    flag_args = [p for p in _arguments(optimizer, _NOT_ARGUMENTS) if p.name in flags]
    unknown = set(defaults) - {p.name for p in family_args} | set(after_family) - {p.name for p in schedule_args}
    if unknown:
        raise TypeError(f"drop_in {name}: no argument {sorted(unknown)} to override or move")
    ordered = (
        [p for p in schedule_args if p.name not in after_family]
        + [p.replace(default=defaults.get(p.name, p.default)) for p in family_args]
        + [p for p in schedule_args if p.name in after_family]
        + flag_args
    )
    schedule_names = [p.name for p in schedule_args]
    optimizer_names = [p.name for p in family_args + flag_args]
    namespace = {"_schedule": schedule, "_optimizer": optimizer}
    signature = []
    for p in ordered:
        if p.default is inspect.Parameter.empty:
            signature.append(p.name)
        else:
            namespace[f"_default_{p.name}"] = p.default
            signature.append(f"{p.name}=_default_{p.name}")
    source = (
        f"def __init__(self, params, {', '.join(signature)}):\n"
        f"    schedule = _schedule({', '.join(f'{n}={n}' for n in schedule_names)})\n"
        "    _optimizer.__init__(self, params, lr=0.0, schedule=schedule, "  # shown values come from the schedule
        f"{', '.join(f'{n}={n}' for n in optimizer_names)})\n"
    )
    exec(source, namespace)  # noqa: S102 (a signature built from the two classes' own, as dataclasses do)
    init = namespace["__init__"]
    init.__qualname__ = f"{name}.__init__"
    return type(name, (optimizer,), {"__init__": init, "__doc__": doc, "__module__": module or optimizer.__module__})
