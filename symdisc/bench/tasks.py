"""`symdisc bench --task FILE.py`: optimizers compared on the user's own task files.

Every optimizer's learning rate is tuned alike (bench/tune.py: the log grid widened past an edge,
or TPE) on the task's score with seeds of its own (TUNE_SEEDS, never a reported seed), unless --lr
fixes it or --tuner none keeps its default. Then every optimizer trains through the task's ``train``
with the same seeds (0, 1, ...), each seed's data from ``prepare(seed)``, for the task's STEPS (or
--steps). torch's optimizers and the built-in rules run in this process with the task imported here
(the user's own code); rules written by a model train in the sandbox worker, which imports and
prepares the task before its lock-down (TrainingSandbox.train_task). Every number ``train`` returns
is reported (its mean and standard deviation over seeds per optimizer), and the score is compared
seed by seed between every two optimizers (paired mean difference, 95% interval, paired t and
Wilcoxon p, Holm over the task's pairs).

A task has one score, so tuning and report read the same kind of number (a validation score, as
the task defines it); what keeps the tuning off the reported runs is the seeds: another
initialisation and, where ``prepare`` draws its data by seed, other data.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from symdisc.bench.entries import resolve_entry
from symdisc.config import BenchConfig
from symdisc.errors import UsageError

TUNE_SEEDS = (1000,)  # tuning trials train with these seeds; the reported runs use 0, 1, ...


def _stats(values: list[float]) -> dict:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": None, "std": None}
    mean = sum(finite) / len(finite)
    std = (sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)) ** 0.5 if len(finite) > 1 else 0.0
    return {"mean": mean, "std": std}


def score_pairs(rows: dict) -> list[dict]:
    """Every two optimizers' scores paired by seed (``a - b``, bench/stats.py's ``paired``), with
    Holm's adjustment over the pairs. ``rows``: label -> {"runs": [{"seed", "score", ...}]}."""
    from symdisc.bench.stats import holm, paired

    by_seed = {label: {r["seed"]: r["score"] for r in row["runs"]
                       if r.get("score") is not None and math.isfinite(r["score"])} for label, row in rows.items()}
    labels = list(rows)
    pairs = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            seeds = sorted(set(by_seed[a]) & set(by_seed[b]))
            if len(seeds) < 2:
                continue
            pairs.append({"a": a, "b": b, "metric": "score", "seeds": seeds}
                         | paired([by_seed[a][s] for s in seeds], [by_seed[b][s] for s in seeds]))
    for row, adjusted in zip(pairs, holm([p["p_t"] for p in pairs])):
        row["p_holm"] = adjusted
    return pairs


class _Trainer:
    """One training run of one optimizer on one task and seed: in this process for trusted
    optimizers (the task module imported here, ``prepare`` once per seed), in the sandbox worker for
    model-written rules. Returns the numbers ``train`` returned, or a failure {reason, message}."""

    def __init__(self, task, steps: int, runner, in_process: bool):
        self.task, self.steps, self.runner = task, steps, runner
        self.module = task.module() if in_process else None
        self.data: dict = {}

    def _data(self, seed: int):
        if seed not in self.data:
            prepare = getattr(self.module, "prepare", None)
            try:
                self.data[seed] = prepare(seed) if prepare is not None else None
            except Exception as exc:
                raise UsageError(f"task {self.task.name}: prepare({seed}) raised {type(exc).__name__}: {exc}") from None
        return self.data[seed]

    def forget(self, seed: int) -> None:
        self.data.pop(seed, None)

    def __call__(self, entry, seed: int, lr: float, steps: Optional[int] = None) -> tuple[Optional[dict], Optional[dict]]:
        from symdisc.judge.restricted import CandidateError
        from symdisc.judge.usertask import TaskError, run_train

        steps = steps or self.steps
        if entry.sandboxed:
            answer = self.runner.train_task(entry.code, entry.memory, self.task.name, seed, lr, steps)
            if answer.get("ok") and answer.get("result") is not None:
                return answer["result"], None
            return None, {"reason": answer.get("reason") or "crash", "message": answer.get("message"), "seed": seed}
        try:
            return run_train(self.module, lambda params, lr, e=entry: e.make(params, lr, steps),
                             self._data(seed), seed, lr, steps), None
        except CandidateError as err:
            return None, {"reason": err.reason, "message": err.message, "seed": seed}
        except TaskError as exc:
            return None, {"reason": "task_error", "message": str(exc), "seed": seed}


