"""`symdisc evolve` and `symdisc compare`: searches."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer

from symdisc.errors import UsageError
from symdisc.cli.base import _heldout_available, _memory_option, _open_store, _print_json, _stderr, app
from symdisc.cli.render import print_compare, print_leaderboard

TASK_HELP = ("A task file (PATH.py) or a built-in task (fmnist-noisy, mnist-noisy, lm-chars) to select on instead of "
             "the built-in real-data stages; repeat it to rank by the mean standardized score over several "
             "(docs/tasks.md).")

# Requests decoded together by in-process llama.cpp when --parallel is not given: chosen from
# benchmarks/decode_throughput.py on this project's two-core machines (docs/measurements.md, Batched generation).
DEFAULT_PARALLEL = 4


@app.command()
def evolve(
    model: Optional[list[str]] = typer.Option(None, "--model", help="Catalog name, a path to a .gguf file, or auto (the installed model that did best in benchmarks/novelty.py). Repeat it to let a bandit choose among several."),
    islands: int = typer.Option(3, "--islands", help="llm: islands that evolve apart (their best migrate now and then)."),
    operators: Optional[str] = typer.Option(None, "--operators", help="llm: comma-separated prompt operators (default: explore,mutate,crossover,constants,simplify,fix)."),
    temperatures: Optional[str] = typer.Option(None, "--temperatures", help="llm: comma-separated temperatures a bandit draws from per request (default 0.6,0.9,1.2)."),
    api_base: Optional[list[str]] = typer.Option(None, "--api-base", help="An OpenAI-compatible server instead of in-process llama.cpp; repeat it for several, used round-robin."),
    api_concurrency: int = typer.Option(1, "--api-concurrency", help="Requests at once per --api-base server."),
    api_model: Optional[str] = typer.Option(None, "--api-model", help="Model name to send to --api-base."),
    memory: str = typer.Option("scalar", "--memory", "-m", help="scalar (O(1) state) or buffers."),
    max_buffers: Optional[int] = typer.Option(None, "--max-buffers", help="buffers class: the most tensors shaped like the parameter a rule may keep in state (1: Lion's memory; default: no limit but the class's 16 entries)."),
    proposer: Optional[str] = typer.Option(None, "--proposer", "-p", help="mutate (the default: program mutations and fitted constants, no model; it did best in benchmarks/search_compare.py; llm with --replay), llm (the model, with prompt operators on islands), hybrid (mutate with the model as one more source), rl (REINFORCE over the mutation kinds), genome (evo-optimizer's genetic algorithm), tpe (Optuna's TPE over genomes), random (random genomes), llm-legacy (the loop before operators) or llm-independent (the seed prompt sampled independently)."),
    funnel: bool = typer.Option(True, "--funnel/--no-funnel", help="Score proxy winners on the cascade's real-data stages (heldout, long; the audit reported beside); --no-funnel: the proxy alone."),
    task: Optional[list[str]] = typer.Option(None, "--task", help=TASK_HELP),
    candidates: Optional[int] = typer.Option(None, "--candidates", "-n", help="Budget: proposed candidates (default 50 without --minutes)."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Budget: wall-clock minutes."),
    seed: int = typer.Option(0, help="Seed for sampling and program selection."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Comma-separated built-in rules that start the population (default: sgd,sign_sgd,robust_zero_state; buffers adds momentum). See symdisc/rules/."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue RUN_ID (or latest) where it stopped."),
    replay: Optional[str] = typer.Option(None, "--replay", help="Re-score the replies logged by RUN_ID, without a model."),
    grammar: Optional[bool] = typer.Option(None, "--grammar/--no-grammar", help="Force the def update(...) skeleton (default: on below 2B parameters)."),
    temperature: Optional[float] = typer.Option(None, help="One sampling temperature for every request (default: llm draws from --temperatures, the others use the run config's 0.8)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Longest reply, in tokens (default 320)."),
    threads: Optional[int] = typer.Option(None, help="llama.cpp threads (default: all cores; evaluation runs between generations)."),
    parallel: Optional[int] = typer.Option(None, "--parallel", help=f"In-process llama.cpp: requests decoded together, sharing prompt prefixes (default {DEFAULT_PARALLEL}; 1: one at a time). See docs/models.md, Faster generation."),
    cluster: Optional[str] = typer.Option(None, "--cluster", help="local (one process, the default), auto (a Ray cluster running here, else a new one) or a Ray address HEAD:6379."),
    proposers: Optional[int] = typer.Option(None, "--proposers", help="Cluster: proposer actors (default: one per node for llama.cpp, else one)."),
    evaluators: Optional[int] = typer.Option(None, "--evaluators", help="Cluster: evaluator actors, one sandbox each (default: the free CPUs)."),
    fake_replies: Optional[Path] = typer.Option(None, "--fake-replies", hidden=True, help="Testing: a JSON list of replies."),
    fake_delay: float = typer.Option(0.0, "--fake-delay", hidden=True),
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
) -> None:
    """Discover update rules: a proposer (program mutations by default, or the model) writes candidates, the gate, the sandbox and the cascade judge them, the best survive."""
    from symdisc.config import EvolveConfig, SamplingConfig, parse_seed_rules
    from symdisc.search.loop import Evolution
    from symdisc.judge.gateproc import GateClient
    from symdisc.cli.live import EvolveView
    from symdisc.judge.sandbox import Sandbox

    err = _stderr()
    if proposer is None:  # replayed or scripted replies stand for the model's
        proposer = "llm" if (replay or fake_replies is not None) else "mutate"
    if resume is None:
        _refuse_an_unused_model(proposer, model, api_base, fake_replies, replay)
    store = _open_store(create=True)
    models = list(model or ["auto"])
    config = EvolveConfig(
        model=models[0], models=models if len(models) > 1 else [], islands=islands, api_base=api_base[0] if api_base else None, api_bases=list(api_base or []),
        api_concurrency=api_concurrency, api_model=api_model, memory=_memory_option(memory), max_buffers=max_buffers,
        candidates=candidates if (candidates is not None or minutes is not None) else 50, minutes=minutes,
        seed=seed, seed_rules=parse_seed_rules(seeds), replay_run=replay, proposer=proposer, funnel=funnel,
        cluster=cluster or "local",
        proposers=proposers, evaluators=evaluators,
        sampling=SamplingConfig(**{k: v for k, v in dict(max_tokens=max_tokens, grammar=grammar).items()
                                   if v is not None}),
        # The default applies to in-process llama.cpp only; scripted, replayed and served replies
        # keep the one-at-a-time loop unless --parallel asks otherwise.
        parallel=parallel or (1 if (fake_replies is not None or replay or api_base) else DEFAULT_PARALLEL))
    if task:
        _use_tasks(config, task)
    if operators:
        config.operators = [op.strip() for op in operators.split(",") if op.strip()]
    if temperature is not None:
        config.sampling.temperature = temperature
        config.sampling.temperatures = [temperature]
    if temperatures:
        config.sampling.temperatures = [float(x) for x in temperatures.split(",") if x.strip()]
    if threads:
        config.llm_threads = threads
    elif proposer == "hybrid":
        config.llm_threads = 1  # the model keeps one core, the sandbox the other (pinned)
    if fake_replies is not None:
        config.backend = "fake"
    if replay:
        config.backend = "replay"
        if candidates is None and minutes is None:
            from symdisc.llm.replay import ReplayBackend

            config.candidates = len(ReplayBackend(store, replay))
    if resume is None:
        config.validate()

    say = lambda message: err.print(f"symdisc: {message}", highlight=False)  # noqa: E731
    saved = config
    # On --resume, the options given now replace the saved ones (a clustered run can go on locally).
    overrides = dict(cluster=cluster, proposers=proposers, evaluators=evaluators, candidates=candidates,
                     minutes=minutes, backend="fake" if fake_replies is not None else None, parallel=parallel)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if resume is not None:
        if task:
            raise UsageError("--resume continues a run on its own tasks: leave out --task")
        saved = EvolveConfig.resumed(store.get_run(resume, kind="evolve")["config"], overrides)
    clustered = saved.cluster != "local"
    if clustered and saved.backend == "replay":
        raise UsageError("--replay runs locally: leave out --cluster")
    if clustered and saved.proposer == "hybrid":
        raise UsageError("--proposer hybrid runs locally (the model and the sandbox on one core each): "
                         "leave out --cluster")
    if clustered and saved.tasks:
        raise UsageError("runs on task files run locally: leave out --cluster")
    the_proposer = _build_proposer(saved, store, say, fake_replies, fake_delay, clustered=clustered)
    heldout = asdict(saved.heldout) if saved.funnel and not saved.tasks and _heldout_available(say) else False

    if clustered:
        from symdisc.search.cluster import Cluster, ClusterEvolution

        loop = ClusterEvolution
        evaluation = Cluster(saved.cluster, getattr(the_proposer, "backend", None), saved.proposers, saved.evaluators,
                             timeout_s=saved.sandbox_timeout_s, memory_mb=saved.sandbox_memory_mb, heldout=heldout,
                             say=say, cascade=saved.cascade.worker_specs(asdict(saved.heldout)))
    else:
        loop = Evolution
        evaluation = Sandbox(timeout_s=saved.sandbox_timeout_s, memory_mb=saved.sandbox_memory_mb, heldout=heldout,
                             cascade=saved.cascade.worker_specs(asdict(saved.heldout)), tasks=_worker_tasks(saved))
    view = EvolveView(store, lambda: evo.run_id if evo else None, console=err)
    evo = None
    with GateClient() as gate, evaluation as sandbox:
        if resume is not None:
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
        print_leaderboard(store, evo.run_id)


def _use_tasks(config, specs: list[str]) -> None:
    """Select on task files: load and validate them (a one-line error for a broken file)."""
    from symdisc.tasks import load_tasks

    config.tasks = [t.as_dict() for t in load_tasks(list(specs))]
    config.cascade = config.cascade.on_tasks()


def _worker_tasks(config) -> list:
    """What the sandbox worker imports and prepares before its lock-down (none without --task)."""
    if not config.tasks or not config.funnel:
        return []
    from symdisc.tasks import worker_specs

    return worker_specs(config.tasks, config.task_fidelities)


def _refuse_an_unused_model(proposer: str, model, api_base, fake_replies, replay) -> None:
    """A model named for a proposer that writes without one is a mistake, not something to ignore."""
    from symdisc.config import LLM_PROPOSERS

    named = [flag for flag, value in (("--model", model), ("--api-base", api_base), ("--fake-replies", fake_replies),
                                      ("--replay", replay)) if value]
    if named and proposer not in LLM_PROPOSERS:
        raise UsageError(f"{named[0]} names a model, but --proposer {proposer} uses none: add --proposer hybrid "
                         f"(the model beside program mutations) or --proposer llm (the model alone)")


def _build_proposer(config, store, say, fake_replies: Optional[Path] = None, fake_delay: float = 0.0,
                    clustered: bool = False):
    """The proposer a config asks for; the llm one around its backend (a scripted one for tests).

    ``clustered``: the backend is copied into proposer actors, so a llama.cpp model is not loaded
    here, and scripted replies follow the candidate's seq rather than each copy's call count.
    """
    from symdisc.search.proposers import make_proposer

    from symdisc.search.proposers import LLM_PROPOSERS

    if config.proposer not in LLM_PROPOSERS:
        return make_proposer(config.proposer)
    if config.backend == "fake":
        from symdisc.llm.fake import ScriptedBackend

        try:
            replies = json.loads(fake_replies.read_text())
        except (OSError, ValueError, AttributeError) as exc:
            raise UsageError(f"--fake-replies: {exc}") from None
        return make_proposer(config.proposer, ScriptedBackend(replies, delay_s=fake_delay, by_seed=clustered))
    from symdisc.llm import open_backend

    if len(config.models) > 1:
        return _several_models(config, store, say, clustered)
    backend, params_b = open_backend(config, store, say, lazy=clustered)
    return make_proposer(config.proposer, backend, params_b)


def _several_models(config, store, say, clustered: bool):
    """One backend per --model; the llm proposer's bandit picks among them per request."""
    from dataclasses import replace

    from symdisc.llm import open_backend

    if clustered:
        raise UsageError("several --model run locally: leave out --cluster")
    models = []
    for name in config.models:
        backend, params_b = open_backend(replace(config, model=name), store, say)
        models.append(((getattr(backend, "info", {}) or {}).get("model") or name, backend, params_b))
    from symdisc.search.proposers import make_proposer

    return make_proposer(config.proposer, models[0][1], models[0][2], models=models)


