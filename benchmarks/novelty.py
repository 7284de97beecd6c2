"""Novelty of the llm proposer: the loop before operators (llm-legacy) against the new one (llm),
and optionally the independent-sampling baseline (llm-independent), side by side, real models.

For every model, seed and loop, one `symdisc evolve` run of M candidates (--no-funnel: the run's
fitness is the proxy fitness every proposer optimizes), then from its database:

* novelty rate: replies that became new programs completing every stage (status evaluated) / replies
* improvement rate: new programs whose fitness beats their parent's / new programs
* repeats: replies that were the same program or behaviour as an earlier one
* best new program's fitness against the best built-in seed's

One JSON line per finished run goes to --out as soon as it ends; a rerun skips what is there and
resumes a run that was killed (each run has its own SYMDISC_HOME under --home), so the benchmark
can be stopped and continued. Loops of one seed run back to back, so partial results stay paired.

Run (every real-model measurement on the shared box under the lock):
  flock /work/measure.lock python benchmarks/novelty.py --models qwen2.5-coder-0.5b --seeds 3 --candidates 30
  python benchmarks/novelty.py --table            # the table in docs/measurements.md from what --out holds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "novelty.jsonl"


def run_metrics(home: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from symdisc.store import Store

    store = Store(home / "symdisc.db", create=False)
    run = store.get_run("latest", kind="evolve")
    rows = store.candidates(run["id"])
    by_id = {r["id"]: r for r in rows}
    seeds = [r for r in rows if r["origin"] == "seed" and r["fitness"] is not None]
    replies = [r for r in rows if r["origin"] != "seed" and r["status"] != "pending"]
    new = [r for r in replies if r["status"] == "evaluated"]
    better = [r for r in new if r["parent_id"] in by_id and by_id[r["parent_id"]]["fitness"] is not None
              and r["fitness"] > by_id[r["parent_id"]]["fitness"]]
    reasons: dict = {}
    for r in replies:
        if r["status"] in ("rejected", "failed"):
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    best_seed = max(r["fitness"] for r in seeds)
    best_new = max((r["fitness"] for r in new), default=None)
    summary = run.get("summary") or {}
    out = {
        "run_id": run["id"], "status": run["status"], "replies": len(replies), "new": len(new),
        "improvements": len(better), "repeats": sum(r["status"] == "duplicate" for r in replies),
        "rejected": sum(r["status"] == "rejected" for r in replies),
        "failed": sum(r["status"] == "failed" for r in replies), "reasons": reasons,
        "novelty_rate": len(new) / len(replies) if replies else 0.0,
        "improvement_rate": len(better) / len(new) if new else 0.0,
        "best_seed": best_seed, "best_new": best_new,
        "beats_seeds": best_new is not None and best_new > best_seed,
        "elapsed_s": summary.get("elapsed_s"), "tokens_per_s": summary.get("tokens_per_s"),
        "per_operator": store.proposal_stats(run["id"], "operator"),
    }
    store.close()
    return out


def one_run(model: str, loop: str, seed: int, candidates: int, home: Path, threads: int) -> dict:
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SYMDISC_HOME=str(home), OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "symdisc.cli.app", "evolve", "--json", "--threads", str(threads)]
    db = home / "symdisc.db"
    resumed = False
    if db.exists():
        status = _latest_status(db)
        if status in ("running", "interrupted", "failed"):
            cmd += ["--resume", "latest", "--candidates", str(candidates)]
            resumed = True
    if not resumed:
        cmd += ["--model", model, "--proposer", loop, "--seed", str(seed), "--candidates", str(candidates),
                "--no-funnel"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(ROOT))
    if proc.returncode != 0:
        why = f" (killed by signal {proc.returncode - 128})" if proc.returncode > 128 else ""
        raise SystemExit(f"{' '.join(cmd)} failed with exit status {proc.returncode}{why}:\n{proc.stderr[-3000:]}")
    out = run_metrics(home)
    out.update(model=model, loop=loop, seed=seed, candidates=candidates, wall_s=round(time.perf_counter() - t0, 1),
               resumed=resumed)
    return out


def _latest_status(db: Path):
    import sqlite3

    con = sqlite3.connect(str(db))
    try:
        row = con.execute("SELECT status FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchone()
    finally:
        con.close()
    return row[0] if row else None


def load(out: Path) -> list[dict]:
    if not out.exists():
        return []
    return [json.loads(ln) for ln in out.read_text().splitlines() if ln.strip()]


def table(results: list[dict]) -> str:
    groups: dict = {}
    for r in results:
        groups.setdefault((r["model"], r["loop"]), []).append(r)
    lines = ["| model | loop | seeds x candidates | novelty rate | improvement rate | repeats | rejected / failed "
             "| best new vs best seed (per seed) | seeds where best new beats every seed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (model, loop), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["seed"])
        replies = sum(r["replies"] for r in rs)
        new = sum(r["new"] for r in rs)
        impr = sum(r["improvements"] for r in rs)
        best = ", ".join(f"{r['best_new']:.4f}" if r["best_new"] is not None else "none" for r in rs)
        seed_best = statistics.mean(r["best_seed"] for r in rs)
        lines.append(
            f"| {model} | {loop} | {len(rs)} x {rs[0]['candidates']} | {new}/{replies} = {new / max(replies, 1):.0%} "
            f"| {impr}/{new} = {impr / max(new, 1):.0%} | {sum(r['repeats'] for r in rs)} "
            f"| {sum(r['rejected'] for r in rs)} / {sum(r['failed'] for r in rs)} | {best} vs {seed_best:.4f} "
            f"| {sum(r['beats_seeds'] for r in rs)} of {len(rs)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="qwen2.5-coder-0.5b,qwen2.5-coder-1.5b")
    parser.add_argument("--loops", default="llm-legacy,llm", help="also llm-independent (the baseline)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--candidates", type=int, default=60)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--home", type=Path, default=None, help="run databases (default: next to --out)")
    parser.add_argument("--table", action="store_true", help="only print the table of what --out holds")
    args = parser.parse_args()
    if args.table:
        print(table(load(args.out)))
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    home_root = args.home or args.out.parent / "novelty-runs"
    done = {(r["model"], r["loop"], r["seed"], r["candidates"]) for r in load(args.out)}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for model in [m for m in args.models.split(",") if m]:
            for loop in [p for p in args.loops.split(",") if p]:
                key = (model, loop, seed, args.candidates)
                if key in done:
                    continue
                home = home_root / f"{model}-{loop}-s{seed}-n{args.candidates}"
                print(f"novelty: {model} {loop} seed {seed}, {args.candidates} candidates ...", file=sys.stderr,
                      flush=True)
                result = one_run(model, loop, seed, args.candidates, home, args.threads)
                with args.out.open("a") as f:
                    f.write(json.dumps(result) + "\n")
                print(f"  novelty {result['novelty_rate']:.0%}, repeats {result['repeats']}, best new "
                      f"{result['best_new']} vs seed {result['best_seed']:.4f}, {result['wall_s']} s",
                      file=sys.stderr, flush=True)
    print(table(load(args.out)))


if __name__ == "__main__":
    main()
