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
    threads: int = typer.Option(2, help="torch threads for the ground-truth training."),
) -> None:
    """Ground truth by real training for a library of 28 rules (lr tuned on training-data validation,
    test accuracy only reported), every fidelity a run can use, their Spearman correlations, noise
    bands and seconds per candidate. Resumable: every finished training is journaled."""
    from symdisc.calibration.run import main

    argv = ["--threads", str(threads)]
    if out:
        argv += ["--dir", out]
    for p in phase or []:
        argv += ["--phase", p]
    raise typer.Exit(main(argv))