@app.command()
def compare(
    proposers: str = typer.Option("llm,genome,tpe,random", help="Comma-separated strategies, the proposers of evolve --proposer: llm, llm-legacy, llm-independent (the seed prompt sampled independently, the baseline), mutate, hybrid, rl, genome, tpe, random."),
    evaluations: Optional[int] = typer.Option(None, "--evaluations", "-e", help="Budget per repeat: sandbox evaluations (default 50 without --minutes)."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Budget per repeat: wall-clock minutes, the same for every strategy (instead of --evaluations)."),
    repeats: int = typer.Option(2, "--repeats", "-r", help="Independent repeats per strategy (seeds 0..R-1)."),
    memory: str = typer.Option("scalar", "--memory", "-m", help="scalar (O(1) state) or buffers, for every strategy."),
    max_buffers: Optional[int] = typer.Option(None, "--max-buffers", help="buffers class: the most tensors shaped like the parameter a rule may keep in state (1: Lion's memory; default: no limit but the class's 16 entries)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Comma-separated built-in rules that start every repeat's population (default: the memory class's seeds)."),
    model: Optional[list[str]] = typer.Option(None, "--model", help="Model for the llm strategies; repeat it to let the bandit choose among several."),
    parallel: int = typer.Option(DEFAULT_PARALLEL, "--parallel", help="llm strategy, in-process llama.cpp: requests decoded together (1: one at a time)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="llama.cpp threads of the shared model (default: all cores; hybrid pins the model to one core)."),
    funnel: bool = typer.Option(True, "--funnel/--no-funnel", help="Score proxy winners on the cascade's real-data stages (heldout, long); --no-funnel: the proxy alone."),
    task: Optional[list[str]] = typer.Option(None, "--task", help=TASK_HELP),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue a stopped comparison (its id or latest): finished runs are kept, the stopped one goes on."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the figure (default: runs/compare/RUN_ID)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Run search strategies with the same budget (evaluations or minutes) and compare their best-so-far."""
    from symdisc.search.compare import plot_compare, run_compare
    from symdisc.config import EvolveConfig, check_seed_rules, parse_seed_rules
    from symdisc.judge.gateproc import GateClient
    from symdisc.search.proposers import LLM_PROPOSERS, PROPOSERS, make_proposer
    from symdisc.judge.sandbox import Sandbox

    store = _open_store(create=True)
    if resume is not None:
        record = store.get_run(resume, kind="compare")["config"]
        names, models = record["proposers"], list(record.get("models") or []) or list(model or ["auto"])
        tasks = list(record.get("tasks") or [])
        if task:
            raise UsageError("--resume continues a comparison on its own tasks: leave out --task")
        if evaluations is not None or minutes is not None:
            raise UsageError("--resume continues a comparison with its own budget: leave out --evaluations/--minutes")
    else:
        names, models = [p for p in proposers.split(",") if p], list(model or ["auto"])
        tasks = []
        if task:
            from symdisc.tasks import load_tasks

            tasks = [t.as_dict() for t in load_tasks(list(task))]
        if evaluations is not None and minutes is not None:
            raise UsageError("give --evaluations or --minutes, not both")
        if evaluations is None and minutes is None:
            evaluations = 50
        if minutes is not None and minutes <= 0:
            raise UsageError("--minutes must be positive")
    for name in names:
        if name not in PROPOSERS:
            raise UsageError(f"unknown proposer {name!r} (one of {', '.join(PROPOSERS)})")
    memory = _memory_option(memory)
    if resume is not None and seeds is not None:
        raise UsageError("--resume continues a comparison with its own seeds: leave out --seeds")
    seed_rules = check_seed_rules(parse_seed_rules(seeds), memory) if resume is None else None
    if resume is not None and max_buffers is not None:
        raise UsageError("--resume continues a comparison with its own buffer limit: leave out --max-buffers")
    if resume is None:
        EvolveConfig(memory=memory, max_buffers=max_buffers, seed_rules=seed_rules).validate()
    err = _stderr()
    say = lambda message: err.print(f"symdisc: {message}", highlight=False)  # noqa: E731
    opened = []  # (name, backend, params_b), one per --model, loaded once for every repeat
    if any(n in LLM_PROPOSERS for n in names):
        from symdisc.llm import open_backend

        for name in models:
            opened_config = EvolveConfig(model=name, parallel=parallel)
            if threads:
                opened_config.llm_threads = threads
            backend, params_b = open_backend(opened_config, store, say)
            opened.append(((getattr(backend, "info", {}) or {}).get("model") or name, backend, params_b))

    def build(name):
        if name not in LLM_PROPOSERS:
            return make_proposer(name)
        if len(opened) == 1:
            return make_proposer(name, opened[0][1], opened[0][2])
        return make_proposer(name, opened[0][1], opened[0][2], models=opened)

    heldout = funnel and not tasks and _heldout_available(say)
    worker_tasks = []
    if tasks and funnel:
        from symdisc.tasks import worker_specs

        worker_tasks = worker_specs(tasks)
    t0 = time.perf_counter()
    try:
        with GateClient() as gate, Sandbox(heldout=heldout, tasks=worker_tasks) as sandbox:
            report = run_compare(store, names, evaluations, repeats, memory, build, gate, sandbox,
                                 funnel=heldout or bool(worker_tasks), say=say, parallel=parallel, minutes=minutes,
                                 resume=resume, models=models if opened else [], seed_rules=seed_rules, tasks=tasks,
                                 max_buffers=max_buffers)
    finally:
        for _, backend, _ in opened:
            backend.close()
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    folder = Path(out) if out else store.path.parent / "compare" / report["id"]
    folder.mkdir(parents=True, exist_ok=True)
    png = plot_compare(folder / "best_so_far.png", report["results"], report["seed_baseline"], report.get("minutes"))
    report["figure"] = str(png) if png else None
    if as_json:
        _print_json(report)
    else:
        print_compare(report)
    if report["status"] == "interrupted":
        err.print(f"symdisc: interrupted; resume with: symdisc compare --resume {report['id']}", highlight=False)
        raise typer.Exit(130)
