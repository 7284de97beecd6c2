"""The second discovery campaign: searches that select on two tasks, each class's winner benched fairly.

    flock /work/measure.lock python benchmarks/campaign2.py          # 3 to 3.5 hours on 2 cores
    python benchmarks/campaign2.py --only summary                    # rewrite OUT/summary.md and .json
    python benchmarks/campaign2.py --smoke --home /tmp/c2 --out /tmp/c2/out   # the whole path, tiny

Every step is an ordinary symdisc command, journaled by benchmarks/journal.py: its --json answer is
OUT/STEP.json, a step whose answer is there is skipped, a stopped `evolve` or `bench` goes on with
--resume. Run it again with the same arguments until it prints the summary. The run database is
copied, compressed, to OUT/home.db.gz after every step (and by ``--snapshot``), and put back on a
machine that has none, so the campaign can go on across machines once that file is committed.

1. search-CLASS-R: `symdisc evolve --proposer P --memory CLASS --seed R --minutes M --task T ...` for
   the scalar and the buffers class, R = 0 .. REPEATS-1, selecting on every --search-tasks task.
2. winners.json: per class, the best own program over its repeats (not a seed, not a seed with fitted
   constants, not a `simplify` result) by the cascade's order (highest stage, then rank score);
   simplify-CLASS: `symdisc simplify ID`, whose result is what the bench trains.
3. bench-main (the goals' numbers first): both winners against adamw (the time-to-target reference),
   adam, sign-sgd and each class's best new built-in, on noisy Fashion-MNIST, the whole training set,
   tuned on shorter runs (--tune-epochs); bench-subset: the other baselines on --subset images;
   bench-mnist-noise40, bench-fmnist-2c2d: the winners against adam and sign-sgd; lm-chars-tune-LR and
   bench-lm-chars: the language-model task file, which bench trains at fixed learning rates, so the
   campaign tunes them itself on a grid (one seed, full length) before the seeded runs.
4. OUT/summary.md and summary.json: commands, wall times, each search run's numbers, every bench
   step's table, and the goals checked from the bench answers (paired difference, 95% interval,
   paired t p, Holm over each class's goal tests), met or missed with the distance.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import Counter
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from journal import ROOT, env as journal_env, restore, run_step, saved, say, snapshot, stopped_run, symdisc  # noqa: E402

CLASSES = ("scalar", "buffers")
ALPHA = 0.05
# The goal's fixed figures (noisy Fashion-MNIST at full size, measured before this campaign): half
# the gap from signSGD (0.8712) to Adam (0.9032).
HALF_GAP_FIGURE = 0.887
OTHER_TASKS = {  # step name -> bench's task arguments, and the same as bench stores them
    "mnist-noise40": (["--task", "mnist", "--noise", "0.4"], {"task": "mnist", "noise": 0.4}),
    "fmnist-2c2d": (["--task", "fmnist-2c2d"], {"task": "fmnist-2c2d"}),
}
LM_TASK = "lm-chars"
# --smoke: every step, tiny. A search spends its first minute or so scoring the seed rules on its
# tasks, so a shorter budget proposes nothing and leaves no winner to bench; lm-chars alone is the
# cheaper task to select on.
SMOKE = dict(minutes=1.5, search_tasks="lm-chars", repeats=1, main_subset=512, subset=512, epochs=1.0, seeds=2,
             tuner="none", lm_steps=60)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", default=str(ROOT / "runs" / "campaign2"), help="SYMDISC_HOME of the campaign's runs")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "campaign2"))
    ap.add_argument("--snapshot", action="store_true",
                    help="only write OUT/home.db.gz from the run database now (before a machine is given up "
                         "half-way through a step; every finished step writes it too)")
    ap.add_argument("--only", choices=["search", "bench", "summary"],
                    help="search: stop after the searches and winners; bench: the bench steps (the searches must "
                         "be done); summary: rewrite the summary from the journal")
    ap.add_argument("--smoke", action="store_true", help="tiny preset: " + ", ".join(f"{k}={v}" for k, v in SMOKE.items()))
    search = ap.add_argument_group("search")
    search.add_argument("--classes", default="scalar,buffers")
    search.add_argument("--proposer", default="mutate", help="evolve --proposer")
    search.add_argument("--models", default="", help="comma-separated --model for model-backed proposers")
    search.add_argument("--minutes", type=float, default=12.0, help="wall clock per search run")
    search.add_argument("--repeats", type=int, default=3, help="search runs per class (seeds 0..R-1)")
    search.add_argument("--search-tasks", default="fmnist-noisy,lm-chars", help="evolve --task, each")
    search.add_argument("--max-buffers", type=int, default=1,
                        help="buffers class: evolve --max-buffers (1: Lion's memory, one tensor like the parameter)")
    bench = ap.add_argument_group("bench")
    # The best new built-in of each class in the full-size built-ins table (docs/measurements.md)
    bench.add_argument("--builtin-scalar", default="normalized-sgd", help="the scalar class's best new built-in")
    bench.add_argument("--builtin-buffers", default="sophia", help="the buffers class's best new built-in")
    bench.add_argument("--main-against", default="adamw,adam,sign-sgd",
                       help="the main step's baselines (the first is the time-to-target reference); the class "
                            "built-ins are added")
    bench.add_argument("--subset-against", default="adam,sign-sgd,sgd,lion,robust-zero-state,"
                       "adam-mini-v,orthogonal-sgd,muon")
    bench.add_argument("--other-against", default="adam,sign-sgd", help="baselines on the other tasks")
    bench.add_argument("--other-tasks", default="mnist-noise40,fmnist-2c2d,lm-chars")
    bench.add_argument("--main-subset", type=int, default=0, help="training images of the main step (0: all)")
    bench.add_argument("--subset", type=int, default=10000, help="training images of the other steps")
    bench.add_argument("--seeds", type=int, default=5)
    bench.add_argument("--epochs", type=float, default=10.0)
    bench.add_argument("--schedule", default="warmup-cosine")
    bench.add_argument("--tuner", default="grid", help="bench --tuner (grid, tpe, none)")
    bench.add_argument("--tune-epochs", type=float, default=1.0, help="epochs per tuning trial (0: as the runs)")
    bench.add_argument("--lm-grid", default="1e-5:1:2", help="lm-chars: the learning rates tried (bench's grid syntax)")
    bench.add_argument("--lm-steps", type=int, default=0, help="lm-chars: training steps (0: the task's STEPS)")
    pre = ap.parse_args(argv)
    if pre.smoke:
        ap.set_defaults(**SMOKE)
    args = ap.parse_args(argv)
    unknown = [t for t in _list(args.other_tasks) if t not in OTHER_TASKS and t != LM_TASK]
    if unknown or not set(classes(args)) <= set(CLASSES):
        ap.error(f"--other-tasks takes {', '.join([*OTHER_TASKS, LM_TASK])}; --classes takes {', '.join(CLASSES)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    Path(args.home).mkdir(parents=True, exist_ok=True)
    if args.snapshot:
        say(f"snapshot: {snapshot(args.home, out)}")
        return 0
    restore(args.home, out)  # a new machine goes on from the committed copy of the run database
    env = journal_env(args.home)
    if args.only != "summary":
        (out / "campaign.json").write_text(json.dumps(vars(args), indent=1))
        if args.only != "bench":
            search(args, out, env)
        winners = pick_winners(args, out, env)
        if args.only != "search":
            bench_all(args, out, env, winners)
    summarize(out, load_args(out, args))
    return 0


def load_args(out: Path, args):
    """The arguments the journal was written with (for --only summary)."""
    path = out / "campaign.json"
    return argparse.Namespace(**json.loads(path.read_text())) if path.exists() else args


def classes(args) -> list[str]:
    return [c for c in args.classes.split(",") if c]


def builtin_of(args, memory: str) -> str:
    return getattr(args, f"builtin_{memory}")


def _list(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


# -- 1. search -----------------------------------------------------------------------------------
def search_step(memory: str, repeat: int) -> str:
    return f"search-{memory}-{repeat}"


def search(args, out: Path, env: dict) -> None:
    tasks = _list(args.search_tasks)
    models = [a for m in _list(args.models) for a in ("--model", m)]
    for memory in classes(args):
        for repeat in range(args.repeats):
            def resume(memory=memory, repeat=repeat):
                ids = stopped_run(args.home, "evolve", lambda c: c.get("memory") == memory and c.get("seed") == repeat
                                  and c.get("proposer") == args.proposer and c.get("minutes") == args.minutes
                                  and c.get("max_buffers") == ((args.max_buffers or None) if memory == "buffers" else None)
                                  and [t.get("name") for t in c.get("tasks") or []] == tasks)
                return symdisc("evolve", "--resume", ids[0], "--json") if ids else []

            run_step(search_step(memory, repeat), symdisc(
                "evolve", "--proposer", args.proposer, "--memory", memory, "--seed", str(repeat),
                "--minutes", f"{args.minutes:g}", *[a for t in tasks for a in ("--task", t)], *models,
                *(["--max-buffers", str(args.max_buffers)] if memory == "buffers" and args.max_buffers else []),
                "--json"),
                out, env, resume=resume)


def search_runs(out: Path, memory: str) -> list[str]:
    """The ids of the class's finished search runs, in repeat order."""
    runs, repeat = [], 0
    while (answer := saved(search_step(memory, repeat), out)) is not None:
        runs.append(answer["id"])
        repeat += 1
    return runs


