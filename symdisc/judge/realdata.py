"""Real-data stages of the cascade: small networks trained on subsets of a data set's TRAINING split.

Every stage carves two disjoint sets from the training images, one to train on (with symmetric label
noise) and one to validate on (clean labels); the test images are never read here, so nothing a
run selects can depend on them (``symdisc bench`` reports test accuracy; tests check the indices).

All (seed, learning rate) networks of a stage train together, as in the proxy: an MLP with the
proxy's hand-written batched passes, or a small CNN whose networks are stacked as groups of one
grouped convolution (autograd for the gradients). The candidate is called once per network and
parameter, on that parameter alone.

The sandbox worker builds every stage's tasks before it locks itself down (``prepare``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from symdisc.data import flip_labels
from symdisc.judge.harness import CheckedRule
from symdisc.judge.proxy import _forward, _loss_and_grads, step_networks
from symdisc.judge.restricted import CandidateError

from symdisc.config import HALF_DECADE, HeldoutConfig

RealStage = HeldoutConfig  # one config class for every real-data stage; its defaults are stage 3's


def _key(cfg: RealStage) -> tuple:
    """What a stage's tasks depend on (not its lr grid)."""
    return tuple(sorted((k, v) for k, v in asdict(cfg).items() if k != "lrs"))


def split_indices(n_total: int, n_train: int, n_val: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint train and validation indices, both into the TRAINING split."""
    if n_train + n_val > n_total:
        raise ValueError(f"{n_train} + {n_val} examples asked of a training split of {n_total}")
    perm = torch.randperm(n_total, generator=g)
    return perm[:n_train], perm[n_train: n_train + n_val]


@dataclass
class _Seeded:
    x_train: torch.Tensor  # (S, n_train, ...) one row per seed
    y_train: torch.Tensor  # noisy
    x_val: torch.Tensor
    y_val: torch.Tensor  # clean
    params0: list  # per seed
    batches: torch.Tensor  # (steps, S, batch)
    indices: list = field(default_factory=list)  # (train_idx, val_idx) per seed: for the leakage test
    noisy_fraction: float = 0.0


_TASKS: dict = {}
_DATASETS: dict = {}


def _init(model: str, shape_in: tuple, hidden: int, classes: int, g: torch.Generator) -> list:
    if model == "mlp":
        dim = int(math.prod(shape_in))
        return [torch.randn(hidden, dim, generator=g) * math.sqrt(2.0 / dim),
                torch.randn(classes, hidden, generator=g) * math.sqrt(1.0 / hidden)]
    c_in, h, w = shape_in
    c1, c2 = hidden, 2 * hidden
    flat = c2 * (h // 4) * (w // 4)
    return [torch.randn(c1, c_in, 3, 3, generator=g) * math.sqrt(2.0 / (c_in * 9)),
            torch.randn(c2, c1, 3, 3, generator=g) * math.sqrt(2.0 / (c1 * 9)),
            torch.randn(classes, flat, generator=g) * math.sqrt(1.0 / flat)]


def prepare(cfg: RealStage, dataset=None) -> _Seeded:
    key = _key(cfg)
    if key in _TASKS:
        return _TASKS[key]
    if dataset is None:
        from symdisc.data import load

        if cfg.dataset not in _DATASETS:
            _DATASETS[cfg.dataset] = load(cfg.dataset)
        dataset = _DATASETS[cfg.dataset]
    x_all = dataset.x_train if cfg.model == "cnn" else dataset.x_train.flatten(1)
    per = []
    for i in range(cfg.seeds):
        g = torch.Generator().manual_seed(cfg.seed_base + i)
        tr, va = split_indices(len(x_all), cfg.n_train, cfg.n_val, g)
        clean = dataset.y_train[tr]
        noisy = flip_labels(clean, cfg.noise, dataset.classes, g)
        params = _init(cfg.model, tuple(x_all.shape[1:]), cfg.hidden, dataset.classes, g)
        batches = torch.randint(0, cfg.n_train, (cfg.steps, cfg.batch), generator=g)
        per.append((x_all[tr], noisy, x_all[va], dataset.y_train[va], params, batches, (tr, va),
                    float((noisy != clean).float().mean())))
    tasks = _Seeded(
        x_train=torch.stack([p[0] for p in per]), y_train=torch.stack([p[1] for p in per]),
        x_val=torch.stack([p[2] for p in per]), y_val=torch.stack([p[3] for p in per]),
        params0=[torch.stack([p[4][j] for p in per]) for j in range(len(per[0][4]))],
        batches=torch.stack([p[5] for p in per]).transpose(0, 1).contiguous(),
        indices=[p[6] for p in per], noisy_fraction=sum(p[7] for p in per) / len(per))
    _TASKS[key] = tasks
    return tasks


def forget_datasets() -> None:
    """Drop the full data sets once every stage's subsets are built (the worker keeps only those)."""
    _DATASETS.clear()


# -- batched models -------------------------------------------------------------------------------
def _cnn_logits(params, x):
    """x: (N, B, C, H, W), params stacked over N networks; one grouped conv runs all networks."""
    w1, w2, w3 = params
    n, b, c, h, w = x.shape
    z = x.transpose(0, 1).reshape(b, n * c, h, w)
    z = F.max_pool2d(F.relu(F.conv2d(z, w1.reshape(-1, *w1.shape[2:]), padding=1, groups=n)), 2)
    z = F.max_pool2d(F.relu(F.conv2d(z, w2.reshape(-1, *w2.shape[2:]), padding=1, groups=n)), 2)
    z = z.reshape(b, n, -1).transpose(0, 1)  # (N, B, flat)
    return None, z @ w3.transpose(1, 2)


def _cnn_loss_grads(params, x, y):
    leaves = [p.detach().requires_grad_(True) for p in params]
    _, logits = _cnn_logits(leaves, x)
    losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(dim=1)
    grads = torch.autograd.grad(losses.sum(), leaves)
    return losses.detach(), list(grads)


# The MLP is the proxy's batched two-layer network, gradients by hand (one implementation).
_MODELS = {"mlp": (_loss_and_grads, _forward), "cnn": (_cnn_loss_grads, _cnn_logits)}


def _val_logits(forward, params, x_val, chunk=500):
    outs = []
    for i in range(0, x_val.shape[1], chunk):
        outs.append(forward(params, x_val[:, i: i + chunk])[1])
    return torch.cat(outs, dim=1)


def real_fitness(update: Callable, memory: str, cfg: RealStage, lrs: Optional[tuple] = None) -> dict:
    """Train every (seed, lr) network; fitness = best over lrs of mean clean validation accuracy."""
    tasks = prepare(cfg)
    lrs_grid = tuple(float(v) for v in (lrs or cfg.lrs))
    loss_grads, forward = _MODELS[cfg.model]
    rule = CheckedRule(update, memory, check_mutation=False, check_finite=False)
    n_lrs, seeds = len(lrs_grid), cfg.seeds
    n_nets = seeds * n_lrs
    seed_of = torch.tensor([k // n_lrs for k in range(n_nets)])
    lr_of = [lrs_grid[k % n_lrs] for k in range(n_nets)]
    params = [p[seed_of].clone() for p in tasks.params0]
    views = [p.unbind(0) for p in params]
    states = [[{} for _ in params] for _ in range(n_nets)]
    alive = [True] * n_nets
    x_val, y_val = tasks.x_val[seed_of], tasks.y_val[seed_of]
    with torch.no_grad():
        for t in range(1, cfg.steps + 1):
            idx = tasks.batches[t - 1][seed_of]  # (N, batch)
            xb = tasks.x_train[seed_of.unsqueeze(1), idx]
            yb = tasks.y_train[seed_of.unsqueeze(1), idx]
            with torch.enable_grad():
                loss, grads = loss_grads(params, xb, yb)
            step_networks(rule, params, views, grads, loss, states, alive, lr_of, t)
        logits = _val_logits(forward, params, x_val)
    correct = (logits.argmax(dim=2) == y_val).float().mean(dim=1)
    finite = torch.stack([torch.isfinite(p).flatten(1).all(1) for p in params]).all(0).tolist()
    acc = [float(correct[k]) if alive[k] and finite[k] else 0.0 for k in range(n_nets)]
    if not any(alive):
        raise CandidateError("diverged", "training diverged on every seed and learning rate")
    per_lr = {f"{lr:g}": sum(acc[s * n_lrs + i] for s in range(seeds)) / seeds for i, lr in enumerate(lrs_grid)}
    best = max(range(n_lrs), key=lambda i: per_lr[f"{lrs_grid[i]:g}"])
    per_seed = [acc[s * n_lrs + best] for s in range(seeds)]
    mean = sum(per_seed) / seeds
    sem = (sum((a - mean) ** 2 for a in per_seed) / (seeds - 1)) ** 0.5 / seeds ** 0.5 if seeds > 1 else 0.0
    return {"fitness": per_lr[f"{lrs_grid[best]:g}"], "best_lr": lrs_grid[best], "per_lr": per_lr,
            "per_seed": per_seed, "sem": sem, "diverged": sum(1 for a in alive if not a),
            "state_bytes": rule.state_bytes, "state_scalars": rule.state_scalars, "label_noise": tasks.noisy_fraction}


def neighbour_lrs(best_lr: float, grid: tuple = HALF_DECADE) -> tuple:
    """The learning rates around a lower stage's best: one half-decade either side (within 1e-5..1)."""
    return tuple(v for v in (best_lr / math.sqrt(10), best_lr, best_lr * math.sqrt(10)) if 1e-5 <= v <= 1.0)


def variant(cfg: RealStage, **changes) -> RealStage:
    return replace(cfg, **changes)
