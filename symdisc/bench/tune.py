"""Tuning every optimizer alike: a log grid of the learning rate that widens until its best point is
inside, or Optuna's TPE with a budget past its start-up phase; weight decay as a second axis.

The searches here only call ``score(lr, wd) -> float`` (a validation score, higher is better); the
bench supplies it (trained on the training split, scored on the validation split, never the test
set, and served from the run database for cells a stopped run already finished).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from symdisc.errors import UsageError

DEFAULT_GRID = "1e-5:1:2"  # 1e-5 to 1, two points a decade (half decades)
LR_FLOOR, LR_CEIL = 1e-9, 10.0 ** 1.5  # widening stops here


@dataclass
class TuneResult:
    lr: float
    weight_decay: float
    scores: list = field(default_factory=list)  # [(lr, wd, score)] in the order they were tried
    widened: list = field(default_factory=list)  # sentences: which edge was widened, to what
    on_edge: bool = False  # the best is still on an edge of what was tried (widening hit its limit)
    method: str = "grid"

    def as_dict(self) -> dict:
        return {"lr": self.lr, "weight_decay": self.weight_decay, "method": self.method, "on_edge": self.on_edge,
                "widened": self.widened, "scores": [list(s) for s in self.scores]}


def parse_grid(spec: str) -> list[float]:
    """``LO:HI:PER_DECADE`` (a log grid, HI included) or a comma-separated list of values."""
    try:
        if ":" in spec:
            parts = [float(x) for x in spec.split(":")]
            lo, hi = parts[0], parts[1]
            per_decade = parts[2] if len(parts) > 2 else 2.0
            if not (0 < lo <= hi) or per_decade <= 0 or len(parts) > 3:
                raise ValueError
            count = int(round(math.log10(hi / lo) * per_decade))
            return [lo * 10 ** (k / per_decade) for k in range(count + 1)]
        values = sorted({float(x) for x in spec.split(",") if x.strip()})
        if not values or values[0] <= 0:
            raise ValueError
        return values
    except ValueError:
        raise UsageError(f"--lr-grid wants LO:HI:PER_DECADE (e.g. {DEFAULT_GRID}) or positive values "
                         f"separated by commas, not {spec!r}") from None


def _edge_ratio(xs: list[float], low: bool) -> float:
    """The grid's own spacing at an edge (half a decade for a one-point grid)."""
    if len(xs) < 2:
        return 10 ** 0.5
    return xs[1] / xs[0] if low else xs[-1] / xs[-2]


def _best(scores: dict) -> float:
    """The learning rate with the highest score; among equal scores, the smallest rate."""
    return max(sorted(scores), key=lambda lr: scores[lr])


def grid_search(score: Callable[[float], float], grid: list[float], max_widen: int = 6,
                floor: float = LR_FLOOR, ceil: float = LR_CEIL) -> tuple[float, dict, list, bool]:
    """Score every point of ``grid``; while the best lies on an edge, add one more point past that
    edge at the grid's spacing (at most ``max_widen`` points, never past ``floor``/``ceil``).
    Returns (best lr, {lr: score}, sentences on the widening, whether the best is still on an edge)."""
    scores = {lr: score(lr) for lr in sorted(grid)}
    notes: list[str] = []
    added = 0
    while True:
        xs = sorted(scores)
        best = _best(scores)
        if len(xs) < 2 or xs[0] < best < xs[-1]:
            return best, scores, notes, False
        low = best == xs[0]
        new = xs[0] / _edge_ratio(xs, True) if low else xs[-1] * _edge_ratio(xs, False)
        if added >= max_widen or not (floor <= new <= ceil):
            notes.append(f"best lr {best:.3g} still on the {'low' if low else 'high'} edge after widening "
                         f"{added} point(s): the limit was reached")
            return best, scores, notes, True
        notes.append(f"best lr {best:.3g} on the {'low' if low else 'high'} edge: widened to {new:.3g}")
        scores[new] = score(new)
        added += 1


def tune(score: Callable[[float, float], float], method: str, grid: list[float], weight_decays: list[float],
         max_widen: int = 6, trials: int = 20, seed: int = 0) -> TuneResult:
    """The same search for every optimizer: a grid over lr (one per weight decay), or TPE."""
    if method == "grid":
        tried: list = []
        best = None  # (score, lr, wd, notes, on_edge)
        for wd in weight_decays:
            lr, scores, notes, on_edge = grid_search(lambda x, wd=wd: score(x, wd), grid, max_widen)
            tried += [(x, wd, s) for x, s in scores.items()]
            if len(weight_decays) > 1:
                notes = [f"wd {wd:g}: {n}" for n in notes]
            if best is None or scores[lr] > best[0]:
                best = (scores[lr], lr, wd, notes, on_edge)
        _, lr, wd, notes, on_edge = best
        return TuneResult(lr, wd, tried, notes, on_edge)
    if method == "tpe":
        return tpe_search(score, grid, weight_decays, trials, seed)
    raise UsageError(f"unknown tuner {method!r} (grid, tpe or none)")


def tpe_search(score: Callable[[float, float], float], grid: list[float], weight_decays: list[float], trials: int,
               seed: int = 0) -> TuneResult:
    """Optuna TPE over log(lr) in the grid's range (and the weight decays as a category), with fewer
    random start-up trials than the budget so that TPE models the rest."""
    import optuna

    from symdisc.search.proposers.tpe import startup_trials

    startup = startup_trials(trials)
    if trials <= startup:
        raise UsageError(f"a TPE budget of {trials} trials never leaves its {startup} random start-up trials; "
                         f"give more than {startup}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    lo, hi = min(grid), max(grid)
    tried: list = []

    def objective(trial):
        lr = trial.suggest_float("lr", lo, hi, log=True)
        wd = trial.suggest_categorical("wd", list(weight_decays)) if len(weight_decays) > 1 else weight_decays[0]
        value = score(lr, wd)
        tried.append((lr, wd, value))
        return value

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup))
    study.optimize(objective, n_trials=trials)
    lr = float(study.best_params["lr"])
    wd = float(study.best_params.get("wd", weight_decays[0]))
    near = [edge for edge, close in (("low", lr < lo * 10 ** 0.25), ("high", lr > hi / 10 ** 0.25)) if close]
    notes = [f"best lr {lr:.3g} within a quarter decade of the {near[0]} end of the TPE range "
             f"[{lo:g}, {hi:g}]: widen --lr-grid"] if near else []
    return TuneResult(lr, wd, tried, notes, bool(near), method="tpe")