# -- 2. winners ----------------------------------------------------------------------------------
def is_own(row: dict, by_id: dict) -> bool:
    """A program the search wrote: not a seed, not a seed with fitted constants (a built-in still),
    not `simplify`'s reduction."""
    if row["origin"] in ("seed", "simplify"):
        return False
    parent = by_id.get(row.get("parent_id"))
    return not (row["origin"] == "fit" and parent is not None and parent["origin"] == "seed")


def fitted(row: dict, by_id: dict) -> bool:
    """Whether the program or one of its ancestors had its constants fitted (origin fit)."""
    seen = set()
    while row is not None and row["id"] not in seen:
        if row["origin"] == "fit":
            return True
        seen.add(row["id"])
        row = by_id.get(row.get("parent_id"))
    return False


def rank_key(row: dict) -> tuple:
    """The cascade's order (the store's BEST_ORDER): the higher stage first, then the rank score."""
    from symdisc.store import fidelity_of, rank_score

    return (fidelity_of(row), rank_score(row))


def pick_winner(runs: list[tuple[str, list[dict]]]):
    """The best evaluated own program over several runs ((run id, all its candidates), in repeat
    order), with what the summary says of it; None when no run evaluated one of its own."""
    best = None
    for order, (run_id, rows) in enumerate(runs):
        by_id = {r["id"]: r for r in rows}
        for r in rows:
            if r["status"] != "evaluated" or r.get("fitness") is None or not is_own(r, by_id):
                continue
            key = (*rank_key(r), -order, -r["seq"])
            if best is None or key > best[0]:
                best = (key, r, by_id)
    if best is None:
        return None
    _, r, by_id = best
    return {"run_id": r["run_id"], "id": r["id"], "origin": r["origin"], "operator": r.get("operator"),
            "fidelity": rank_key(r)[0], "rank_score": r.get("rank_score"), "proxy": r.get("fitness"),
            "fitted": fitted(r, by_id), "code": r.get("normalized") or r.get("code")}


