"""Does a search beat its fitted seeds? Strategies side by side under one wall-clock budget.

Runs ``symdisc compare --proposers P --minutes M --repeats R`` (the main strategies), then each
reference strategy (``--references``, one repeat each) with the same budget, all in one
SYMDISC_HOME under ``benchmarks/results/search_compare/TAG/``, and reports per strategy:

* new programs per minute (proposed candidates that became new programs completing every stage
  they were sent to), repeats, improvements (new programs that beat their parent in the run's
  order), and which sources the improvements came from (llm, mutate, fit);
* per repeat, whether its best own program (not a seed and not a fit of a seed) beats every fitted
  seed: both re-scored on 5 fresh task seeds at the highest cascade stage the program reached
  (proxy, heldout or long), the same seeds for both (paired), one-sided paired t-test
  (scipy.stats.ttest_rel, alternative "greater"), p < 0.05 against each seed;
* the audit task's rank correlation where the run recorded one.

The fitted seeds are the best fit of each built-in seed found by any run of the benchmark (the
mutate and hybrid runs fit the seeds when they start); a seed no run fitted stands as written.

Journaled and resumable: every finished step is a JSON line in ``journal.jsonl``; a rerun skips
what is there and resumes a comparison that was stopped (``compare --resume``). The run database
is copied, compressed, to ``TAG/home.db.gz`` after every step (and by ``--snapshot``) and put back on
a machine that has none (benchmarks/journal.py), so a committed comparison goes on elsewhere.

  flock /work/measure.lock python benchmarks/search_compare.py --proposers hybrid,llm,mutate \\
      --minutes 10 --repeats 3 --references genome,rl --model qwen2.5-coder-0.5b --model qwen2.5-coder-1.5b \\
      --tag full
  flock /work/measure.lock python benchmarks/search_compare.py --proposers mutate --minutes 3 --repeats 1 \\
      --references genome --tag short
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from journal import restore, snapshot  # noqa: E402

PAIRED_SEEDS = 5
ALPHA = 0.05
FRESH_PROXY_SEED = 5000  # task seeds the search never saw
FRESH_REAL_SEED = 7500


def journal_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def journal(path: Path, entry: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(dict(entry, at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))) + "\n")
    snapshot(path.parent / "home", path.parent)  # the database the next steps read, for a machine that resumes


# -- running the comparisons --------------------------------------------------------------------
def run_group(home: Path, log: Path, group: str, proposers: str, minutes: float, repeats: int, models: list,
              parallel: int, threads: int = 0) -> str:
    from symdisc.store import Store

    done = [e for e in journal_lines(log) if e.get("step") == "compare" and e.get("group") == group]
    if done:
        return done[-1]["id"]
    env = dict(os.environ, SYMDISC_HOME=str(home), PYTHONPATH=str(ROOT))
    stopped = None
    if (home / "symdisc.db").exists():
        with Store(home / "symdisc.db") as store:
            for run in store.list_runs(kind="compare"):
                if (run.get("config") or {}).get("proposers") == proposers.split(",") and run["status"] != "finished":
                    stopped = run["id"]
    if stopped:
        args = ["compare", "--resume", stopped, "--json"]
    else:
        args = ["compare", "--proposers", proposers, "--minutes", str(minutes), "--repeats", str(repeats),
                "--parallel", str(parallel), "--json"] + [a for m in models for a in ("--model", m)] \
            + (["--threads", str(threads)] if threads else [])
    print(f"[{group}] symdisc {' '.join(args)}", file=sys.stderr, flush=True)
    result = subprocess.run([sys.executable, "-m", "symdisc.cli.app", *args], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE)
    if result.returncode != 0:
        raise SystemExit(f"[{group}] compare stopped (exit {result.returncode}); rerun to resume")
    report = json.loads(result.stdout)
    journal(log, {"step": "compare", "group": group, "id": report["id"], "wall_s": report.get("wall_s")})
    return report["id"]


# -- analysis -------------------------------------------------------------------------------------
def is_own(row: dict, by_id: dict) -> bool:
    """A program the search found: not a seed, not a fit of a seed."""
    if row["origin"] == "seed":
        return False
    if row["origin"] == "fit":
        parent = by_id.get(row["parent_id"])
        return parent is not None and parent["origin"] != "seed"
    return True


def run_metrics(store, run_id: str) -> dict:
    from symdisc.store import best_key, fidelity_of

    run = store.get_run(run_id)
    rows = store.candidates(run_id)
    by_id = {r["id"]: r for r in rows}
    proposed = [r for r in rows if r["origin"] != "seed" and r["status"] != "pending"]
    new = [r for r in proposed if r["status"] == "evaluated"]
    better = [r for r in new if r["parent_id"] in by_id and by_id[r["parent_id"]].get("fitness") is not None
              and best_key(r) < best_key(by_id[r["parent_id"]])]
    wall = (run.get("summary") or {}).get("elapsed_s") or 0.0
    own = sorted([r for r in new if is_own(r, by_id)], key=best_key)
    best = own[0] if own else None
    audit = ((run.get("summary") or {}).get("audit") or {}).get("spearman")
    by_origin: dict = {}
    for r in better:
        by_origin[r["origin"]] = by_origin.get(r["origin"], 0) + 1
    return {"run_id": run_id, "proposer": run["config"]["proposer"], "seed": run["config"]["seed"], "wall_s": wall,
            "proposed": len(proposed), "new": len(new), "new_per_min": round(len(new) / wall * 60, 2) if wall else None,
            "repeats": sum(r["status"] == "duplicate" for r in proposed), "improvements": len(better),
            "improvements_by_origin": by_origin, "new_by_origin": _count(new, "origin"),
            "best_own": None if best is None else {"id": best["id"], "origin": best["origin"], "fitness": best["fitness"],
                                                   "fidelity": fidelity_of(best), "rank_score": best.get("rank_score"),
                                                   "code": best["normalized"]},
            "audit_spearman": audit, "repairs": store.repair_counts(run_id)}


def _count(rows, key) -> dict:
    out: dict = {}
    for r in rows:
        out[r[key]] = out.get(r[key], 0) + 1
    return out


def fitted_seeds(store) -> dict:
    """Per built-in seed name: the best fitted code any run found (else the seed as written)."""
    best: dict = {}
    rows = [dict(r) for r in store.db.execute(
        "SELECT c.*, p.name AS seed_name, p.normalized AS seed_code, p.fitness AS seed_fitness FROM candidates c "
        "JOIN candidates p ON p.id = c.parent_id WHERE c.origin = 'fit' AND p.origin = 'seed' AND c.status = 'evaluated'")]
    for r in rows:
        if r["seed_name"] not in best or r["fitness"] > best[r["seed_name"]]["fitness"]:
            best[r["seed_name"]] = {"code": r["normalized"], "fitness": r["fitness"], "fitted": True}
    for r in store.db.execute("SELECT name, normalized, fitness FROM candidates WHERE origin = 'seed' AND status = 'evaluated'"):
        if r["name"] not in best:
            best[r["name"]] = {"code": r["normalized"], "fitness": r["fitness"], "fitted": False}
    return best


STAGES = {1: "proxy", 2: "heldout", 3: "long"}


def stage_specs(config) -> dict:
    """The real-data stages at PAIRED_SEEDS fresh seeds (the worker loads their data before lock-down)."""
    heldout = dict(asdict(config.heldout), seeds=PAIRED_SEEDS, seed_base=FRESH_REAL_SEED)
    long = dict(config.cascade.long or asdict(config.heldout), seeds=PAIRED_SEEDS, seed_base=FRESH_REAL_SEED + 100,
                lrs=list(asdict(config.heldout)["lrs"]))
    return {"heldout": heldout, "long": long}


def per_seed_scores(sandbox, code: str, memory: str, fidelity: int, config) -> list[float]:
    """The program's accuracy on PAIRED_SEEDS fresh task seeds at cascade stage ``fidelity``, each at
    its best learning rate of the stage's grid."""
    from symdisc.config import ProxyConfig

    stage = STAGES[fidelity]
    if stage == "proxy":
        proxy = asdict(ProxyConfig(**dict(asdict(config.proxy), seeds=PAIRED_SEEDS, task_seed=FRESH_PROXY_SEED)))
        answer = sandbox.evaluate(code, memory, stages=("proxy",), proxy=proxy, timeout_s=120)
        return list((answer.get("proxy") or {}).get("per_seed") or []) if answer.get("ok") else [0.0] * PAIRED_SEEDS
    spec = stage_specs(config)[stage]
    answer = sandbox.evaluate(code, memory, stages=(stage,), timeout_s=3600, cascade={stage: spec})
    detail = answer.get(stage) or {}
    if not answer.get("ok") and answer.get("reason") == "crash":
        raise SystemExit(f"the {stage} stage could not run: {answer.get('message')}")
    return list(detail.get("per_seed") or []) if answer.get("ok") else [0.0] * PAIRED_SEEDS


