"""The `symdisc` command: typer commands that parse, call and print. Nothing else lives here.

Results go to stdout, progress and logs to stderr. Every error of the SymdiscError hierarchy
becomes one line and an exit code; SYMDISC_DEBUG=1 re-raises for a traceback. torch and
llama_cpp are imported inside the commands that need them, so listings answer instantly.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from .errors import SymdiscError, UsageError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Symbolic discovery of neural-network optimizers with a local LLM, on a CPU.")


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """Symbolic discovery of neural-network optimizers with a local LLM, on a CPU."""
    if version:
        from . import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


def _stderr():
    from rich.console import Console

    return Console(stderr=True)


def _stdout():
    from rich.console import Console

    # Piped output (a log, `| less`) keeps table rows on one line instead of rich's 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=160)


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _read_source(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    p = Path(path)
    if not p.exists():
        raise UsageError(f"no such file: {path}")
    if p.is_dir():
        raise UsageError(f"{path} is a folder, not a Python file")
    try:
        return p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _memory_option(value: str) -> str:
    from .contract import MEMORY_CLASSES

    if value not in MEMORY_CLASSES:
        raise UsageError(f"--memory must be one of {', '.join(MEMORY_CLASSES)}, not {value!r}")
    return value


@app.command()
def check(
    path: str = typer.Argument(..., help="A candidate .py file, or - for stdin (raw model output is fine)."),
    memory: str = typer.Option("scalar", "--memory", "-m", help="Memory class: scalar (O(1)) or buffers."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    timeout: float = typer.Option(30.0, help="Wall-clock limit for the sandbox, in seconds."),
) -> None:
    """Run a candidate through the gate, the sandbox and the stage 0 probes."""
    from .checking import check_candidate

    memory = _memory_option(memory)
    source = _read_source(path)
    outcome = check_candidate(source, memory, timeout_s=timeout)
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
        timings = ", ".join(f"{k} {v:.1f} ms" for k, v in outcome["ms"].items() if v is not None)
        _stderr().print(f"[dim]{timings}[/dim]")
    raise typer.Exit(0 if outcome["ok"] else 1)


runs_app = typer.Typer(no_args_is_help=True, help="Inspect the run database.")
models_app = typer.Typer(no_args_is_help=True, help="The model catalog: list and pull GGUF models.")
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")


def _open_store(create: bool = False):
    from .store import Store

    return Store(create=create)


@app.command()
def evolve(
    model: str = typer.Option("auto", help="Catalog name, a path to a .gguf file, or auto (strongest installed)."),
    api_base: Optional[list[str]] = typer.Option(None, "--api-base", help="An OpenAI-compatible server instead of in-process llama.cpp; repeat it for several, used round-robin."),
    api_concurrency: int = typer.Option(1, "--api-concurrency", help="Requests at once per --api-base server."),
    api_model: Optional[str] = typer.Option(None, "--api-model", help="Model name to send to --api-base."),
    memory: str = typer.Option("scalar", "--memory", "-m", help="scalar (O(1) state) or buffers."),
    proposer: str = typer.Option("llm", "--proposer", "-p", help="llm, genome (GA), tpe (Optuna) or random."),
    funnel: bool = typer.Option(True, "--funnel/--no-funnel", help="Score proxy winners on a held-out real-data task."),
    candidates: Optional[int] = typer.Option(None, "--candidates", "-n", help="Budget: proposed candidates (default 50 without --minutes)."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Budget: wall-clock minutes."),
    seed: int = typer.Option(0, help="Seed for sampling and program selection."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue RUN_ID (or latest) where it stopped."),
    replay: Optional[str] = typer.Option(None, "--replay", help="Re-score the replies logged by RUN_ID, without a model."),
    grammar: Optional[bool] = typer.Option(None, "--grammar/--no-grammar", help="Force the def update(...) skeleton (default: on below 2B parameters)."),
    temperature: float = typer.Option(0.8, help="Sampling temperature."),
    max_tokens: int = typer.Option(320, "--max-tokens", help="Longest reply, in tokens."),
    threads: Optional[int] = typer.Option(None, help="llama.cpp threads (default: all cores; evaluation runs between generations)."),
    cluster: Optional[str] = typer.Option(None, "--cluster", help="local (one process, the default), auto (a Ray cluster running here, else a new one) or a Ray address HEAD:6379."),
    proposers: Optional[int] = typer.Option(None, "--proposers", help="Cluster: proposer actors (default: one per node for llama.cpp, else one)."),
    evaluators: Optional[int] = typer.Option(None, "--evaluators", help="Cluster: evaluator actors, one sandbox each (default: the free CPUs)."),
    fake_replies: Optional[Path] = typer.Option(None, "--fake-replies", hidden=True, help="Testing: a JSON list of replies."),
    fake_delay: float = typer.Option(0.0, "--fake-delay", hidden=True),
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
) -> None:
    """Discover update rules: the model proposes, the gate and sandbox judge, the best survive."""
    from .config import EvolveConfig, SamplingConfig
    from .evolve import Evolution
    from .gateproc import GateClient
    from .live import EvolveView
    from .sandbox import Sandbox

    err = _stderr()
    store = _open_store(create=True)
    config = EvolveConfig(
        model=model, api_base=api_base[0] if api_base else None, api_bases=list(api_base or []),
        api_concurrency=api_concurrency, api_model=api_model, memory=_memory_option(memory),
        candidates=candidates if (candidates is not None or minutes is not None) else 50, minutes=minutes,
        seed=seed, replay_run=replay, proposer=proposer, funnel=funnel, cluster=cluster or "local",
        proposers=proposers, evaluators=evaluators,
        sampling=SamplingConfig(temperature=temperature, max_tokens=max_tokens, grammar=grammar))
    if threads:
        config.llm_threads = threads
    if fake_replies is not None:
        config.backend = "fake"
    if replay:
        config.backend = "replay"
        if candidates is None and minutes is None:
            from .backends.replay import ReplayBackend

            config.candidates = len(ReplayBackend(store, replay))
    if resume is None:
        config.validate()

    say = lambda message: err.print(f"symdisc: {message}", highlight=False)  # noqa: E731
    saved = config
    if resume is not None:
        run = store.get_run(resume, kind="evolve")
        saved = EvolveConfig.from_dict({k: v for k, v in run["config"].items() if k != "prompts"})
        if fake_replies is not None:
            saved.backend = "fake"
    # On --resume, the cluster options given now replace the saved ones (a clustered run can go on locally).
    placement = {k: v for k, v in dict(cluster=cluster, proposers=proposers, evaluators=evaluators).items()
                 if v is not None}
    for key, value in placement.items():
        setattr(saved, key, value)
    clustered = saved.cluster != "local"
    if clustered and saved.backend == "replay":
        raise UsageError("--replay runs locally: leave out --cluster")
    the_proposer = _build_proposer(saved, store, say, fake_replies, fake_delay, clustered=clustered)
    heldout = saved.funnel and _heldout_available(say)

    if clustered:
        from .cluster import Cluster, ClusterEvolution

        loop = ClusterEvolution
        evaluation = Cluster(saved.cluster, getattr(the_proposer, "backend", None), saved.proposers, saved.evaluators,
                             timeout_s=saved.sandbox_timeout_s, memory_mb=saved.sandbox_memory_mb, heldout=heldout,
                             say=say)
    else:
        loop = Evolution
        evaluation = Sandbox(timeout_s=saved.sandbox_timeout_s, memory_mb=saved.sandbox_memory_mb, heldout=heldout)
    view = EvolveView(store, lambda: evo.run_id if evo else None, console=err)
    evo = None
    with GateClient() as gate, evaluation as sandbox:
        if resume is not None:
            overrides = dict(placement)
            if candidates is not None:
                overrides["candidates"] = candidates
            if minutes is not None:
                overrides["minutes"] = minutes
            evo = loop.resume(store, resume, the_proposer, gate, sandbox, view, overrides=overrides)
        else:
            evo = loop.start(store, config, the_proposer, gate, sandbox, view)
        try:
            with view:
                summary = evo.run()
        except KeyboardInterrupt:
            err.print(f"symdisc: interrupted; resume with: symdisc evolve --resume {evo.run_id}", highlight=False)
            raise typer.Exit(130)
        finally:
            the_proposer.close()
    if as_json:
        _print_json(dict(summary, id=evo.run_id))
    else:
        _print_leaderboard(store, evo.run_id)


def _build_proposer(config, store, say, fake_replies: Optional[Path] = None, fake_delay: float = 0.0,
                    clustered: bool = False):
    """The proposer a config asks for; the llm one around its backend (a scripted one for tests).

    ``clustered``: the backend is copied into proposer actors, so a llama.cpp model is not loaded
    here, and scripted replies follow the candidate's seq rather than each copy's call count.
    """
    from .proposers import make_proposer

    if config.proposer != "llm":
        return make_proposer(config.proposer)
    if config.backend == "fake":
        from .backends.fake import ScriptedBackend

        try:
            replies = json.loads(fake_replies.read_text())
        except (OSError, ValueError, AttributeError) as exc:
            raise UsageError(f"--fake-replies: {exc}") from None
        return make_proposer("llm", ScriptedBackend(replies, delay_s=fake_delay, by_seed=clustered))
    from .backends import open_backend

    backend, params_b = open_backend(config, store, say, lazy=clustered)
    return make_proposer("llm", backend, params_b)


def _heldout_available(say) -> bool:
    from .data import locate

    if locate("fashion-mnist") is None:
        say("funnel off: the held-out stage needs Fashion-MNIST (see `symdisc data status`)")
        return False
    return True


def _print_leaderboard(store, run_id: str, limit: int = 10) -> None:
    from rich.table import Table

    table = Table(title=f"run {run_id}: leaderboard (held-out score where the funnel gave one, then proxy fitness)")
    for col in ("id", "held-out", "proxy", "best lr", "origin", "state"):
        table.add_column(col)
    for row in store.leaderboard(run_id, limit):
        state = f"{row['state_scalars'] or 0} scalars" if (row["state_bytes"] or 0) <= 128 else f"{row['state_bytes']} B"
        heldout = f"{row['heldout']:.4f}" if row.get("heldout") is not None else ""
        table.add_row(str(row["id"]), heldout, f"{row['fitness']:.4f}", f"{row['best_lr']:g}" if row["best_lr"] else "",
                      row["name"] or row["origin"], state)
    _stdout().print(table)


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
    from .store import default_db_path

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
    """Summary, leaderboard, rejection histogram and best code of a run."""
    store = _open_store()
    run = store.get_run(run_id)
    if run["kind"] == "compare":
        from .compare import compare_report

        report = compare_report(store, run["id"])
        figure = store.path.parent / "compare" / run["id"] / "best_so_far.png"
        report["figure"] = str(figure) if figure.exists() else None
        if as_json:
            _print_json(dict(run, report=report))
        else:
            _print_compare(report)
        return
    board = store.leaderboard(run["id"], 10)
    reasons = store.reason_counts(run["id"])
    best = board[0] if board else None
    from .funnel import funnel_report

    funnel = funnel_report(store.candidates(run["id"], ["evaluated"]))
    if as_json:
        _print_json(dict(run, leaderboard=[_candidate_json(r, with_text=False) for r in board], rejections=reasons,
                         statuses=store.status_counts(run["id"], proposed_only=True), funnel=funnel,
                         best=_candidate_json(best) if best else None))
        return
    out = _stdout()
    summary = run.get("summary") or {}
    cfg = run.get("config") or {}
    out.print(f"[bold]run {run['id']}[/bold]  {run['kind']}  {run['status']}  created {run['created_at']}", highlight=False)
    out.print(f"model {run['model']}  sha256 {(run['model_sha256'] or '')[:16]}  backend {run['backend']}  "
              f"memory {cfg.get('memory')}  seed {cfg.get('seed')}", highlight=False)
    if summary:
        out.print(f"{summary.get('candidates', 0)} candidates, {summary.get('passed_gate', 0)} passed the gate, "
                  f"{summary.get('tokens_per_s') or 0} tok/s, {summary.get('candidates_per_min') or 0} cand/min, "
                  f"{summary.get('elapsed_s', 0)} s", highlight=False)
    _print_leaderboard(store, run["id"])
    if reasons:
        from rich.table import Table

        table = Table(title="rejections and failures by reason")
        table.add_column("reason")
        table.add_column("count", justify="right")
        for reason, count in reasons.items():
            table.add_row(reason, str(count))
        out.print(table)
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
        out.print(Syntax(best["normalized"] or best["code"] or "", "python"))


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
    from .store import default_db_path

    typer.echo(str(default_db_path()))


@runs_app.command("export")
def runs_export(
    candidate_id: int = typer.Argument(..., help="A candidate id (see runs show)."),
    output: Path = typer.Option(..., "-o", "--output", help="The .py file to write."),
) -> None:
    """Write a candidate as a one-file torch.optim.Optimizer that needs only torch."""
    from . import __version__
    from .export import render

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


@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Catalog models: size, installed or not, and where."""
    from .models import list_models, models_dir

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
    from .models import pull

    err = _stderr()
    path = pull(name, progress=lambda message: err.print(f"  {message}", highlight=False))
    typer.echo(str(path))


