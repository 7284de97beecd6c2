"""`symdisc compare`: search strategies side by side under the same evaluation budget.

Each strategy runs R independent repeats (seeds 0..R-1) with the same number of sandbox
evaluations, the same proxy tasks and seeds, and the same memory class. Best-so-far proxy fitness
is read back from the run database after 10, 25, 50 and 100% of the budget; wall time is reported
beside it because a model's proposals cost far more than a genome's.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Callable, Optional

from symdisc.config import EvolveConfig, ProxyConfig
from symdisc.search.loop import Evolution
from symdisc.store import Store

CHECKPOINTS = (0.10, 0.25, 0.50, 1.00)


def best_so_far(rows: list[dict]) -> list[float]:
    """Best proxy fitness after each sandbox evaluation of proposed candidates (seeds excluded)."""
    curve, best = [], 0.0
    for row in rows:
        if row["origin"] == "seed" or row.get("eval_ms") is None:
            continue
        if row.get("fitness") is not None and row["status"] in ("evaluated", "duplicate"):
            best = max(best, row["fitness"])
        curve.append(best)
    return curve


def at_fraction(curve: list[float], budget: int, fraction: float) -> Optional[float]:
    i = max(1, int(round(budget * fraction)))
    if not curve:
        return None
    return curve[min(i, len(curve)) - 1]


def run_compare(store: Store, proposers: list[str], evaluations: int, repeats: int, memory: str,
                make_proposer: Callable[[str], object], gate, sandbox, proxy: Optional[ProxyConfig] = None,
                funnel: bool = True, on_event=None, say=None, parallel: int = 1) -> dict:
    say = say or (lambda message: None)
    config_record = {"proposers": proposers, "evaluations": evaluations, "repeats": repeats, "memory": memory,
                     "proxy": (proxy or ProxyConfig()).__dict__, "funnel": funnel}
    compare_id = store.create_run("compare", config_record)
    status = "finished"
    try:
        for name in proposers:
            for repeat in range(repeats):
                say(f"{name}, repeat {repeat + 1}/{repeats}")
                config = EvolveConfig(proposer=name, memory=memory, seed=repeat, evaluations=evaluations,
                                      candidates=evaluations * 5,  # a cap for proposers that are mostly rejected
                                      funnel=funnel, proxy=proxy or ProxyConfig(),
                                      parallel=parallel if name == "llm" else 1)
                evo = Evolution.start(store, config, make_proposer(name), gate, sandbox, on_event, parent_run=compare_id)
                evo.run()
    except KeyboardInterrupt:
        status = "interrupted"
    report = compare_report(store, compare_id)
    store.update_run(compare_id, status=status, summary_json={k: v for k, v in report.items() if k != "results"})
    report["status"] = status
    return report


def child_results(store: Store, compare_id: str) -> dict:
    """Per strategy, one entry per finished repeat, read back from the run database."""
    results: dict = {}
    compare = store.get_run(compare_id)
    for name in compare["config"]["proposers"]:
        results[name] = []
    rows = store.db.execute("SELECT id FROM runs WHERE parent_run = ? ORDER BY created_at, rowid", (compare_id,))
    for (run_id,) in rows.fetchall():
        run = store.get_run(run_id)
        cands = store.candidates(run_id)
        proposed = [c for c in cands if c["origin"] != "seed"]
        heldouts = [c["heldout"] for c in proposed if c.get("heldout") is not None]
        results.setdefault(run["config"]["proposer"], []).append({
            "run_id": run_id, "seed": run["config"]["seed"], "status": run["status"],
            "wall_s": (run.get("summary") or {}).get("elapsed_s", 0.0), "curve": best_so_far(cands),
            "candidates": len(proposed), "best_heldout": max(heldouts) if heldouts else None,
        })
    return results


def compare_report(store: Store, compare_id: str) -> dict:
    compare = store.get_run(compare_id)
    results = child_results(store, compare_id)
    report = summarize_compare(results, compare["config"]["evaluations"])
    report["seed_baseline"] = _seed_baseline(store, results)
    report["id"] = compare_id
    report["results"] = results
    return report


def _seed_baseline(store: Store, results: dict) -> Optional[float]:
    for runs in results.values():
        for r in runs:
            seeds = [c["fitness"] for c in store.candidates(r["run_id"]) if c["origin"] == "seed" and c["fitness"]]
            if seeds:
                return max(seeds)
    return None


def summarize_compare(results: dict, evaluations: int) -> dict:
    table = {}
    for name, runs in results.items():
        if not runs:
            continue
        row = {}
        for fraction in CHECKPOINTS:
            values = [v for v in (at_fraction(r["curve"], evaluations, fraction) for r in runs) if v is not None]
            row[f"{int(fraction * 100)}%"] = {
                "mean": statistics.mean(values) if values else None,
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            }
        heldouts = [r["best_heldout"] for r in runs if r["best_heldout"] is not None]
        row["best_heldout_mean"] = statistics.mean(heldouts) if heldouts else None
        row["wall_s_mean"] = statistics.mean(r["wall_s"] for r in runs)
        row["candidates_mean"] = statistics.mean(r["candidates"] for r in runs)
        row["repeats"] = len(runs)
        table[name] = row
    return {"table": table, "evaluations": evaluations}


def plot_compare(path: Path, results: dict, baseline: Optional[float]) -> Optional[Path]:
    from symdisc.bench.figures import mean_band_figure

    series = {}
    for name, runs in results.items():
        curves = [r["curve"] for r in runs if r["curve"]]
        if curves:
            length = min(len(c) for c in curves)
            series[f"{name} ({len(curves)} repeats)"] = (list(range(1, length + 1)), [c[:length] for c in curves])
    return mean_band_figure(path, series, "sandbox evaluations", "best proxy fitness so far",
                            "symdisc compare: search strategies under the same budget",
                            hline=(baseline, "best built-in seed") if baseline is not None else None)
