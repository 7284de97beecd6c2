"""Test-set evaluation cost of the bench's small CNN by evaluation batch size, side by side.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/eval_batch.py [--rounds 3]

Sizes are interleaved round by round, so load on the shared machine hits them alike; the answer
(correct count) must be the same for every size.
"""

import argparse
import statistics
import time

import torch

from symdisc.judge.training import accuracy, make_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = make_model("cnn28")
    x, y = torch.randn(10_000, 1, 28, 28), torch.randint(0, 10, (10_000,))
    sizes = (2000, 1000, 500, 250)
    times: dict = {b: [] for b in sizes}
    answers = set()
    for _ in range(args.rounds):
        for b in sizes:
            t0 = time.perf_counter()
            answers.add(accuracy(model, x, y, batch=b))
            times[b].append(time.perf_counter() - t0)
    assert len(answers) == 1, answers
    for b in sizes:
        print(f"batch {b:5d}: median {statistics.median(times[b]):.3f} s for 10,000 images ({args.threads} threads)")


if __name__ == "__main__":
    main()