def pick_winners(args, out: Path, env: dict) -> dict:
    """winners.json: per class the winner and the candidate the bench trains (its simplified form)."""
    from symdisc.store import Store

    winners = {}
    with Store(Path(args.home) / "symdisc.db") as store:
        for memory in classes(args):
            winner = pick_winner([(run_id, store.candidates(run_id)) for run_id in search_runs(out, memory)])
            if winner is not None:
                simplified = run_step(f"simplify-{memory}", symdisc("simplify", str(winner["id"]), "--json"),
                                      out, env, may_fail=True)
                winner["simplified"] = None if "failed" in simplified else {
                    k: simplified.get(k) for k in ("id", "size_before", "size_after", "heldout_before", "heldout_after",
                                                   "code")}
                winner["bench_id"] = winner["id"] if winner["simplified"] is None else simplified["id"]
            winners[memory] = winner
    (out / "winners.json").write_text(json.dumps(winners, indent=1))
    say("winners: " + ", ".join(f"{m}: {w['bench_id'] if w else 'none'}" for m, w in winners.items()))
    return winners


def builtin_steps(code: str) -> list[str]:
    """The built-in steps a program contains whole: the mutation engine inserts orthogonal-sgd's
    Newton-Schulz orthogonalisation as one block (symdisc/search/mutations.py), so a winner built
    around it is that built-in's step with something around it, which the summary says."""
    from symdisc.search.mutations import NS

    return ["orthogonal-sgd's Newton-Schulz orthogonalisation"] if all(repr(c) in (code or "") for c in NS) else []


def label(winner: dict) -> str:
    return f"candidate-{winner['bench_id']}"


# -- 3. bench ------------------------------------------------------------------------------------
def protocol(args) -> list[str]:
    argv = ["--seeds", str(args.seeds), "--epochs", f"{args.epochs:g}", "--schedule", args.schedule,
            "--tuner", args.tuner]
    return argv + (["--tune-epochs", f"{args.tune_epochs:g}"] if args.tuner != "none" and args.tune_epochs else [])


def bench_step(name: str, ids: list[str], against: list[str], extra: list[str], args, out: Path, env: dict,
               expect: dict) -> dict:
    """One bench command; a stopped one (the same optimizers and ``expect``ed options) goes on with --resume."""
    def resume():
        ids_ = stopped_run(args.home, "bench", lambda c: c.get("candidates") == ids and c.get("against") == against
                           and all(c.get(k) == v for k, v in expect.items()))
        return symdisc("bench", "--resume", ids_[0], "--json") if ids_ else []

    return run_step(name, symdisc("bench", *ids, "--against", ",".join(against), *extra, "--json"), out, env,
                    resume=resume)


