"""Scaling out: candidates per minute of a clustered run with 1, 2 and 4 proposer actors.

The scripted backend answers after a fixed delay, a stand-in for a model server that takes that
long per candidate (so generation dominates); evaluation is the real proxy, in sandboxed evaluator
actors; everything runs on a local Ray cluster on this machine. The same budget on the local path
(one process, generation then evaluation) gives the reference for the Ray path's overhead.
Timing starts at the first proposal (the seeds and actor start-up are left out) and ends when the
last candidate is recorded.
Run: python benchmarks/scaling.py [--delay 2] [--candidates 16] [--evaluators 2]
"""

import argparse
import logging
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from symdisc.llm.fake import ScriptedBackend  # noqa: E402
from symdisc.config import EvolveConfig  # noqa: E402
from symdisc.search.loop import Evolution  # noqa: E402
from symdisc.judge.gateproc import GateClient  # noqa: E402
from symdisc.store import Store  # noqa: E402

# Distinct programs (no repeats, no behavioural twins), so every candidate is really evaluated.
VARIANTS = [f"def update(grad, param, state, lr, t):\n    return lr * torch.tanh({k / 7:.4f} * grad)\n"
            for k in range(7, 400)]


class Clock:
    """An evolve event hook: from the first proposal to the end of the run."""

    def __init__(self):
        self.first = None
        self.end = None

    def __call__(self, kind: str, data: dict) -> None:
        if kind == "generating" and self.first is None:
            self.first = time.perf_counter()
        elif kind == "end":
            self.end = time.perf_counter()


def measure(store, gate, config, backend, sandbox, loop) -> dict:
    clock = Clock()
    evo = loop.start(store, config, backend, gate, sandbox, clock)
    summary = evo.run()
    rows = [r for r in store.candidates(evo.run_id) if r["origin"] != "seed"]
    seconds = clock.end - clock.first
    return {"candidates": len(rows), "evaluated": sum(r["status"] == "evaluated" for r in rows),
            "seconds": seconds, "per_min": len(rows) / seconds * 60, "per_candidate_s": seconds / len(rows),
            "statuses": summary["statuses"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=2.0, help="Seconds per generation (the fake model server).")
    parser.add_argument("--candidates", type=int, default=16, help="Candidates per measurement.")
    parser.add_argument("--evaluators", type=int, default=os.cpu_count() or 2, help="Evaluator actors.")
    parser.add_argument("--actors", default="1,2,4", help="Proposer actor counts to measure.")
    args = parser.parse_args()

    import ray

    from symdisc.search.cluster import Cluster, ClusterEvolution
    from symdisc.judge.sandbox import Sandbox

    os.environ["SYMDISC_HOME"] = tempfile.mkdtemp(prefix="symdisc-scaling-")
    config = lambda: EvolveConfig(candidates=args.candidates, funnel=False, backend="fake", cluster="auto")  # noqa: E731
    backend = lambda: ScriptedBackend(VARIANTS, delay_s=args.delay, by_seed=True)  # noqa: E731
    print(f"generation delay {args.delay:g} s, {args.candidates} candidates each, real proxy evaluation, "
          f"{args.evaluators} evaluator actor(s), {os.cpu_count()} cores", flush=True)
    with Store() as store, GateClient() as gate:
        with Sandbox() as sandbox:
            local = measure(store, gate, config(), backend(), sandbox, Evolution)
        print(f"local path (no Ray): {local['per_min']:.1f} candidates/min, {local['per_candidate_s']:.3f} s per "
              f"candidate", flush=True)
        ray.init(address="local", include_dashboard=False, num_cpus=max(args.evaluators, os.cpu_count() or 2),
                 logging_level=logging.WARNING)
        results = {}
        try:
            for n in [int(x) for x in args.actors.split(",")]:
                fake = backend()
                with Cluster("auto", fake, proposers=n, evaluators=args.evaluators) as cluster:
                    results[n] = measure(store, gate, config(), fake, cluster, ClusterEvolution)
                r = results[n]
                base = results[min(results)]["per_min"]
                print(f"ray, {n} proposer actor(s): {r['per_min']:.1f} candidates/min, ratio to 1 actor "
                      f"{r['per_min'] / base:.2f}x ({r['evaluated']}/{r['candidates']} evaluated, "
                      f"{r['seconds']:.1f} s)", flush=True)
        finally:
            ray.shutdown()
    if 1 in results:
        one = results[1]["per_candidate_s"]
        print(f"per-candidate time with one proposer: local {local['per_candidate_s']:.3f} s, ray {one:.3f} s; "
              f"ray vs local {100 * (one / local['per_candidate_s'] - 1):+.1f}% (negative: evaluation overlaps "
              f"generation on the ray path)")
        print(f"ray path overhead over the bare generation delay: {one - args.delay:+.3f} s per candidate "
              f"({100 * (one / args.delay - 1):+.1f}%)")
    for n, goal in ((2, 1.8), (4, 3.0)):
        if n in results and 1 in results:
            ratio = results[n]["per_min"] / results[1]["per_min"]
            print(f"goal {n} actors >= {goal}x: {ratio:.2f}x {'met' if ratio >= goal else 'NOT met'}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
