"""Fitted constants (after LLM-SR): a program's numbers and a learning-rate multiplier, fitted on the proxy.

Whoever wrote a program typed its constants; here they are fitted. Up to ``dims - 1`` constants of
``update`` (``mutations.constant_sites``) and a multiplier on the returned step are searched with
Optuna (CMA-ES when ``cmaes`` is installed, else TPE) for ``trials`` proxy evaluations, starting
from the program as written. A constant in (0, 1) (a decay, a mixing weight) moves on the logit
scale, so it stays in (0, 1); any other moves by a factor of 10^[-1, 1]; the multiplier by
10^[-0.5, 0.5], the half-decade between two of the proxy's learning rates. Every trial is scored on
the proxy's fixed task seeds, the same for every program, so fitted scores compare. The result is a
plain program: a user exports the code that was scored.
"""

from __future__ import annotations

import ast
import math
import time
from typing import Callable, Optional

from symdisc.search.deadcode import update_def
from symdisc.search.mutations import constant_sites, step_scale_constants

LR_RANGE = 0.5  # log10 of the multiplier's range
SCALE_RANGE = 1.0  # log10 range of a constant outside (0, 1)
LOGIT_RANGE = 2.0  # logit range of a constant inside (0, 1)
MIN_GAIN = 1e-4  # a fit that gains less on the proxy is not a new program


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _round(x: float) -> float:
    return float(f"{x:.4g}")


def _sites(fn) -> list:
    """The constants a fit changes: not those that only scale the whole step (the multiplier does)."""
    scale = {id(n) for n in step_scale_constants(fn)}
    return [n for n in constant_sites(fn) if id(n) not in scale]


def fittable(code: str, dims: int = 8) -> list[float]:
    """The constants of ``code`` a fit would change (at most ``dims - 1``), in source order."""
    fn = update_def(ast.parse(code))
    if fn is None:
        return []
    return [float(n.value) for n in _sites(fn)][: max(0, dims - 1)]


def with_values(code: str, values: list[float], lr_scale: float = 1.0) -> str:
    """``code`` with its first constants replaced by ``values`` and the step scaled by ``lr_scale``."""
    tree = ast.parse(code)
    fn = update_def(tree)
    for node, value in zip(_sites(fn), values):
        node.value = _round(value)
    if abs(math.log10(lr_scale)) > 0.004:  # about 1%: below that the proxy cannot tell
        for node in ast.walk(fn):
            if isinstance(node, ast.Return) and node.value is not None:
                node.value = ast.BinOp(ast.Constant(_round(lr_scale)), ast.Mult(), node.value)
    tree.body = [s for s in tree.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _sampler(seed: int, dims: int, prefer: str = "cmaes"):
    import optuna

    if prefer == "cmaes" and dims > 1:
        try:
            import cmaes  # noqa: F401 (what Optuna's CMA-ES sampler needs)

            # the search space is centred on the program as written (every x = 0), where CMA-ES starts
            return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=0, warn_independent_sampling=False), "cmaes"
        except ImportError:
            pass
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(4, dims + 1)), "tpe"


def fit_constants(code: str, score: Callable[[str], Optional[float]], baseline: Optional[float] = None,
                  trials: int = 12, dims: int = 8, seed: int = 0, prefer: str = "cmaes") -> dict:
    """Fit ``code``'s constants and a step multiplier to maximise ``score(code)`` (the proxy fitness,
    None for a program that fails). Returns the best code found, its score, the baseline, the values
    and what the fit cost; ``improved`` says whether it beats the baseline."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    constants = fittable(code, dims)
    n = len(constants) + 1  # and the multiplier
    t0 = time.perf_counter()
    if baseline is None:
        baseline = score(code)
    sampler, used = _sampler(seed, n, prefer)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    space = {f"x{i}": optuna.distributions.FloatDistribution(-1.0, 1.0) for i in range(n)}
    # the program as written is trial 0, already scored: it costs nothing and fixes the search space
    study.add_trial(optuna.trial.create_trial(params={k: 0.0 for k in space}, distributions=space,
                                              value=baseline if baseline is not None else 0.0))
    best = {"code": code, "fitness": baseline, "values": constants, "lr_scale": 1.0}
    for _ in range(trials):
        trial = study.ask()
        xs = [trial.suggest_float(f"x{i}", -1.0, 1.0) for i in range(n)]
        values = [_sigmoid(_logit(c) + LOGIT_RANGE * x) if 0 < c < 1 else c * 10 ** (SCALE_RANGE * x)
                  for c, x in zip(constants, xs)]
        lr_scale = 10 ** (LR_RANGE * xs[-1])
        candidate = with_values(code, values, lr_scale)
        got = score(candidate)
        study.tell(trial, got if got is not None else 0.0)
        if got is not None and (best["fitness"] is None or got > best["fitness"]):
            best = {"code": candidate, "fitness": got, "values": [_round(v) for v in values],
                    "lr_scale": _round(lr_scale)}
    improved = best["fitness"] is not None and (baseline is None or best["fitness"] > baseline + MIN_GAIN)
    return dict(best, baseline=baseline, improved=improved, trials=trials, sampler=used,
                original=constants, ms=round((time.perf_counter() - t0) * 1e3, 1))