def bench_all(args, out: Path, env: dict, winners: dict) -> None:
    found = [w for w in winners.values() if w is not None]
    if not found:
        say("no class has a winner of its own: nothing to bench")
        return
    ids = [str(w["bench_id"]) for w in found]
    common = dict(seeds=args.seeds, epochs=args.epochs, schedule=args.schedule)
    main_against = _list(args.main_against)
    main_against += [b for b in (builtin_of(args, m) for m in classes(args)) if b not in main_against]
    bench_step("bench-main", ids, main_against, ["--task", "fmnist-noisy", *protocol(args)]
               + (["--subset", str(args.main_subset)] if args.main_subset else []), args, out, env,
               dict(common, task="fmnist-noisy", subset=args.main_subset or None))
    bench_step("bench-subset", ids, _list(args.subset_against),
               ["--task", "fmnist-noisy", "--subset", str(args.subset), *protocol(args)], args, out, env,
               dict(common, task="fmnist-noisy", subset=args.subset))
    for task in _list(args.other_tasks):
        if task == LM_TASK:
            lm_chars(args, out, env, ids)
        else:
            task_args, stored = OTHER_TASKS[task]
            bench_step(f"bench-{task}", ids, _list(args.other_against),
                       [*task_args, "--subset", str(args.subset), *protocol(args)], args, out, env,
                       dict(common, subset=args.subset, **stored))


def lm_chars(args, out: Path, env: dict, ids: list[str]) -> None:
    """The language-model task file: bench trains task files at fixed learning rates, so each
    optimizer's rate is chosen here, on a grid, by its score with one seed at the final length."""
    against = _list(args.other_against)
    labels = [f"candidate-{i}" for i in ids] + against
    steps = ["--steps", str(args.lm_steps)] if args.lm_steps else []
    chosen = {}
    if args.tuner != "none":
        from symdisc.bench.tune import parse_grid

        trials = [run_step(f"lm-chars-tune-{lr:g}", symdisc(
            "bench", *ids, "--against", ",".join(against), "--task", LM_TASK, "--tuner", "none", "--seeds", "1",
            *steps, *[a for name in labels for a in ("--lr", f"{name}={lr:g}")], "--json"), out, env)
            for lr in parse_grid(args.lm_grid)]
        chosen = {name: lr for name, (lr, _) in lm_choice(trials).items()}
    run_step(f"bench-{LM_TASK}", symdisc(
        "bench", *ids, "--against", ",".join(against), "--task", LM_TASK, "--tuner", "none", "--seeds", str(args.seeds),
        *steps, *[a for name, lr in chosen.items() for a in ("--lr", f"{name}={lr:g}")], "--json"), out, env)


def lm_choice(trials: list[dict]) -> dict:
    """name -> (the learning rate of its best score over the tuning trials, whether that rate is at
    the edge of the rates tried)."""
    scores: dict = {}
    for step in trials:
        for name, row in step["tasks"][LM_TASK]["optimizers"].items():
            score = (row["numbers"].get("score") or {}).get("mean")
            if score is not None and math.isfinite(score):
                scores.setdefault(name, {})[row["lr"]] = score
    tried = sorted({row["lr"] for step in trials for row in step["tasks"][LM_TASK]["optimizers"].values()})
    return {name: (best, best in (tried[0], tried[-1]) and len(tried) > 1)
            for name, s in scores.items() for best in [max(s, key=s.get)]}


# -- 4. summary ----------------------------------------------------------------------------------
def task_view(step: dict) -> dict:
    """A bench step's one task as {summary, pairs, target}; a task-file bench in the same shape: its
    score per seed is the "final" number, paired by seed (answers written before task-file benches
    paired their scores are paired here)."""
    task = next(iter(step["tasks"].values()))
    if step.get("kind") != "task-bench":
        return task
    from symdisc.bench.tasks import score_pairs

    summary = {}
    for name, row in task["optimizers"].items():
        by_seed = {str(r["seed"]): r["score"] for r in row["runs"] if r.get("score") is not None
                   and math.isfinite(r["score"])}
        values = list(by_seed.values())
        summary[name] = {"lr": row["lr"], "final_by_seed": by_seed, "seeds": len(values), "failure": row.get("failure"),
                         "final_mean": statistics.mean(values) if values else None,
                         "final_std": statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)}
    pairs = task.get("pairs") or score_pairs(task["optimizers"])
    return {"summary": summary, "pairs": {"final": pairs}, "target": None}


