"""Bench results: summaries over seeds, verdicts against baselines, files and the figure."""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Optional


from symdisc.config import BenchConfig
from symdisc.bench.train import SeedResult


def summarize(results: list[SeedResult]) -> dict:
    by_opt: dict[str, list[SeedResult]] = {}
    for r in results:
        by_opt.setdefault(r.optimizer, []).append(r)
    out = {}
    for name, rs in by_opt.items():
        final = [r.final_acc for r in rs]
        best = [r.best_acc for r in rs]
        out[name] = {
            "seeds": len(rs), "lr": rs[0].lr,
            "final_mean": statistics.mean(final), "final_std": statistics.stdev(final) if len(final) > 1 else 0.0,
            "best_mean": statistics.mean(best), "best_std": statistics.stdev(best) if len(best) > 1 else 0.0,
            "state_bytes": max(r.state_bytes for r in rs), "memory_class": rs[0].memory_class,
            # per parameter tensor: what the scalar class bounds (a few numbers each)
            "state_bytes_per_tensor": (max(r.state_bytes for r in rs) / rs[0].param_tensors
                                       if rs[0].param_tensors else None),
            "steps_per_s": statistics.mean(r.steps_per_s for r in rs), "diverged": sum(r.diverged for r in rs),
            "final_loss": statistics.mean(r.final_loss for r in rs if math.isfinite(r.final_loss)) if any(
                math.isfinite(r.final_loss) for r in rs) else None,
        }
    return out


def verdicts(summary: dict, candidates: list[str], baselines: list[str]) -> list[str]:
    """Plain sentences: is each candidate's difference to each baseline larger than the seed spread?"""
    lines = []
    for c in candidates:
        for b in baselines:
            if c not in summary or b not in summary:
                continue
            sc, sb = summary[c], summary[b]
            diff = sc["final_mean"] - sb["final_mean"]
            spread = max(sc["final_std"], sb["final_std"])
            n = min(sc["seeds"], sb["seeds"])
            if n < 2:
                lines.append(f"{c} vs {b}: {diff:+.4f} final test accuracy from one seed: no spread to judge it by")
            elif abs(diff) <= spread:
                lines.append(f"{c} vs {b}: {diff:+.4f} final test accuracy, inside the seed-to-seed spread "
                             f"({spread:.4f}): no real difference shown")
            else:
                word = "above" if diff > 0 else "below"
                lines.append(f"{c} vs {b}: {diff:+.4f} final test accuracy, {word} {b} by more than the seed "
                             f"spread ({spread:.4f}) over {n} seeds")
    return lines


def evo_fitness(result: SeedResult) -> float:
    """evo-optimizer's task fitness: val accuracy + 0.05 * max(0, 1 - mean loss of the last 50 steps)."""
    loss = result.final_loss if math.isfinite(result.final_loss) else 1.0
    return result.final_acc + 0.05 * max(0.0, 1.0 - loss)


# -- files --------------------------------------------------------------------------------------------
def write_outputs(out: Path, config: BenchConfig, results: list[SeedResult], summary: dict, task: str,
                  extra: Optional[dict] = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "steps.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "optimizer", "seed", "step", "loss"])
        for r in results:
            for i, loss in enumerate(r.losses, start=1):
                w.writerow([task, r.optimizer, r.seed, i, f"{loss:.6g}"])
    with open(out / "evals.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "optimizer", "seed", "step", "epoch", "test_acc"])
        for r in results:
            for step, epoch, acc in r.curve:
                w.writerow([task, r.optimizer, r.seed, step, f"{epoch:.4f}", f"{acc:.6f}"])
    payload = {"config": asdict(config), "task": task, "summary": summary, **(extra or {}),
               "results": [asdict(r) for r in results]}
    (out / "results.json").write_text(json.dumps(payload, indent=1, default=float))
    files = {"steps_csv": str(out / "steps.csv"), "evals_csv": str(out / "evals.csv"),
             "results_json": str(out / "results.json")}
    png = plot(out / "test_accuracy.png", results, task)
    if png:
        files["figure"] = str(png)
    return files


def plot(path: Path, results: list[SeedResult], task: str) -> Optional[Path]:
    from symdisc.bench.figures import mean_band_figure

    series = {}
    for name in dict.fromkeys(r.optimizer for r in results):
        runs = [r for r in results if r.optimizer == name and r.curve]
        if runs:
            length = min(len(r.curve) for r in runs)
            xs = [runs[0].curve[i][1] for i in range(length)]
            series[f"{name} ({len(runs)} seeds)"] = (xs, [[r.curve[i][2] for i in range(length)] for r in runs])
    return mean_band_figure(path, series, "epoch", "test accuracy (clean labels)", f"symdisc bench: {task}",
                            marker="o")




def _report(config, entries, tasks, all_results, lrs_by_task, out: Path, is_suite: bool,
            failures: Optional[dict] = None) -> dict:
    report: dict = {"tasks": {}, "files": {}}
    failures = failures or {}
    candidates = [e.label for e in entries[: len(config.candidates)]]
    baselines = [e.label for e in entries[len(config.candidates):]]
    for task in tasks:
        results = all_results[task]
        failed = failures.get(task, {})
        if not results and not failed:
            continue
        summary = summarize(results)
        for e in entries:
            if e.label in summary:
                summary[e.label]["declared_class"] = e.declared_class
                summary[e.label]["source"] = e.source
        task_out = out / task if len(tasks) > 1 else out
        extra = {"verdicts": verdicts(summary, candidates, baselines), "failed": failed,
                 "execution": {e.label: e.runs for e in entries}}
        if is_suite:
            for name in summary:
                fits = [evo_fitness(r) for r in results if r.optimizer == name]
                summary[name]["evo_fitness"] = statistics.mean(fits)
        report["tasks"][task] = {"summary": summary, "verdicts": extra["verdicts"], "lrs": lrs_by_task.get(task, {}),
                                 "failed": failed}
        report["files"][task] = write_outputs(task_out, config, results, summary, task, extra)
    if is_suite and report["tasks"]:
        names = list(dict.fromkeys(e.label for e in entries))
        report["overall_fitness"] = {
            n: statistics.mean(report["tasks"][t]["summary"][n]["evo_fitness"] for t in report["tasks"]
                               if n in report["tasks"][t]["summary"]) for n in names
            if any(n in report["tasks"][t]["summary"] for t in report["tasks"])}
    return report
