"""The bench's statistics: paired comparisons over shared seeds, Holm's correction, time to target
and the performance profile. Pure functions of numbers; scipy (the ``bench`` extra) is imported
where a distribution is needed.

Pairing: for a seed, every optimizer starts from the same weights and sees the same noisy labels
and the same mini-batch order, so the difference of two optimizers on one seed removes what that
seed shares; the test is on those differences (a paired t-test), not on two independent samples.
"""

from __future__ import annotations

import math
import statistics
from typing import Optional, Sequence

CONFIDENCE = 0.95
WILCOXON_MIN_N = 5  # below 5 pairs the exact signed-rank test cannot reach p < 0.0625 (two-sided)


def paired(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """``a - b`` over matched seeds: the mean difference, its ``confidence`` t-interval, the paired
    t-test's two-sided p-value and, from ``WILCOXON_MIN_N`` pairs on, the Wilcoxon signed-rank p.
    Values that cannot be computed (one pair; every difference equal) are None."""
    from scipy import stats

    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    diffs = [x - y for x, y in zip(a, b)]
    n = len(diffs)
    out = {"n": n, "mean_diff": statistics.mean(diffs) if n else None, "sd_diff": None, "ci_low": None,
           "ci_high": None, "confidence": confidence, "t": None, "p_t": None, "p_wilcoxon": None}
    if n < 2:
        return out
    sd = statistics.stdev(diffs)
    out["sd_diff"] = sd
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    out["ci_low"], out["ci_high"] = out["mean_diff"] - half, out["mean_diff"] + half
    if sd > 0:
        result = stats.ttest_rel(a, b)
        out["t"], out["p_t"] = float(result.statistic), float(result.pvalue)
    if n >= WILCOXON_MIN_N and any(d != 0 for d in diffs):
        out["p_wilcoxon"] = float(stats.wilcoxon(a, b).pvalue)
    return out


def holm(pvalues: Sequence[Optional[float]]) -> list[Optional[float]]:
    """Holm's step-down adjustment of a family of p-values (None stays None and is not counted):
    sort ascending, multiply the i-th smallest (0-based) by m - i, carry the running maximum, cap at 1."""
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(present)
    adjusted: list[Optional[float]] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def time_to_target(points: Sequence[tuple], target: float) -> Optional[tuple]:
    """The first ``(step, seconds, score)`` whose score reaches ``target``; None if none does."""
    for step, seconds, score in points:
        if score is not None and score >= target:
            return step, seconds, score
    return None


def median_or_none(values: Sequence[Optional[float]]) -> Optional[float]:
    """The median over seeds of a time to target, counting a seed that never reached it as
    infinite; None when half or more never reached it (the median is then infinite)."""
    if not values:
        return None
    ordered = sorted(math.inf if v is None else v for v in values)
    med = statistics.median(ordered)
    return None if math.isinf(med) else med


def performance_profile(times: dict, taus: Sequence[float]) -> dict:
    """AlgoPerf-style profile. ``times``: task -> optimizer -> time to target (None: not reached).
    For each optimizer, the fraction of tasks on which its time is within a factor tau of the best
    optimizer's on that task, for each tau. A task no optimizer reached counts against everyone."""
    names = list(dict.fromkeys(n for per in times.values() for n in per))
    ratios: dict[str, list[float]] = {n: [] for n in names}
    for per in times.values():
        reached = [t for t in per.values() if t is not None]
        best = min(reached) if reached else None
        for n in names:
            t = per.get(n)
            if t is None or best is None:
                ratios[n].append(math.inf)
            else:
                ratios[n].append(t / best if best > 0 else (1.0 if t == 0 else math.inf))
    tasks = max(1, len(times))
    return {n: {"taus": list(taus), "fraction": [sum(r <= tau for r in ratios[n]) / tasks for tau in taus],
                "ratios": [None if math.isinf(r) else r for r in ratios[n]]} for n in names}


def profile_taus(top: float = 4.0, points: int = 31) -> list[float]:
    """tau from 1 to ``top`` on a log scale (AlgoPerf integrates its profile up to a fixed tau)."""
    return [top ** (i / (points - 1)) for i in range(points)]


def profile_area(fraction: Sequence[float], taus: Sequence[float]) -> float:
    """The area under a profile over log(tau), normalised to [0, 1] (1: fastest on every task)."""
    if len(taus) < 2:
        return fraction[0] if fraction else 0.0
    logs = [math.log(t) for t in taus]
    area = sum((logs[i + 1] - logs[i]) * (fraction[i] + fraction[i + 1]) / 2 for i in range(len(taus) - 1))
    return area / (logs[-1] - logs[0])
