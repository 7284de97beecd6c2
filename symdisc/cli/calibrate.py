"""`symdisc calibrate`: does each fidelity predict real training? (symdisc.calibration)."""

from __future__ import annotations

from typing import List, Optional

import typer

from symdisc.cli.base import app


@app.command()
def calibrate(
    out: Optional[str] = typer.Option(None, "--dir", help="Journal and results folder (default: runs/calibration "
                                      "under SYMDISC_HOME). Rerun with the same folder to resume."),
    phase: Optional[List[str]] = typer.Option(None, "--phase", help="truth, fidelity and/or report (default: all)."),
    threads: int = typer.Option(0, help="torch threads for the ground-truth training (0: the cores this process may use)."),
    task: Optional[List[str]] = typer.Option(None, "--task", help="Calibrate on task files instead (PATH.py or a "
                                             "built-in task, repeatable): the truth is each rule on the task at its "
                                             "full STEPS; the fidelities are the proxy and the task stages of a search."),
    rules: Optional[str] = typer.Option(None, "--rules", help="With --task: comma-separated library rules "
                                        "(default: every rule of the library)."),
    as_json: bool = typer.Option(False, "--json", help="With --task: print the result as JSON."),
) -> None:
    """Ground truth by real training for a library of 28 rules (lr tuned on training-data validation,
    test accuracy only reported), every fidelity a run can use, their Spearman correlations, noise
    bands and seconds per candidate. Resumable: every finished training is journaled."""
    if task:
        _calibrate_tasks(task, out, rules, as_json)
        return
    from symdisc.calibration.run import main

    argv = ["--threads", str(threads)] if threads else []
    if out:
        argv += ["--dir", out]
    for p in phase or []:
        argv += ["--phase", p]
    raise typer.Exit(main(argv))


def _calibrate_tasks(specs: List[str], out: Optional[str], rules: Optional[str], as_json: bool) -> None:
    import json
    from pathlib import Path

    from symdisc.calibration.library import rules as library_rules
    from symdisc.calibration.run import default_dir
    from symdisc.calibration.tasks import calibrate_tasks
    from symdisc.calibration.truth import Journal
    from symdisc.cli.base import _print_json, _stderr
    from symdisc.errors import UsageError
    from symdisc.tasks import load_tasks

    tasks = [t.as_dict() for t in load_tasks(list(specs))]
    library = library_rules()
    if rules:
        wanted = [r.strip() for r in rules.split(",") if r.strip()]
        unknown = sorted(set(wanted) - {r["name"] for r in library})
        if unknown:
            raise UsageError(f"unknown library rule(s): {', '.join(unknown)}")
        library = [r for r in library if r["name"] in wanted]
    if len(library) < 3:
        raise UsageError("calibration needs at least 3 rules (a rank correlation of fewer says nothing)")
    folder = Path(out) if out else default_dir() / ("tasks-" + "-".join(t["name"] for t in tasks))
    err = _stderr()
    say = (lambda m: err.print(m, highlight=False)) if as_json else (lambda m: print(m, flush=True))
    result = calibrate_tasks(tasks, Journal(folder / "journal.jsonl"), library, say=say)
    (folder / "calibration.json").write_text(json.dumps(result, indent=1))
    if as_json:
        _print_json(dict(result, path=str(folder / "calibration.json")))
