"""Proxy fitness: tiny noisy classification tasks that score a candidate in tens of milliseconds.

Each task is generated from a seed: inputs are Gaussian, labels come from a random "teacher" MLP,
and a fixed fraction of training labels is flipped to another class (symmetric noise); validation
labels stay clean. A small ReLU MLP student trains with the candidate on mini-batches.

Speed: every (seed, learning rate) pair is one network, and all of them are stacked on a leading
axis so forward and backward are a handful of batched matmuls written out by hand (no autograd).
The candidate is still called once per network and parameter, on that parameter alone, so a
per-layer statistic (a median, a norm) means exactly what it means in a real optimizer.

Fitness = max over the learning-rate grid of the mean clean validation accuracy over seeds. A
network whose loss turns NaN or explodes scores zero; if every network diverges, the candidate
fails with ``diverged``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from symdisc.config import ProxyConfig
from symdisc.data import flip_labels
from symdisc.judge.harness import CheckedRule
from symdisc.judge.restricted import CandidateError


@dataclass
class _Tasks:
    x_train: torch.Tensor  # (N, n_train, dim), N = seeds * len(lrs), one row per network
    y_train: torch.Tensor  # noisy labels
    x_val: torch.Tensor
    y_val: torch.Tensor  # clean labels
    params0: list  # initial student parameters, stacked over networks
    batches: torch.Tensor  # (steps, N, batch) indices into the training set
    noisy_fraction: float = 0.0


_CACHE: dict = {}


def _make_task(seed: int, cfg: ProxyConfig):
    g = torch.Generator().manual_seed(seed)
    n = cfg.n_train + cfg.n_val
    x = torch.randn(n, cfg.dim, generator=g)
    teacher1 = torch.randn(cfg.dim, 2 * cfg.hidden, generator=g) / math.sqrt(cfg.dim)
    teacher2 = torch.randn(2 * cfg.hidden, cfg.classes, generator=g) / math.sqrt(2 * cfg.hidden)
    labels = (torch.tanh(x @ teacher1) @ teacher2).argmax(dim=1)
    y_train = flip_labels(labels[: cfg.n_train], cfg.noise, cfg.classes, g)
    params = student_init(cfg.dim, cfg.hidden, cfg.classes, g)
    batches = torch.randint(0, cfg.n_train, (cfg.steps, cfg.batch), generator=g)
    flipped = float((y_train != labels[: cfg.n_train]).float().mean())
    return x[: cfg.n_train], y_train, x[cfg.n_train:], labels[cfg.n_train:], params, batches, flipped


def _tasks(cfg: ProxyConfig) -> _Tasks:
    key = tuple(sorted(asdict(cfg).items()))
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    tasks = stack_tasks([_make_task(cfg.task_seed + i, cfg) for i in range(cfg.seeds)], len(cfg.lrs))
    _CACHE[key] = tasks
    return tasks


def student_init(dim: int, hidden: int, classes: int, g: torch.Generator) -> list:
    """A two-layer ReLU MLP without biases: half the candidate calls of one with biases, which is
    what the proxy's time goes into, and inputs are centred anyway."""
    w1 = torch.randn(hidden, dim, generator=g) * math.sqrt(2.0 / dim)
    w2 = torch.randn(classes, hidden, generator=g) * math.sqrt(1.0 / hidden)
    return [w1, w2]


def stack_tasks(per_seed: list, repeat: int) -> _Tasks:
    """Stack per-seed tasks (x_train, y_train, x_val, y_val, params, batches, flipped fraction) into
    one batch of networks. Network k trains seed k // repeat with lr number k % repeat: the same data
    and the same initial weights for every lr of a seed (a paired comparison)."""
    stack = lambda items: torch.stack([item for item in items for _ in range(repeat)])  # noqa: E731
    return _Tasks(
        x_train=stack([t[0] for t in per_seed]),
        y_train=stack([t[1] for t in per_seed]),
        x_val=stack([t[2] for t in per_seed]),
        y_val=stack([t[3] for t in per_seed]),
        params0=[stack([t[4][j] for t in per_seed]) for j in range(len(per_seed[0][4]))],
        batches=stack([t[5] for t in per_seed]).transpose(0, 1).contiguous(),
        noisy_fraction=sum(t[6] for t in per_seed) / len(per_seed),
    )


def _forward(params, x):
    w1, w2 = params
    hidden = torch.relu(x @ w1.transpose(1, 2))
    return hidden, hidden @ w2.transpose(1, 2)


