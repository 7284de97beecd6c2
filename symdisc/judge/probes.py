"""Stage 0: cheap probes that every candidate must pass before it trains anything.

1. ``lr == 0`` gives a zero step (the benchmark tunes lr, so a rule that ignores it is useless).
2. The step follows the gradient: opposite gradients do not give the same step.
3. It descends a badly conditioned quadratic and a batch of Rosenbrock valleys from fixed starts,
   with the best of a small learning-rate grid (so plain SGD and sign-SGD both pass). Every optimum
   lies away from zero, on both sides of it, with the start between zero and the optimum, and half
   the Rosenbrock valleys are mirrored: shrinking the parameter, or stepping in one fixed
   direction, climbs instead of descending.
4. It returns finite steps for gradients scaled by 1e-8 and 1e8.
5. Cost: one step on matrices of 64 x 64 to 1,024 x 1,024 and vectors of as many elements may take
   at most TIME_BUDGET times the CPU time of a reference on that shape (the forward and backward
   pass of a linear layer of that shape on 1,024 rows, measured in this process: judge/cost.py),
   and hold at most MEMORY_BUDGET times the parameter's bytes; past either, ``over_budget``, with the
   measured ratio. Matrix-shaped rules (Newton-Schulz) pass; n^2 products and long chains of
   products do not. It runs before any other probe on tensors of more than a few dozen elements,
   and in the worker under its limits.
6. Sparse gradients: with 60% and 90% of the entries exactly zero (as ReLU layers and embeddings
   give) the steps stay finite and within SPARSE_BLOWUP of the steps on the same gradients without
   the zeros; a rule that divides by a statistic the zeros make zero fails with ``sparse_grad``. So
   does one whose step is not finite on an all-zero gradient (a layer whose units are all dead, a
   masked branch): ``grad / grad.norm()`` without a guard in the denominator.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import torch

from symdisc.judge.cost import PeakMemory, cpu_seconds, reference_seconds
from symdisc.judge.harness import CheckedRule
from symdisc.judge.restricted import CandidateError

LR_GRID = (1e-2, 1e-3, 1e-1, 1e-4, 1.0)  # most rules pass at the first or second try
DESCENT_RATIO = 0.5  # the final loss must be at most half the starting loss
PROBE_REASONS = ("no_descent", "unstable", "ignores_lr", "ignores_grad", "sparse_grad", "over_budget")
# The cost budget (benchmarks/matrix_cost.py measures where rules sit, one thread: SGD and Adam under
# 0.1x the reference, five Newton-Schulz iterations on a 1,024 x 1,024 gradient about 5x; memory:
# Adam and Newton-Schulz about 7x the parameter before the harness's two copies, an outer product of
# the flattened gradient n times).
COST_SHAPES = ((64, 64), (4096,), (256, 256), (65536,), (1024, 1024), (1048576,))
TIME_BUDGET = 20.0  # CPU time of one step, in references (forward + backward of that layer)
MEMORY_BUDGET = 16.0  # peak bytes the step creates, in the parameter's bytes (harness copies included)
COST_MIN_S = 0.01  # below this a step's time is interpreter overhead, not cost
SPARSE_SHAPES = ((1024,), (32, 32))
SPARSE_ZEROS = (0.6, 0.9)  # fractions of exact zeros
SPARSE_BLOWUP = 100.0  # the largest sparse step over the largest dense one that counts as exploding


@dataclass
class ProbeReport:
    lr_quadratic: float = 0.0
    lr_rosenbrock: float = 0.0
    quadratic_ratio: float = 1.0
    rosenbrock_ratio: float = 1.0
    calls: int = 0
    state_bytes: int = 0
    state_scalars: int = 0
    buffers: int = 0  # the most parameter-shaped tensors kept in state at once
    cost_ratio: float = 0.0  # the largest CPU time of one step over the reference (judge/cost.py), among
    # the steps that took at least COST_MIN_S
    memory_ratio: float = 0.0  # the largest peak memory of one step over the parameter's bytes
    notes: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _quadratic():
    curvature = torch.linspace(1.0, 10.0, 16)
    side = torch.tensor([1.0, -1.0]).repeat(8)  # optima on both sides of zero
    optimum = side * torch.linspace(1.0, 2.0, 16)
    start = side * torch.linspace(0.2, 0.6, 16)  # between zero and the optimum

    def loss_and_grad(x):
        d = x - optimum
        return float(0.5 * (curvature * d * d).sum()), curvature * d

    return start, loss_and_grad, 40


def _rosenbrock():
    g = torch.Generator().manual_seed(0)
    # The classic valley (-1.2, 1) -> (1, 1), shifted so that x = (a, b) + 2: the optimum sits at
    # (3, 3) and zero is far uphill. Rows 4..7 are mirrored (x -> -x, so their gradient's sign flips).
    shift, mirror = 2.0, torch.tensor([1.0] * 4 + [-1.0] * 4).reshape(8, 1)
    start = torch.stack([torch.full((8,), -1.2), torch.full((8,), 1.0)], dim=1)
    start = (start + 0.1 * torch.randn(8, 2, generator=g) + shift) * mirror

    def loss_and_grad(x):
        z = x * mirror - shift
        a, b = z[:, 0], z[:, 1]
        loss = ((1 - a) ** 2 + 100 * (b - a * a) ** 2).sum()
        ga = -2 * (1 - a) - 400 * a * (b - a * a)
        gb = 200 * (b - a * a)
        return float(loss), torch.stack([ga, gb], dim=1) * mirror

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


def _follows_grad(rule: CheckedRule) -> None:
    """Opposite gradients must not give the same step (a rule that never reads grad does)."""
    start, loss_and_grad, _ = _quadratic()
    _, g = loss_and_grad(start)
    state: dict = {}
    for t in range(1, 4):
        plus = rule(g, start, copy.deepcopy(state), 1e-2, t)
        minus = rule(-g, start, copy.deepcopy(state), 1e-2, t)
        if not torch.equal(plus, minus):
            return
        rule(g, start, state, 1e-2, t)
    raise CandidateError("ignores_grad", "the step is the same for a gradient and its negative: the rule "
                         "does not follow the gradient (it must read grad)")


def _shape_text(shape: tuple) -> str:
    return " x ".join(f"{d:,}" for d in shape) + (" (a vector)" if len(shape) == 1 else "")


def _over_budget(what: str, ratio: float, budget: float, shape: tuple) -> CandidateError:
    return CandidateError("over_budget", f"{what} {ratio:,.0f}x {'the reference' if what == 'step cost' else 'the parameter'}"
                          f" (budget {budget:g}x) on a {_shape_text(shape)} parameter")


def cost(rule: CheckedRule, shapes=COST_SHAPES) -> tuple[float, float]:
    """One step per shape, smallest first: refuse (``over_budget``) a step that holds more than
    MEMORY_BUDGET times the parameter's bytes, or whose CPU time is more than TIME_BUDGET times the
    reference on that shape (judge/cost.py). Returns the largest time ratio among the steps long
    enough to judge (0.0 when none was) and the largest memory ratio.

    Memory is counted on the first call (the harness's copies of grad and param included); time is
    judged only when a step takes at least COST_MIN_S (below that, interpreter overhead dominates),
    and a step over budget is measured twice more before it is blamed (noise on a shared machine only
    adds time)."""
    g = torch.Generator().manual_seed(4)
    worst_time = worst_memory = 0.0
    for shape in shapes:
        grad, param = torch.randn(shape, generator=g), torch.randn(shape, generator=g)

        def step():
            rule(grad, param, {}, 1e-3, 1)

        try:
            with PeakMemory() as memory:
                seconds = cpu_seconds(step)
        except CandidateError as err:
            if err.reason != "memory":
                raise
            raise CandidateError("over_budget", f"one step on a {_shape_text(shape)} parameter ran out of memory "
                                 f"({err.message[:80]}); the budget is {MEMORY_BUDGET:g}x the parameter's memory") from None
        memory_ratio = memory.peak / (param.numel() * param.element_size())
        worst_memory = max(worst_memory, memory_ratio)
        if memory_ratio > MEMORY_BUDGET:
            raise _over_budget("one step holds", memory_ratio, MEMORY_BUDGET, shape)
        reference = reference_seconds(shape)
        for _ in range(2):  # the first call also pays for first touches and the memory count
            if seconds < COST_MIN_S or seconds <= TIME_BUDGET * reference:
                break
            seconds = min(seconds, cpu_seconds(step))
        if seconds >= COST_MIN_S:
            if seconds > TIME_BUDGET * reference:
                raise _over_budget("step cost", seconds / reference, TIME_BUDGET, shape)
            worst_time = max(worst_time, seconds / reference)
    return worst_time, worst_memory


def _sparse(rule: CheckedRule, lr: float) -> None:
    """Gradients with many exact zeros (ReLU layers, embeddings): the steps must stay finite and of
    the size the rule takes on the same gradient without the zeros."""
    g = torch.Generator().manual_seed(5)
    for shape in SPARSE_SHAPES:
        for zeros in SPARSE_ZEROS:
            dense_state, sparse_state = {}, {}
            dense_max = sparse_max = 0.0
            for t in range(1, 4):
                grad, param = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
                mask = torch.rand(shape, generator=g) >= zeros
                dense_max = max(dense_max, float(rule(grad, param, dense_state, lr, t).abs().max()))
                try:
                    step = rule(grad * mask, param, sparse_state, lr, t)
                except CandidateError as err:
                    if err.reason != "bad_output":
                        raise
                    raise CandidateError("sparse_grad", f"with {zeros:.0%} of the gradient's entries exactly zero "
                                         f"(a {_shape_text(shape)} parameter): {err.message}") from None
                sparse_max = max(sparse_max, float(step.abs().max()))
            if sparse_max > SPARSE_BLOWUP * max(dense_max, 1e-30):
                raise CandidateError("sparse_grad", f"with {zeros:.0%} of the gradient's entries exactly zero (a "
                                     f"{_shape_text(shape)} parameter) the step is {sparse_max / max(dense_max, 1e-30):.3g}x "
                                     "larger than on the same gradient without zeros: the rule divides by a statistic "
                                     "that the zeros drive to zero")


def _all_zero(rule: CheckedRule, lr: float) -> None:
    """An all-zero gradient, after a few ordinary steps (state included), must give a finite step:
    the limit of the sparse probe, failed the same way (``sparse_grad``), whether the step is not
    finite or the rule raises on it (a Python float divided by ``grad.sum().item()``)."""
    g = torch.Generator().manual_seed(6)
    for shape in SPARSE_SHAPES:
        state: dict = {}
        for t in range(1, 4):
            rule(torch.randn(shape, generator=g), torch.randn(shape, generator=g), state, lr, t)
        try:
            rule(torch.zeros(shape), torch.randn(shape, generator=g), state, lr, 4)
        except CandidateError as err:
            if err.reason not in ("bad_output", "runtime"):
                raise
            raise CandidateError("sparse_grad", f"with an all-zero gradient (a {_shape_text(shape)} parameter): "
                                 f"{err.message}; guard the denominator (+ eps)") from None


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
    _follows_grad(rule)
    report.quadratic_ratio, report.lr_quadratic = _descend(rule, _quadratic(), "quadratic")
    report.rosenbrock_ratio, report.lr_rosenbrock = _descend(rule, _rosenbrock(), "Rosenbrock")
    _scales(rule, report.lr_quadratic)
    report.cost_ratio, report.memory_ratio = cost(rule)  # before any probe on larger tensors
    _sparse(rule, report.lr_quadratic)
    _all_zero(rule, report.lr_quadratic)
    report.calls = rule.calls
    report.state_bytes = rule.state_bytes
    report.state_scalars = rule.state_scalars
    report.buffers = rule.buffers
    return report