def paired_p(own: list[float], other: list[float]) -> float:
    """One-sided paired t-test p-value that ``own`` is higher."""
    from scipy import stats

    diffs = [a - b for a, b in zip(own, other)]
    if len(diffs) < 2:
        return 1.0
    if statistics.pstdev(diffs) == 0:
        return 0.0 if diffs[0] > 0 else 1.0
    p = stats.ttest_rel(own, other, alternative="greater").pvalue
    return float(p) if not math.isnan(p) else 1.0


def paired_tests(home: Path, log: Path, metrics: list[dict]) -> None:
    from symdisc.config import EvolveConfig
    from symdisc.judge.sandbox import Sandbox
    from symdisc.store import Store

    done = {e["run_id"] for e in journal_lines(log) if e.get("step") == "paired"}
    todo = [m for m in metrics if m["run_id"] not in done and m["best_own"]]
    if not todo:
        return
    with Store(home / "symdisc.db") as store:
        seeds = fitted_seeds(store)
        configs = {m["run_id"]: EvolveConfig.from_dict(store.get_run(m["run_id"])["config"]) for m in todo}
    first = next(iter(configs.values()))
    specs = stage_specs(first)
    cache: dict = {}
    with Sandbox(heldout=specs["heldout"], timeout_s=3600, cascade=dict(specs, audit=dict(first.cascade.audit))) \
            as sandbox:
        for m in todo:
            config = configs[m["run_id"]]
            fidelity = m["best_own"]["fidelity"]
            own = per_seed_scores(sandbox, m["best_own"]["code"], config.memory, fidelity, config)
            against = {}
            for name, seed in seeds.items():
                key = (name, fidelity)
                if key not in cache:
                    cache[key] = per_seed_scores(sandbox, seed["code"], config.memory, fidelity, config)
                against[name] = {"scores": cache[key], "p": paired_p(own, cache[key]), "fitted": seed["fitted"]}
            beats = all(v["p"] < ALPHA for v in against.values())
            journal(log, {"step": "paired", "run_id": m["run_id"], "stage": STAGES[fidelity], "own": own,
                          "against": against, "beats_every_fitted_seed": beats})
            print(f"  {m['proposer']} seed {m['seed']}: best own at {STAGES[fidelity]} "
                  f"{statistics.mean(own):.4f}; beats every fitted seed: {beats}", file=sys.stderr, flush=True)


