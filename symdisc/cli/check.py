"""`symdisc check` and `symdisc simplify`: one candidate through the judge."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from symdisc.errors import SymdiscError, UsageError
from symdisc.cli.base import _heldout_available, _memory_option, _open_store, _print_json, _read_source, _stderr, _stdout, app


@app.command()
def check(
    path: str = typer.Argument(..., help="A candidate .py file, or - for stdin (raw model output is fine)."),
    memory: str = typer.Option("scalar", "--memory", "-m", help="Memory class: scalar (O(1)) or buffers."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    timeout: float = typer.Option(30.0, help="Wall-clock limit for the sandbox, in seconds."),
    score: bool = typer.Option(False, "--score", help="Also score it through every stage of the cascade a run "
                               "would take it (proxy, heldout, long; the audit stage reported beside)."),
    task: Optional[list[str]] = typer.Option(None, "--task", help="With --score: a task file (PATH.py) or built-in "
                                             "task for the heldout and long stages (repeatable; docs/tasks.md)."),
) -> None:
    """Run a candidate through the gate, the sandbox and the stage 0 probes (--score: the whole cascade)."""
    from symdisc.judge.checking import check_candidate, score_candidate

    memory = _memory_option(memory)
    if task and not score:
        raise UsageError("--task needs --score (plain check runs the gate, the sandbox and the probes only)")
    tasks = None
    if task:
        from symdisc.tasks import load_tasks

        tasks = [t.as_dict() for t in load_tasks(list(task))]
    source = _read_source(path)
    outcome = (score_candidate(source, memory, timeout_s=max(timeout, 120.0), tasks=tasks) if score
               else check_candidate(source, memory, timeout_s=timeout))
    if as_json:
        _print_json(outcome)
    else:
        out = _stdout()
        if outcome["ok"]:
            out.print(f"[green]accepted[/green] ({outcome['memory_class']}, "
                      f"{outcome['state_scalars']} state scalar(s))")
        else:
            line = f" (line {outcome['line']})" if outcome.get("line") else ""
            out.print(f"[red]rejected[/red] at {outcome['stage']}: {outcome['reason']}: "
                      f"{outcome['message']}{line}", highlight=False, soft_wrap=True)
        for name, st in (outcome.get("stages") or {}).items():
            if st.get("ok") and st.get("tasks"):
                out.print(f"  {name:8s} mean task score {st['score']:.4f} ± {st['band']:.4f} ({st['s']:.1f} s)",
                          highlight=False)
                for tname, d in st["tasks"].items():
                    others = ", ".join(f"{k} {v:.4g}" for k, v in d.get("numbers", {}).items())
                    out.print(f"    {tname}: {d['fitness']:.4f} at lr {d['best_lr']:.3g}, {d['steps']} steps"
                              + (f" ({others})" if others else ""), highlight=False)
            elif st.get("ok"):
                extra = " (audit: reported, never ranked by)" if st.get("report_only") else ""
                out.print(f"  {name:8s} {st['score']:.4f} ± {st['band']:.4f} at lr {st['best_lr']:.3g} "
                          f"({st['s']:.1f} s){extra}", highlight=False)
            else:
                out.print(f"  {name:8s} failed: {st.get('reason')}: {st.get('message')}", highlight=False)
        if outcome.get("rank_score") is not None:
            out.print(f"rank score {outcome['rank_score']:.4f} ± {outcome['rank_band']:.4f} "
                      f"(stage {outcome['rank_stage']}: what a run ranks it by)", highlight=False)
        timings = ", ".join(f"{k} {v:.1f} ms" for k, v in outcome["ms"].items() if v is not None)
        _stderr().print(f"[dim]{timings}[/dim]")
    raise typer.Exit(0 if outcome["ok"] else 1)


@app.command()
def simplify(
    candidate_id: int = typer.Argument(..., help="An evaluated candidate (see runs show)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Drop statements and round constants while the held-out score stays within the noise band."""
    from symdisc.judge.gateproc import GateClient
    from symdisc.judge.sandbox import Sandbox
    from symdisc.search.simplify import simplify_candidate

    store = _open_store()
    err = _stderr()
    if not _heldout_available(lambda m: err.print(f"symdisc: {m}", highlight=False)):
        raise SymdiscError("simplify judges by the held-out score, which needs Fashion-MNIST")
    with GateClient() as gate, Sandbox(heldout=True) as sandbox:
        report = simplify_candidate(store, candidate_id, gate, sandbox, say=lambda m: err.print(f"  {m}", highlight=False))
    if as_json:
        _print_json(report)
        return
    out = _stdout()
    out.print(f"candidate {candidate_id} -> {report['id']}: {len(report['steps'])} simplifications, syntax nodes "
              f"{report['size_before']} -> {report['size_after']}, held-out {report['heldout_before']:.4f} -> "
              f"{report['heldout_after']:.4f} (noise band {report['band']:.4f})", highlight=False)
    sys.stdout.write(report["code"])
