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


def _noise(per_seed: list[list[float]]) -> tuple[Optional[float], Optional[float]]:
    """(noise band, seed-to-seed Spearman) of a measure scored per seed on every rule.

    Each seed's column is centred on its mean over rules (the seeds are shared by every rule: what
    is common to a seed is no noise for a comparison); sigma is the mean over rules of the spread of
    what is left. The band is twice the standard error of a difference between two rules' means:
    2 * sigma * sqrt(2 / seeds). Differences inside it are ties."""
    from symdisc.search.funnel import spearman

    rows = [r for r in per_seed if r and len(r) >= 2]
    if len(rows) < 3:
        return None, None
    seeds = min(len(r) for r in rows)
    rows = [r[:seeds] for r in rows]
    means = [sum(r[j] for r in rows) / len(rows) for j in range(seeds)]
    spreads = []
    for r in rows:
        c = [r[j] - means[j] for j in range(seeds)]
        m = sum(c) / seeds
        spreads.append((sum((v - m) ** 2 for v in c) / (seeds - 1)) ** 0.5)
    sigma = sum(spreads) / len(spreads)
    return 2 * sigma * (2 / seeds) ** 0.5, spearman([r[0] for r in rows], [r[1] for r in rows])


def report(journal: Journal, say=print, orders: int = 40) -> dict:
    from symdisc.calibration.fidelity import FIDELITIES, cascade_order, random_orders
    from symdisc.config import CascadeConfig
    from symdisc.search.funnel import ranks, spearman

    rules = library_rules()
    names = [r["name"] for r in rules]
    truth = {}
    for task_name, task in TASKS.items():
        rows = {}
        for rule in rules:
            try:
                rows[rule["name"]] = rule_truth(rule, task, _ReadOnly(journal))
            except KeyError:
                pass
        if len(rows) == len(rules):
            truth[task_name] = rows
    out: dict = {"rules": names, "tasks": {k: dict(vars(v), seeds=list(v.seeds)) for k, v in TASKS.items()},
                 "truth": {}, "fidelities": {}}
    mean_rank = None
    if truth:
        per_task_ranks = [ranks([truth[t][n]["test"] for n in names]) for t in truth]
        mean_rank = [sum(r[i] for r in per_task_ranks) / len(per_task_ranks) for i in range(len(names))]
    for task_name, rows in truth.items():
        band, rho = _noise([rows[n]["per_seed_test"] for n in names])
        others = [t for t in truth if t != task_name]
        out["truth"][task_name] = {
            "test": {n: rows[n]["test"] for n in names}, "lr": {n: rows[n]["lr"] for n in names},
            "noise_band": band, "seed_to_seed_spearman": rho,
            "spearman_vs_other_tasks": {t: spearman([rows[n]["test"] for n in names],
                                                    [truth[t][n]["test"] for n in names]) for t in others}}
    scores = {n: {f: journal.get(f"fid|{f}|{n}") for f in FIDELITIES} for n in names}
    complete = all(all(scores[n][f] is not None for f in FIDELITIES) for n in names)

    def correlations(values: list[float]) -> dict:
        row = {t: spearman(values, [truth[t][n]["test"] for n in names]) for t in truth}
        if mean_rank is not None:
            row["mean_rank"] = spearman(values, mean_rank)
        return row

    if complete:
        for f in FIDELITIES:
            values = [scores[n][f]["score"] for n in names]
            band, rho = _noise([scores[n][f]["per_seed"] for n in names])
            out["fidelities"][f] = dict(correlations(values), noise_band=band, seed_to_seed_spearman=rho,
                                        s_per_candidate=sum(scores[n][f]["s"] for n in names) / len(names),
                                        scores={n: scores[n][f]["score"] for n in names})
        cascade = CascadeConfig()
        rhos, costs, reached_all = [], [], []
        for order in random_orders(names, orders):
            ranking, cost, reached = cascade_order(scores, order, cascade)
            position = {n: -i for i, n in enumerate(ranking)}
            rhos.append(correlations([position[n] for n in names]))
            costs.append(cost)
            reached_all.append(reached)
        keys = rhos[0].keys()
        out["fidelities"]["cascade"] = dict(
            {k: sum(r[k] for r in rhos) / len(rhos) for k in keys},
            spread={k: (min(r[k] for r in rhos), max(r[k] for r in rhos)) for k in keys},
            noise_band=out["fidelities"]["long"]["noise_band"], seed_to_seed_spearman=None,
            s_per_candidate=sum(costs) / len(costs) + out["fidelities"]["proxy"]["s_per_candidate"] * 0,
            reached={s: sum(r[s] for r in reached_all) / len(reached_all) for s in ("proxy", "heldout", "long")},
            orders=orders)
    say(render_table(out))
    return out


class _ReadOnly:
    """A journal view for the report: a missing training is a KeyError, never a new training."""

    def __init__(self, journal: Journal):
        self.journal = journal

    def get(self, key):
        row = self.journal.get(key)
        if row is None:
            raise KeyError(key)
        return row


def render_table(out: dict) -> str:
    tasks = list(out["truth"])
    head = "| fidelity | " + " | ".join(f"Spearman vs {t}" for t in tasks) + \
           (" | vs mean rank" if tasks else "") + " | noise band | seed-to-seed | s/candidate |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    fmt = lambda v: "" if v is None else f"{v:+.2f}"  # noqa: E731
    for name, row in out["fidelities"].items():
        cells = [fmt(row.get(t)) for t in tasks] + ([fmt(row.get("mean_rank"))] if tasks else [])
        band = "" if row.get("noise_band") is None else f"{row['noise_band']:.4f}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {band} | {fmt(row.get('seed_to_seed_spearman'))} | "
                     f"{row['s_per_candidate']:.2f} |")
    for t, row in out["truth"].items():
        band = "" if row.get("noise_band") is None else f"{row['noise_band']:.4f}"
        others = ", ".join(f"{k} {fmt(v)}" for k, v in row["spearman_vs_other_tasks"].items())
        lines.append(f"| ground truth {t} (seed 0 vs seed 1) | | | | {band} | {fmt(row['seed_to_seed_spearman'])} | |"
                     f"  (vs {others})")
    return "\n".join(lines)


def main(argv: Optional[list] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="calibrate")
    parser.add_argument("--dir", default=None)
    parser.add_argument("--phase", action="append", choices=("truth", "fidelity", "report"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the usable cores)")
    args = parser.parse_args(argv)
    import torch

    from symdisc.config import usable_cpus

    torch.set_num_threads(args.threads or usable_cpus())
    folder = Path(args.dir) if args.dir else default_dir()
    journal = Journal(folder / "journal.jsonl")
    phases = args.phase or ["truth", "fidelity", "report"]
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.time()
    if "truth" in phases:
        run_truth(journal, say=say)
    if "fidelity" in phases:
        from symdisc.calibration.fidelity import run_fidelities

        run_fidelities(journal, library_rules(), say=say)
    if "report" in phases:
        result = report(journal, say=lambda m: print(m, flush=True))
        (folder / "calibration.json").write_text(json.dumps(result, indent=1))
        say(f"wrote {folder / 'calibration.json'}")
    say(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
