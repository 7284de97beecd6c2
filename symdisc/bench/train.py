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
from symdisc.bench.optimizers import measured_memory_class, state_bytes
from symdisc.bench.entries import Entry
from symdisc.search.proposers.tpe import startup_trials


TASKS = {
    "fmnist-noisy": ("fashion-mnist", 0.2, "cnn28"),
    "fmnist": ("fashion-mnist", 0.0, "cnn28"),
    "mnist": ("mnist", 0.0, "cnn28"),
    "cifar10": ("cifar10", 0.0, "cnn32"),
}
SUITES = {"evo-optimizer": dict(tasks=("fmnist", "cifar10", "mnist"), steps=1000, subset=15_000, seeds=3)}


def make_model(kind: str) -> nn.Module:
    """A small CNN like the original experiment's (28x28 grey) or a slightly wider one for CIFAR-10."""
    if kind == "cnn28":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))
    if kind == "cnn32":
        return nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10))
    raise ValueError(kind)


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
    losses: list = field(default_factory=list)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += (model(x[i: i + batch]).argmax(1) == y[i: i + batch]).sum().item()
    model.train()
    return correct / max(1, len(x))


def train(entry: Entry, lr: float, x_train, y_train, x_eval, y_eval, model_kind: str, seed: int, steps: int,
          batch: int, eval_every: int, on_step: Optional[Callable] = None) -> SeedResult:
    torch.manual_seed(seed)
    model = make_model(model_kind)  # same seed, same initial weights for every optimizer
    optimizer = entry.make(model.parameters(), lr, steps)
    order = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    losses, curve = [], []
    n = len(x_train)
    perm = torch.randperm(n, generator=order)
    pos, epoch_len = 0, max(1, n // batch)
    diverged = False
    curve.append((0, 0.0, accuracy(model, x_eval, y_eval)))  # the curve starts at the untrained model
    train_time = 0.0
    for step in range(1, steps + 1):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=order), 0
        idx = perm[pos: pos + batch]
        pos += batch
        t_step = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x_train[idx]), y_train[idx])
        loss.backward()
        optimizer.step()
        train_time += time.perf_counter() - t_step
        value = loss.item()
        losses.append(value)
        if not math.isfinite(value) or value > 1e4:
            diverged = True
            curve.append((step, step / epoch_len, accuracy(model, x_eval, y_eval)))
            break
        if step % eval_every == 0 or step == steps:
            curve.append((step, step / epoch_len, accuracy(model, x_eval, y_eval)))
        if on_step:
            on_step()
    accs = [c[2] for c in curve[1:]] or [curve[0][2]]
    tail = [v for v in losses[-50:] if math.isfinite(v)]
    return SeedResult(
        optimizer=entry.label, seed=seed, lr=lr, final_acc=accs[-1], best_acc=max(accs),
        final_loss=sum(tail) / len(tail) if tail else float("nan"), state_bytes=state_bytes(optimizer),
        memory_class=measured_memory_class(optimizer), steps_per_s=len(losses) / train_time if train_time else 0.0,
        diverged=diverged, curve=curve, losses=losses)


def tune_lr(entry: Entry, trials: int, x_train, y_train, model_kind: str, steps: int, batch: int, seed: int = 0) -> float:
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
        result = train(entry, lr, x_fit, y_fit, x_val, y_val, model_kind, seed, steps, batch, eval_every=steps)
        return 0.0 if result.diverged else result.final_acc

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