def _tune(config: BenchConfig, entry, train: "_Trainer", steps: int, say) -> dict:
    """The learning rate of ``entry`` on this task by bench/tune.py's search, each trial the mean score
    over TUNE_SEEDS (a failed or non-finite trial scores -inf)."""
    from symdisc.bench.tune import parse_grid, tune

    def score(lr: float, wd: float) -> float:
        values = []
        for seed in TUNE_SEEDS:
            numbers, _ = train(entry, seed, lr, steps)
            value = None if numbers is None else numbers.get("score")
            if value is None or not math.isfinite(value):
                return -math.inf
            values.append(value)
        return sum(values) / len(values)

    result = tune(score, config.tuner, parse_grid(config.lr_grid), [0.0], config.max_widen, config.tpe_trials)
    for note in result.widened:
        say(f"{entry.label} on {train.task.name}: {note}")
    answer = result.as_dict()
    answer["scores"] = [[lr, wd, s if math.isfinite(s) else None] for lr, wd, s in answer["scores"]]
    if all(s is None for _, _, s in answer["scores"]):
        say(f"{entry.label} on {train.task.name}: no tuning trial scored; it trains at its default lr")
        return dict(answer, lr=float(entry.default_lr), failed=True)
    return answer


def run_task_bench(config: BenchConfig, store, out: Optional[Path] = None, progress=None, say=None) -> dict:
    from symdisc.judge.sandbox import TrainingSandbox
    from symdisc.tasks import load_tasks

    say = say or (lambda message: None)
    if config.suite:
        raise UsageError("--suite and --task FILE.py do not mix")
    if config.tuner not in ("grid", "tpe", "none"):
        raise UsageError(f"unknown tuner {config.tuner!r} (grid, tpe or none)")
    if [float(w) for w in config.weight_decays] != [0.0]:
        raise UsageError("a task file builds its own optimizer call (make_optimizer(params, lr)): --weight-decay "
                         "is for the bench's own tasks")
    if config.tune_epochs is not None or config.tune_subset is not None:
        raise UsageError("a task file counts steps, not epochs or examples: give --tune-steps")
    tasks = load_tasks(list(config.tasks))
    entries = [resolve_entry(s, store, unsandboxed=config.unsandboxed) for s in config.candidates]
    entries += [resolve_entry(s, store, unsandboxed=config.unsandboxed) for s in config.against
                if s not in config.candidates]
    labels = [e.label for e in entries]
    if len(set(labels)) != len(labels):
        raise UsageError("an optimizer is named twice")
    seeds = list(range(config.seeds))
    tuned = [e for e in entries if config.tuner != "none" and e.label not in config.lr]
    runner = None
    if any(e.sandboxed for e in entries):
        worker_seeds = seeds + [s for s in TUNE_SEEDS if any(e.sandboxed for e in tuned)]
        runner = TrainingSandbox(memory_mb=config.sandbox_memory_mb, threads=max(1, config.threads),
                                 epoch_timeout_s=config.epoch_timeout_s,
                                 tasks=[t.worker_spec(worker_seeds) for t in tasks])
        say(f"sandbox: {', '.join(e.label for e in entries if e.sandboxed)} train in a locked-down worker; "
            f"{config.epoch_timeout_s:g} s wall clock per training run")
    run_id = store.create_run("bench", asdict(config))
    out = Path(out) if out else store.path.parent / "bench" / run_id
    report: dict = {"kind": "task-bench", "tasks": {}, "execution": {e.label: e.runs for e in entries},
                    "protocol": {"tuner": config.tuner, "tune_seeds": list(TUNE_SEEDS) if tuned else [],
                                 "seeds": seeds, "fixed_lr": dict(config.lr)}}
    status = "finished"
    try:
        for task in tasks:
            steps = config.steps or task.steps
            train = _Trainer(task, steps, runner, in_process=any(not e.sandboxed for e in entries))
            rows: dict = {e.label: {"lr": float(config.lr.get(e.label, e.default_lr)), "runs": [], "failure": None}
                          for e in entries}
            for entry in tuned:
                bar = progress.add_task(f"{task.name} tuning {entry.label}", total=None) if progress else None
                say(f"tuning {entry.label} on {task.name}: {config.tuner} over the learning rate, "
                    f"{config.tune_steps or steps} steps a trial, seed(s) {', '.join(map(str, TUNE_SEEDS))}")
                rows[entry.label]["tuning"] = result = _tune(config, entry, train, config.tune_steps or steps, say)
                rows[entry.label]["lr"] = float(result["lr"])
                for lr, _, score in result["scores"]:
                    store.add_bench_result(run_id, task=task.name, optimizer=entry.label, seed=TUNE_SEEDS[0], lr=lr,
                                           phase="tune", val_acc=score, diverged=int(score is None))
                if progress:
                    progress.update(bar, visible=False)
            for seed in TUNE_SEEDS:
                train.forget(seed)
            for seed in seeds:
                for entry in entries:
                    row = rows[entry.label]
                    if row["failure"]:
                        continue
                    bar = progress.add_task(f"{task.name} {entry.label} seed {seed}", total=1) if progress else None
                    numbers, row["failure"] = train(entry, seed, row["lr"])
                    if progress:
                        progress.update(bar, completed=1, visible=False)
                    if numbers is None:
                        say(f"{entry.label} on {task.name}: {row['failure']['reason']}: {row['failure']['message']} "
                            f"(seed {seed}); the other optimizers' results are kept")
                        continue
                    row["runs"].append(dict(numbers, seed=seed))
                    store.add_bench_result(run_id, task=task.name, optimizer=entry.label, seed=seed, lr=row["lr"],
                                           steps_per_s=steps / numbers["seconds"] if numbers.get("seconds") else None,
                                           diverged=int(not math.isfinite(numbers["score"])), detail={"numbers": numbers})
                train.forget(seed)
            for row in rows.values():
                keys = sorted({k for r in row["runs"] for k in r if k != "seed"}, key=lambda k: (k != "score", k))
                row["numbers"] = {k: _stats([r.get(k) for r in row["runs"]]) for k in keys}
            report["tasks"][task.name] = {"path": task.path, "steps": steps, "seeds": seeds, "optimizers": rows,
                                          "pairs": score_pairs(rows)}
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        if runner is not None:
            report["sandbox"] = runner.limits()
            runner.close()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=1, default=str))
    report["files"] = {"report": str(path)}
    store.update_run(run_id, status=status, summary_json=report)
    report["id"] = run_id
    report["status"] = status
    return report