def pair(view: dict, a: str, b: str):
    """``a - b`` of final test accuracy (or score) from a bench step's paired comparisons, or None
    when the step did not train both."""
    for p in view["pairs"]["final"]:
        if (p["a"], p["b"]) == (a, b):
            return dict(p)
        if (p["a"], p["b"]) == (b, a):
            flipped = dict(p, a=a, b=b)
            for key in ("mean_diff", "t"):
                flipped[key] = None if p[key] is None else -p[key]
            flipped["ci_low"] = None if p["ci_high"] is None else -p["ci_high"]
            flipped["ci_high"] = None if p["ci_low"] is None else -p["ci_low"]
            return flipped
    return None


def bench_views(out: Path) -> dict:
    """Every finished bench step, the goals' steps first, then in the order they ran."""
    paths = sorted(out.glob("bench-*.json"), key=lambda p: (p.stem != "bench-main", p.stem != "bench-subset",
                                                            p.stat().st_mtime))
    return {p.stem: task_view(answer) for p in paths if "failed" not in (answer := json.loads(p.read_text()))}


def same_as(view: dict, me: str) -> list[str]:
    """The other optimizers of a step with exactly ``me``'s result on every seed (a winner that
    simplified into a built-in, say)."""
    mine = view["summary"].get(me, {}).get("final_by_seed")
    return [name for name, s in view["summary"].items()
            if name != me and mine and s.get("final_by_seed") == mine]


def _test(kind: str, goal: str, step: str, p: dict) -> dict:
    keep = ("n", "mean_diff", "ci_low", "ci_high", "p_t", "p_wilcoxon", "p_holm")
    return {"goal": goal, "kind": kind, "step": step,
            **{("p_holm_bench" if k == "p_holm" else k): p.get(k) for k in keep}}


def _missing(goal: str, why: str) -> dict:
    return {"goal": goal, "kind": "missing", "met": None, "distance": why}


def scalar_goals(views: dict, me: str, builtin: str) -> list[dict]:
    checks = []
    main = views.get("bench-main")
    for b in ("sign-sgd", builtin):
        goal = f"beats {b} on noisy Fashion-MNIST at full size (paired t, Holm p < {ALPHA:g})"
        p = pair(main, me, b) if main else None
        checks.append(_test("beat", goal, "bench-main", p) if p else _missing(goal, "bench-main lacks the pair"))
    if main and all(n in main["summary"] for n in (me, "sign-sgd", "adam")):
        s = main["summary"]
        mine = s[me]["final_mean"]
        half = (s["sign-sgd"]["final_mean"] + s["adam"]["final_mean"]) / 2
        for goal, threshold in ((f"closes half the gap from sign-sgd to adam measured here ({half:.4f})", half),
                                (f"at least {HALF_GAP_FIGURE} (the issue's half gap)", HALF_GAP_FIGURE)):
            checks.append({"goal": goal, "kind": "threshold", "step": "bench-main", "value": mine,
                           "threshold": threshold, "met": bool(mine >= threshold),
                           "distance": None if mine >= threshold else round(threshold - mine, 4)})
    else:
        checks.append(_missing("closes half the gap from sign-sgd to adam", "bench-main lacks the winner, sign-sgd or adam"))
    for name, view in views.items():
        if name in ("bench-main", "bench-subset"):
            continue
        p = pair(view, me, "sign-sgd")
        goal = f"no worse than sign-sgd on {name.removeprefix('bench-')} (not shown worse, Holm p < {ALPHA:g})"
        checks.append(_test("not-worse", goal, name, p) if p else _missing(goal, f"{name} lacks the pair"))
    return checks


def buffers_goals(views: dict, me: str, reference: str = "adamw") -> list[dict]:
    checks = []
    main, subset = views.get("bench-main"), views.get("bench-subset")
    goal = f"within the paired 95% interval of tuned {reference} on noisy Fashion-MNIST at full size"
    p = pair(main, me, reference) if main else None
    checks.append(_test("within", goal, "bench-main", p) if p else _missing(goal, "bench-main lacks the pair"))
    goal = "ahead of lion (on the 10,000-image subset step, where lion is)"
    p = pair(subset, me, "lion") if subset else None
    checks.append(_test("ahead", goal, "bench-subset", p) if p else _missing(goal, "bench-subset lacks the pair"))
    if main and me in main["summary"] and "adam" in main["summary"]:
        mine, adam = main["summary"][me]["state_bytes"], main["summary"]["adam"]["state_bytes"]
        checks.append({"goal": "less state than adam", "kind": "threshold", "step": "bench-main", "value": mine,
                       "threshold": adam, "met": bool(mine < adam), "distance": None if mine < adam else mine - adam + 1})
    else:
        checks.append(_missing("less state than adam", "bench-main lacks the winner or adam"))
    target = (main or {}).get("target") or {}
    reached = (target.get("optimizers") or {}).get(me)
    checks.append({"goal": f"time to {target.get('reference', reference)}'s final validation score (stated)",
                   "kind": "stated", "step": "bench-main", "met": None,
                   "value": None if reached is None else {k: reached[k] for k in ("reached", "seeds", "median_steps",
                                                                                     "median_seconds")},
                   "reference": None if not target else (target.get("optimizers") or {}).get(target.get("reference"), {}
                                                                                          ).get("median_seconds")})
    return checks


