"""The discovery campaign: search, then an audited bench against tuned baselines.

    flock /work/measure.lock python benchmarks/campaign.py [--home DIR] [--out benchmarks/results/campaign]

Every step is an ordinary symdisc command; its --json answer is written to OUT/STEP.json when it
succeeds (stderr to OUT/STEP.log), and a step whose answer is there is skipped, so the campaign
resumes after a stop: a stopped `compare` or `evolve` is continued with --resume, a stopped bench
step starts over. Run it again with the same arguments until it prints the summary; `--only
summary` rewrites OUT/summary.md (and .json) from what is there.

The order puts the goal's numbers first (10 epochs, both tasks, both schedules), so a campaign cut
short still answers the question the issue asks.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections import Counter
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from journal import ROOT, env as journal_env, run_step, say, stopped_run, symdisc  # noqa: E402
BASELINES = ["adam", "adamw", "sgd", "lion", "sign-sgd", "robust-zero-state"]
# What the goal compares a discovery against: all of these, beaten (a paired difference above zero,
# Holm-corrected p < ALPHA over the discovery's checks) ...
MUST_BEAT = ["sgd", "sign-sgd", "robust-zero-state"]
ALPHA = 0.05
# ... and this one matched: not shown worse (at 10 epochs, with its better schedule).
MATCH = "adam"
TASKS = {"fmnist-noisy": [], "audit": ["--task", "mnist", "--noise", "0.4"]}


def search_runs(compare: dict, buffers: dict | None) -> list[tuple[str, str]]:
    """(strategy, run id) of every search run: the comparison's children, then the buffers run."""
    runs = [(name, r["run_id"]) for name, rs in compare["results"].items() for r in rs]
    return runs + [("llm-buffers", buffers["id"])] if buffers is not None else runs


def discoveries(store, compare: dict, buffers: dict | None, per_run: int) -> list[dict]:
    """Each search run's best proposed rules (not built-in seeds), in the cascade's order."""
    picked = []
    for strategy, run_id in search_runs(compare, buffers):
        board = [c for c in store.leaderboard(run_id, 50) if c["origin"] != "seed"]
        for c in board[:per_run]:
            picked.append({"strategy": strategy, "run_id": run_id, "id": c["id"], "fitness": c["fitness"],
                           "fidelity": c.get("fidelity"), "rank_score": c.get("rank_score"),
                           "heldout": c.get("heldout"), "audit": c.get("audit"), "model": c.get("model"),
                           "operator": c.get("operator"), "code": c.get("normalized") or c.get("code")})
    return picked