def _loss_and_grads(params, x, y):
    """Mean cross-entropy per network and its gradients, by hand."""
    w1, w2 = params
    hidden, logits = _forward(params, x)
    logp = torch.log_softmax(logits, dim=2)
    loss = -logp.gather(2, y.unsqueeze(2)).squeeze(2).mean(dim=1)
    dlogits = logp.exp()
    dlogits.scatter_add_(2, y.unsqueeze(2), torch.full_like(dlogits[..., :1], -1.0))
    dlogits /= x.shape[1]
    g_w2 = dlogits.transpose(1, 2) @ hidden
    dhidden = (dlogits @ w2) * (hidden > 0)
    g_w1 = dhidden.transpose(1, 2) @ x
    return loss, [g_w1, g_w2]


def proxy_fitness(update: Callable, memory: str, cfg: ProxyConfig) -> dict:
    return train_stacked(update, memory, _tasks(cfg), cfg.lrs, cfg.seeds, cfg.steps)


def step_networks(rule, params, views, grads, loss, states, alive, lrs, t: int) -> None:
    """One step of every stacked network still alive: ``views[j][k] -= rule(...)`` in place. A network
    whose loss is not finite or explodes, or whose weights are not finite, stops (``alive[k]``)."""
    healthy = (torch.isfinite(loss) & (loss < 1e3)).tolist()
    finite = torch.stack([torch.isfinite(p).flatten(1).all(1) for p in params]).all(0).tolist()
    grad_views = [g.unbind(0) for g in grads]
    for k in range(len(alive)):
        if not alive[k]:
            continue
        if not (healthy[k] and finite[k]):
            alive[k] = False  # diverged: NaN or exploding loss, or non-finite weights
            continue
        for j in range(len(params)):
            views[j][k].sub_(rule(grad_views[j][k], views[j][k], states[k][j], lrs[k], t))


def train_stacked(update: Callable, memory: str, tasks: _Tasks, lrs_grid, seeds: int, steps: int) -> dict:
    """Train every (seed, lr) network of ``tasks`` with the candidate; score clean validation accuracy.
    Shared by the proxy and the held-out stage (which builds its tasks from real data)."""
    # Stage 0 already checked mutation and finiteness call by call; here finiteness is checked once
    # per step on all networks at once (a non-finite step makes that network's weights non-finite),
    # which keeps the per-call overhead, the proxy's main cost, low.
    rule = CheckedRule(update, memory, check_mutation=False, check_finite=False)
    n_lrs = len(lrs_grid)
    n_nets = seeds * n_lrs
    lrs = [lrs_grid[k % n_lrs] for k in range(n_nets)]
    params = [p.clone() for p in tasks.params0]
    views = [p.unbind(0) for p in params]  # per-network views, updated in place below
    states = [[{} for _ in params] for _ in range(n_nets)]
    alive = [True] * n_nets
    net_index = torch.arange(n_nets).unsqueeze(1)
    for t in range(1, steps + 1):
        idx = tasks.batches[t - 1]
        loss, grads = _loss_and_grads(params, tasks.x_train[net_index, idx], tasks.y_train[net_index, idx])
        step_networks(rule, params, views, grads, loss, states, alive, lrs, t)
    _, logits = _forward(params, tasks.x_val)
    correct = (logits.argmax(dim=2) == tasks.y_val).float().mean(dim=1)
    finite = torch.stack([torch.isfinite(p).flatten(1).all(1) for p in params]).all(0).tolist()
    accuracy = [float(correct[k]) if alive[k] and finite[k] else 0.0 for k in range(n_nets)]
    per_lr = {}
    for i, lr in enumerate(lrs_grid):
        values = [accuracy[s * n_lrs + i] for s in range(seeds)]
        per_lr[f"{lr:g}"] = sum(values) / len(values)
    if not any(alive):
        raise CandidateError("diverged", "training diverged on every task and learning rate")
    best = max(range(n_lrs), key=lambda i: per_lr[f"{lrs_grid[i]:g}"])
    return {
        "fitness": per_lr[f"{lrs_grid[best]:g}"],
        "best_lr": lrs_grid[best],
        "per_lr": per_lr,
        "per_seed": [accuracy[s * n_lrs + best] for s in range(seeds)],
        "diverged": sum(1 for a in alive if not a),
        "state_bytes": rule.state_bytes,
        "state_scalars": rule.state_scalars,
        "label_noise": tasks.noisy_fraction,
    }