def judge(checks: list[dict]) -> list[dict]:
    """Holm over the class's paired tests, then each test's verdict and, when missed, the distance."""
    from symdisc.bench.stats import holm

    tests = [c for c in checks if c["kind"] in ("beat", "not-worse", "within", "ahead")]
    for c, adjusted in zip(tests, holm([c["p_t"] for c in tests])):
        c["p_holm"] = adjusted
        d, shown = c["mean_diff"], adjusted is not None and adjusted < ALPHA
        if c["n"] < 2 or d is None:
            c["met"], c["distance"] = None, f"{c['n']} paired seed(s): no test"
        elif c["p_t"] is None:  # every seed's difference is the same number: no spread to test against
            # a tie is no win, and a win needs a test; the other goals read the difference itself
            c["met"] = ((None if d > 0 else False) if c["kind"] == "beat"
                        else bool(d > 0) if c["kind"] == "ahead" else bool(d >= 0))
            c["distance"] = ("the same result on every seed" if d == 0 else
                             f"every seed's difference is {d:+.4f}: no spread, no test")
        elif c["kind"] == "beat":
            c["met"] = bool(shown and d > 0)
            c["distance"] = None if c["met"] else (
                f"behind by {-d:.4f}" if d <= 0 else f"ahead by {d:.4f} but Holm p {adjusted:.3g} >= {ALPHA:g}")
        elif c["kind"] == "not-worse":
            c["met"] = not (shown and bool(d < 0))
            c["distance"] = None if c["met"] else f"shown worse by {-d:.4f} (Holm p {adjusted:.3g})"
        elif c["kind"] == "within":
            c["met"] = c["ci_high"] is not None and bool(c["ci_high"] >= 0)
            c["distance"] = None if c["met"] else f"the interval's top is {-c['ci_high']:.4f} below zero"
        else:  # ahead
            c["met"] = bool(d > 0)
            c["distance"] = None if c["met"] else f"behind by {-d:.4f}"
    return checks


def goals(views: dict, winners: dict, args) -> dict:
    result = {}
    for memory in classes(args):
        w = winners.get(memory)
        if w is None:
            result[memory] = {"winner": None, "checks": [], "all_met": False}
            continue
        me = label(w)
        main = views.get("bench-main")
        twins = same_as(main, me) if main else []
        identity = [{"goal": "a rule of its own (not a built-in's results on every seed)", "kind": "identity",
                     "step": "bench-main", "met": not twins,
                     "distance": f"the same final accuracy as {', '.join(twins)} on every seed" if twins else None}]
        checks = identity + judge(scalar_goals(views, me, builtin_of(args, memory)) if memory == "scalar"
                       else buffers_goals(views, me, _list(args.main_against)[0]))
        # the search's program, before simplify rounded its constants away
        inside = builtin_steps(w.get("code")) or builtin_steps((w.get("simplified") or {}).get("code"))
        checks.append({"goal": "built around a built-in's step", "kind": "stated", "step": None, "met": None,
                       "value": ", ".join(inside) if inside else "no"})
        judged = [c for c in checks if c["kind"] != "stated"]
        result[memory] = {"winner": me, "checks": checks,
                          "all_met": bool(judged) and all(c["met"] is True for c in judged)}
    return result