def summarize(home: Path, log: Path) -> dict:
    from symdisc.store import Store

    paired = {e["run_id"]: e for e in journal_lines(log) if e.get("step") == "paired"}
    out: dict = {}
    with Store(home / "symdisc.db") as store:
        compares = [e["id"] for e in journal_lines(log) if e.get("step") == "compare"]
        for cid in compares:
            for (run_id,) in store.db.execute("SELECT id FROM runs WHERE parent_run = ? ORDER BY created_at", (cid,)):
                m = run_metrics(store, run_id)
                m["paired"] = paired.get(run_id)
                out.setdefault(m["proposer"], []).append(m)
        seeds = fitted_seeds(store)
    table = {}
    for name, runs in out.items():
        improvements = sum(r["improvements"] for r in runs)
        origins: dict = {}
        for r in runs:
            for k, v in r["improvements_by_origin"].items():
                origins[k] = origins.get(k, 0) + v
        best_scores = [r["best_own"]["rank_score"] for r in runs if r["best_own"] and r["best_own"]["rank_score"] is not None]
        table[name] = {
            "repeats": len(runs),
            "new_per_min_median": statistics.median([r["new_per_min"] or 0 for r in runs]),
            "new": sum(r["new"] for r in runs), "repeats_total": sum(r["repeats"] for r in runs),
            "improvements": improvements,
            "improvement_share_by_origin": {k: round(v / improvements, 3) for k, v in origins.items()} if improvements else {},
            "best_rank_score_median": statistics.median(best_scores) if best_scores else None,
            "beats_fitted_seeds": [r["paired"]["beats_every_fitted_seed"] if r["paired"] else None for r in runs],
            "stage": [r["paired"]["stage"] if r["paired"] else None for r in runs],
        }
    return {"table": table, "runs": out, "fitted_seeds": {k: {kk: v[kk] for kk in ("fitness", "fitted", "code")}
                                                          for k, v in seeds.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--proposers", default="hybrid,llm,mutate")
    p.add_argument("--references", default="genome", help="strategies run once each, with the same budget")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", action="append", default=[])
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: compare's default)")
    p.add_argument("--tag", default="default")
    p.add_argument("--summary-only", action="store_true")
    p.add_argument("--snapshot", action="store_true", help="only write TAG/home.db.gz from the run database now")
    args = p.parse_args()
    folder = ROOT / "benchmarks" / "results" / "search_compare" / args.tag
    home = folder / "home"
    home.mkdir(parents=True, exist_ok=True)
    log = folder / "journal.jsonl"
    if args.snapshot:
        print(f"snapshot: {snapshot(home, folder)}", file=sys.stderr)
        return
    restore(home, folder)  # a new machine goes on from the committed copy of the run database
    from symdisc.config import PROPOSERS

    refs = [r for r in args.references.split(",") if r and r in PROPOSERS]
    skipped = [r for r in args.references.split(",") if r and r not in PROPOSERS]
    if skipped:
        print(f"skipping unknown reference strategies: {', '.join(skipped)}", file=sys.stderr)
    if not args.summary_only:
        run_group(home, log, "main", args.proposers, args.minutes, args.repeats, args.model, args.parallel, args.threads)
        for ref in refs:
            run_group(home, log, ref, ref, args.minutes, 1, args.model, args.parallel, args.threads)
        from symdisc.store import Store

        with Store(home / "symdisc.db") as store:
            metrics = [run_metrics(store, run_id)
                       for cid in [e["id"] for e in journal_lines(log) if e.get("step") == "compare"]
                       for (run_id,) in store.db.execute("SELECT id FROM runs WHERE parent_run = ?", (cid,))]
        paired_tests(home, log, metrics)
    summary = summarize(home, log)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    for name, row in summary["table"].items():
        print(f"{name:10s} repeats {row['repeats']}  new/min {row['new_per_min_median']:.1f}  new {row['new']}  "
              f"repeats {row['repeats_total']}  improvements {row['improvements']} {row['improvement_share_by_origin']}  "
              f"best rank score {row['best_rank_score_median']}  beats fitted seeds {row['beats_fitted_seeds']} "
              f"at {row['stage']}")


if __name__ == "__main__":
    main()
