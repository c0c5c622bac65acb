"""Training results cached in a committed JSON, keyed by everything that made them: a result made
with another torch, another task definition or other seeds is not reused but made again."""
import hashlib
import inspect
import json
import os
import platform

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def task_key(task, seeds, study=None):
    """What a task's training results depend on: the torch and Python versions, the task's settings
    and the source of its data, model and training code, the training seeds, and whatever else a
    study's results depend on (`study`: JSON-like, as it reads back from the file)."""
    from benchmarks.lr_quality import data, tasks, training

    source = "".join(inspect.getsource(m) for m in (data, tasks, training))
    settings = {
        "torch": torch.__version__.split("+")[0],
        "python": platform.python_version(),
        "task": {k: v for k, v in vars(task).items() if isinstance(v, (int, float, str, bool))},
        "seeds": list(seeds),
        "code": hashlib.sha256(source.encode()).hexdigest()[:16],
    }
    if study is not None:
        settings["study"] = study
    return settings


def source_hash(*modules):
    """A short hash of the modules' source: a key part for results that depend on that code."""
    return hashlib.sha256("".join(inspect.getsource(m) for m in modules).encode()).hexdigest()[:16]


class ResultCache:
    """{task name: {"settings": ..., "runs": {lr text: [result per seed]}}} in a JSON file."""

    def __init__(self, path):
        self.path = path
        self.data = {}
        if os.path.exists(path):
            with open(path) as f:
                self.data = json.load(f)

    def runs(self, task, seeds, study=None):
        """The task's cached runs (emptied if they were made under other settings)."""
        settings = task_key(task, seeds, study)
        entry = self.data.get(task.name)
        if entry is None or entry["settings"] != settings:
            entry = self.data[task.name] = {"settings": settings, "runs": {}}
        return entry["runs"]

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


def lr_text(lr):
    """The cache key of an LR: 4 significant digits (closer LRs train the same)."""
    return f"{lr:.4g}"
