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
from symdisc.bench import stats
from symdisc.bench.train import SeedResult


def _mean_std(values: list) -> tuple:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(results: list[SeedResult]) -> dict:
    by_opt: dict[str, list[SeedResult]] = {}
    for r in results:
        by_opt.setdefault(r.optimizer, []).append(r)
    out = {}
    for name, rs in by_opt.items():
        final_mean, final_std = _mean_std([r.final_acc for r in rs])
        best_mean, best_std = _mean_std([r.best_acc for r in rs])
        early_mean, early_std = _mean_std([r.early_acc for r in rs])
        val_mean, val_std = _mean_std([r.final_val for r in rs])
        state = max(r.state_bytes for r in rs)
        speed = statistics.mean(r.steps_per_s for r in rs)
        out[name] = {
            "seeds": len(rs), "lr": rs[0].lr, "weight_decay": rs[0].weight_decay,
            "steps": max((r.curve[-1][0] for r in rs if r.curve), default=0),
            "final_mean": final_mean, "final_std": final_std,
            "final_by_seed": {r.seed: r.final_acc for r in rs},  # for paired comparisons across runs
            "early_mean": early_mean, "early_std": early_std,  # test accuracy at the best validation score
            "val_mean": val_mean, "val_std": val_std,  # final validation accuracy
            "best_mean": best_mean, "best_std": best_std,  # best test accuracy over evaluations (peeks at the test set)
            "state_bytes": state, "memory_class": rs[0].memory_class,
            # per parameter tensor: what the scalar class bounds (a few numbers each)
            "state_bytes_per_tensor": state / rs[0].param_tensors if rs[0].param_tensors else None,
            # per parameter (number): 8 for Adam's two float32 moments, about 0 for a scalar rule
            "state_bytes_per_param": state / rs[0].param_count if rs[0].param_count else None,
            "steps_per_s": speed, "ms_per_step": 1000.0 / speed if speed else None,
            "diverged": sum(r.diverged for r in rs),
            "final_loss": statistics.mean(r.final_loss for r in rs if math.isfinite(r.final_loss)) if any(
                math.isfinite(r.final_loss) for r in rs) else None,
        }
    return out


def time_to_target(results: list[SeedResult], reference: str) -> Optional[dict]:
    """Steps and training seconds each optimizer needs to reach the reference optimizer's final
    validation score on the same seed (so the reference always reaches it, at the latest at its last
    step): per seed, and the median over seeds (None when half or more of the seeds never reach it)."""
    targets = {r.seed: r.final_val for r in results if r.optimizer == reference and r.final_val is not None}
    if not targets:
        return None
    per: dict = {}
    for r in results:
        if r.seed not in targets:
            continue
        hit = stats.time_to_target(r.val_points, targets[r.seed])
        per.setdefault(r.optimizer, []).append({"seed": r.seed, "target": targets[r.seed],
                                                "step": hit[0] if hit else None, "seconds": hit[1] if hit else None})
    return {"reference": reference, "target_val": statistics.mean(targets.values()), "per_seed_targets": targets,
            "optimizers": {
                name: {"reached": sum(h["step"] is not None for h in hits), "seeds": len(hits),
                       "median_steps": stats.median_or_none([h["step"] for h in hits]),
                       "median_seconds": stats.median_or_none([h["seconds"] for h in hits]), "per_seed": hits}
                for name, hits in per.items()}}


def compare_pairs(results: list[SeedResult], labels: list[str], metric: str = "final_acc") -> list[dict]:
    """Every pair of optimizers on the seeds both finished, ``a - b`` of ``metric``, with Holm's
    correction over the pairs (one family per metric and task)."""
    by = {}
    for r in results:
        value = getattr(r, metric)
        if value is not None and math.isfinite(value):
            by.setdefault(r.optimizer, {})[r.seed] = value
    names = [n for n in labels if n in by]
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            seeds = sorted(set(by[a]) & set(by[b]))
            row = {"a": a, "b": b, "metric": metric, "seeds": seeds}
            row.update(stats.paired([by[a][s] for s in seeds], [by[b][s] for s in seeds]))
            pairs.append(row)
    for row, adjusted in zip(pairs, stats.holm([p["p_t"] for p in pairs])):
        row["p_holm"] = adjusted
    return pairs


def _p(value: Optional[float]) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2g}" if value >= 0.001 else "<0.001"


