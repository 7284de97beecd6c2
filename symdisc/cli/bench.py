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
    candidates: Optional[list[str]] = typer.Argument(None, help="Optimizers to test: a built-in name, a RUN_ID (its best), a CANDIDATE_ID, or a .py file."),
    against: str = typer.Option("adam", help="Comma-separated baselines (built-in names or the same kinds as CANDIDATE); the first is the reference for time to target."),
    task: Optional[list[str]] = typer.Option(None, "--task", help="fmnist-noisy (default), fmnist, fmnist-2c2d "
                                             "(DeepOBS), mnist or cifar10 (the bench's CNNs, test accuracy; several, "
                                             "repeated or comma-separated, add a performance profile), or task files: "
                                             "a PATH.py or a built-in task file's name (mnist-noisy, lm-chars), "
                                             "repeatable; tuned alike on seeds of their own, every number their train returns reported, "
                                             "the scores paired by seed."),
    noise: Optional[float] = typer.Option(None, help="Training-label noise rate (default: the task's, 0.2 for fmnist-noisy)."),
    seeds: int = typer.Option(5, help="Seeds per optimizer at the chosen setting (every optimizer on the same seeds)."),
    epochs: Optional[float] = typer.Option(None, help="Length of the final runs in epochs (default 3)."),
    steps: Optional[int] = typer.Option(None, help="Length of the final runs in steps (instead of --epochs)."),
    tuner: Optional[str] = typer.Option(None, "--tuner", help="grid (default: a log grid of the learning rate, "
                                        "widened while the best is on an edge), tpe, or none (documented defaults)."),
    lr_grid: str = typer.Option("1e-5:1:2", "--lr-grid", help="LO:HI:PER_DECADE (1e-5:1:2 = half decades) or a "
                                "comma-separated list; also the TPE range."),
    max_widen: int = typer.Option(6, "--max-widen", help="Grid points the tuner may add past an edge."),
    tune: int = typer.Option(0, help="TPE trials per optimizer (implies --tuner tpe; must exceed TPE's random "
                             "start-up trials); 0: the grid."),
    weight_decay: str = typer.Option("0", "--weight-decay", help="Comma-separated decoupled weight decays to tune "
                                     "over (with the learning rate), the same for every optimizer."),
    tune_steps: Optional[int] = typer.Option(None, "--tune-steps", help="Training steps per tuning trial."),
    tune_epochs: Optional[float] = typer.Option(None, "--tune-epochs", help="Epochs per tuning trial (default: as "
                                                "long as the final runs; short trials favour large rates)."),
    tune_subset: Optional[int] = typer.Option(None, "--tune-subset", help="Training examples the tuning draws from "
                                              "(default: as the final runs)."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share of the training data held out to tune on "
                                       "and to early-stop by (the test set is never used to choose)."),
    reference: Optional[str] = typer.Option(None, "--reference", help="Whose final validation score is the target "
                                            "(default: the first --against)."),
    lr: list[str] = typer.Option([], "--lr", help="NAME=VALUE: a fixed learning rate for one optimizer (repeatable; not tuned)."),
    batch: int = typer.Option(128, help="Mini-batch size."),
    subset: Optional[int] = typer.Option(None, help="Train on a random subset of this many examples."),
    suite: Optional[str] = typer.Option(None, help="evo-optimizer: that project's protocol and table."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Where local data sets live (CIFAR-10)."),
    evals: int = typer.Option(2, "--evals-per-epoch", help="Validation and test evaluations per epoch (the "
                              "resolution of time to target and early stopping)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: runs/bench/RUN_ID)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue a stopped bench (its id or latest) with its "
                                         "stored options: finished (optimizer, seed, lr) cells are kept."),
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

    Every optimizer is tuned alike on a validation split, then rerun on the same seeds; pairs are
    compared seed by seed (mean difference, 95% interval, paired t-test, Wilcoxon, Holm's
    correction). Rules written by a model (a RUN_ID, a CANDIDATE_ID, a contract-form .py) train
    inside the sandbox worker; torch's optimizers, the built-in rules and a .py that defines its own
    torch.optim.Optimizer run in this process."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from symdisc.bench.run import run_bench
    from symdisc.config import SCHEDULES, BenchConfig

    config = None
    if resume is None:
        if not candidates:
            raise UsageError("name at least one optimizer to test (or --resume RUN_ID)")
        if epochs is not None and steps is not None:
            raise UsageError("give --epochs or --steps, not both")
        if schedule not in SCHEDULES:
            raise UsageError(f"--schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
        if tune < 0:
            raise UsageError("--tune wants a number of TPE trials (0: the grid)")
        method = tuner or ("tpe" if tune else "grid")
        if tune and method != "tpe":
            raise UsageError("--tune N sets a TPE budget; it goes with --tuner tpe")
        if not 0 < val_fraction < 1:
            raise UsageError("--val-fraction must be between 0 and 1")
        try:
            decays = [float(x) for x in weight_decay.split(",") if x.strip()]
        except ValueError:
            raise UsageError(f"--weight-decay wants numbers separated by commas, not {weight_decay!r}") from None
        if not decays or any(d < 0 for d in decays):
            raise UsageError("--weight-decay wants one or more values >= 0")
        fixed = {}
        for item in lr:
            name, _, value = item.partition("=")
            try:
                fixed[name] = float(value)
            except ValueError:
                raise UsageError(f"--lr wants NAME=VALUE, got {item!r}") from None
        from symdisc.bench.train import TASKS

        named: list[str] = []  # --task repeated or comma-separated (a .py path is taken whole)
        for given in task or ["fmnist-noisy"]:
            named += [given] if given.endswith(".py") else [t for t in given.split(",") if t]
        files = [t for t in named if t not in TASKS]
        if files and len(files) != len(named):
            raise UsageError("give either the bench's own tasks (fmnist-noisy, fmnist, fmnist-2c2d, mnist, cifar10) or "
                             "task files, not both")
        config = BenchConfig(candidates=list(candidates), against=[a for a in against.split(",") if a],
                             task=",".join(named) if not files else named[0], tasks=files,
                             noise=noise, seeds=seeds, epochs=3 if epochs is None and steps is None else epochs,
                             steps=steps, batch=batch, tuner=method, lr_grid=lr_grid, max_widen=max_widen,
                             tpe_trials=tune or 20, weight_decays=decays, tune_steps=tune_steps,
                             tune_epochs=tune_epochs, tune_subset=tune_subset, val_fraction=val_fraction,
                             reference=reference, lr=fixed, suite=suite, subset=subset,
                             data_dir=str(data_dir) if data_dir else None, evals_per_epoch=evals,
                             unsandboxed=unsandboxed, sandbox_memory_mb=sandbox_memory, epoch_timeout_s=epoch_timeout,
                             schedule=schedule)
    elif candidates or task:
        raise UsageError("--resume continues a stored bench with its own optimizers, tasks and options; name none")
    store = _open_store(create=True)
    err = _stderr()
    t0 = time.perf_counter()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err, transient=True)
    with progress:
        def say(message: str) -> None:
            err.print(f"symdisc: {message}", highlight=False)

        if config is not None and config.tasks:
            from symdisc.bench.tasks import run_task_bench

            report = run_task_bench(config, store, out, progress, say=say)
        else:
            report = run_bench(config, store, out, progress, say=say, resume=resume)
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
        err.print(f"symdisc: interrupted; finished cells are kept in the database: symdisc bench --resume {report['id']}",
                  highlight=False)
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
