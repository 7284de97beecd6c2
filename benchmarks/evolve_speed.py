"""End-to-end discovery speed with the real model: tokens/s and candidates per minute.

Generation (llama.cpp) and evaluation (the sandbox worker, one torch thread) take turns on the
same cores, so llama.cpp gets every core while it generates and the worker sleeps (OMP passive).
This benchmark measures that choice against giving llama.cpp one thread only.
Run: python benchmarks/evolve_speed.py [--model qwen2.5-coder-0.5b] [--candidates 8]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def run(model: str, candidates: int, threads: int, seed: int) -> dict:
    home = tempfile.mkdtemp(prefix="symdisc-bench-")
    env = dict(os.environ, SYMDISC_HOME=home, OMP_WAIT_POLICY="PASSIVE")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "symdisc.cli.app", "evolve", "--proposer", "llm", "--model", model, "--candidates",
                          str(candidates), "--threads", str(threads), "--seed", str(seed), "--json"],
                         env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    summary = json.loads(out.stdout)
    summary["wall_s"] = wall
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for threads in (os.cpu_count() or 2, 1):
        s = run(args.model, args.candidates, threads, args.seed)
        print(f"{args.model}, llama.cpp threads {threads}: {s['tokens_per_s']} tokens/s, "
              f"{s['candidates_per_min']} candidates/min ({s['candidates']} candidates, "
              f"{s['passed_gate']} passed the gate, {s['wall_s']:.0f} s wall including model load and seeds)")


if __name__ == "__main__":
    main()
