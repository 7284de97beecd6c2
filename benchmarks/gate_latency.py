"""Gate latency: 1,000 mixed candidates through one running gate process, and in-process.

Run: .venv/bin/python benchmarks/gate_latency.py [--n 1000] [--seed 0]

The candidates mix valid rules of varied size (the built-in rules, and generated ones with helper
functions, constants and loops), candidates the gate rejects for every kind of reason, and model
junk (prose around fences, several blocks, truncated code, prose only). The gate process is started
and warmed up before timing, so the numbers are round trips only (JSON over a pipe + the gate).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from symdisc import rules  # noqa: E402
from symdisc.contract import BUFFERS, SCALAR  # noqa: E402
from symdisc.judge.gate import check_reply  # noqa: E402
from symdisc.judge.gateproc import GateClient  # noqa: E402

H = "def update(grad, param, state, lr, t):\n"

EXPRESSIONS = [
    "torch.sign(grad)", "grad", "torch.tanh(grad)", "grad / (grad.norm() + 1e-8)",
    "torch.clamp(grad, -1.0, 1.0)", "grad * torch.sigmoid(grad)", "torch.sign(grad) * grad.abs().sqrt()",
    "grad - 0.1 * param", "torch.where(grad.abs() > 1.0, torch.sign(grad), grad)",
]

REJECTED = [
    "import os\n" + H + "    return lr * grad\n",
    H + "    return lr * torch.os.getcwd()\n",
    H + "    return lr * grad.__class__(grad)\n",
    H + "    return lr * eval('grad')\n",
    H + "    return lr * grad.numpy()\n",
    H + "    grad.mul_(lr)\n    return grad\n",
    H + "    grad[0] = 0.0\n    return lr * grad\n",
    H + "    param.memo = grad\n    return lr * grad\n",
    H + "    state['m'] = grad\n    return lr * grad\n",
    H + "    s = state\n    return lr * grad\n",
    "CACHE = []\n" + H + "    return lr * grad\n",
    H + "    global X\n    return lr * grad\n",
    "def h(x):\n    return h(x)\n\n\n" + H + "    return lr * h(grad)\n",
    H + "    while True:\n        pass\n    return lr * grad\n",
    H + "    return lr * grad * 10**10**10\n",
    H + "    return lr * (grad @ grad)\n",
    H + "    k = f'{t}'\n    return lr * grad\n",
    H + "    try:\n        x = grad\n    except Exception:\n        x = 0\n    return lr * x\n",
    "def update(g, p, s, lr, t):\n    return lr * g\n",
    H + "    return lr * (grad\n",
    "def step(grad, param, state, lr, t):\n    return lr * grad\n",
    H + "    return lr * grad\n\n\n" + H + "    return lr * grad\n",
    H + "    f = lambda x: x\n    return lr * f(grad)\n",
    H + "    return torch.sign(grad, out=grad)\n",
    rules.source("adam"),  # stateful in the scalar class
]

JUNK = [
    "",
    "I would simply use Adam with lr = 3e-4.",
    "```python\n" + H + "    m = state.get('m',",
    H + "    return lr\x00 * grad\n",
    "```python\nclass Opt:\n    def step(self):\n        pass\n```",
    "Here is a usage example:\n```python\nprint(update(g, p, {}, 0.1, 1))\n```",
    "x" * 30_000,
]

PROSE = ["Here is my proposal.", "Sure! This rule normalises the gradient.", "I tried to keep the state small.",
         "The idea: a sign step damped by a running statistic.", ""]


def valid_rule(rng: random.Random) -> str:
    """A valid rule with 0-4 helpers, 0-3 constants and an optional loop: 5 to ~60 lines."""
    parts = [f"C{i} = {rng.choice([0.9, 0.99, 1e-8, 0.5, 2.0])}\n" for i in range(rng.randint(0, 3))]
    helpers = []
    for i in range(rng.randint(0, 4)):
        expr = rng.choice(EXPRESSIONS).replace("grad", "x").replace("param", "x")
        helpers.append(f"h{i}")
        parts.append(f"\n\ndef h{i}(x, scale=1.0):\n    y = {expr}\n    return scale * y\n")
    lines = ["    s = " + rng.choice(EXPRESSIONS)]
    for name in helpers:
        lines.append(f"    s = 0.5 * s + 0.5 * {name}(s)")
    if rng.random() < 0.5:
        lines.append(f"    for i in range({rng.randint(1, 8)}):")
        lines.append("        s = 0.9 * s + 0.1 * torch.tanh(s)")
    if rng.random() < 0.6:
        lines.append("    r = torch.median(torch.abs(s)).item()")
        lines.append("    state['r'] = 0.9 * state.get('r', r) + 0.1 * r")
        lines.append("    s = s / (state['r'] + 1e-8)")
    lines.append("    return lr * s")
    return "".join(parts) + "\n\n" + H + "\n".join(lines) + "\n"


def wrap(code: str, rng: random.Random) -> str:
    """Dress code the way models do: bare, fenced with prose, or among other blocks."""
    style = rng.randrange(4)
    if style == 0:
        return code
    if style == 1:
        return f"{rng.choice(PROSE)}\n\n```python\n{code}```\n\n{rng.choice(PROSE)}"
    if style == 2:
        return f"```python\nx = compute()\n```\nThen the rule:\n```python\n{code}```\n"
    return f"{rng.choice(PROSE)}\n{code}\n{rng.choice(PROSE)}"


def candidates(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    builtin = [rules.source(name) for name in rules.names()]
    out = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.45:
            code = rng.choice(builtin) if rng.random() < 0.2 else valid_rule(rng)
            reply = wrap(code, rng)
        elif kind < 0.85:
            reply = wrap(rng.choice(REJECTED), rng)
        else:
            reply = rng.choice(JUNK)
        out.append((reply, BUFFERS if rng.random() < 0.2 else SCALAR))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    items = candidates(args.n, args.seed)

    with GateClient() as gate:  # start-up happens here, outside the timing
        for reply, memory in items[:20]:
            gate.check(reply, memory)  # warm-up: first-call imports and caches
        round_trips, verdicts = [], Counter()
        for reply, memory in items:
            t0 = time.perf_counter()
            result = gate.check(reply, memory)
            round_trips.append((time.perf_counter() - t0) * 1e3)
            verdicts["ok" if result.verdict.ok else result.verdict.reason] += 1
        restarts = gate.restarts

    in_process = []
    for reply, memory in items:
        t0 = time.perf_counter()
        check_reply(reply, memory)
        in_process.append((time.perf_counter() - t0) * 1e3)

    accepted = verdicts.pop("ok", 0)
    print(f"gate round trip over {len(items)} candidates: median {statistics.median(round_trips):.3f} ms, "
          f"p99 {percentile(round_trips, 99):.3f} ms, max {max(round_trips):.3f} ms")
    print(f"in-process check_reply over {len(items)} candidates: median {statistics.median(in_process):.3f} ms, "
          f"p99 {percentile(in_process, 99):.3f} ms")
    print(f"accepted {accepted}, rejected {sum(verdicts.values())} "
          f"({', '.join(f'{k} {v}' for k, v in verdicts.most_common())}); gate restarts {restarts}")


if __name__ == "__main__":
    main()
