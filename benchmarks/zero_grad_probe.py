"""What the all-zero-gradient probe changes: stored programs that an earlier judge passed, through
today's stage 0 in the sandbox, side by side with their stored verdict; and what the probe costs.

    python benchmarks/zero_grad_probe.py --home runs/campaign2 --top 300

For the TOP best evaluated programs of every evolve run in the database (by the runs' own order,
seeds excluded), it prints how many today's probes refuse, by reason, with the ids refused for a
non-finite step on an all-zero gradient. Then, on the built-in rules (trusted code, in this process),
the CPU time of the all-zero probe beside the whole of stage 0. Reads the database, writes nothing.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def stored_programs(store, top: int) -> list[dict]:
    rows = []
    for run in store.list_runs(limit=1000, kind="evolve"):
        memory = (run.get("config") or {}).get("memory", "scalar")
        board = [r for r in store.leaderboard(run["id"], top * 4) if r["origin"] != "seed"][:top]
        rows += [dict(r, memory=memory) for r in board if r.get("normalized")]
    return rows


def builtin_cost(repeats: int) -> dict:
    from symdisc import rules
    from symdisc.judge import probes
    from symdisc.judge.gate import check_code
    from symdisc.judge.harness import CheckedRule
    from symdisc.judge.restricted import compile_candidate

    out = {}
    for name in rules.names():
        code = rules.source(name)
        memory = "scalar" if check_code(code, "scalar").verdict.ok else "buffers"
        make = lambda: CheckedRule(compile_candidate(check_code(code, memory).normalized), memory)  # noqa: E731
        whole = zero = float("inf")
        for _ in range(repeats):  # the fastest of a few: noise on a shared machine only adds time
            t0 = time.process_time()
            probes.run_probes(make())
            whole = min(whole, time.process_time() - t0)
            rule = make()
            t0 = time.process_time()
            probes._all_zero(rule, 1e-2)
            zero = min(zero, time.process_time() - t0)
        out[name] = {"stage0_ms": whole * 1e3, "all_zero_ms": zero * 1e3}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a SYMDISC_HOME with a run database")
    parser.add_argument("--top", type=int, default=300, help="best programs per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from symdisc.judge.sandbox import Sandbox
    from symdisc.store import Store

    with Store(args.home / "symdisc.db", create=False) as store:
        rows = stored_programs(store, args.top)
    verdicts = collections.Counter()
    zero_refused, refused = [], []
    started = time.perf_counter()
    with Sandbox(timeout_s=60) as sandbox:
        for row in rows:
            answer = sandbox.evaluate(row["normalized"], row["memory"], stages=("probe",))
            key = "pass" if answer.get("ok") else f"{answer.get('stage')}: {answer.get('reason')}"
            verdicts[key] += 1
            if not answer.get("ok"):
                refused.append({"id": row["id"], "verdict": key, "message": (answer.get("message") or "")[:160]})
            if not answer.get("ok") and "all-zero gradient" in (answer.get("message") or ""):
                zero_refused.append(row["id"])
    result = {"home": str(args.home), "programs": len(rows), "stored_verdict": "evaluated (passed stage 0 then)",
              "today": dict(verdicts), "refused": refused, "refused_all_zero": zero_refused,
              "seconds": round(time.perf_counter() - started, 1), "builtins": builtin_cost(args.repeats)}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{len(rows)} stored programs (best {args.top} per evolve run in {args.home}), every one passed stage 0 "
          f"when stored; today ({result['seconds']} s):")
    for key, n in verdicts.most_common():
        print(f"  {key}: {n}")
    print(f"  refused on an all-zero gradient (not finite, or raised): {len(zero_refused)} "
          f"({', '.join(map(str, zero_refused[:20]))}{' ...' if len(zero_refused) > 20 else ''})")
    for r in refused:
        if r["id"] not in zero_refused:
            print(f"  candidate {r['id']}: {r['verdict']}: {r['message']}")
    print("built-in rules, CPU ms (fastest of %d): stage 0 in all | the all-zero probe" % args.repeats)
    for name, c in result["builtins"].items():
        print(f"  {name:20s} {c['stage0_ms']:8.1f} | {c['all_zero_ms']:6.2f}")


if __name__ == "__main__":
    main()
