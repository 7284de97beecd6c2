"""`symdisc runs ...` and `symdisc models ...`: the run database and the model catalog."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from symdisc.errors import SymdiscError, UsageError
from symdisc.cli.base import _open_store, _print_json, _stderr, _stdout, app
from symdisc.cli.render import print_compare, print_leaderboard


runs_app = typer.Typer(no_args_is_help=True, help="Inspect the run database.")
models_app = typer.Typer(no_args_is_help=True, help="The model catalog: list and pull GGUF models.")
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")


_CANDIDATE_KEYS = ("id", "run_id", "seq", "origin", "name", "parent_id", "status", "stage", "reason", "message",
                   "line", "fitness", "best_lr", "state_scalars", "state_bytes", "ast_hash", "fingerprint",
                   "duplicate_of", "heldout", "genome_json", "tokens_in", "tokens_out", "gen_ms", "gate_ms", "eval_ms",
                   "created_at")


def _candidate_json(row: dict, with_text: bool = True) -> dict:
    out = {k: row.get(k) for k in _CANDIDATE_KEYS}
    if with_text:
        out.update(code=row.get("code"), normalized=row.get("normalized"), response=row.get("response"))
    return out


@runs_app.command("list")
def runs_list(
    limit: int = typer.Option(50, help="How many runs, newest first."),
    as_json: bool = typer.Option(False, "--json", help="A JSON list of run objects, newest first."),
) -> None:
    """List runs, newest first."""
    from symdisc.store import default_db_path

    if not default_db_path().exists():
        if as_json:
            _print_json([])
        else:
            _stderr().print(f"no runs yet ({default_db_path()})")
        return
    store = _open_store()
    runs = store.list_runs(limit)
    if as_json:
        _print_json(runs)
        return
    from rich.table import Table

    table = Table(title=f"runs in {store.path}")
    for col in ("id", "kind", "status", "model", "memory", "candidates", "best", "created"):
        table.add_column(col)
    for r in runs:
        best = f"{r['best_fitness']:.4f}" if r["best_fitness"] is not None else ""
        model = (r["model"] or "")[-28:]
        table.add_row(r["id"], r["kind"], r["status"], model, (r["config"] or {}).get("memory", ""),
                      str(r["candidates"]), best, r["created_at"])
    _stdout().print(table)


@runs_app.command("show")
def runs_show(
    run_id: str = typer.Argument(..., help="A run id, a unique prefix, or latest."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Summary, leaderboard, rejections by reason and best code of a run."""
    store = _open_store()
    run = store.get_run(run_id)
    if run["kind"] == "compare":
        from symdisc.search.compare import compare_report

        report = compare_report(store, run["id"])
        figure = store.path.parent / "compare" / run["id"] / "best_so_far.png"
        report["figure"] = str(figure) if figure.exists() else None
        if as_json:
            _print_json(dict(run, report=report))
        else:
            print_compare(report)
        return
    board = store.leaderboard(run["id"], 10)
    reasons = store.reason_counts(run["id"])
    best = board[0] if board else None
    from symdisc.search.funnel import funnel_report

    funnel = funnel_report(store.candidates(run["id"], ["evaluated"]))
    proposals = {by: store.proposal_stats(run["id"], by) for by in ("operator", "model")}
    repairs = store.repair_counts(run["id"])
    if as_json:
        _print_json(dict(run, leaderboard=[_candidate_json(r, with_text=False) for r in board], rejections=reasons,
                         repairs=repairs,
                         statuses=store.status_counts(run["id"], proposed_only=True), funnel=funnel,
                         proposals=proposals, best=_candidate_json(best) if best else None))
        return
    out = _stdout()
    summary = run.get("summary") or {}
    cfg = run.get("config") or {}
    out.print(f"[bold]run {run['id']}[/bold]  {run['kind']}  {run['status']}  created {run['created_at']}", highlight=False)
    out.print(f"model {run['model']}  sha256 {(run['model_sha256'] or '')[:16]}  backend {run['backend']}  "
              f"memory {cfg.get('memory')}  seed {cfg.get('seed')}", highlight=False)
    if run["kind"] in ("evolve", "compare"):
        from symdisc.view.report import selected_on

        out.print(f"selected on: {selected_on(cfg)}", highlight=False)
    if summary:
        out.print(f"{summary.get('candidates', 0)} candidates, {summary.get('passed_gate', 0)} passed the gate, "
                  f"{summary.get('tokens_per_s') or 0} tok/s, {summary.get('candidates_per_min') or 0} cand/min, "
                  f"{summary.get('elapsed_s', 0)} s", highlight=False)
    if repairs["repaired"]:
        out.print(f"repair: {repairs['repaired']} replies changed before the gate, {repairs['saved']} of them saved "
                  "(working programs that would have failed without it)", highlight=False)
    print_leaderboard(store, run["id"])
    if reasons:
        from rich.table import Table

        table = Table(title="rejections and failures by reason")
        table.add_column("reason")
        table.add_column("count", justify="right")
        for reason, count in reasons.items():
            table.add_row(reason, str(count))
        out.print(table)
    _print_proposals(out, proposals)
    if funnel["with_heldout"]:
        rho = f"{funnel['spearman']:+.2f}" if funnel["spearman"] is not None else "n/a (fewer than 3)"
        out.print(f"funnel: {funnel['with_heldout']} candidates with a held-out score; proxy vs held-out rank "
                  f"correlation {rho}", highlight=False)
        if funnel["proxy_best_is_heldout_best"] is False:
            out.print(f"[yellow]warning:[/yellow] the proxy's best (candidate {funnel['proxy_best_id']}) is not the "
                      f"held-out best (candidate {funnel['heldout_best_id']}): the proxy may be overfit", highlight=False)
    if best:
        from rich.syntax import Syntax

        heldout = f", held-out {best['heldout']:.4f}" if best.get("heldout") is not None else ""
        out.print(f"best: candidate {best['id']} ({best['name'] or best['origin']}), proxy {best['fitness']:.4f}{heldout}",
                  highlight=False)
        code = best["normalized"] or best["code"] or ""
        # as wide as the code: a log console is LOG_WIDTH wide, and Syntax pads every line to the width
        out.print(Syntax(code, "python", code_width=max((len(line) for line in code.splitlines()), default=1)))


