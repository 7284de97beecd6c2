"""Stage 0: cheap probes that every candidate must pass before it trains anything.

1. ``lr == 0`` gives a zero step (the benchmark tunes lr, so a rule that ignores it is useless).
2. It descends a badly conditioned quadratic and a batch of Rosenbrock valleys from fixed starts,
   with the best of a small learning-rate grid (so plain SGD and sign-SGD both pass).
3. It returns finite steps for gradients scaled by 1e-8 and 1e8.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import torch

from symdisc.judge.harness import CheckedRule
from symdisc.judge.restricted import CandidateError

LR_GRID = (1e-2, 1e-3, 1e-1, 1e-4, 1.0)  # most rules pass at the first or second try
DESCENT_RATIO = 0.5  # the final loss must be at most half the starting loss


@dataclass
class ProbeReport:
    lr_quadratic: float = 0.0
    lr_rosenbrock: float = 0.0
    quadratic_ratio: float = 1.0
    rosenbrock_ratio: float = 1.0
    calls: int = 0
    state_bytes: int = 0
    state_scalars: int = 0
    notes: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _quadratic():
    curvature = torch.linspace(1.0, 10.0, 16)
    start = torch.linspace(-1.0, 1.0, 16) + 0.5

    def loss_and_grad(x):
        return float(0.5 * (curvature * x * x).sum()), curvature * x

    return start, loss_and_grad, 40


def _rosenbrock():
    g = torch.Generator().manual_seed(0)
    start = torch.stack([torch.full((8,), -1.2), torch.full((8,), 1.0)], dim=1)
    start = start + 0.1 * torch.randn(8, 2, generator=g)

    def loss_and_grad(x):
        a, b = x[:, 0], x[:, 1]
        loss = ((1 - a) ** 2 + 100 * (b - a * a) ** 2).sum()
        ga = -2 * (1 - a) - 400 * a * (b - a * a)
        gb = 200 * (b - a * a)
        return float(loss), torch.stack([ga, gb], dim=1)

    return start, loss_and_grad, 80


def _descend(rule: CheckedRule, problem, name: str) -> tuple[float, float]:
    start, loss_and_grad, steps = problem
    f0 = loss_and_grad(start)[0]
    best = (float("inf"), None)
    for lr in LR_GRID:
        x, state = start.clone(), {}
        ok = True
        for t in range(1, steps + 1):
            f, g = loss_and_grad(x)
            if not f < 1e12:
                ok = False
                break
            x = x - rule(g, x, state, lr, t)
        if ok:
            ratio = loss_and_grad(x)[0] / f0
            if ratio == ratio and ratio < best[0]:
                best = (ratio, lr)
            if ratio <= DESCENT_RATIO:
                break
    if best[1] is None or best[0] > DESCENT_RATIO:
        tried = ", ".join(f"{lr:g}" for lr in LR_GRID)
        raise CandidateError("no_descent", f"the {name} probe did not halve its loss with any lr in "
                             f"({tried}); best final/initial = {best[0]:.3g}")
    return best


def _lr_zero(rule: CheckedRule) -> None:
    start, loss_and_grad, _ = _quadratic()
    x, state = start.clone(), {}
    for t in range(1, 6):
        _, g = loss_and_grad(x)
        trial_state = copy.deepcopy(state)
        step = rule(g, x, trial_state, 0.0, t)
        if bool((step != 0).any()):
            raise CandidateError("ignores_lr", "with lr = 0 the step is not zero: the rule ignores lr")
        x = x - rule(g, x, state, 1e-2, t)


def _scales(rule: CheckedRule, lr: float) -> None:
    start, loss_and_grad, _ = _quadratic()
    for scale in (1e-8, 1e8):
        state = {}
        _, g = loss_and_grad(start)
        for t in range(1, 11):
            try:
                rule(g * scale, start, state, lr, t)
            except CandidateError as err:
                if err.reason == "bad_output":
                    raise CandidateError("unstable", f"with gradients scaled by {scale:g}: {err.message}") from None
                raise


def run_probes(rule: CheckedRule) -> ProbeReport:
    """Raise CandidateError on the first failed probe; return what was measured otherwise."""
    report = ProbeReport()
    _lr_zero(rule)
    report.quadratic_ratio, report.lr_quadratic = _descend(rule, _quadratic(), "quadratic")
    report.rosenbrock_ratio, report.lr_rosenbrock = _descend(rule, _rosenbrock(), "Rosenbrock")
    _scales(rule, report.lr_quadratic)
    report.calls = rule.calls
    report.state_bytes = rule.state_bytes
    report.state_scalars = rule.state_scalars
    return report
