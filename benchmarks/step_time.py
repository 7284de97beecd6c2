"""Step time and optimizer state of the bench's optimizers, side by side in one process.

    python benchmarks/step_time.py [--model cnn28] [--batch 128] [--rounds 7] [--steps 20] [--threads 1]

The bench's steps/s column comes from whole training runs, which may run at different times and
thread counts; this measures every optimizer in the same process on the same random batch, in
interleaved rounds (a new order each round), so drift on a shared machine hits them alike. Per
optimizer: the median milliseconds of a training step (forward, backward and optimizer step), of
the optimizer step alone, their ratio to SGD's, and the optimizer's state in bytes per parameter
after the steps. Prints a Markdown table (and --json).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DEFAULT = ("sgd,sign-sgd,normalized-sgd,lars,orthogonal-sgd,sinkhorn-sgd,adam-mini-v,robust-zero-state,"
           "adam,adamw,lion,signum,muon,sophia")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--optimizers", default=DEFAULT)
    ap.add_argument("--model", default="cnn28", help="a bench model kind: cnn28 (fmnist-noisy), 2c2d, cnn32")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per optimizer and round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from symdisc.bench.optimizers import builtin
    from symdisc.judge.training import make_model, state_bytes

    torch.set_num_threads(args.threads)
    names = [n for n in args.optimizers.split(",") if n]
    channels, side = (3, 32) if args.model == "cnn32" else (1, 28)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, channels, side, side, generator=gen)
    y = torch.randint(0, 10, (args.batch,), generator=gen)
    loss_fn = torch.nn.CrossEntropyLoss()
    setups = {}
    for n in names:
        torch.manual_seed(0)
        model = make_model(args.model)
        spec = builtin(n)
        setups[n] = (model, spec.make(list(model.parameters()), spec.default_lr, 10_000))
    n_params = sum(p.numel() for p in setups[names[0]][0].parameters())

    def one_step(model, opt) -> float:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        t0 = time.perf_counter()
        opt.step()
        return time.perf_counter() - t0

    for n in names:  # warm up: first calls allocate state and pick kernels
        for _ in range(3):
            one_step(*setups[n])
    total_ms: dict = {n: [] for n in names}
    step_ms: dict = {n: [] for n in names}
    order = list(names)
    rng = random.Random(0)
    for r in range(args.rounds):
        rng.shuffle(order)
        for n in order:
            model, opt = setups[n]
            t0 = time.perf_counter()
            inner = sum(one_step(model, opt) for _ in range(args.steps))
            total_ms[n].append(1000 * (time.perf_counter() - t0) / args.steps)
            step_ms[n].append(1000 * inner / args.steps)
        print(f"step_time: round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
    base = statistics.median(total_ms["sgd"]) if "sgd" in names else None
    base_step = statistics.median(step_ms["sgd"]) if "sgd" in names else None
    rows = []
    for n in names:
        t, s = statistics.median(total_ms[n]), statistics.median(step_ms[n])
        rows.append({"optimizer": n, "train_step_ms": round(t, 3), "optimizer_step_ms": round(s, 3),
                     "train_step_vs_sgd": round(t / base, 3) if base else None,
                     "optimizer_step_vs_sgd": round(s / base_step, 3) if base_step else None,
                     "state_bytes_per_param": round(state_bytes(setups[n][1]) / n_params, 4)})
    meta = {"model": args.model, "parameters": n_params, "batch": args.batch, "threads": args.threads,
            "rounds": args.rounds, "steps": args.steps, "torch": torch.__version__, "cpu_count": os.cpu_count()}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
        return 0
    print(f"{args.model} ({n_params} parameters), batch {args.batch}, {args.threads} thread(s), median of "
          f"{args.rounds} interleaved rounds of {args.steps} steps")
    print()
    print("| optimizer | train step ms | x sgd | optimizer step ms | x sgd | state bytes / param |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['optimizer']} | {r['train_step_ms']:.2f} | {r['train_step_vs_sgd'] or 0:.2f} | "
              f"{r['optimizer_step_ms']:.3f} | {r['optimizer_step_vs_sgd'] or 0:.1f} | {r['state_bytes_per_param']:g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