def verdicts(pairs: list[dict], alpha: float = 0.05) -> list[str]:
    """One sentence per pair: the paired difference, its interval and the corrected p-value."""
    lines = []
    for p in pairs:
        what = "final test accuracy" if p["metric"] == "final_acc" else "early-stopped test accuracy"
        if p["n"] < 2:
            lines.append(f"{p['a']} vs {p['b']}: {p['n']} shared seed(s): too few for an interval or a test")
            continue
        shown = (p["p_holm"] is not None and p["p_holm"] < alpha)
        word = "a difference" if shown else "no difference shown"
        lines.append(f"{p['a']} vs {p['b']}: {p['mean_diff']:+.4f} {what} (95% CI {p['ci_low']:+.4f} to "
                     f"{p['ci_high']:+.4f}; paired t p={_p(p['p_t'])}, Holm p={_p(p['p_holm'])}, Wilcoxon "
                     f"p={_p(p['p_wilcoxon'])}; {p['n']} seeds): {word} at {alpha:g} after Holm's correction")
    return lines


def evo_fitness(result: SeedResult) -> float:
    """evo-optimizer's task fitness: val accuracy + 0.05 * max(0, 1 - mean loss of the last 50 steps)."""
    loss = result.final_loss if math.isfinite(result.final_loss) else 1.0
    return result.final_acc + 0.05 * max(0.0, 1.0 - loss)


