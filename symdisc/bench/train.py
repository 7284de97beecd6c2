"""Training one optimizer on one task and seed, and tuning its learning rate."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from symdisc import data as datasets
from symdisc.config import BenchConfig
from symdisc.errors import UsageError
from symdisc.bench.entries import Entry
from symdisc.judge.training import accuracy, make_model, train_loop  # noqa: F401  (make_model, accuracy: re-exported)
from symdisc.search.proposers.tpe import startup_trials


TASKS = {
    "fmnist-noisy": ("fashion-mnist", 0.2, "cnn28"),
    "fmnist": ("fashion-mnist", 0.0, "cnn28"),
    "mnist": ("mnist", 0.0, "cnn28"),
    "cifar10": ("cifar10", 0.0, "cnn32"),
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


def train(entry: Entry, lr: float, x_train, y_train, x_eval, y_eval, model_kind: str, seed: int, steps: int,
          batch: int, eval_every: int, on_step: Optional[Callable] = None, schedule: str = "constant") -> SeedResult:
    """One training run: in this process (torch's optimizers, built-in rules, the user's own
    Optimizer classes, --unsandboxed) or in the sandbox worker (rules written by a model). Both
    run ``judge.training.train_loop``: same initial weights, same batches, same numbers."""
    if entry.sandboxed:
        answer = entry.runner.train(entry.code, entry.memory, lr, x_train, y_train, x_eval, y_eval, model_kind, seed,
                                    steps, batch, eval_every, on_step, schedule)
        if not answer.get("ok"):
            return SeedResult(optimizer=entry.label, seed=seed, lr=lr, final_acc=float("nan"), best_acc=float("nan"),
                              final_loss=float("nan"), state_bytes=0, memory_class=entry.memory, steps_per_s=0.0,
                              diverged=False, verdict=answer.get("reason") or "crash",
                              message=answer.get("message"))
        out = answer["result"]
        out["final_loss"] = float("nan") if out["final_loss"] is None else out["final_loss"]
        out["losses"] = [float("nan") if v is None else v for v in out["losses"]]
        out["curve"] = [tuple(c) for c in out["curve"]]
    else:
        step_hook = (lambda step: on_step()) if on_step else None
        out = train_loop(lambda params: entry.make(params, lr, steps), x_train, y_train, x_eval, y_eval, model_kind,
                         seed, steps, batch, eval_every, step_hook, schedule, closure=entry.full_batch)
    return SeedResult(optimizer=entry.label, seed=seed, lr=lr, **out)


def tune_lr(entry: Entry, trials: int, x_train, y_train, model_kind: str, steps: int, batch: int, seed: int = 0,
            schedule: str = "constant") -> float:
    """Optuna TPE over log(lr) around the default, scored on a validation split of the training set."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_val = max(1000, len(x_train) // 10)
    g = torch.Generator().manual_seed(10_000 + seed)
    perm = torch.randperm(len(x_train), generator=g)
    val_idx, fit_idx = perm[:n_val], perm[n_val:]
    x_fit, y_fit, x_val, y_val = x_train[fit_idx], y_train[fit_idx], x_train[val_idx], y_train[val_idx]

    def objective(trial):
        lr = trial.suggest_float("lr", entry.default_lr / 30, entry.default_lr * 30, log=True)
        result = train(entry, lr, x_fit, y_fit, x_val, y_val, model_kind, seed, steps, batch, eval_every=steps,
                       schedule=schedule)
        return 0.0 if result.diverged or getattr(result, "verdict", None) else result.final_acc

    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(trials))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({"lr": entry.default_lr})  # the default is always one of the trials
    study.optimize(objective, n_trials=trials)
    return float(study.best_params["lr"])




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
