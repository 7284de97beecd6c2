"""`symdisc bench`: optimizers compared on real data, with the same budget for everyone.

Every optimizer trains the same model from the same initial weights, on the same noisy labels and
the same mini-batch order for a given seed (a paired comparison); learning rates are each
optimizer's documented default, or the result of the same Optuna TPE budget on a validation split
carved from the training set (never the test set). Results are written as they finish, so Ctrl-C
keeps every finished seed.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

import torch

from symdisc import data as datasets
from symdisc.config import BenchConfig
from symdisc.errors import UsageError
from symdisc.bench.entries import Entry, resolve_entry
from symdisc.bench.report import _report
from symdisc.bench import train as training  # called through the module, so tests can stand in for it
from symdisc.bench.train import TASKS, SeedResult, prepare_task


def run_steps(config: BenchConfig, n_train: int, steps: Optional[int] = None) -> int:
    """Training steps of one run: ``steps`` (a suite's), else --steps, else --epochs over the data."""
    epoch_len = max(1, n_train // config.batch)
    return steps or config.steps or max(1, int(round((config.epochs or 1) * epoch_len)))


def run_task(task: str, entries: list[Entry], config: BenchConfig, lrs: dict, progress=None,
             on_result: Optional[Callable] = None, steps: Optional[int] = None, subset: Optional[int] = None,
             failures: Optional[dict] = None):
    """Every entry on every seed. A sandboxed rule that blows a limit gets a verdict in ``failures``
    (label -> {reason, message, seed}) and trains no further seeds; the others carry on."""
    results: list[SeedResult] = []
    failures = {} if failures is None else failures
    for seed in range(config.seeds):
        x_train, y_train, ds, model_kind, noise = prepare_task(task, config, subset, seed)
        epoch_len = max(1, len(x_train) // config.batch)
        total = run_steps(config, len(x_train), steps)
        eval_every = max(1, min(total, epoch_len // max(1, config.evals_per_epoch)))
        for entry in entries:
            if entry.label in failures:
                continue
            bar = progress.add_task(f"{task} {entry.label} seed {seed}", total=total) if progress else None
            advance = (lambda b=bar: progress.advance(b)) if progress else None
            result = training.train(entry, lrs[entry.label], x_train, y_train, ds.x_test, ds.y_test, model_kind, seed, total,
                           config.batch, eval_every, advance, config.schedule)
            if progress:
                progress.update(bar, completed=total, visible=False)
            if result.verdict:
                failures[entry.label] = {"reason": result.verdict, "message": result.message, "seed": seed,
                                         "runs": entry.runs}
                continue
            results.append(result)
            if on_result:
                on_result(task, result)
    return results


def run_bench(config: BenchConfig, store, out: Optional[Path] = None, progress=None, say=None) -> dict:
    """Resolve, tune (optionally), train every optimizer on every seed, write files, store the run."""
    from symdisc.judge.sandbox import TrainingSandbox

    say = say or (lambda message: None)
    torch.set_num_threads(max(1, config.threads))
    unsafe = config.unsandboxed
    entries = [resolve_entry(spec, store, unsandboxed=unsafe) for spec in config.candidates]
    entries += [resolve_entry(spec, store, unsandboxed=unsafe) for spec in config.against if spec not in config.candidates]
    labels = [e.label for e in entries]
    if len(set(labels)) != len(labels):
        raise UsageError("an optimizer is named twice")
    full_batch = [e.label for e in entries if e.full_batch]
    if full_batch and (config.suite or not config.subset or config.batch < config.subset):
        raise UsageError(f"{', '.join(full_batch)} steps on the whole training set: give --subset N and --batch N "
                         "(or larger), e.g. --subset 2048 --batch 2048")
    runner = None
    if any(e.sandboxed for e in entries):
        runner = TrainingSandbox(memory_mb=config.sandbox_memory_mb, threads=max(1, config.threads),
                                 epoch_timeout_s=config.epoch_timeout_s)
        for e in entries:
            if e.sandboxed:
                e.runner = runner
        lim = runner.limits()
        say(f"sandbox: {', '.join(e.label for e in entries if e.sandboxed)} train in a locked-down worker "
            f"({lim['isolation']} network isolation, {lim['threads']} thread(s), {lim['memory_mb']} MB address space "
            f"beyond the loaded data, {lim['epoch_timeout_s']:g} s wall clock per epoch)")
    for e in entries:
        if e.code is not None and not e.sandboxed:
            say(f"UNSANDBOXED: {e.label} runs in this process with your privileges (--unsandboxed)")
        elif e.runs.startswith("in-process: your own"):
            say(f"{e.label}: your own torch.optim.Optimizer class, run in this process as your code (not sandboxed)")
    suite = training.SUITES.get(config.suite) if config.suite else None
    if config.suite and suite is None:
        raise UsageError(f"unknown suite {config.suite!r} (one of {', '.join(training.SUITES)})")
    tasks = list(suite["tasks"]) if suite else [config.task]
    if suite:
        config.seeds = suite["seeds"]
        missing = [t for t in tasks if datasets.locate(TASKS[t][0], Path(config.data_dir) if config.data_dir else None) is None]
        for t in missing:
            say(f"skipping {t}: {TASKS[t][0]} is not available ({datasets.HOW_TO_GET[TASKS[t][0]]})")
        tasks = [t for t in tasks if t not in missing]
        if not tasks:
            raise UsageError("no data set of the suite is available; see `symdisc data status`")

    run_id = store.create_run("bench", asdict(config))
    out = Path(out) if out else store.path.parent / "bench" / run_id
    all_results: dict[str, list[SeedResult]] = {t: [] for t in tasks}
    all_failures: dict[str, dict] = {t: {} for t in tasks}
    lrs_by_task: dict[str, dict] = {}
    status = "finished"
    try:
        for task in tasks:
            lrs = {}
            for e in entries:
                if e.label in config.lr:
                    lrs[e.label] = float(config.lr[e.label])
                elif config.tune:
                    x_train, y_train, _, model_kind, _ = prepare_task(task, config, suite["subset"] if suite else config.subset, 0)
                    trial_steps = config.tune_steps or run_steps(config, len(x_train), suite["steps"] if suite else None)
                    say(f"tuning {e.label} on {task}: {config.tune} TPE trials of {trial_steps} steps")
                    lrs[e.label] = training.tune_lr(e, config.tune, x_train, y_train, model_kind, trial_steps, config.batch,
                                                       schedule=config.schedule)
                else:
                    lrs[e.label] = e.default_lr
            lrs_by_task[task] = lrs

            def record(task_name, result, run_id=run_id):
                all_results[task_name].append(result)
                store.add_bench_result(run_id, task=task_name, optimizer=result.optimizer, seed=result.seed,
                                       lr=result.lr, final_acc=result.final_acc, best_acc=result.best_acc,
                                       final_loss=result.final_loss if math.isfinite(result.final_loss) else None,
                                       state_bytes=result.state_bytes, memory_class=result.memory_class,
                                       steps_per_s=result.steps_per_s, diverged=int(result.diverged),
                                       detail={"curve": result.curve})

            run_task(task, entries, config, lrs, progress, record, steps=suite["steps"] if suite else None,
                     subset=suite["subset"] if suite else config.subset, failures=all_failures[task])
            for label, failure in all_failures[task].items():
                say(f"{label} on {task}: {failure['reason']}: {failure['message']} (seed {failure['seed']}); "
                    "the other optimizers' results are kept")
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        if runner is not None:
            sandbox_limits = runner.limits()
            runner.close()
    report = _report(config, entries, tasks, all_results, lrs_by_task, out, suite is not None, all_failures)
    report["execution"] = {e.label: e.runs for e in entries}
    if runner is not None:
        report["sandbox"] = sandbox_limits
    store.update_run(run_id, status=status, summary_json={k: v for k, v in report.items() if k != "files"} | {"files": report["files"]})
    report["id"] = run_id
    report["status"] = status
    return report
