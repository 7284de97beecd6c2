"""`symdisc task check` and `symdisc task new`: write and test a task file before a search uses it."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional

import typer

from symdisc.cli.base import _print_json, _stderr, _stdout, app
from symdisc.errors import UsageError

task_app = typer.Typer(no_args_is_help=True, help="Task files: your own training task for evolve, check, bench, "
                                                   "compare and calibrate (docs/tasks.md).")
app.add_typer(task_app, name="task")

CHECK_LRS = (1e-3, 1e-1)
CHECK_SEED = 0


def check_task(spec: str, steps: Optional[int] = None, timeout_s: float = 300.0) -> dict:
    """SGD and Adam (the built-in contract rules, through the sandbox worker as a search runs them)
    at two learning rates, plus SGD once more with the same seed; what a search needs of a task."""
    from symdisc import rules
    from symdisc.contract import BUFFERS, SCALAR
    from symdisc.judge.sandbox import TrainingSandbox
    from symdisc.tasks import load_task

    task = load_task(spec)
    n = steps or min(task.steps, 20)
    plan = [("sgd", SCALAR, lr) for lr in CHECK_LRS] + [("adam", BUFFERS, lr) for lr in CHECK_LRS]
    runs, problems = [], []
    with TrainingSandbox(epoch_timeout_s=timeout_s, threads=1, tasks=[task.worker_spec([CHECK_SEED])]) as sandbox:
        def once(name, memory, lr):
            answer = sandbox.train_task(rules.source(name), memory, task.name, CHECK_SEED, lr, n, timeout_s=timeout_s)
            row = {"optimizer": name, "lr": lr, "ok": bool(answer.get("ok"))}
            if answer.get("ok"):
                numbers = dict(answer["result"])
                row.update(score=numbers.pop("score"), seconds=numbers.pop("seconds"), numbers=numbers)
                row["s_per_step"] = row["seconds"] / n
            else:
                row.update(reason=answer.get("reason"), message=answer.get("message"))
                problems.append(f"{name} at lr {lr:g}: {answer.get('reason')}: {answer.get('message')}")
            runs.append(row)
            return row

        for name, memory, lr in plan:
            once(name, memory, lr)
        again = once("sgd", SCALAR, CHECK_LRS[0]) if runs[0]["ok"] else None
    scores = [r["score"] for r in runs if r["ok"]]
    finite = [s for s in scores if math.isfinite(s)]
    deterministic = None if again is None or not again["ok"] else again["score"] == runs[0]["score"]
    if deterministic is False:
        problems.append(f"the same seed gave two scores ({runs[0]['score']!r} and {again['score']!r}): seed the "
                        "model and the batch order from `seed` so that candidates are compared on the same runs")
    spread = (max(finite) - min(finite)) if len(finite) > 1 else None
    distinguishes = None if spread is None else spread > 1e-9 * max(1.0, max(abs(s) for s in finite))
    if distinguishes is False:
        problems.append(f"every optimizer and learning rate scored {finite[0]:.6g}: the task cannot tell optimizers "
                        "apart (does train step the optimizer from make_optimizer, and does the score depend on "
                        "the trained model?)")
    if scores and len(finite) < len(scores):
        problems.append("some runs scored NaN or infinity (a search counts those learning rates as failed)")
    per_step = [r["s_per_step"] for r in runs if r["ok"]]
    return {"task": task.as_dict(), "steps": n, "seed": CHECK_SEED, "runs": runs,
            "s_per_step": sum(per_step) / len(per_step) if per_step else None,
            "deterministic": deterministic, "distinguishes_optimizers": distinguishes,
            "problems": problems, "ok": not problems}


@task_app.command("check")
def task_check(
    path: str = typer.Argument(..., help="A task file (PATH.py) or a built-in task's name."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Training steps per run (default: 20, or STEPS if smaller)."),
    timeout: float = typer.Option(300.0, "--timeout", help="Wall-clock seconds per training run."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Train SGD and Adam through a task at two learning rates: seconds per step, whether the same
    seed gives the same score, and whether the scores tell optimizers apart at all."""
    if steps is not None and steps < 1:
        raise UsageError("--steps must be at least 1")
    report = check_task(path, steps, timeout)
    if as_json:
        _print_json(report)
    else:
        out = _stdout()
        t = report["task"]
        out.print(f"task {t['name']} ({t['path']}), STEPS {t['steps']}; {report['steps']} steps per run, seed "
                  f"{report['seed']}", highlight=False)
        for r in report["runs"]:
            if r["ok"]:
                extra = ", ".join(f"{k} {v:.4g}" for k, v in r["numbers"].items())
                out.print(f"  {r['optimizer']:5s} lr {r['lr']:<6g} score {r['score']:.6g}  "
                          f"{r['s_per_step'] * 1e3:.2f} ms/step" + (f"  ({extra})" if extra else ""), highlight=False)
            else:
                out.print(f"  {r['optimizer']:5s} lr {r['lr']:<6g} failed: {r['reason']}: {r['message']}", highlight=False)
        if report["s_per_step"] is not None:
            out.print(f"seconds per step: {report['s_per_step']:.4g}; a full run of STEPS: "
                      f"{report['s_per_step'] * t['steps']:.1f} s", highlight=False)
        out.print(f"same seed, same score: {_yes(report['deterministic'])}; scores differ between optimizers: "
                  f"{_yes(report['distinguishes_optimizers'])}", highlight=False)
        for p in report["problems"]:
            out.print(f"[red]problem:[/red] {p}", highlight=False)
        if report["ok"]:
            out.print("[green]ok[/green]: ready for --task")
    raise typer.Exit(0 if report["ok"] else 1)


def _yes(value) -> str:
    return "n/a" if value is None else ("yes" if value else "NO")


@task_app.command("new")
def task_new(
    name: str = typer.Argument(..., help="The task's NAME; the file is NAME.py (dashes become underscores)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write it (default: ./NAME.py)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Write a commented task-file template (a tiny regression MLP) to edit."""
    from symdisc.tasks import template

    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        raise UsageError(f"a task name is letters, digits, '-' and '_', starting with a letter; not {name!r}")
    path = out or Path(f"{name.replace('-', '_')}.py")
    if path.exists():
        raise UsageError(f"{path} exists; give another NAME or --out")
    path.write_text(template(name))
    if as_json:
        _print_json({"name": name, "path": str(path)})
    else:
        _stdout().print(str(path), highlight=False)
        _stderr().print(f"symdisc: wrote {path}; edit prepare and train, then: symdisc task check {path}",
                        highlight=False)