def search_numbers(rows: list[dict]) -> dict:
    """One search run's numbers from its candidates: what it proposed, its new programs, how often
    one of them became the run's best (in the order they were written), its best own against its
    best seed."""
    by_id = {r["id"]: r for r in rows}
    evaluated = sorted((r for r in rows if r["status"] == "evaluated" and r.get("fitness") is not None),
                       key=lambda r: r["seq"])
    own = [r for r in evaluated if is_own(r, by_id)]
    seeds = [r for r in evaluated if r["origin"] == "seed"]
    best, improvements = None, 0
    for r in evaluated:
        if best is None or rank_key(r) > best:
            improvements += is_own(r, by_id) and best is not None
            best = rank_key(r)

    def brief(r):
        return None if r is None else {"id": r["id"], "name": r.get("name"), "origin": r["origin"],
                                       "stage": rank_key(r)[0], "rank_score": rank_key(r)[1], "proxy": r["fitness"]}

    best_own = max(own, key=rank_key, default=None)
    best_seed = max(seeds, key=rank_key, default=None)
    return {"proposed": dict(Counter(r["status"] for r in rows if r["origin"] not in ("seed", "simplify"))),
            "new_programs": len(own), "improvements": improvements,
            "best_own": brief(best_own), "best_seed": brief(best_seed),
            "own_beats_seeds": best_own is not None and best_seed is not None and rank_key(best_own) > rank_key(best_seed)}


def search_digest(out: Path, args) -> list[dict]:
    from symdisc.store import Store

    db = Path(args.home) / "symdisc.db"
    digest = []
    for memory in classes(args):
        for repeat, run_id in enumerate(search_runs(out, memory)):
            answer = saved(search_step(memory, repeat), out)
            row = {"class": memory, "repeat": repeat, "run_id": run_id, "elapsed_s": answer.get("elapsed_s"),
                   "wall_s": answer.get("campaign_wall_s")}
            if db.exists():
                with Store(db, create=False) as store:
                    row |= search_numbers(store.candidates(run_id))
            digest.append(row)
    return digest


def _num(x, fmt=".4f") -> str:
    return "-" if x is None else format(x, fmt)


def _p(x) -> str:
    return "-" if x is None else (f"{x:.2g}" if x >= 0.001 else "<0.001")


