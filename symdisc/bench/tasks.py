"""`symdisc bench --task FILE.py`: optimizers compared on the user's own task files.

Every optimizer trains through the task's ``train`` with the same seeds (0, 1, ...), each seed's
data from ``prepare(seed)``, for the task's STEPS (or --steps), at its fixed learning rate (--lr,
else its default). torch's optimizers and the built-in rules run in this process with the task
imported here (the user's own code); rules written by a model train in the sandbox worker, which
imports and prepares the task before its lock-down (TrainingSandbox.train_task). Every number
``train`` returns is reported: its mean and standard deviation over seeds per optimizer.
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


def _stats(values: list[float]) -> dict:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": None, "std": None}
    mean = sum(finite) / len(finite)
    std = (sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)) ** 0.5 if len(finite) > 1 else 0.0
    return {"mean": mean, "std": std}


def run_task_bench(config: BenchConfig, store, out: Optional[Path] = None, progress=None, say=None) -> dict:
    from symdisc.judge.sandbox import TrainingSandbox
    from symdisc.judge.usertask import TaskError, run_train
    from symdisc.judge.restricted import CandidateError
    from symdisc.tasks import load_tasks

    say = say or (lambda message: None)
    if config.tune:
        raise UsageError("--tune is not available on task files yet: give --lr NAME=VALUE")
    if config.suite:
        raise UsageError("--suite and --task FILE.py do not mix")
    tasks = load_tasks(list(config.tasks))
    entries = [resolve_entry(s, store, unsandboxed=config.unsandboxed) for s in config.candidates]
    entries += [resolve_entry(s, store, unsandboxed=config.unsandboxed) for s in config.against
                if s not in config.candidates]
    labels = [e.label for e in entries]
    if len(set(labels)) != len(labels):
        raise UsageError("an optimizer is named twice")
    seeds = list(range(config.seeds))
    runner = None
    if any(e.sandboxed for e in entries):
        runner = TrainingSandbox(memory_mb=config.sandbox_memory_mb, threads=max(1, config.threads),
                                 epoch_timeout_s=config.epoch_timeout_s, tasks=[t.worker_spec(seeds) for t in tasks])
        say(f"sandbox: {', '.join(e.label for e in entries if e.sandboxed)} train in a locked-down worker; "
            f"{config.epoch_timeout_s:g} s wall clock per training run")
    run_id = store.create_run("bench", asdict(config))
    out = Path(out) if out else store.path.parent / "bench" / run_id
    report: dict = {"kind": "task-bench", "tasks": {}, "execution": {e.label: e.runs for e in entries}}
    status = "finished"
    try:
        for task in tasks:
            steps = config.steps or task.steps
            module = task.module() if any(not e.sandboxed for e in entries) else None
            rows: dict = {e.label: {"lr": float(config.lr.get(e.label, e.default_lr)), "runs": [], "failure": None}
                          for e in entries}
            for seed in seeds:
                data = None
                if module is not None:
                    prepare = getattr(module, "prepare", None)
                    try:
                        data = prepare(seed) if prepare is not None else None
                    except Exception as exc:
                        raise UsageError(f"task {task.name}: prepare({seed}) raised {type(exc).__name__}: {exc}") from None
                for entry in entries:
                    row = rows[entry.label]
                    if row["failure"]:
                        continue
                    bar = progress.add_task(f"{task.name} {entry.label} seed {seed}", total=1) if progress else None
                    if entry.sandboxed:
                        answer = runner.train_task(entry.code, entry.memory, task.name, seed, row["lr"], steps)
                        numbers = answer.get("result") if answer.get("ok") else None
                        if numbers is None:
                            row["failure"] = {"reason": answer.get("reason") or "crash",
                                              "message": answer.get("message"), "seed": seed}
                    else:
                        try:
                            numbers = run_train(module, lambda params, lr, e=entry: e.make(params, lr, steps),
                                                data, seed, row["lr"], steps)
                        except CandidateError as err:
                            numbers, row["failure"] = None, {"reason": err.reason, "message": err.message, "seed": seed}
                        except TaskError as exc:
                            numbers, row["failure"] = None, {"reason": "task_error", "message": str(exc), "seed": seed}
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
            for row in rows.values():
                keys = sorted({k for r in row["runs"] for k in r if k != "seed"}, key=lambda k: (k != "score", k))
                row["numbers"] = {k: _stats([r.get(k) for r in row["runs"]]) for k in keys}
            report["tasks"][task.name] = {"path": task.path, "steps": steps, "seeds": seeds, "optimizers": rows}
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
