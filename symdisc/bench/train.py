"""Training one optimizer on one task and seed; the tasks and the validation split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from symdisc import data as datasets
from symdisc.config import BenchConfig
from symdisc.errors import UsageError
from symdisc.bench.entries import Entry
from symdisc.judge.training import accuracy, make_model, train_loop  # noqa: F401  (make_model, accuracy: re-exported)


TASKS = {
    "fmnist-noisy": ("fashion-mnist", 0.2, "cnn28"),
    "fmnist": ("fashion-mnist", 0.0, "cnn28"),
    "mnist": ("mnist", 0.0, "cnn28"),
    "cifar10": ("cifar10", 0.0, "cnn32"),
    # DeepOBS's fmnist_2c2d: conv32-conv64 (5x5, same padding, 2x2 max-pool each), fc1024, fc10,
    # truncated-normal weights (std 0.05), biases 0.05, no regularisation; DeepOBS trains it with batch
    # size 128 for 100 epochs.
    "fmnist-2c2d": ("fashion-mnist", 0.0, "2c2d"),
}
SUITES = {"evo-optimizer": dict(tasks=("fmnist", "cifar10", "mnist"), steps=1000, subset=15_000, seeds=3)}


@dataclass
class SeedResult:
    optimizer: str
    seed: int
    lr: float
    final_acc: float
    best_acc: float
    final_loss: float
    state_bytes: int
    memory_class: str
    steps_per_s: float
    diverged: bool
    curve: list = field(default_factory=list)  # [(step, epoch, test_acc)]
    param_tensors: int = 0  # the model's parameter tensors (the unit of the scalar memory class)
    losses: list = field(default_factory=list)
    verdict: Optional[str] = None  # a reason code when the sandbox stopped the run (memory, timeout, ...)
    message: Optional[str] = None
    weight_decay: float = 0.0
    param_count: int = 0  # the model's parameters (numbers): state bytes per parameter divide by it
    early_acc: Optional[float] = None  # test accuracy at the best validation score (early stopping)
    val_curve: list = field(default_factory=list)  # [(step, validation accuracy)] at the curve's points
    eval_seconds: list = field(default_factory=list)  # training seconds before each curve point

    @property
    def final_val(self) -> Optional[float]:
        return self.val_curve[-1][1] if self.val_curve else None

    @property
    def val_points(self) -> list:
        """[(step, seconds, validation accuracy)] after the start: what time to target reads."""
        return [(step, secs, acc) for (step, acc), secs in zip(self.val_curve[1:], self.eval_seconds[1:])]


def train(entry: Entry, lr: float, x_train, y_train, x_eval, y_eval, model_kind: str, seed: int, steps: int,
          batch: int, eval_every: int, on_step: Optional[Callable] = None, schedule: str = "constant",
          x_val=None, y_val=None, weight_decay: float = 0.0) -> SeedResult:
    """One training run: in this process (torch's optimizers, built-in rules, the user's own
    Optimizer classes, --unsandboxed) or in the sandbox worker (rules written by a model). Both
    run ``judge.training.train_loop``: same initial weights, same batches, same numbers."""
    if entry.sandboxed:
        answer = entry.runner.train(entry.code, entry.memory, lr, x_train, y_train, x_eval, y_eval, model_kind, seed,
                                    steps, batch, eval_every, on_step, schedule, x_val, y_val, weight_decay)
        if not answer.get("ok"):
            return SeedResult(optimizer=entry.label, seed=seed, lr=lr, final_acc=float("nan"), best_acc=float("nan"),
                              final_loss=float("nan"), state_bytes=0, memory_class=entry.memory, steps_per_s=0.0,
                              diverged=False, verdict=answer.get("reason") or "crash",
                              message=answer.get("message"))
        out = answer["result"]
        out["final_loss"] = float("nan") if out["final_loss"] is None else out["final_loss"]
        out["losses"] = [float("nan") if v is None else v for v in out["losses"]]
        out["curve"] = [tuple(c) for c in out["curve"]]
        out["val_curve"] = [tuple(c) for c in out.get("val_curve", [])]
    else:
        step_hook = (lambda step: on_step()) if on_step else None
        out = train_loop(lambda params: entry.make(params, lr, steps), x_train, y_train, x_eval, y_eval, model_kind,
                         seed, steps, batch, eval_every, step_hook, schedule, x_val, y_val, weight_decay,
                         closure=entry.full_batch)
    return SeedResult(optimizer=entry.label, seed=seed, lr=lr, weight_decay=weight_decay, **out)


def split_validation(x, y, fraction: float, seed: int):
    """A validation split carved from the training data (its labels as noisy as the rest: the bench
    never looks at clean training labels or at the test set to choose anything). Returns
    (x_fit, y_fit, x_val, y_val)."""
    n_val = max(1, int(round(len(x) * fraction)))
    if n_val >= len(x):
        raise UsageError(f"a validation fraction of {fraction} leaves nothing of {len(x)} examples to train on")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(10_000 + seed))
    val_idx, fit_idx = perm[:n_val], perm[n_val:]
    return x[fit_idx], y[fit_idx], x[val_idx], y[val_idx]


def prepare_task(task: str, config: BenchConfig, subset: Optional[int], seed: int):
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r} (one of {', '.join(TASKS)})")
    name, default_noise, model_kind = TASKS[task]
    ds = datasets.load(name, Path(config.data_dir) if config.data_dir else None)
    x_train, y_train = ds.x_train, ds.y_train
    if subset and subset < len(x_train):
        idx = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(20_000 + seed))[:subset]
        x_train, y_train = x_train[idx], y_train[idx]
    noise = default_noise if config.noise is None else config.noise
    if noise > 0:
        y_train = datasets.flip_labels_seeded(y_train, noise, ds.classes, seed=30_000 + seed)
    return x_train, y_train, ds, model_kind, noise
