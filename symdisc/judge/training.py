"""The training loop that `symdisc bench` runs, in one place for both sides of the sandbox.

The bench trains torch's own optimizers (and the user's own Optimizer classes) in its process and
rules written by a model inside the sandbox worker (``sandbox/worker.py``, op ``train``). Both call
``train_loop`` here, so for one rule, seed and data set the two give the same numbers: the same
initial weights (``torch.manual_seed(seed)`` before the model is built) and the same mini-batch
order (a generator seeded with ``seed``). Imports torch only: the worker may load it.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional

import torch
from torch import nn
from torch.optim import Optimizer

from symdisc.config import SCHEDULES


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
    if kind == "2c2d":  # DeepOBS's fmnist_2c2d / mnist_2c2d network, with its initialisation
        net = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Linear(1024, 10))
        for module in net:
            if isinstance(module, (nn.Conv2d, nn.Linear)):  # truncated normal (2 std), biases 0.05
                nn.init.trunc_normal_(module.weight, std=0.05, a=-0.1, b=0.1)
                nn.init.constant_(module.bias, 0.05)
        return net
    if kind == "mlp100":  # calibration's second ground-truth task (MNIST, heavy noise)
        return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 100), nn.ReLU(), nn.Linear(100, 10))
    raise ValueError(kind)


class RuleOptimizer(Optimizer):
    """A contract-form ``update`` as an Optimizer, with the exported class's bookkeeping exactly
    (``symdisc.export``): per-parameter step counter and rule state, ``p -= update(...)``."""

    def __init__(self, params, update: Callable, lr: float = 1e-3):
        super().__init__(params, dict(lr=lr))
        self.update = update

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    if not state:
                        state["step"] = 0
                        state["rule"] = {}
                    state["step"] += 1
                    p.sub_(self._step_of(p, state, group["lr"]))
        return loss

    def _step_of(self, p, state: dict, lr) -> torch.Tensor:
        return self.update(p.grad, p, state["rule"], lr, state["step"])


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    # Batches of 500 keep the small CNN's activations in cache: 10,000 test images take 1.25 s
    # instead of 2.1 s at 2,000 on two cores; evaluation is a large share of a short bench run.
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += (model(x[i: i + batch]).argmax(1) == y[i: i + batch]).sum().item()
    model.train()
    return correct / max(1, len(x))


def state_bytes(optimizer: Optimizer) -> int:
    """The optimizer's live state in bytes: tensors by their storage, Python numbers as 8 bytes."""

    def size(value) -> int:
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, dict):
            return sum(size(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return sum(size(v) for v in value)
        if isinstance(value, (int, float, bool)):
            return 8
        return 0

    return sum(size(s) for s in optimizer.state.values())


def measured_memory_class(optimizer: Optimizer) -> str:
    """`buffers` if any state tensor has more than one element, else `scalar`."""

    def has_buffer(value) -> bool:
        if isinstance(value, torch.Tensor):
            return value.numel() > 1
        if isinstance(value, dict):
            return any(has_buffer(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return any(has_buffer(v) for v in value)
        return False

    return "buffers" if any(has_buffer(s) for s in optimizer.state.values()) else "scalar"


# Learning-rate schedules the bench offers every optimizer alike, built-in or discovered, so a rule
# that decays its own step in t is also compared against baselines that decay theirs.
WARMUP_FRACTION = 0.05


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """The factor on every parameter group's learning rate at ``step`` (1-based) of ``steps``."""
    if schedule == "constant":
        return 1.0
    if schedule == "warmup-cosine":
        warmup = max(1, int(round(WARMUP_FRACTION * steps)))
        return min(1.0, step / warmup) * 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / max(1, steps)))
    raise ValueError(f"unknown schedule {schedule!r} (one of {', '.join(SCHEDULES)})")


def train_loop(make_optimizer: Callable, x_train, y_train, x_eval, y_eval, model_kind: str, seed: int, steps: int,
               batch: int, eval_every: int, on_step: Optional[Callable] = None, schedule: str = "constant",
               x_val=None, y_val=None, weight_decay: float = 0.0, closure: bool = False) -> dict:
    """Train one model; ``make_optimizer(params)``; ``on_step(step)`` after every step; ``schedule``
    scales every group's lr (one of SCHEDULES); ``weight_decay`` is decoupled (p *= 1 - lr * wd after
    each step), the same for every optimizer; ``closure``: the optimizer re-evaluates the batch's loss
    through a closure (L-BFGS), and the loss recorded is the one at the start of the step. With
    ``x_val``, every evaluation also scores the validation split: ``val_curve`` and ``early_acc`` (the
    eval-set accuracy at the best validation score, the early-stopped checkpoint). Returns plain data
    (final_acc, best_acc, final_loss, state_bytes, param_tensors, param_count, memory_class,
    steps_per_s, diverged, curve, losses, eval_seconds: training seconds before each curve point,
    val_curve, early_acc)."""
    lr_factor(schedule, 1, steps)  # an unknown schedule fails before any training
    torch.manual_seed(seed)
    model = make_model(model_kind)  # same seed, same initial weights for every optimizer
    optimizer = make_optimizer(model.parameters())
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    order = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    losses, curve = [], []
    n = len(x_train)
    perm = torch.randperm(n, generator=order)
    pos, epoch_len = 0, max(1, n // batch)
    diverged = False
    val_curve, eval_seconds = [], []
    train_time = 0.0

    def evaluate(step: int) -> None:
        curve.append((step, step / epoch_len, accuracy(model, x_eval, y_eval)))
        eval_seconds.append(train_time)
        if x_val is not None:
            val_curve.append((step, accuracy(model, x_val, y_val)))

    evaluate(0)  # the curve starts at the untrained model
    for step in range(1, steps + 1):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=order), 0
        idx = perm[pos: pos + batch]
        pos += batch
        t_step = time.perf_counter()
        if schedule != "constant":
            factor = lr_factor(schedule, step, steps)
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * factor
        if closure:
            x_batch, y_batch = x_train[idx], y_train[idx]

            def batch_loss_and_grad():
                optimizer.zero_grad(set_to_none=True)
                batch_loss = loss_fn(model(x_batch), y_batch)
                batch_loss.backward()
                return batch_loss

            loss = optimizer.step(batch_loss_and_grad)
        else:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
        if weight_decay:
            with torch.no_grad():
                for group in optimizer.param_groups:
                    for p in group["params"]:
                        p.mul_(1.0 - group["lr"] * weight_decay)
        train_time += time.perf_counter() - t_step
        value = loss.item()
        losses.append(value)
        if not math.isfinite(value) or value > 1e4:
            diverged = True
            evaluate(step)
            break
        if step % eval_every == 0 or step == steps:
            evaluate(step)
        if on_step:
            on_step(step)
    accs = [c[2] for c in curve[1:]] or [curve[0][2]]
    tail = [v for v in losses[-50:] if math.isfinite(v)]
    early_acc = None
    if val_curve:
        vals = [v for _, v in val_curve[1:]] or [val_curve[0][1]]
        early_acc = accs[vals.index(max(vals))]  # the first evaluation with the best validation score
    return dict(final_acc=accs[-1], best_acc=max(accs), final_loss=sum(tail) / len(tail) if tail else float("nan"),
                state_bytes=state_bytes(optimizer), param_tensors=len(list(model.parameters())),
                param_count=sum(p.numel() for p in model.parameters()),
                memory_class=measured_memory_class(optimizer), steps_per_s=len(losses) / train_time if train_time else 0.0, diverged=diverged, curve=curve,
                losses=losses, eval_seconds=eval_seconds, val_curve=val_curve, early_acc=early_acc)


class CheckedOptimizer(RuleOptimizer):
    """A task's view of a candidate (``make_optimizer`` in a task file): RuleOptimizer around a
    CheckedRule. The rule checks each step's shape, dtype and state; a non-finite step raises
    CandidateError("diverged") here, before it reaches the model. The rule sees detached tensors,
    never the model or the task's data."""

    def _step_of(self, p, state: dict, lr) -> torch.Tensor:
        from symdisc.judge.restricted import CandidateError

        step = self.update(p.grad.detach(), p.detach(), state["rule"], float(lr), state["step"])
        if not bool(torch.isfinite(step).all()):
            raise CandidateError("diverged", f"the step holds NaN or infinite values (step {state['step']})")
        return step