def search_digest(store, compare: dict, buffers: dict | None) -> list[dict]:
    """What each search run's log says, small enough to commit (the run database is not)."""
    digest = []
    for strategy, run_id in search_runs(compare, buffers):
        run = store.get_run(run_id)
        board = store.leaderboard(run_id, 200)
        seeds = [c for c in board if c["origin"] == "seed"]
        own = [c for c in board if c["origin"] not in ("seed", "simplify")]

        def brief(c):
            return None if c is None else {
                "id": c["id"], "name": c.get("name"), "proxy": c["fitness"], "heldout": c.get("heldout"),
                "fidelity": c.get("fidelity"), "rank_score": c.get("rank_score"), "audit": c.get("audit")}

        digest.append({
            "strategy": strategy, "run_id": run_id, "memory": run["config"].get("memory"),
            "elapsed_s": (run.get("summary") or {}).get("elapsed_s"),
            # what the strategy proposed (not the seeds, nor a later `simplify`'s candidate)
            "statuses": dict(Counter(c["status"] for c in store.candidates(run_id)
                                     if c["origin"] not in ("seed", "simplify"))),
            "reasons": store.reason_counts(run_id),
            "by_model": store.proposal_stats(run_id, "model"), "by_operator": store.proposal_stats(run_id, "operator"),
            "best_seed": brief(seeds[0] if seeds else None), "best_own": brief(own[0] if own else None),
            "place_of_best_own": board.index(own[0]) + 1 if own else None,
            "own_above_best_seed_proxy": sum(1 for c in own if seeds and c["fitness"] > max(x["fitness"] for x in seeds)),
        })
    return digest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", default=str(ROOT / "runs" / "campaign"), help="SYMDISC_HOME of the campaign's runs")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "campaign"))
    ap.add_argument("--strategies", default="llm,llm-independent,genome",
                    help="compare strategies: the llm loop, its sampling baseline and the genome GA")
    ap.add_argument("--models", default="qwen2.5-coder-0.5b,qwen2.5-coder-1.5b", help="the llm bandit's models")
    ap.add_argument("--minutes", type=float, default=9.0, help="wall-clock budget per strategy")
    ap.add_argument("--buffers-minutes", type=float, default=5.0, help="the buffers-class run (0: none)")
    ap.add_argument("--per-run", type=int, default=1, help="proposed rules benched from each search run")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--tune", type=int, default=0, help="TPE trials per optimizer (0: bench's widening lr grid)")
    ap.add_argument("--subset", type=int, default=4096, help="training examples per bench run (the CPU budget)")
    ap.add_argument("--epochs", default="10,3")
    ap.add_argument("--schedules", default="constant,warmup-cosine")
    ap.add_argument("--tasks", default="fmnist-noisy,audit")
    ap.add_argument("--confirm", action=argparse.BooleanOptionalAction, default=True,
                    help="last: the winner, adam and sign-sgd on the whole training set at the goal's length")
    ap.add_argument("--only", choices=["search", "bench", "summary"], help="stop after (or only do) this phase")
    args = ap.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = journal_env(args.home)
    Path(args.home).mkdir(parents=True, exist_ok=True)
    if args.only != "summary":
        (out / "campaign.json").write_text(json.dumps(vars(args), indent=1))
    strategies = args.strategies.split(",")
    models = [m for m in args.models.split(",") if m]
    model_args = [a for m in models for a in ("--model", m)]

    if args.only != "summary":
        def resume_compare():
            ids = stopped_run(args.home, "compare", lambda c: c.get("minutes") == args.minutes
                              and c.get("proposers") == strategies)
            return symdisc("compare", "--resume", ids[0], "--json") if ids else []

        def resume_buffers():
            ids = stopped_run(args.home, "evolve", lambda c: c.get("memory") == "buffers"
                              and c.get("minutes") == args.buffers_minutes)
            return symdisc("evolve", "--resume", ids[0], "--json") if ids else []

        compare = run_step("search-scalar", symdisc(
            "compare", "--proposers", args.strategies, "--minutes", str(args.minutes), "--repeats", "1",
            "--memory", "scalar", *model_args, "--json"), out, env, resume=resume_compare)
        buffers = None
        if args.buffers_minutes > 0:
            buffers = run_step("search-buffers", symdisc(
                "evolve", "--proposer", "llm", "--memory", "buffers", "--minutes", str(args.buffers_minutes), "--seed", "0",
                *model_args, "--json"), out, env, resume=resume_buffers)
        os.environ["SYMDISC_HOME"] = args.home
        from symdisc.store import Store

        store = Store()
        picked = discoveries(store, compare, buffers, args.per_run)
        (out / "search_digest.json").write_text(json.dumps(search_digest(store, compare, buffers), indent=1))
        (out / "discoveries.json").write_text(json.dumps(picked, indent=1))
        say(f"{len(picked)} discovered rules to bench: " + ", ".join(f"{p['strategy']}:{p['id']}" for p in picked))
        if args.only == "search":
            return 0
        scalar_ids = [str(p["id"]) for p in picked if p["strategy"] != "llm-buffers"]
        buffer_ids = [str(p["id"]) for p in picked if p["strategy"] == "llm-buffers"]
        def bench(epochs: str) -> None:
            for task in args.tasks.split(","):
                for schedule in args.schedules.split(","):
                    run_step(f"bench-{task}-{epochs}ep-{schedule}", symdisc(
                        "bench", *scalar_ids, *buffer_ids, "--against", ",".join(BASELINES), *TASKS[task],
                        "--seeds", str(args.seeds), "--epochs", epochs, "--tune", str(args.tune),
                        "--subset", str(args.subset), "--schedule", schedule, "--json"), out, env)

        lengths = args.epochs.split(",")
        bench(lengths[0])  # the goal's length first: the winner is chosen on it
        winner = best_discovery(out, picked, lengths[0])
        if winner is not None:
            run_step("simplify-winner", symdisc("simplify", str(winner["id"]), "--json"), out, env)
        for epochs in lengths[1:]:
            bench(epochs)
        if winner is not None and args.confirm:
            confirm(out, env, args, winner, lengths[0])
    if args.only == "summary" and (out / "search-scalar.json").exists():
        os.environ["SYMDISC_HOME"] = args.home
        from symdisc.store import Store

        saved = json.loads((out / "search-scalar.json").read_text())
        buffers = json.loads((out / "search-buffers.json").read_text()) if (out / "search-buffers.json").exists() else None
        (out / "search_digest.json").write_text(json.dumps(search_digest(Store(), saved, buffers), indent=1))
    summarize(out, args)
    return 0


def confirm(out: Path, env: dict, args, winner: dict, epochs: str) -> None:
    """The subset steps' winner against Adam and signSGD on the whole training set (60,000 images),
    with Adam's better schedule there and the learning rates each got from its tuning on the subset
    (tuning again at full size would cost the whole campaign's time on two cores)."""
    steps = {n: st for n, st in bench_steps(out).items() if n.startswith(f"bench-fmnist-noisy-{epochs}ep-")}
    if not steps:
        return
    label = f"candidate-{winner['id']}"

    def adam_of(step):
        return next(d["summary"]["adam"]["final_mean"] for d in step["tasks"].values())

    name = max(steps, key=lambda n: adam_of(steps[n]))
    schedule = name.split(f"-{epochs}ep-")[1]
    summary = next(iter(steps[name]["tasks"].values()))["summary"]
    lrs = [a for opt in (label, "adam", "sign-sgd") for a in ("--lr", f"{opt}={summary[opt]['lr']:.6g}")]
    run_step(f"confirm-fmnist-noisy-full-{epochs}ep-{schedule}", symdisc(
        "bench", str(winner["id"]), "--against", "adam,sign-sgd", "--seeds", str(args.seeds), "--epochs", epochs,
        "--schedule", schedule, *lrs, "--json"), out, env)


# -- the summary -------------------------------------------------------------------------------
def bench_steps(out: Path) -> dict:
    steps = {}
    for path in sorted([*out.glob("bench-*.json"), *out.glob("confirm-*.json")]):
        steps[path.stem] = json.loads(path.read_text())
    return steps


def best_discovery(out: Path, picked: list[dict], epochs: str):
    """The discovered scalar rule with the best mean final accuracy over the bench steps of this length."""
    scores: dict = {}
    for name, step in bench_steps(out).items():
        if not name.startswith("bench-") or f"-{epochs}ep-" not in name:
            continue
        for task in step["tasks"].values():
            for p in picked:
                s = task["summary"].get(f"candidate-{p['id']}")
                if s and p["strategy"] != "llm-buffers":
                    scores.setdefault(p["id"], []).append(s["final_mean"])
    if not scores:
        return None
    best = max(scores, key=lambda i: statistics.mean(scores[i]))
    return next(p for p in picked if p["id"] == best)


def paired(a: dict, b: dict) -> dict:
    """a - b of final test accuracy over the seeds both summaries hold (bench pairs by seed: the same
    initial weights, data order and noisy labels in every bench run, whatever the schedule)."""
    from symdisc.bench.stats import paired as paired_stats

    sa, sb = a.get("final_by_seed") or {}, b.get("final_by_seed") or {}
    seeds = sorted(set(sa) & set(sb), key=int)
    return paired_stats([sa[k] for k in seeds], [sb[k] for k in seeds]) | {"seeds": seeds}


def verdict(a: dict, b: dict) -> str:
    """A cell of the summary table: the paired difference and its (uncorrected) t-test p."""
    p = paired(a, b)
    if p["p_t"] is None:
        return f"? ({p['n']} shared seeds)" if p["n"] < 2 else f"{p['mean_diff']:+.4f}"
    mark = "=" if p["p_t"] >= ALPHA else (">" if p["mean_diff"] > 0 else "<")
    return f"{mark} ({p['mean_diff']:+.4f}, p {p['p_t']:.2g})"


def summarize(out: Path, args) -> None:
    picked = json.loads((out / "discoveries.json").read_text()) if (out / "discoveries.json").exists() else []
    strategy_of = {f"candidate-{p['id']}": p["strategy"] for p in picked}
    steps = bench_steps(out)
    saved = out / "campaign.json"
    arguments = json.loads(saved.read_text()) if saved.exists() else vars(args)
    lines = ["# symdisc discovery campaign", "", f"Campaign arguments: `{json.dumps(arguments)}`", ""]
    if (out / "search_digest.json").exists():
        lines += ["## Search runs", "",
                  "| strategy | run | minutes | proposed | evaluated (new) | repeats | rejected | failed | best own (proxy / held-out / stage) | its place | best seed (proxy / held-out) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for d in json.loads((out / "search_digest.json").read_text()):
            st, own, seed = d["statuses"], d["best_own"], d["best_seed"]

            def num(x):
                return f"{x:.4f}" if isinstance(x, (int, float)) else "-"

            lines.append(
                f"| {d['strategy']} | {d['run_id']} | {(d['elapsed_s'] or 0) / 60:.1f} | {sum(st.values())} | "
                f"{st.get('evaluated', 0)} | {st.get('duplicate', 0)} | {st.get('rejected', 0)} | {st.get('failed', 0)} | "
                + (f"{own['id']}: {num(own['proxy'])} / {num(own['heldout'])} / {own['fidelity']}" if own else "none")
                + f" | {d['place_of_best_own'] or '-'} | "
                + (f"{seed['name']}: {num(seed['proxy'])} / {num(seed['heldout'])}" if seed else "-") + " |")
        lines.append("")
    lines += overview(steps, strategy_of)
    goal: dict = {}
    for name, step in steps.items():
        for task, data in step["tasks"].items():
            lines += [f"## {name} ({task}; `{step.get('campaign_command', '')}`, {step.get('campaign_wall_s', 0):.0f} s)", "",
                      "| optimizer | found by | lr | final acc | best acc | state B/tensor | class | "
                      + " | ".join(f"vs {b}" for b in BASELINES) + " |",
                      "|---" * (7 + len(BASELINES)) + "|"]
            summary = data["summary"]
            for label, s in sorted(summary.items(), key=lambda kv: -kv[1]["final_mean"]):
                cells = [verdict(s, summary[b]) if b in summary and b != label else "" for b in BASELINES]
                per_tensor = s.get("state_bytes_per_tensor")
                per_tensor = f"{per_tensor:g}" if per_tensor is not None else "?"
                lines.append(f"| {label} | {strategy_of.get(label, 'baseline')} | {s['lr']:.3g} | "
                             f"{s['final_mean']:.4f} ± {s['final_std']:.4f} | {s['best_mean']:.4f} ± {s['best_std']:.4f} | "
                             f"{per_tensor} | {s['memory_class']} | " + " | ".join(cells) + " |")
            lines.append("")
            goal[name] = summary
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps({"discoveries": picked, "goal": goal_check(steps, picked)}, indent=1))
    print("\n".join(lines))
    print(json.dumps(goal_check(steps, picked), indent=1))


def overview(steps: dict, strategy_of: dict) -> list[str]:
    """One row per optimizer, one column per bench step: final test accuracy, mean ± std."""
    if not steps:
        return []
    names = list(steps)
    labels: list[str] = []
    for step in steps.values():
        for data in step["tasks"].values():
            labels += [label for label in data["summary"] if label not in labels]
    short = [n.removeprefix("bench-") for n in names]
    rows = ["## Final test accuracy, every step (mean ± std over seeds)", "",
            "| optimizer | found by | " + " | ".join(short) + " |", "|---|---" + "|---" * len(names) + "|"]
    for label in labels:
        cells = []
        for n in names:
            s = next((d["summary"][label] for d in steps[n]["tasks"].values() if label in d["summary"]), None)
            cells.append(f"{s['final_mean']:.4f} ± {s['final_std']:.4f}" if s else "")
        rows.append(f"| {label} | {strategy_of.get(label, 'baseline')} | " + " | ".join(cells) + " |")
    return rows + [""]


def best_schedule(steps: dict, task_key: str) -> dict:
    """label -> (schedule, summary) at the schedule where its mean final accuracy is highest."""
    best: dict = {}
    for name, step in steps.items():
        if not name.startswith(task_key + "-10ep-"):
            continue
        schedule = name.split("-10ep-")[1]
        for data in step["tasks"].values():
            for label, s in data["summary"].items():
                if label not in best or s["final_mean"] > best[label][1]["final_mean"]:
                    best[label] = (schedule, s)
    return best


def goal_check(steps: dict, picked: list[dict]) -> dict:
    """Per discovered scalar rule: the issue's goal, condition by condition, each a paired comparison
    over shared seeds, Holm-corrected over the rule's conditions."""
    from symdisc.bench.stats import holm

    result = {}
    for p in picked:
        if p["strategy"] == "llm-buffers":
            continue
        label = f"candidate-{p['id']}"
        checks = {}

        def add(key: str, s: dict, o: dict, kind: str) -> None:
            checks[key] = paired(s, o) | {"kind": kind}

        for name, step in steps.items():
            for task, data in step["tasks"].items():
                s = data["summary"].get(label)
                if s is None:
                    continue
                for b in MUST_BEAT:
                    if b in data["summary"]:
                        add(f"{name}: beats {b}", s, data["summary"][b], "beat")
        # each at its better schedule, at 10 epochs, per task: the reading the goal's wording asks for
        for task_key in sorted({n.split("-10ep-")[0] for n in steps if n.startswith("bench-") and "-10ep-" in n}):
            at_best = best_schedule(steps, task_key)
            if label not in at_best:
                continue
            for b in MUST_BEAT:
                if b in at_best:
                    add(f"{task_key} 10 epochs, each at its better schedule ({at_best[label][0]} vs "
                        f"{at_best[b][0]}): beats {b}", at_best[label][1], at_best[b][1], "beat")
        # not shown worse than tuned Adam at Adam's better schedule, at 10 epochs, per task
        for task_key in sorted({n.split("-10ep-")[0] for n in steps if "-10ep-" in n}):
            at_best = best_schedule(steps, task_key)
            if MATCH in at_best and label in at_best:
                add(f"{task_key} 10 epochs: not worse than adam at its best schedule "
                    f"({task_key}-10ep-{at_best[MATCH][0]})", at_best[label][1], at_best[MATCH][1], "match")
        for c, adjusted in zip(checks.values(), holm([c["p_t"] for c in checks.values()])):
            c["p_holm"] = adjusted
            shown = adjusted is not None and adjusted < ALPHA
            c["diff"] = None if c["mean_diff"] is None else round(c["mean_diff"], 4)
            if c["n"] < 2:
                c["met"] = None  # no per-seed results to pair
            elif c["kind"] == "beat":
                c["met"] = bool(shown and c["mean_diff"] > 0)
            else:
                c["met"] = not (shown and c["mean_diff"] < 0)
        result[label] = {"strategy": p["strategy"], "checks": checks,
                         "all_met": bool(checks) and all(c["met"] for c in checks.values())}
    return result


if __name__ == "__main__":
    raise SystemExit(main())
