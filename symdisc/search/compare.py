"""`symdisc compare`: search strategies side by side under the same budget.

Each strategy runs R independent repeats (seeds 0..R-1) with the same budget, the same proxy
tasks and seeds, and the same memory class. The budget is either sandbox evaluations (what a
strategy gets out of the same judging work) or wall-clock minutes (what a user waiting on a laptop
gets: a model's proposals cost far more time than a genome's). Best-so-far proxy fitness is read
back from the run database after 10, 25, 50 and 100% of the budget, beside each run's best by the
cascade's own order (``best_key``), which is what `symdisc bench` takes from a run.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable, Optional

from symdisc.config import LLM_PROPOSERS, EvolveConfig, ProxyConfig
from symdisc.search.loop import Evolution
from symdisc.errors import UsageError
from symdisc.store import Store, fidelity_of, rank_score

CHECKPOINTS = (0.10, 0.25, 0.50, 1.00)


def best_so_far(rows: list[dict]) -> list[float]:
    """Best proxy fitness after each sandbox evaluation of proposed candidates (seeds excluded)."""
    return [best for _, best in _progress(rows)]


def best_so_far_timed(rows: list[dict]) -> list[tuple[float, float]]:
    """(seconds since the run's first candidate, best proxy fitness so far) per evaluation."""
    return [(t, best) for t, best in _progress(rows)]


def _progress(rows: list[dict]):
    best, start = 0.0, None
    for row in rows:
        stamp = _seconds(row.get("created_at"))
        start = stamp if start is None else start
        if row["origin"] == "seed" or row.get("eval_ms") is None:
            continue
        if row.get("fitness") is not None and row["status"] in ("evaluated", "duplicate"):
            best = max(best, row["fitness"])
        yield (stamp - start if stamp is not None and start is not None else 0.0), best


def _seconds(stamp: Optional[str]) -> Optional[float]:
    if not stamp:
        return None
    try:
        return time.mktime(time.strptime(stamp.rstrip("Z"), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def at_fraction(curve: list[float], budget: int, fraction: float) -> Optional[float]:
    i = max(1, int(round(budget * fraction)))
    if not curve:
        return None
    return curve[min(i, len(curve)) - 1]


def at_time(curve: list, budget_s: float, fraction: float) -> Optional[float]:
    """Best so far at ``fraction`` of a wall-clock budget (None before the first evaluation)."""
    seen = [best for t, best in curve if t <= budget_s * fraction]
    return seen[-1] if seen else None


def run_compare(store: Store, proposers: list[str], evaluations: Optional[int], repeats: int, memory: str,
                make_proposer: Callable[[str], object], gate, sandbox, proxy: Optional[ProxyConfig] = None,
                funnel: bool = True, on_event=None, say=None, parallel: int = 1, minutes: Optional[float] = None,
                resume: Optional[str] = None, models: Optional[list[str]] = None,
                seed_rules: Optional[list[str]] = None, tasks: Optional[list[dict]] = None,
                max_buffers: Optional[int] = None) -> dict:
    """Run (or, with ``resume``, continue) a comparison. A stopped comparison keeps every finished
    child run; resuming skips those and continues the one that was stopped."""
    say = say or (lambda message: None)
    if resume is not None:
        compare_id = store.get_run(resume, kind="compare")["id"]
        record = store.get_run(compare_id)["config"]
        proposers, evaluations, repeats = record["proposers"], record.get("evaluations"), record["repeats"]
        memory, funnel, minutes = record["memory"], record["funnel"], record.get("minutes")
        seed_rules = record.get("seed_rules")
        max_buffers = record.get("max_buffers")
        proxy = ProxyConfig(**record["proxy"]) if record.get("proxy") else proxy
        tasks = record.get("tasks") or []
        store.update_run(compare_id, status="running")
    else:
        if (evaluations is None) == (minutes is None):
            raise UsageError("give compare one budget: --evaluations N or --minutes M")
        record = {"proposers": proposers, "evaluations": evaluations, "minutes": minutes, "repeats": repeats,
                  "memory": memory, "proxy": (proxy or ProxyConfig()).__dict__, "funnel": funnel,
                  "models": list(models or []), "seed_rules": seed_rules, "tasks": list(tasks or []),
                  "max_buffers": max_buffers}
        compare_id = store.create_run("compare", record)
    children = {(r["config"]["proposer"], r["config"]["seed"]): r
                for r in (store.get_run(i) for (i,) in store.db.execute(
                    "SELECT id FROM runs WHERE parent_run = ? ORDER BY created_at, rowid", (compare_id,)).fetchall())}
    status = "finished"
    try:
        for name in proposers:
            for repeat in range(repeats):
                child = children.get((name, repeat))
                if child is not None and child["status"] == "finished":
                    continue
                say(f"{name}, repeat {repeat + 1}/{repeats}" + (" (resumed)" if child else ""))
                if child is not None:
                    evo = Evolution.resume(store, child["id"], make_proposer(name), gate, sandbox, on_event)
                else:
                    config = EvolveConfig(proposer=name, memory=memory, max_buffers=max_buffers, seed=repeat,
                                          seed_rules=seed_rules,
                                          evaluations=evaluations,
                                          minutes=minutes,
                                          # a cap for proposers that are mostly rejected
                                          candidates=evaluations * 5 if evaluations else None,
                                          funnel=funnel, proxy=proxy or ProxyConfig(),
                                          # every model-backed strategy decodes alike (the sampling
                                          # baseline once ran one request at a time beside a batched loop)
                                          parallel=parallel if name in LLM_PROPOSERS else 1)
                    if tasks:  # every repeat selects on the same task files, standardized on its own seeds
                        config.tasks = list(tasks)
                        config.cascade = config.cascade.on_tasks()
                    evo = Evolution.start(store, config, make_proposer(name), gate, sandbox, on_event,
                                          parent_run=compare_id)
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
        best = store.best(run_id)
        results.setdefault(run["config"]["proposer"], []).append({
            "run_id": run_id, "seed": run["config"]["seed"], "status": run["status"],
            "wall_s": (run.get("summary") or {}).get("elapsed_s", 0.0), "curve": best_so_far(cands),
            "timed": best_so_far_timed(cands),
            "candidates": len(proposed), "evaluated": store.evaluated_count(run_id),
            "best_heldout": max(heldouts) if heldouts else None,
            # the run's best in the cascade's order: what `bench RUN_ID` and `runs best` take
            "best": None if best is None else {
                "id": best["id"], "origin": best["origin"], "name": best.get("name"), "fitness": best["fitness"],
                "fidelity": fidelity_of(best), "rank_score": rank_score(best), "heldout": best.get("heldout"),
                "audit": best.get("audit"),
                # a fitted seed is the seed's, not the search's own
                "fitted_seed": best["origin"] == "fit" and any(c["id"] == best["parent_id"] and c["origin"] == "seed"
                                                               for c in cands)},
        })
    return results


def compare_report(store: Store, compare_id: str) -> dict:
    compare = store.get_run(compare_id)
    results = child_results(store, compare_id)
    report = summarize_compare(results, compare["config"].get("evaluations"), compare["config"].get("minutes"))
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


def summarize_compare(results: dict, evaluations: Optional[int], minutes: Optional[float] = None) -> dict:
    table = {}
    for name, runs in results.items():
        if not runs:
            continue
        row = {}
        for fraction in CHECKPOINTS:
            if minutes is not None:
                values = [at_time(r["timed"], minutes * 60, fraction) for r in runs]
            else:
                values = [at_fraction(r["curve"], evaluations, fraction) for r in runs]
            values = [v for v in values if v is not None]
            row[f"{int(fraction * 100)}%"] = {
                "mean": statistics.mean(values) if values else None,
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            }
        heldouts = [r["best_heldout"] for r in runs if r["best_heldout"] is not None]
        row["best_heldout_mean"] = statistics.mean(heldouts) if heldouts else None
        row["wall_s_mean"] = statistics.mean(r["wall_s"] for r in runs)
        row["candidates_mean"] = statistics.mean(r["candidates"] for r in runs)
        row["evaluated_mean"] = statistics.mean(r.get("evaluated", 0) for r in runs)
        # how many repeats ended with a proposed candidate, not a built-in seed (or its fit), on top
        row["own_best"] = sum(1 for r in runs if r.get("best") and r["best"]["origin"] != "seed"
                              and not r["best"].get("fitted_seed"))
        row["repeats"] = len(runs)
        table[name] = row
    return {"table": table, "evaluations": evaluations, "minutes": minutes}


def plot_compare(path: Path, results: dict, baseline: Optional[float], minutes: Optional[float] = None) -> Optional[Path]:
    from symdisc.bench.figures import mean_band_figure

    series = {}
    for name, runs in results.items():
        if minutes is not None:
            # on a common minute grid, so that runs of one strategy can be averaged
            grid = [minutes * i / 60 for i in range(61)]
            curves = [[at_time(r["timed"], m * 60, 1.0) or 0.0 for m in grid] for r in runs if r["timed"]]
            if curves:
                series[f"{name} ({len(curves)} repeats)"] = (grid, curves)
            continue
        curves = [r["curve"] for r in runs if r["curve"]]
        if curves:
            length = min(len(c) for c in curves)
            series[f"{name} ({len(curves)} repeats)"] = (list(range(1, length + 1)), [c[:length] for c in curves])
    return mean_band_figure(path, series, "wall-clock minutes" if minutes is not None else "sandbox evaluations",
                            "best proxy fitness so far",
                            "symdisc compare: search strategies under the same budget",
                            hline=(baseline, "best built-in seed") if baseline is not None else None)
