"""Proxy fitness speed: one candidate's stage 0 probes and proxy fitness, in the sandbox worker.

Prints the median over repeated evaluations of the built-in rules (the goal: proxy fitness of one
candidate under 100 ms median on a two-core laptop CPU). Run: python benchmarks/proxy_speed.py
"""

import argparse
import os
import statistics
import time
from dataclasses import asdict

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from symdisc import rules  # noqa: E402
from symdisc.config import ProxyConfig  # noqa: E402
from symdisc.judge.sandbox import Sandbox  # noqa: E402

RULES = {"scalar": ("sgd", "sign_sgd", "robust_zero_state"), "buffers": ("momentum", "lion", "adam")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    proxy = asdict(ProxyConfig())
    print(f"proxy: {proxy['seeds']} seeds x {len(proxy['lrs'])} learning rates, {proxy['steps']} steps, "
          f"batch {proxy['batch']}, MLP {proxy['dim']}-{proxy['hidden']}-{proxy['classes']}, noise {proxy['noise']}")
    all_proxy, all_probe, all_trip = [], [], []
    t_start = time.perf_counter()
    with Sandbox(timeout_s=60) as sandbox:
        for memory, names in RULES.items():
            for name in names:
                code = rules.source(name)
                sandbox.evaluate(code, memory, stages=("probe", "proxy"), proxy=proxy)  # warm the task cache
                proxy_ms, probe_ms, trip_ms = [], [], []
                for _ in range(args.repeats):
                    answer = sandbox.evaluate(code, memory, stages=("probe", "proxy"), proxy=proxy)
                    assert answer["ok"], answer
                    proxy_ms.append(answer["ms"]["proxy"])
                    probe_ms.append(answer["ms"]["probe"])
                    trip_ms.append(answer["ms"]["sandbox"])
                all_proxy += proxy_ms
                all_probe += probe_ms
                all_trip += trip_ms
                print(f"{name:<18} {memory:<8} fitness {answer['fitness']:.4f}  proxy median "
                      f"{statistics.median(proxy_ms):6.1f} ms  probes {statistics.median(probe_ms):5.1f} ms  "
                      f"round trip {statistics.median(trip_ms):6.1f} ms")
    print(f"all candidates: proxy fitness median {statistics.median(all_proxy):.1f} ms, "
          f"stage 0 probes median {statistics.median(all_probe):.1f} ms, "
          f"whole evaluation round trip median {statistics.median(all_trip):.1f} ms "
          f"({len(all_proxy)} evaluations, {time.perf_counter() - t_start:.1f} s)")


if __name__ == "__main__":
    main()
