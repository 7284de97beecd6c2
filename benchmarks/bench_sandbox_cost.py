"""What the sandbox costs `symdisc bench`: the same rule, seed and data trained in the sandbox
worker and in this process, side by side in one run.

Both sides run ``symdisc.judge.training.train_loop`` on the same tensors (the bench's own
``prepare_task``: Fashion-MNIST with 20% label noise, the small CNN), so the losses must be equal;
the script checks that, then prints steps/s (training steps only, as the bench table reports them)
and wall time (with the worker's start-up and the data hand-over) for each side, alternating sides
over the repeats so that load from other processes hits both alike.

Run: python benchmarks/bench_sandbox_cost.py [--rule robust_zero_state] [--steps 200] [--threads 1]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from symdisc import rules  # noqa: E402
from symdisc.bench.entries import _rule_entry  # noqa: E402
from symdisc.bench.train import prepare_task, train  # noqa: E402
from symdisc.config import BenchConfig  # noqa: E402
from symdisc.judge.sandbox import TrainingSandbox  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rule", default="robust_zero_state")
    parser.add_argument("--memory", default="scalar")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--subset", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = BenchConfig(task="fmnist-noisy", subset=args.subset, batch=args.batch, threads=args.threads)
    x_train, y_train, ds, model_kind, noise = prepare_task("fmnist-noisy", config, args.subset, 0)
    code = rules.source(args.rule)
    here = _rule_entry(args.rule, code, args.memory, 1e-3, "benchmark", unsandboxed=True)
    inside = _rule_entry(args.rule, code, args.memory, 1e-3, "benchmark", unsandboxed=False)
    x_eval, y_eval = ds.x_test[:2000], ds.y_test[:2000]
    print(f"{args.rule} on fmnist-noisy ({len(x_train)} examples, noise {noise}), {model_kind}, {args.steps} steps "
          f"of batch {args.batch}, {args.threads} thread(s), {args.repeats} repeats per side")
    rates = {"in-process": [], "sandboxed": []}
    walls = {"in-process": [], "sandboxed": []}
    reference = None
    with TrainingSandbox(threads=args.threads, epoch_timeout_s=600) as runner:
        inside.runner = runner
        t0 = time.perf_counter()
        runner._load(x_train, y_train, x_eval, y_eval, model_kind)  # start-up and data hand-over, timed once
        startup = time.perf_counter() - t0
        for r in range(args.repeats):
            order = ("in-process", "sandboxed") if r % 2 == 0 else ("sandboxed", "in-process")
            for side in order:
                entry = here if side == "in-process" else inside
                t = time.perf_counter()
                result = train(entry, 0.01, x_train, y_train, x_eval, y_eval, model_kind, 0, args.steps, args.batch,
                               args.steps)
                walls[side].append(time.perf_counter() - t)
                assert result.verdict is None, (result.verdict, result.message)
                rates[side].append(result.steps_per_s)
                if reference is None:
                    reference = result.losses
                assert result.losses == reference, f"{side}: the losses differ from the other side's"
        limits = runner.limits()
    print(f"sandbox: {limits}")
    print(f"worker start-up with the data hand-over: {startup:.1f} s (once per data set: per seed)")
    print(f"{'side':<12} {'steps/s (median)':>17} {'all repeats':>30} {'wall s (median)':>16}")
    for side in ("in-process", "sandboxed"):
        print(f"{side:<12} {statistics.median(rates[side]):>17.1f} "
              f"{', '.join(f'{v:.1f}' for v in rates[side]):>30} {statistics.median(walls[side]):>16.2f}")
    ratio = statistics.median(rates["sandboxed"]) / statistics.median(rates["in-process"])
    print(f"sandboxed / in-process steps/s: {ratio:.3f}; identical losses on both sides: yes")


if __name__ == "__main__":
    main()
