"""`symdisc bench` and `symdisc data ...`: optimizers on real data."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from symdisc.errors import UsageError
from symdisc.cli.base import _open_store, _print_json, _stderr, app
from symdisc.cli.render import print_bench


data_app = typer.Typer(no_args_is_help=True, help="Data sets for symdisc bench.")
app.add_typer(data_app, name="data")


@app.command()
def bench(
    candidates: list[str] = typer.Argument(..., help="Optimizers to test: a built-in name, a RUN_ID (its best), a CANDIDATE_ID, or a .py file."),
    against: str = typer.Option("adam", help="Comma-separated baselines (built-in names or the same kinds as CANDIDATE)."),
    task: Optional[list[str]] = typer.Option(None, "--task", help="fmnist-noisy (default), fmnist, mnist or cifar10 "
                                             "(the bench's CNN, test accuracy), or task files: a PATH.py or a built-in "
                                             "task file's name (mnist-noisy, lm-chars), repeatable; every number "
                                             "their train returns is reported."),
    noise: Optional[float] = typer.Option(None, help="Training-label noise rate (default: the task's, 0.2 for fmnist-noisy)."),
    seeds: int = typer.Option(3, help="Seeds per optimizer."),
    epochs: Optional[float] = typer.Option(None, help="Training length in epochs (default 3)."),
    steps: Optional[int] = typer.Option(None, help="Training length in steps (instead of --epochs)."),
    tune: int = typer.Option(0, help="Optuna TPE trials per optimizer for the learning rate (0: documented defaults)."),
    tune_steps: Optional[int] = typer.Option(None, "--tune-steps", help="Training steps per tuning trial (default: as "
                                             "long as the run, so the search and the run see the same schedule; "
                                             "short trials favour large learning rates)."),
    lr: list[str] = typer.Option([], "--lr", help="NAME=VALUE: a fixed learning rate for one optimizer (repeatable)."),
    batch: int = typer.Option(128, help="Mini-batch size."),
    subset: Optional[int] = typer.Option(None, help="Train on a random subset of this many examples."),
    suite: Optional[str] = typer.Option(None, help="evo-optimizer: that project's protocol and table."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Where local data sets live (CIFAR-10)."),
    evals: int = typer.Option(1, "--evals-per-epoch", help="Test-set evaluations per epoch."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: runs/bench/RUN_ID)."),
    unsandboxed: bool = typer.Option(False, "--unsandboxed", help="Train rules from a model, a run, a candidate or a "
                                     "contract-form file in this process instead of the sandbox worker (faster; only "
                                     "for code you have read)."),
    sandbox_memory: int = typer.Option(4096, "--sandbox-memory", help="MB of address space for the sandboxed training "
                                       "worker beyond its loaded data."),
    epoch_timeout: float = typer.Option(600.0, "--epoch-timeout", help="Wall-clock seconds per epoch for a sandboxed "
                                        "rule; past it the worker is killed and the rule gets a timeout verdict."),
    schedule: str = typer.Option("constant", "--schedule", help="Learning-rate schedule for every optimizer alike, "
                                 "built-in or discovered: constant, or warmup-cosine (5% linear warmup, cosine decay "
                                 "to the run's length)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Train real models with discovered and classic optimizers and compare them fairly.

    Rules written by a model (a RUN_ID, a CANDIDATE_ID, a contract-form .py) train inside the
    sandbox worker; torch's optimizers, the built-in rules and a .py that defines its own
    torch.optim.Optimizer run in this process."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from symdisc.bench.run import run_bench
    from symdisc.config import BenchConfig

    if epochs is not None and steps is not None:
        raise UsageError("give --epochs or --steps, not both")
    from symdisc.config import SCHEDULES

    if schedule not in SCHEDULES:
        raise UsageError(f"--schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    fixed = {}
    for item in lr:
        name, _, value = item.partition("=")
        try:
            fixed[name] = float(value)
        except ValueError:
            raise UsageError(f"--lr wants NAME=VALUE, got {item!r}") from None
    from symdisc.bench.train import TASKS

    task = list(task or ["fmnist-noisy"])
    files = [t for t in task if t not in TASKS]
    if files and len(files) != len(task):
        raise UsageError("give either the bench's own tasks (fmnist-noisy, fmnist, mnist, cifar10) or task files, not both")
    if not files and len(task) > 1:
        raise UsageError("one bench task at a time (or --suite evo-optimizer)")
    config = BenchConfig(candidates=list(candidates), against=[a for a in against.split(",") if a],
                         task=task[0], tasks=files,
                         noise=noise, seeds=seeds, epochs=3 if epochs is None and steps is None else epochs,
                         steps=steps, batch=batch, tune=tune, tune_steps=tune_steps, lr=fixed, suite=suite,
                         subset=subset, data_dir=str(data_dir) if data_dir else None, evals_per_epoch=evals,
                         unsandboxed=unsandboxed, sandbox_memory_mb=sandbox_memory, epoch_timeout_s=epoch_timeout,
                         schedule=schedule)
    store = _open_store(create=True)
    err = _stderr()
    t0 = time.perf_counter()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err, transient=True)
    with progress:
        if config.tasks:
            from symdisc.bench.tasks import run_task_bench

            report = run_task_bench(config, store, out, progress, say=lambda m: err.print(f"symdisc: {m}", highlight=False))
        else:
            report = run_bench(config, store, out, progress, say=lambda m: err.print(f"symdisc: {m}", highlight=False))
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    if as_json:
        _print_json(report)
    elif config.tasks:
        from symdisc.bench.tasks import print_task_bench
        from symdisc.cli.base import _stdout

        print_task_bench(report, _stdout())
    else:
        print_bench(report)
    if report["status"] == "interrupted":
        err.print("symdisc: interrupted; finished seeds are kept above and in the database", highlight=False)
        raise typer.Exit(130)


@data_app.command("status")
def data_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Which data sets are present, and how to get the missing ones."""
    from symdisc import data

    rows = []
    for name in data.DATASETS:
        where = data.locate(name)
        rows.append({"id": name, "present": where is not None, "path": where,
                     "how_to_get": None if where else data.HOW_TO_GET[name]})
    if as_json:
        _print_json(rows)
        return
    for r in rows:
        state = f"present: {r['path']}" if r["present"] else f"missing: {r['how_to_get']}"
        typer.echo(f"{r['id']:<14} {state}")


@data_app.command("pull")
def data_pull(name: str = typer.Argument(..., help="fashion-mnist, mnist or cifar10")) -> None:
    """Download a data set with torchvision (needs internet and torchvision)."""
    from symdisc import data

    typer.echo(str(data.pull(name)))