@app.command()
def compare(
    proposers: str = typer.Option("llm,genome,tpe,random", help="Comma-separated strategies."),
    evaluations: int = typer.Option(50, "--evaluations", "-e", help="Sandbox evaluations per repeat (the shared budget)."),
    repeats: int = typer.Option(2, "--repeats", "-r", help="Independent repeats per strategy (seeds 0..R-1)."),
    memory: str = typer.Option("scalar", "--memory", "-m"),
    model: str = typer.Option("auto", help="Model for the llm strategy."),
    funnel: bool = typer.Option(True, "--funnel/--no-funnel"),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the figure (default: runs/compare/RUN_ID)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run search strategies with the same evaluation budget and compare their best-so-far."""
    from .compare import plot_compare, run_compare
    from .config import EvolveConfig
    from .gateproc import GateClient
    from .proposers import PROPOSERS, make_proposer
    from .sandbox import Sandbox

    names = [p for p in proposers.split(",") if p]
    for name in names:
        if name not in PROPOSERS:
            raise UsageError(f"unknown proposer {name!r} (one of {', '.join(PROPOSERS)})")
    memory = _memory_option(memory)
    store = _open_store(create=True)
    err = _stderr()
    say = lambda message: err.print(f"symdisc: {message}", highlight=False)  # noqa: E731
    backend = params_b = None
    if "llm" in names:
        from .backends import open_backend

        backend, params_b = open_backend(EvolveConfig(model=model), store, say)

    def build(name):
        return make_proposer(name, backend, params_b) if name == "llm" else make_proposer(name)

    heldout = funnel and _heldout_available(say)
    t0 = time.perf_counter()
    with GateClient() as gate, Sandbox(heldout=heldout) as sandbox:
        report = run_compare(store, names, evaluations, repeats, memory, build, gate, sandbox, funnel=heldout, say=say)
    if backend is not None:
        backend.close()
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    folder = Path(out) if out else store.path.parent / "compare" / report["id"]
    folder.mkdir(parents=True, exist_ok=True)
    png = plot_compare(folder / "best_so_far.png", report["results"], report["seed_baseline"])
    report["figure"] = str(png) if png else None
    if as_json:
        _print_json(report)
        return
    _print_compare(report)


def _print_compare(report: dict) -> None:
    from rich.table import Table

    table = Table(title=f"symdisc compare {report['id']}: best proxy fitness after % of {report['evaluations']} "
                        f"evaluations (mean ± std over repeats)")
    for col in ("strategy", "10%", "25%", "50%", "100%", "best held-out", "candidates", "wall s"):
        table.add_column(col)
    for name, row in report["table"].items():
        cells = []
        for key in ("10%", "25%", "50%", "100%"):
            c = row[key]
            cells.append(f"{c['mean']:.4f} ± {c['std']:.4f}" if c["mean"] is not None else "")
        held = f"{row['best_heldout_mean']:.4f}" if row["best_heldout_mean"] is not None else "none promoted"
        table.add_row(name, *cells, held, f"{row['candidates_mean']:.0f}", f"{row['wall_s_mean']:.0f}")
    out_console = _stdout()
    out_console.print(table)
    if report.get("seed_baseline") is not None:
        out_console.print(f"best built-in seed (proxy): {report['seed_baseline']:.4f}; 'best held-out' is the best "
                          "held-out score among a strategy's own candidates (the funnel scores those that beat "
                          "the incumbent)", highlight=False)
    if report.get("figure"):
        out_console.print(f"figure: {report['figure']}", highlight=False)
    if report.get("wall_s"):
        out_console.print(f"wall time {report['wall_s']:.0f} s", highlight=False)


@app.command()
def simplify(
    candidate_id: int = typer.Argument(..., help="An evaluated candidate (see runs show)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Drop statements and round constants while the held-out score stays within the noise band."""
    from .gateproc import GateClient
    from .sandbox import Sandbox
    from .simplify import simplify_code

    store = _open_store()
    row = store.get_candidate(candidate_id)
    if row["status"] not in ("evaluated", "duplicate") or not row.get("normalized"):
        raise SymdiscError(f"candidate {candidate_id} did not pass evaluation ({row['status']}: {row['reason']})")
    err = _stderr()
    if not _heldout_available(lambda m: err.print(f"symdisc: {m}", highlight=False)):
        raise SymdiscError("simplify judges by the held-out score, which needs Fashion-MNIST")
    run = store.get_run(row["run_id"])
    memory = (run["config"] or {}).get("memory", "scalar")
    from .config import ProxyConfig

    proxy = (run["config"] or {}).get("proxy") or ProxyConfig().__dict__
    with GateClient() as gate, Sandbox(heldout=True) as sandbox:
        def score(code):
            gated = gate.check(code, memory)
            if not gated.verdict.ok:
                return None
            answer = sandbox.evaluate(gated.normalized, memory, stages=("probe", "proxy", "heldout"), proxy=proxy,
                                      timeout_s=120)
            return answer if answer.get("ok") and answer.get("heldout") else None

        result = simplify_code(row["normalized"], score, say=lambda m: err.print(f"  {m}", highlight=False))
    answer = result["answer"]
    new_id = store.add_candidate(
        row["run_id"], store.next_seq(row["run_id"]), "simplify", status="evaluated", parent_id=candidate_id,
        name=f"simplified-{candidate_id}", code=result["code"], normalized=result["code"], response=result["code"],
        fitness=answer["fitness"], best_lr=answer["proxy"]["best_lr"], heldout=answer["heldout"]["fitness"],
        state_scalars=answer.get("state_scalars"), state_bytes=answer.get("state_bytes"),
        fingerprint=answer.get("fingerprint"), eval_ms=answer["ms"].get("sandbox"))
    report = {"id": new_id, "parent_id": candidate_id, "steps": result["steps"], "band": result["band"],
              "heldout_before": result["original"]["heldout"]["fitness"], "heldout_after": answer["heldout"]["fitness"],
              "size_before": result["size_before"], "size_after": result["size_after"], "code": result["code"]}
    if as_json:
        _print_json(report)
        return
    out = _stdout()
    out.print(f"candidate {candidate_id} -> {new_id}: {len(result['steps'])} simplifications, syntax nodes "
              f"{result['size_before']} -> {result['size_after']}, held-out {report['heldout_before']:.4f} -> "
              f"{report['heldout_after']:.4f} (noise band {result['band']:.4f})", highlight=False)
    sys.stdout.write(result["code"])


data_app = typer.Typer(no_args_is_help=True, help="Data sets for symdisc bench.")
app.add_typer(data_app, name="data")


@app.command()
def bench(
    candidates: list[str] = typer.Argument(..., help="Optimizers to test: a built-in name, a RUN_ID (its best), a CANDIDATE_ID, or a .py file."),
    against: str = typer.Option("adam", help="Comma-separated baselines (built-in names or the same kinds as CANDIDATE)."),
    task: str = typer.Option("fmnist-noisy", help="fmnist-noisy, fmnist, mnist or cifar10."),
    noise: Optional[float] = typer.Option(None, help="Training-label noise rate (default: the task's, 0.2 for fmnist-noisy)."),
    seeds: int = typer.Option(3, help="Seeds per optimizer."),
    epochs: Optional[float] = typer.Option(None, help="Training length in epochs (default 3)."),
    steps: Optional[int] = typer.Option(None, help="Training length in steps (instead of --epochs)."),
    tune: int = typer.Option(0, help="Optuna TPE trials per optimizer for the learning rate (0: documented defaults)."),
    tune_steps: int = typer.Option(300, "--tune-steps", help="Training steps per tuning trial (short trials favour "
                                   "large learning rates: give the training length for a search that matches the run)."),
    lr: list[str] = typer.Option([], "--lr", help="NAME=VALUE: a fixed learning rate for one optimizer (repeatable)."),
    batch: int = typer.Option(128, help="Mini-batch size."),
    subset: Optional[int] = typer.Option(None, help="Train on a random subset of this many examples."),
    suite: Optional[str] = typer.Option(None, help="evo-optimizer: that project's protocol and table."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Where local data sets live (CIFAR-10)."),
    evals: int = typer.Option(1, "--evals-per-epoch", help="Test-set evaluations per epoch."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: runs/bench/RUN_ID)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Train real models with discovered and classic optimizers and compare them fairly."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .bench import run_bench
    from .config import BenchConfig

    if epochs is not None and steps is not None:
        raise UsageError("give --epochs or --steps, not both")
    fixed = {}
    for item in lr:
        name, _, value = item.partition("=")
        try:
            fixed[name] = float(value)
        except ValueError:
            raise UsageError(f"--lr wants NAME=VALUE, got {item!r}") from None
    config = BenchConfig(candidates=list(candidates), against=[a for a in against.split(",") if a], task=task,
                         noise=noise, seeds=seeds, epochs=3 if epochs is None and steps is None else epochs,
                         steps=steps, batch=batch, tune=tune, tune_steps=tune_steps, lr=fixed, suite=suite,
                         subset=subset, data_dir=str(data_dir) if data_dir else None, evals_per_epoch=evals)
    store = _open_store(create=True)
    err = _stderr()
    t0 = time.perf_counter()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err, transient=True)
    with progress:
        report = run_bench(config, store, out, progress, say=lambda m: err.print(f"symdisc: {m}", highlight=False))
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    if as_json:
        _print_json(report)
    else:
        _print_bench(report)
    if report["status"] == "interrupted":
        err.print("symdisc: interrupted; finished seeds are kept above and in the database", highlight=False)
        raise typer.Exit(130)


def _print_bench(report: dict) -> None:
    from rich.table import Table

    out = _stdout()
    for task, data in report["tasks"].items():
        table = Table(title=f"symdisc bench {report['id']}: {task} (test accuracy, mean ± std over seeds)")
        for col in ("optimizer", "lr", "final acc", "best acc", "state", "class", "steps/s", "seeds"):
            table.add_column(col)
        for name, s in sorted(data["summary"].items(), key=lambda kv: -kv[1]["final_mean"]):
            state = f"{s['state_bytes'] / 1024:.1f} KiB" if s["state_bytes"] >= 1024 else f"{s['state_bytes']} B"
            diverged = f" ({s['diverged']} diverged)" if s["diverged"] else ""
            table.add_row(name, f"{s['lr']:.3g}", f"{s['final_mean']:.4f} ± {s['final_std']:.4f}",
                          f"{s['best_mean']:.4f} ± {s['best_std']:.4f}", state, s["memory_class"],
                          f"{s['steps_per_s']:.1f}", f"{s['seeds']}{diverged}")
        out.print(table)
        for line in data["verdicts"]:
            out.print(f"  {line}", highlight=False)
    if "overall_fitness" in report:
        table = Table(title="evo-optimizer protocol: task fitness = acc + 0.05 * max(0, 1 - final loss)")
        tasks = list(report["tasks"])
        for col in ["optimizer", "overall", *tasks]:
            table.add_column(col)
        for name, fit in sorted(report["overall_fitness"].items(), key=lambda kv: kv[1]):
            cells = [f"{report['tasks'][t]['summary'][name]['evo_fitness']:.4f}" for t in tasks]
            table.add_row(name, f"{fit:.4f}", *cells)
        out.print(table)
    for task, files in report["files"].items():
        out.print(f"files ({task}): {', '.join(files.values())}", highlight=False)
    out.print(f"wall time {report.get('wall_s', 0):.0f} s", highlight=False)


@data_app.command("status")
def data_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Which data sets are present, and how to get the missing ones."""
    from . import data

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
    from . import data

    typer.echo(str(data.pull(name)))


def main() -> None:
    """Entry point: one-line errors with exit code 1 (2 for usage errors); typer handles the rest."""
    try:
        app()
    except SymdiscError as err:
        if os.environ.get("SYMDISC_DEBUG"):
            raise
        sys.stderr.write(f"symdisc: error: {err}\n")
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("symdisc: interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
