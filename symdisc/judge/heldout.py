"""The held-out stage of the funnel: a short real-data task that the proxy never sees.

Proxy fitness can rise while real quality falls (meta-overfitting, as the Lion authors found), so
a candidate that beats the incumbent on the proxy is also scored here: a Fashion-MNIST subset with
20% symmetric label noise, clean test images for validation, a 784-32-10 MLP, seeds that the
proxy does not use, the same learning-rate grid and the same batched trainer as the proxy.

The sandbox worker loads the data before it locks itself down (``prepare``); afterwards it cannot
read files.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable, Optional

import torch

from symdisc.config import HeldoutConfig
from symdisc.data import flip_labels, load
from symdisc.judge.proxy import stack_tasks, student_init, train_stacked


_TASKS: dict = {}


def prepare(cfg: Optional[HeldoutConfig] = None) -> None:
    """Load the data set and build the stacked tasks now (in the worker, before the lock-down)."""
    cfg = cfg or HeldoutConfig()
    key = tuple(sorted(asdict(cfg).items()))
    if key in _TASKS:
        return
    ds = load(cfg.dataset)
    x_train_all = ds.x_train.flatten(1)
    x_test_all = ds.x_test.flatten(1)
    per_seed = []
    for i in range(cfg.seeds):
        g = torch.Generator().manual_seed(cfg.seed_base + i)
        idx = torch.randperm(len(x_train_all), generator=g)[: cfg.n_train]
        clean = ds.y_train[idx]
        noisy = flip_labels(clean, cfg.noise, ds.classes, g)
        val = torch.randperm(len(x_test_all), generator=g)[: cfg.n_val]
        params = student_init(x_train_all.shape[1], cfg.hidden, ds.classes, g)
        batches = torch.randint(0, cfg.n_train, (cfg.steps, cfg.batch), generator=g)
        flipped = float((noisy != clean).float().mean())
        per_seed.append((x_train_all[idx], noisy, x_test_all[val], ds.y_test[val], params, batches, flipped))
    _TASKS[key] = (cfg, stack_tasks(per_seed, len(cfg.lrs)))


def heldout_fitness(update: Callable, memory: str, cfg: Optional[HeldoutConfig] = None) -> dict:
    cfg = cfg or HeldoutConfig()
    key = tuple(sorted(asdict(cfg).items()))
    if key not in _TASKS:
        prepare(cfg)  # outside the worker (tests, tools); inside, prepare ran before the lock-down
    cfg, tasks = _TASKS[key]
    return train_stacked(update, memory, tasks, cfg.lrs, cfg.seeds, cfg.steps)