def summarize(out: Path, args) -> dict:
    """OUT/summary.md and summary.json from the journal (and the run database, when it is there:
    otherwise the search numbers saved the last time)."""
    digest_path = out / "search_digest.json"
    if (Path(args.home) / "symdisc.db").exists():
        digest_path.write_text(json.dumps(search_digest(out, args), indent=1))
    digest = json.loads(digest_path.read_text()) if digest_path.exists() else []
    winners = json.loads((out / "winners.json").read_text()) if (out / "winners.json").exists() else {}
    views = bench_views(out)
    checked = goals(views, winners, args)
    steps = [{"step": p.stem, "command": d.get("campaign_command"), "wall_s": d.get("campaign_wall_s"),
              "failed": d.get("failed"), "resumed_with": d.get("campaign_resumed_with")}
             for p in sorted(out.glob("*.json"), key=lambda p: p.stat().st_mtime)
             if (d := json.loads(p.read_text())) and isinstance(d, dict) and "campaign_command" in d]
    lines = ["# symdisc, second discovery campaign", "",
             f"Arguments: `{json.dumps({k: v for k, v in vars(args).items() if k not in ('home', 'out', 'only')})}`", "",
             f"Protocol: `symdisc bench` sets every optimizer's learning rate alike (tuner: {args.tuner}"
             + (f", on runs of {args.tune_epochs:g} epoch(s) while the final runs last {args.epochs:g}: tuning on "
                "shorter runs" if args.tuner != "none" and args.tune_epochs and args.tune_epochs < args.epochs else "")
             + f"), then trains {args.seeds} paired seeds, {args.schedule} schedule. The lm-chars task file has no "
             "tuner in bench: its rates come from lm-chars-tune-* (one seed, seed 0, at the final length; the "
             "task's score is a validation score, for tuning and report alike).", ""]
    trials = [json.loads(p.read_text()) for p in sorted(out.glob("lm-chars-tune-*.json"))]
    if trials:
        lines += ["lm-chars rates chosen: " + ", ".join(f"{name} {lr:g}" + (" (at the grid's edge)" if edge else "")
                                                      for name, (lr, edge) in lm_choice(trials).items()), ""]
    lines += ["## Steps", "", "| step | command | wall |", "|---|---|---|"]
    lines += [f"| {s['step']} | `{s['command']}` | {_num((s['wall_s'] or 0) / 60, '.1f')} min"
              + (f" (failed, exit {s['failed']})" if s["failed"] else "")
              + (f" (the last part, `{s['resumed_with']}`)" if s["resumed_with"] else "") + " |" for s in steps]
    lines += ["", "## Search runs", "",
              "| class | repeat | run | minutes | proposed | new programs | improvements | best own (id, origin, stage, rank) | best seed (name, stage, rank) | own ahead |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for d in digest:
        own, seed = d.get("best_own"), d.get("best_seed")
        lines.append(f"| {d['class']} | {d['repeat']} | {d['run_id']} | {_num((d.get('elapsed_s') or 0) / 60, '.1f')} | "
                     f"{sum((d.get('proposed') or {}).values())} | {d.get('new_programs', '-')} | {d.get('improvements', '-')} | "
                     + (f"{own['id']}, {own['origin']}, {own['stage']}, {_num(own['rank_score'], '.3f')}" if own else "none")
                     + " | " + (f"{seed['name']}, {seed['stage']}, {_num(seed['rank_score'], '.3f')}" if seed else "-")
                     + f" | {'yes' if d.get('own_beats_seeds') else 'no'} |")
    lines += ["", "## Winners", ""]
    for memory, w in winners.items():
        if w is None:
            lines += [f"- {memory}: no own program was evaluated", ""]
            continue
        simp = w.get("simplified")
        lines += [f"- {memory}: candidate {w['id']} (run {w['run_id']}, origin {w['origin']}, stage {w['fidelity']}, "
                  f"rank score {_num(w['rank_score'], '.3f')}, constants fitted: {'yes' if w['fitted'] else 'no'}); "
                  + (f"simplified to candidate {simp['id']} (size {simp['size_before']} -> {simp['size_after']}, held-out "
                     f"{_num(simp['heldout_before'])} -> {_num(simp['heldout_after'])})" if simp else "not simplified (simplify failed)")
                  + f"; benched as `{label(w)}`", "", "```python", (simp or w)["code"] or "", "```", ""]
    lines += ["## Goals", ""]
    for memory, g in checked.items():
        lines += [f"### {memory} class: {g['winner'] or 'no winner'}, " + ("every goal met" if g["all_met"] else "not every goal met"), ""]
        for c in g["checks"]:
            verdict = {True: "met", False: "MISSED", None: "stated" if c["kind"] == "stated" else "no verdict"}[c["met"]]
            if "mean_diff" in c:
                detail = (f"difference {_num(c['mean_diff'], '+.4f')} (95% CI {_num(c['ci_low'], '+.4f')} to "
                          f"{_num(c['ci_high'], '+.4f')}), paired t p {_p(c['p_t'])}, Holm p {_p(c['p_holm'])} "
                          f"(bench's family: {_p(c['p_holm_bench'])}), {c['n']} seeds")
            elif c["kind"] == "threshold":
                detail = f"{c['value']:.4g} against {c['threshold']:.4g}"
            elif c["kind"] in ("identity", "missing"):
                detail = "no" if c["met"] is False else ("yes" if c["met"] else "-")
            else:
                detail = json.dumps(c.get("value")) + (f", reference {_num(c.get('reference'), '.0f')} s" if c.get("reference") else "")
            where = f" [{c['step']}]" if c.get("step") else ""
            lines.append(f"- {verdict}: {c['goal']}: {detail}" + (f"; missed: {c['distance']}" if c["met"] is False else "")
                         + (f"; {c['distance']}" if c["met"] is None and c.get("distance") else "") + where)
        lines.append("")
    for name, view in views.items():
        step = saved(name, out)
        lines += [f"## {name}", "", f"`{step.get('campaign_command')}` ({_num(step.get('campaign_wall_s', 0) / 60, '.1f')} min)", "",
                  "| optimizer | lr | final | early-stopped | state bytes | ms/step | time to target (median s, reached) | vs sign-sgd |",
                  "|---|---|---|---|---|---|---|---|"]
        target = (view.get("target") or {}).get("optimizers") or {}
        for name_, s in sorted(view["summary"].items(), key=lambda kv: -(kv[1].get("final_mean") or -math.inf)):
            t = target.get(name_)
            vs = pair(view, name_, "sign-sgd") if name_ != "sign-sgd" else None
            lines.append(f"| {name_} | {_num(s.get('lr'), '.3g')} | {_num(s.get('final_mean'))} ± {_num(s.get('final_std'))} | "
                         f"{_num(s.get('early_mean'))} | {_num(s.get('state_bytes'), '.0f')} | {_num(s.get('ms_per_step'), '.1f')} | "
                         + (f"{_num(t['median_seconds'], '.0f')}, {t['reached']}/{t['seeds']}" if t else "-") + " | "
                         + (f"{_num(vs['mean_diff'], '+.4f')} [{_num(vs['ci_low'], '+.4f')}, {_num(vs['ci_high'], '+.4f')}] p {_p(vs['p_t'])}"
                            if vs else "") + " |")
        lines.append("")
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    result = {"steps": steps, "search": digest, "winners": winners, "goals": checked}
    (out / "summary.json").write_text(json.dumps(result, indent=1, default=str))
    print(text)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