# -- files --------------------------------------------------------------------------------------------
def write_outputs(out: Path, config: BenchConfig, results: list[SeedResult], summary: dict, task: str,
                  extra: Optional[dict] = None, tuned: Optional[dict] = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "steps.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "optimizer", "seed", "step", "loss"])
        for r in results:
            for i, loss in enumerate(r.losses, start=1):
                w.writerow([task, r.optimizer, r.seed, i, f"{loss:.6g}"])
    with open(out / "evals.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "optimizer", "seed", "step", "epoch", "train_seconds", "test_acc", "val_acc"])
        for r in results:
            vals = dict(r.val_curve)
            for i, (step, epoch, acc) in enumerate(r.curve):
                secs = r.eval_seconds[i] if i < len(r.eval_seconds) else None
                val = vals.get(step)
                w.writerow([task, r.optimizer, r.seed, step, f"{epoch:.4f}", "" if secs is None else f"{secs:.3f}",
                            f"{acc:.6f}", "" if val is None else f"{val:.6f}"])
    payload = {"config": asdict(config), "task": task, "summary": summary, **(extra or {}),
               "results": [asdict(r) for r in results]}
    (out / "results.json").write_text(json.dumps(payload, indent=1, default=float))
    files = {"steps_csv": str(out / "steps.csv"), "evals_csv": str(out / "evals.csv"),
             "results_json": str(out / "results.json")}
    png = plot(out / "test_accuracy.png", results, task)
    if png:
        files["figure"] = str(png)
    if tuned:
        from symdisc.bench.figures import tuning_figure

        png = tuning_figure(out / "tuning.png", tuned, f"symdisc bench: {task}, tuning on the validation split")
        if png:
            files["tuning_figure"] = str(png)
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


def protocol(config: BenchConfig, reference: str) -> dict:
    """How the numbers were made, in the words the table's caption uses."""
    from symdisc.bench.tune import parse_grid

    grid = parse_grid(config.lr_grid)
    return {
        "tuner": config.tuner, "lr_grid": config.lr_grid, "lr_grid_points": len(grid),
        "lr_grid_range": [min(grid), max(grid)], "max_widen": config.max_widen,
        "tpe_trials": config.tpe_trials if config.tuner == "tpe" else None,
        "weight_decays": list(config.weight_decays), "tune_steps": config.tune_steps,
        "tune_epochs": config.tune_epochs, "tune_subset": config.tune_subset,
        "tuned_on": f"a validation split ({config.val_fraction:g} of the training data, never the test set), seed 0",
        "seeds": config.seeds, "epochs": config.epochs, "steps": config.steps, "subset": config.subset,
        "batch": config.batch, "schedule": config.schedule, "val_fraction": config.val_fraction,
        "reference": reference, "confidence": stats.CONFIDENCE,
        "test": "paired t-test over shared seeds (same initial weights, data order and noisy labels); "
                f"Wilcoxon signed-rank from {stats.WILCOXON_MIN_N} seeds",
        "correction": "Holm (step-down) over all pairs of optimizers in a task, one family per metric",
    }


def profile(tasks: dict, labels: list[str]) -> Optional[dict]:
    """Across several tasks: the performance profile on time to target (seconds, and steps) and a
    summary line per optimizer."""
    if len(tasks) < 2:
        return None
    taus = stats.profile_taus()
    out = {"taus": taus, "by": {}}
    for unit in ("median_seconds", "median_steps"):
        times = {t: {n: (d.get("target") or {}).get("optimizers", {}).get(n, {}).get(unit) for n in labels
                     if n in d["summary"]} for t, d in tasks.items()}
        prof = stats.performance_profile(times, taus)
        out["by"][unit] = {n: p | {"area": stats.profile_area(p["fraction"], taus)} for n, p in prof.items()}
    lines = {}
    for n in labels:
        p = out["by"]["median_seconds"].get(n)
        if p is None:
            continue
        reached = sum(r is not None for r in p["ratios"])
        ranks = []
        for d in tasks.values():
            order = sorted(d["summary"], key=lambda k: -(d["summary"][k]["final_mean"] or 0))
            if n in order:
                ranks.append(order.index(n) + 1)
        finite = [r for r in p["ratios"] if r is not None]
        two = taus.index(min(taus, key=lambda t: abs(t - 2)))
        if finite:
            lines[n] = (f"{n}: reached the target on {reached}/{len(tasks)} tasks; within 1x / 2x of the fastest "
                        f"on {p['fraction'][0]:.0%} / {p['fraction'][two]:.0%} of them; profile area (tau 1-4) "
                        f"{p['area']:.2f}; median time ratio to the fastest {statistics.median(finite):.2f}")
        else:
            lines[n] = f"{n}: reached the target on 0/{len(tasks)} tasks"
        if ranks:
            lines[n] += f"; mean rank of final test accuracy {statistics.mean(ranks):.1f}"
    out["summary"] = lines
    return out


def _report(config, entries, tasks, all_results, chosen_by_task, out: Path, is_suite: bool,
            failures: Optional[dict] = None, tuned: Optional[dict] = None, reference: Optional[str] = None) -> dict:
    report: dict = {"tasks": {}, "files": {}}
    failures = failures or {}
    tuned = tuned or {}
    labels = [e.label for e in entries]
    reference = reference or labels[0]
    report["protocol"] = protocol(config, reference)
    for task in tasks:
        results = sorted(all_results[task], key=lambda r: (labels.index(r.optimizer) if r.optimizer in labels else 99,
                                                         r.seed))
        failed = failures.get(task, {})
        if not results and not failed:
            continue
        summary = summarize(results)
        for e in entries:
            if e.label in summary:
                summary[e.label]["declared_class"] = e.declared_class
                summary[e.label]["source"] = e.source
                summary[e.label]["tuning"] = {k: v for k, v in tuned.get(task, {}).get(e.label, {}).items()
                                              if k != "scores"}
        target = time_to_target(results, reference)
        pairs = {"final": compare_pairs(results, labels, "final_acc"),
                 "early": compare_pairs(results, labels, "early_acc")}
        lines = verdicts(pairs["final"])
        task_out = out / task if len(tasks) > 1 else out
        extra = {"verdicts": lines, "pairs": pairs, "target": target, "tuning": tuned.get(task, {}), "failed": failed,
                 "execution": {e.label: e.runs for e in entries}, "protocol": report["protocol"]}
        if is_suite:
            for name in summary:
                fits = [evo_fitness(r) for r in results if r.optimizer == name]
                summary[name]["evo_fitness"] = statistics.mean(fits)
        report["tasks"][task] = {"summary": summary, "verdicts": lines, "pairs": pairs, "target": target,
                                 "tuning": tuned.get(task, {}), "failed": failed,
                                 "lrs": {k: v[0] for k, v in chosen_by_task.get(task, {}).items()}}
        report["files"][task] = write_outputs(task_out, config, results, summary, task, extra, tuned.get(task))
    report["protocol"]["tuning_is_shorter"] = any(
        t.get("steps") is not None and (t["steps"] < report["tasks"][task]["summary"].get(label, {}).get("steps", 0)
                                        or t.get("shorter_data"))
        for task, per in tuned.items() if task in report["tasks"] for label, t in per.items())
    prof = profile(report["tasks"], labels)
    if prof is not None:
        from symdisc.bench.figures import profile_figure

        png = profile_figure(out / "profile.png", prof, "median_seconds",
                             f"symdisc bench: performance profile over {len(report['tasks'])} tasks (seconds)")
        if png:
            prof["figure"] = str(png)
        report["profile"] = prof
    if is_suite and report["tasks"]:
        names = list(dict.fromkeys(e.label for e in entries))
        report["overall_fitness"] = {
            n: statistics.mean(report["tasks"][t]["summary"][n]["evo_fitness"] for t in report["tasks"]
                               if n in report["tasks"][t]["summary"]) for n in names
            if any(n in report["tasks"][t]["summary"] for t in report["tasks"])}
    return report