def _print_proposals(out, proposals: dict) -> None:
    """Per operator and per model: replies, new programs, repeats, improvements on the parent, seconds."""
    from rich.table import Table

    for by, stats in proposals.items():
        if not stats:
            continue
        table = Table(title=f"proposals by {by}")
        for col in (by, "replies", "new", "repeats", "improvements", "seconds"):
            table.add_column(col, justify="left" if col == by else "right")
        for key, st in stats.items():
            table.add_row(str(key), str(st["replies"]), str(st["new"]), str(st["repeats"]), str(st["improvements"]),
                          f"{st.get('seconds', 0):.1f}")
        out.print(table)


@runs_app.command("best")
def runs_best(
    run_id: str = typer.Argument(..., help="A run id, a unique prefix, or latest."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The best candidate of a run (its code on stdout)."""
    store = _open_store()
    run = store.get_run(run_id, kind="evolve" if run_id == "latest" else None)
    best = store.best(run["id"])
    if best is None:
        raise SymdiscError(f"run {run['id']} has no evaluated candidate yet")
    if as_json:
        _print_json(_candidate_json(best))
    else:
        _stderr().print(f"candidate {best['id']}, fitness {best['fitness']:.4f}", highlight=False)
        sys.stdout.write((best["normalized"] or best["code"]).rstrip() + "\n")


@runs_app.command("path")
def runs_path() -> None:
    """Where the run database is (SYMDISC_HOME moves it)."""
    from symdisc.store import default_db_path

    typer.echo(str(default_db_path()))


@runs_app.command("export")
def runs_export(
    candidate_id: int = typer.Argument(..., help="A candidate id (see runs show)."),
    output: Path = typer.Option(..., "-o", "--output", help="The .py file to write."),
    check: bool = typer.Option(True, "--check/--no-check", help="Run the rule through today's gate and stage 0 "
                               "probes in the sandbox and warn if it fails them (a rule stored by an older judge)."),
) -> None:
    """Write a candidate as a one-file torch.optim.Optimizer that needs only torch."""
    from symdisc import __version__
    from symdisc.export import render

    store = _open_store()
    row = store.get_candidate(candidate_id)
    if row["status"] not in ("evaluated", "duplicate") or not row.get("normalized"):
        raise SymdiscError(f"candidate {candidate_id} did not pass evaluation ({row['status']}: {row['reason']})")
    memory = (store.get_run(row["run_id"])["config"] or {}).get("memory", "scalar")
    text = render(row, memory, __version__)
    try:
        output.write_text(text)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}") from None
    _stderr().print(f"wrote {output}", highlight=False)
    if check:
        from symdisc.judge.checking import check_candidate

        outcome = check_candidate(row["normalized"], memory)
        if not outcome["ok"]:
            _stderr().print(f"warning: candidate {candidate_id} fails today's judge at {outcome['stage']}: "
                            f"{outcome['reason']}: {outcome['message']} (an older judge passed it; the file is "
                            "written, fix the rule before training with it)", highlight=False, soft_wrap=True)


@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Catalog models: size, installed or not, and where."""
    from symdisc.llm.catalog import list_models, models_dir

    models = list_models()
    if as_json:
        _print_json([dict(m, id=m["name"]) for m in models])
        return
    from rich.table import Table

    table = Table(title=f"models (cache: {models_dir()})")
    for col in ("name", "params", "size", "installed", "path"):
        table.add_column(col)
    for m in models:
        size = f"{m['size_bytes'] / 1e6:,.0f} MB" if m.get("size_bytes") else "?"
        table.add_row(m["name"], f"{m['params_b']:g}B", size, "yes" if m["installed"] else "no", m["path"] or "")
    _stdout().print(table)


@models_app.command("pull")
def models_pull(name: str = typer.Argument(..., help="A catalog name (see models list).")) -> None:
    """Fetch a catalog model into the model cache and verify its sha256."""
    from symdisc.llm.catalog import pull

    err = _stderr()
    path = pull(name, progress=lambda message: err.print(f"  {message}", highlight=False))
    typer.echo(str(path))