def print_task_bench(report: dict, console) -> None:
    from rich.table import Table

    for name, task in report["tasks"].items():
        rows = task["optimizers"]
        keys = []
        for row in rows.values():
            keys += [k for k in row.get("numbers", {}) if k not in keys]
        table = Table(title=f"symdisc bench {report['id']}: task {name} ({task['steps']} steps, "
                            f"{len(task['seeds'])} seeds; mean ± std over seeds)")
        for column in ["optimizer", "lr", *keys]:
            table.add_column(column, justify="left" if column == "optimizer" else "right")
        order = sorted(rows, key=lambda k: -(rows[k]["numbers"].get("score", {}).get("mean") or -math.inf))
        for label in order:
            row = rows[label]
            if row["failure"] and not row["runs"]:
                table.add_row(label, f"{row['lr']:.3g}", f"{row['failure']['reason']}: {row['failure']['message']}"[:60],
                              *[""] * (len(keys) - 1))
                continue
            cells = []
            for k in keys:
                s = row["numbers"].get(k) or {}
                cells.append("" if s.get("mean") is None else f"{s['mean']:.4g} ± {s['std']:.2g}")
            table.add_row(label, f"{row['lr']:.3g}", *cells)
        console.print(table)
        for label, row in rows.items():
            tuning = row.get("tuning")
            if tuning:
                how = "no trial scored: its default" if tuning.get("failed") else (
                    f"{len(tuning['scores'])} {tuning['method']} trials" + (", still on the grid's edge"
                                                                           if tuning.get("on_edge") else ""))
                console.print(f"{label}: lr {row['lr']:.3g} ({how})")
        pairs = task.get("pairs") or []
        if pairs:
            table = Table(title=f"score, paired by seed: a - b, 95% interval, paired t p, Holm over "
                                f"{len(pairs)} pair{'s' if len(pairs) > 1 else ''}")
            for column in ("a - b", "difference", "95% interval", "p", "Holm p"):
                table.add_column(column, justify="left" if column == "a - b" else "right")
            for p in sorted(pairs, key=lambda p: p["p_t"] if p["p_t"] is not None else 2.0):
                interval = "" if p["ci_low"] is None else f"[{p['ci_low']:+.4g}, {p['ci_high']:+.4g}]"
                table.add_row(f"{p['a']} - {p['b']}", f"{p['mean_diff']:+.4g}", interval,
                              "" if p["p_t"] is None else f"{p['p_t']:.2g}",
                              "" if p.get("p_holm") is None else f"{p['p_holm']:.2g}")
            console.print(table)
