"""Proxy versus held-out: does the proxy rank candidates the way real data does?

A run whose proxy best is not its held-out best has meta-overfit its proxy (as the Lion authors
warned); ``symdisc runs show`` flags it and reports the rank correlation.
"""

from __future__ import annotations

from typing import Optional


def ranks(values: list[float]) -> list[float]:
    """Average ranks (ties share the mean of their positions), 1 = smallest."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return result


def spearman(xs: list[float], ys: list[float]) -> Optional[float]:
    if len(xs) < 3:
        return None
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / (vx * vy) ** 0.5 if vx > 0 and vy > 0 else None


def funnel_report(rows: list[dict]) -> dict:
    """From a run's evaluated candidates: how many have both scores, their Spearman correlation,
    and whether the proxy's best is also the held-out best."""
    both = [r for r in rows if r.get("heldout") is not None and r.get("fitness") is not None]
    evaluated = [r for r in rows if r.get("fitness") is not None and r.get("status") == "evaluated"]
    proxy_best = max(evaluated, key=lambda r: r["fitness"], default=None)
    heldout_best = max(both, key=lambda r: r["heldout"], default=None)
    flagged = bool(proxy_best and heldout_best and proxy_best["id"] != heldout_best["id"])
    return {
        "with_heldout": len(both),
        "spearman": spearman([r["fitness"] for r in both], [r["heldout"] for r in both]),
        "proxy_best_id": proxy_best["id"] if proxy_best else None,
        "heldout_best_id": heldout_best["id"] if heldout_best else None,
        "proxy_best_is_heldout_best": not flagged if heldout_best else None,
    }
