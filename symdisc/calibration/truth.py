"""Ground truth for calibration: each library rule trained on real data, through the bench's path.

The rules run as the exported ``torch.optim.Optimizer`` the bench uses (``rule_optimizer_class``):
trusted code of our own, in contract form. Every split that selects anything (the learning rate)
is carved from the TRAINING set; the test set is only evaluated at the end and reported.

Scaled to a shared 2-core CPU (see TASKS): training subsets, about one epoch for the CNN.
Learning rate: for each rule and seed, the decade grid 1e-4..1e-1 and then the two half-decade
neighbours of the best ("refine"), or the full half-decade grid ("full"); the lr with the best
mean validation accuracy over seeds is the rule's lr; its mean clean TEST accuracy is the truth.

Results are appended to a JSON-lines file one training at a time, so a stopped calibration
resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

HALF_DECADE = tuple(10 ** (-4 + 0.5 * i) for i in range(7))  # 1e-4 .. 1e-1
DECADE = (1e-4, 1e-3, 1e-2, 1e-1)


@dataclass(frozen=True)
class TruthTask:
    name: str
    dataset: str
    noise: float
    model: str  # a symdisc.bench.train.make_model kind
    n_fit: int
    n_val: int
    steps: int
    batch: int
    lr_search: str  # refine | full
    seeds: tuple = (0, 1)


TASKS = {
    # the bench's default task (noisy Fashion-MNIST, the small CNN), 12k training images, ~1 epoch
    "fmnist-cnn": TruthTask("fmnist-cnn", "fashion-mnist", 0.2, "cnn28", 12_000, 2_000, 200, 64, "refine"),
    # a different network and noise rate: MNIST with 40% of labels flipped, a 784-100-10 MLP, 3 epochs of 10k
    "mnist-mlp": TruthTask("mnist-mlp", "mnist", 0.4, "mlp100", 10_000, 2_000, 470, 64, "full"),
}


def split_indices(n_train_total: int, n_fit: int, n_val: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit and validation indices, disjoint, both into the TRAINING set (never the test set)."""
    perm = torch.randperm(n_train_total, generator=torch.Generator().manual_seed(40_000 + seed))
    return perm[:n_fit], perm[n_fit: n_fit + n_val]


_DATA: dict = {}


def task_data(task: TruthTask, seed: int):
    from symdisc import data as datasets

    if task.dataset not in _DATA:
        _DATA[task.dataset] = datasets.load(task.dataset)
    ds = _DATA[task.dataset]
    fit, val = split_indices(len(ds.x_train), task.n_fit, task.n_val, seed)
    y_fit = datasets.flip_labels_seeded(ds.y_train[fit], task.noise, ds.classes, seed=30_000 + seed)
    return ds.x_train[fit], y_fit, ds.x_train[val], ds.y_train[val], ds.x_test, ds.y_test


@torch.no_grad()
def _accuracy(model, x, y, batch=2000) -> float:
    model.eval()
    correct = sum((model(x[i: i + batch]).argmax(1) == y[i: i + batch]).sum().item() for i in range(0, len(x), batch))
    model.train()
    return correct / len(x)


def train_one(make_optimizer: Callable, lr: float, task: TruthTask, seed: int) -> dict:
    """Train; return validation accuracy (training data) and test accuracy (report only)."""
    from symdisc.bench.train import make_model

    x_fit, y_fit, x_val, y_val, x_test, y_test = task_data(task, seed)
    torch.manual_seed(seed)
    model = make_model(task.model)
    opt = make_optimizer(model.parameters(), lr)
    order = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    n, pos, perm = len(x_fit), 0, torch.randperm(len(x_fit), generator=order)
    diverged = False
    t0 = time.perf_counter()
    for _ in range(task.steps):
        if pos + task.batch > n:
            perm, pos = torch.randperm(n, generator=order), 0
        idx = perm[pos: pos + task.batch]
        pos += task.batch
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x_fit[idx]), y_fit[idx])
        if not math.isfinite(loss.item()) or loss.item() > 1e4:
            diverged = True
            break
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - t0
    if diverged or not all(torch.isfinite(p).all() for p in model.parameters()):
        return {"val": 0.0, "test": 0.1, "diverged": True, "s": train_s}
    return {"val": _accuracy(model, x_val, y_val), "test": _accuracy(model, x_test, y_test), "diverged": False,
            "s": train_s}


def _optimizer_factory(rule: dict) -> Callable:
    from symdisc.bench.optimizers import rule_optimizer_class
    from symdisc.judge.gate import check_code

    gated = check_code(rule["code"], rule["memory"])
    assert gated.verdict.ok, (rule["name"], gated.verdict.one_line())
    cls = rule_optimizer_class(gated.normalized, rule["name"], rule["memory"])
    return lambda params, lr: cls(params, lr=lr)


class Journal:
    """Append-only JSON lines: one finished training per line; what is there is never redone."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: dict = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a line cut by a kill
                self.rows[row["key"]] = row

    def get(self, key: str) -> Optional[dict]:
        return self.rows.get(key)

    def put(self, key: str, row: dict) -> dict:
        row = dict(row, key=key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        self.rows[key] = row
        return row


def _lr_key(lr: float) -> str:
    return f"{lr:.3g}"


def rule_truth(rule: dict, task: TruthTask, journal: Journal, say=lambda m: None) -> dict:
    """Tune the lr on validation (training data), report test accuracy at that lr, per seed."""
    factory = None

    def run(lr: float, seed: int) -> dict:
        nonlocal factory
        key = f"truth|{task.name}|{rule['name']}|{seed}|{_lr_key(lr)}"
        row = journal.get(key)
        if row is None:
            factory = factory or _optimizer_factory(rule)
            row = journal.put(key, dict(train_one(factory, lr, task, seed), task=task.name, rule=rule["name"],
                                        seed=seed, lr=lr))
            say(f"{task.name} {rule['name']} seed {seed} lr {lr:.3g}: val {row['val']:.4f} test {row['test']:.4f} "
                f"({row['s']:.1f} s)")
        return row

    tuned_seed = task.seeds[0]
    if task.lr_search == "full":
        grid = list(HALF_DECADE)
        for seed in task.seeds:
            for lr in grid:
                run(lr, seed)
        mean_val = {lr: sum(run(lr, s)["val"] for s in task.seeds) / len(task.seeds) for lr in grid}
        best_lr = max(grid, key=lambda lr: mean_val[lr])
    else:  # refine on the first seed: decades, then the half-decade neighbours of the best
        vals = {lr: run(lr, tuned_seed)["val"] for lr in DECADE}
        best = max(vals, key=vals.get)
        for lr in (best / math.sqrt(10), best * math.sqrt(10)):
            if 1e-4 / 1.5 < lr < 1e-1 * 1.5:
                vals[lr] = run(lr, tuned_seed)["val"]
        best_lr = max(vals, key=vals.get)
    per_seed = [run(best_lr, s) for s in task.seeds]
    return {"rule": rule["name"], "task": task.name, "lr": best_lr, "test": sum(r["test"] for r in per_seed) / len(per_seed),
            "val": sum(r["val"] for r in per_seed) / len(per_seed), "per_seed_test": [r["test"] for r in per_seed],
            "task_config": asdict(task)}
