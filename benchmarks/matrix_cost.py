"""What a step costs against the judge's reference: Newton-Schulz, Adam, SGD, an outer product.

Prints, per parameter shape and rule, the CPU seconds of one step, its ratio to the reference
(forward and backward of a linear layer of that shape on 1,024 rows, symdisc/judge/cost.py) and its
peak memory as a multiple of the parameter's bytes. The rules run as plain Python here (no sandbox):
this measures their math, which is what the cost budget in symdisc/judge/probes.py is chosen from.
Run: python benchmarks/matrix_cost.py [--threads 1] [--repeats 3]
"""

import argparse
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from matrix_rules import NEWTON_SCHULZ  # noqa: E402

from symdisc import rules  # noqa: E402
from symdisc.judge.cost import PeakMemory, cpu_seconds, reference_seconds  # noqa: E402


def compiled(source: str):
    scope = {"torch": torch, "math": __import__("math")}
    exec(source, scope)
    return scope["update"]


OUTER = "def update(grad, param, state, lr, t):\n    f = grad.flatten()\n    return lr * grad + 0.0 * (f[:, None] @ f[None, :]).sum()\n"
POWER = ("def update(grad, param, state, lr, t):\n    g = grad.reshape(grad.shape[0], -1)\n    x = g / (g.norm() + 1e-7)\n"
         "    for i in range(200):\n        x = x @ x.T @ x\n    return lr * x.reshape(grad.shape)\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    candidates = {"sgd": rules.source("sgd"), "sign_sgd": rules.source("sign_sgd"), "adam": rules.source("adam"),
                  "newton-schulz-5": NEWTON_SCHULZ, "outer-product": OUTER, "power-200": POWER}
    shapes = [(64, 64), (256, 256), (128, 3136), (64, 32, 3, 3), (1024, 1024), (1048576,)]
    print(f"threads {torch.get_num_threads()}; reference: forward+backward of a linear layer on 1,024 rows")
    print(f"{'shape':>16} {'rule':>16} {'step s':>9} {'ref s':>9} {'x ref':>8} {'x memory':>9}")
    g = torch.Generator().manual_seed(0)
    for shape in shapes:
        ref = reference_seconds(shape, repeats=args.repeats)
        for name, source in candidates.items():
            n = torch.Size(shape).numel()
            if name == "outer-product" and n > 4096:
                continue  # n^2 floats: 4 TB at a million elements
            if name == "power-200" and n > 300_000:
                continue
            fn = compiled(source)
            grad, param = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
            state: dict = {}
            with PeakMemory() as mem:
                fn(grad, param, state, 1e-3, 1)
            seconds = min(cpu_seconds(lambda: fn(grad, param, dict(state), 1e-3, 2)) for _ in range(args.repeats))
            print(f"{str(shape):>16} {name:>16} {seconds:9.4f} {ref:9.4f} {seconds / ref:8.2f} "
                  f"{mem.peak / (4 * n):9.2f}", flush=True)


if __name__ == "__main__":
    main()
