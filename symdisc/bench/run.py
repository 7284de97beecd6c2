"""`symdisc bench`: optimizers compared on real data, tuned alike, rerun on shared seeds.

The protocol, for every task:
1. Tuning: every optimizer gets the same search (a log grid of the learning rate that widens until
   its best is inside, or TPE with a budget past its start-up trials; weight decay as an option),
   trained on the training data less a validation split and scored on that split (never on the
   test set); tuning runs may be shorter than the final ones (fewer steps, a subset).
2. Seeds: the chosen setting trains on ``seeds`` seeds. For a seed, every optimizer starts from
   the same weights, sees the same noisy labels and the same mini-batch order, so two optimizers
   are compared seed by seed (report.py, stats.py).
Every finished cell (task, phase, optimizer, seed, lr, weight decay) is stored at once in the run
database; ``--resume`` serves finished cells from there and trains only the rest.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Callable, Optional

import torch

from symdisc import data as datasets
from symdisc.config import BenchConfig
from symdisc.errors import UsageError
from symdisc.store import held_elsewhere
from symdisc.bench.entries import Entry, resolve_entry
from symdisc.bench.report import _report
from symdisc.bench import train as training  # called through the module, so tests can stand in for it
from symdisc.bench import tune as tuning
from symdisc.bench.train import TASKS, SeedResult, prepare_task, split_validation


def run_steps(config: BenchConfig, n_train: int, steps: Optional[int] = None) -> int:
    """Training steps of one run: ``steps`` (a suite's), else --steps, else --epochs over the data."""
    epoch_len = max(1, n_train // config.batch)
    return steps or config.steps or max(1, int(round((config.epochs or 1) * epoch_len)))


def tune_steps(config: BenchConfig, n_fit: int, final_steps: int) -> int:
    """Steps of one tuning trial: --tune-steps, else --tune-epochs over the tuning data, else as
    long as a final run."""
    if config.tune_steps:
        return config.tune_steps
    if config.tune_epochs:
        return max(1, int(round(config.tune_epochs * max(1, n_fit // config.batch))))
    return final_steps


class Cells:
    """The finished cells of a run, from the database: what a resumed run does not train again."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def find(self, task: str, phase: str, optimizer: str, seed: int, lr: float, wd: float) -> Optional[dict]:
        for r in self.rows:
            if (r["task"], r.get("phase") or "final", r["optimizer"], r["seed"]) == (task, phase, optimizer, seed) \
                    and math.isclose(r["lr"], lr, rel_tol=1e-9) \
                    and math.isclose(r.get("weight_decay") or 0.0, wd, rel_tol=1e-9, abs_tol=1e-15):
                return r
        return None


def result_from_row(row: dict) -> SeedResult:
    """A final cell read back from the database, as the trainer returned it."""
    d = row.get("detail") or {}
    return SeedResult(
        optimizer=row["optimizer"], seed=row["seed"], lr=row["lr"], final_acc=row["final_acc"],
        best_acc=row["best_acc"], final_loss=row["final_loss"] if row["final_loss"] is not None else float("nan"),
        state_bytes=row["state_bytes"], memory_class=row["memory_class"], steps_per_s=row["steps_per_s"],
        diverged=bool(row["diverged"]), curve=[tuple(c) for c in d.get("curve", [])],
        param_tensors=d.get("param_tensors", 0), losses=[float("nan") if v is None else v for v in d.get("losses", [])],
        weight_decay=row.get("weight_decay") or 0.0, param_count=d.get("param_count", 0),
        early_acc=row.get("early_acc"), val_curve=[tuple(c) for c in d.get("val_curve", [])],
        eval_seconds=d.get("eval_seconds", []))


def _finite(value):
    return value if value is not None and math.isfinite(value) else None


def _store_cell(store, run_id: str, task: str, phase: str, result: SeedResult, steps: int) -> None:
    detail = {"curve": result.curve, "val_curve": result.val_curve, "eval_seconds": result.eval_seconds,
              "param_tensors": result.param_tensors, "param_count": result.param_count}
    if phase == "final":
        detail["losses"] = [_finite(v) for v in result.losses]
    store.add_bench_result(
        run_id, task=task, optimizer=result.optimizer, seed=result.seed, lr=result.lr,
        final_acc=result.final_acc if phase == "final" else None,
        best_acc=result.best_acc if phase == "final" else None, final_loss=_finite(result.final_loss),
        state_bytes=result.state_bytes, memory_class=result.memory_class, steps_per_s=result.steps_per_s,
        diverged=int(result.diverged), detail=detail, phase=phase, weight_decay=result.weight_decay,
        val_acc=result.final_val if phase == "final" else (0.0 if result.diverged else result.final_acc),
        early_acc=result.early_acc, steps=steps)


class _Failed(Exception):
    """A sandboxed rule blew a limit: it trains no further."""

    def __init__(self, failure: dict):
        self.failure = failure


def _bar(progress, description: str, total: int):
    if progress is None:
        return None, None
    bar = progress.add_task(description, total=total)
    return bar, (lambda: progress.advance(bar))


def _bar_done(progress, bar, total: int) -> None:
    if progress is not None:
        progress.update(bar, completed=total, visible=False)


def tune_task(task: str, entries: list[Entry], config: BenchConfig, cells: Cells, record: Callable, progress=None,
              subset: Optional[int] = None, steps: Optional[int] = None, failures: Optional[dict] = None,
              say=None) -> tuple[dict, dict]:
    """The chosen (lr, weight decay) of every entry on ``task`` and how each was found."""
    say = say or (lambda m: None)
    failures = {} if failures is None else failures
    wds = list(config.weight_decays) or [0.0]
    chosen, how = {}, {}
    data = None
    for e in entries:
        if e.label in config.lr:
            chosen[e.label] = (float(config.lr[e.label]), wds[0])
            how[e.label] = {"method": "fixed (--lr)", "lr": chosen[e.label][0], "weight_decay": wds[0]}
            continue
        if config.tuner == "none":
            chosen[e.label] = (e.default_lr, wds[0])
            how[e.label] = {"method": "default", "lr": e.default_lr, "weight_decay": wds[0]}
            continue
        if data is None:
            x, y, _, model_kind, _ = prepare_task(task, config, config.tune_subset or subset, 0)
            x_fit, y_fit, x_val, y_val = split_validation(x, y, config.val_fraction, 0)
            n_steps = tune_steps(config, len(x_fit), run_steps(config, len(x_fit), steps))
            data = (x_fit, y_fit, x_val, y_val, model_kind, n_steps)
        x_fit, y_fit, x_val, y_val, model_kind, n_steps = data

        def score(lr: float, wd: float, e=e) -> float:
            row = cells.find(task, "tune", e.label, 0, lr, wd)
            if row is not None:
                return row["val_acc"]
            bar, advance = _bar(progress, f"tune {task} {e.label} lr {lr:.2g}", n_steps)
            result = training.train(e, lr, x_fit, y_fit, x_val, y_val, model_kind, 0, n_steps, config.batch,
                                    eval_every=n_steps, on_step=advance, schedule=config.schedule, weight_decay=wd)
            _bar_done(progress, bar, n_steps)
            if result.verdict:
                raise _Failed({"reason": result.verdict, "message": result.message, "seed": 0, "runs": e.runs,
                               "phase": "tune"})
            record(task, "tune", result, n_steps)
            return 0.0 if result.diverged or not math.isfinite(result.final_acc) else result.final_acc

        say(f"tuning {e.label} on {task}: {config.tuner} search, trials of {n_steps} steps on {len(x_fit)} examples, "
            f"scored on a validation split of {len(x_val)}")
        try:
            found = tuning.tune(score, config.tuner, tuning.parse_grid(config.lr_grid), wds, config.max_widen,
                                config.tpe_trials)
        except _Failed as stop:
            failures[e.label] = stop.failure
            continue
        for note in found.widened:
            say(f"{e.label} on {task}: {note}")
        chosen[e.label] = (found.lr, found.weight_decay)
        how[e.label] = found.as_dict() | {"steps": n_steps, "examples": len(x_fit), "validation": len(x_val),
                                          "shorter_data": bool(config.tune_subset and config.tune_subset < (subset or 1e18))}
    return chosen, how


def run_task(task: str, entries: list[Entry], config: BenchConfig, chosen: dict, progress=None,
             on_result: Optional[Callable] = None, steps: Optional[int] = None, subset: Optional[int] = None,
             failures: Optional[dict] = None, cells: Optional[Cells] = None) -> list[SeedResult]:
    """Every entry on every seed at its chosen setting. A sandboxed rule that blows a limit gets a
    verdict in ``failures`` (label -> {reason, message, seed}) and trains no further seeds."""
    results: list[SeedResult] = []
    failures = {} if failures is None else failures
    cells = cells or Cells([])
    for seed in range(config.seeds):
        x, y, ds, model_kind, noise = prepare_task(task, config, subset, seed)
        x_fit, y_fit, x_val, y_val = split_validation(x, y, config.val_fraction, seed)
        epoch_len = max(1, len(x_fit) // config.batch)
        total = run_steps(config, len(x_fit), steps)
        eval_every = max(1, min(total, epoch_len // max(1, config.evals_per_epoch)))
        for entry in entries:
            if entry.label in failures or entry.label not in chosen:
                continue
            lr, wd = chosen[entry.label]
            row = cells.find(task, "final", entry.label, seed, lr, wd)
            if row is not None:
                results.append(result_from_row(row))
                continue
            bar, advance = _bar(progress, f"{task} {entry.label} seed {seed}", total)
            result = training.train(entry, lr, x_fit, y_fit, ds.x_test, ds.y_test, model_kind, seed, total,
                                    config.batch, eval_every, advance, config.schedule, x_val=x_val, y_val=y_val,
                                    weight_decay=wd)
            _bar_done(progress, bar, total)
            if result.verdict:
                failures[entry.label] = {"reason": result.verdict, "message": result.message, "seed": seed,
                                         "runs": entry.runs}
                continue
            results.append(result)
            if on_result:
                on_result(task, "final", result, total)
    return results


def _resumed(store, run_id: str) -> tuple[str, BenchConfig, Cells]:
    run = store.get_run(run_id, kind="bench")
    if held_elsewhere(run):
        raise UsageError(f"bench {run['id']} is still running (pid {run['pid']}); stop it before resuming")
    known = {f.name for f in fields(BenchConfig)}
    config = BenchConfig(**{k: v for k, v in (run["config"] or {}).items() if k in known})
    if config.tasks:
        raise UsageError(f"bench {run['id']} ran task files; --resume continues the bench's own tasks only")
    store.update_run(run["id"], status="running", pid=os.getpid())
    return run["id"], config, Cells(store.bench_results(run["id"]))


def run_bench(config: Optional[BenchConfig], store, out: Optional[Path] = None, progress=None, say=None,
              resume: Optional[str] = None) -> dict:
    """Resolve, tune, train every optimizer on every seed, write files, store the run. With
    ``resume`` (a bench run id), the stored config is used and finished cells are not trained again."""
    from symdisc.judge.sandbox import TrainingSandbox

    say = say or (lambda message: None)
    cells = Cells([])
    if resume is not None:
        run_id, config, cells = _resumed(store, resume)
        say(f"resuming bench {run_id}: {len(cells.rows)} finished cell(s) kept")
    assert config is not None
    if config.tuner not in ("grid", "tpe", "none"):
        raise UsageError(f"--tuner must be grid, tpe or none, not {config.tuner!r}")
    tuning.parse_grid(config.lr_grid)  # a bad grid fails before any training
    torch.set_num_threads(max(1, config.threads))
    unsafe = config.unsandboxed
    entries = [resolve_entry(spec, store, unsandboxed=unsafe) for spec in config.candidates]
    entries += [resolve_entry(spec, store, unsandboxed=unsafe) for spec in config.against if spec not in config.candidates]
    labels = [e.label for e in entries]
    if len(set(labels)) != len(labels):
        raise UsageError("an optimizer is named twice")
    reference = config.reference or next((e.label for e in entries[len(config.candidates):]), None) or \
        ("adam" if "adam" in labels else labels[0])
    if reference not in labels:
        raise UsageError(f"the reference {reference!r} is not one of the optimizers compared ({', '.join(labels)})")
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
    tasks = list(suite["tasks"]) if suite else [t for t in config.task.split(",") if t]
    for t in tasks:
        if t not in TASKS:
            raise UsageError(f"unknown task {t!r} (one of {', '.join(TASKS)})")
    if suite:
        config.seeds = suite["seeds"]
        missing = [t for t in tasks if datasets.locate(TASKS[t][0], Path(config.data_dir) if config.data_dir else None) is None]
        for t in missing:
            say(f"skipping {t}: {TASKS[t][0]} is not available ({datasets.HOW_TO_GET[TASKS[t][0]]})")
        tasks = [t for t in tasks if t not in missing]
        if not tasks:
            raise UsageError("no data set of the suite is available; see `symdisc data status`")

    if resume is None:
        run_id = store.create_run("bench", asdict(config))
    out = Path(out) if out else store.path.parent / "bench" / run_id
    all_results: dict[str, list[SeedResult]] = {t: [] for t in tasks}
    all_failures: dict[str, dict] = {t: {} for t in tasks}
    tuned: dict[str, dict] = {}
    chosen_by_task: dict[str, dict] = {}
    status = "finished"

    def record(task_name, phase, result, steps, run_id=run_id):
        _store_cell(store, run_id, task_name, phase, result, steps)

    try:
        for task in tasks:
            subset = suite["subset"] if suite else config.subset
            steps = suite["steps"] if suite else None
            chosen, how = tune_task(task, entries, config, cells, record, progress, subset, steps,
                                    all_failures[task], say)
            chosen_by_task[task], tuned[task] = chosen, how
            run_task(task, entries, config, chosen, progress, record, steps=steps, subset=subset,
                     failures=all_failures[task], cells=cells)
            for label, failure in all_failures[task].items():
                say(f"{label} on {task}: {failure['reason']}: {failure['message']} (seed {failure['seed']}); "
                    "the other optimizers' results are kept")
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        if runner is not None:
            sandbox_limits = runner.limits()
            runner.close()
    for row in store.bench_results(run_id):  # every finished seed, this run's and a stopped run's
        setting = chosen_by_task.get(row["task"], {}).get(row["optimizer"])
        if (row.get("phase") or "final") == "final" and setting is not None \
                and math.isclose(row["lr"], setting[0], rel_tol=1e-9):
            all_results[row["task"]].append(result_from_row(row))
    report = _report(config, entries, tasks, all_results, chosen_by_task, out, suite is not None, all_failures,
                     tuned=tuned, reference=reference)
    report["execution"] = {e.label: e.runs for e in entries}
    if runner is not None:
        report["sandbox"] = sandbox_limits
    store.update_run(run_id, status=status, summary_json={k: v for k, v in report.items() if k != "files"} | {"files": report["files"]})
    report["id"] = run_id
    report["status"] = status
    return report
