"""The normalised, matrix-shaped and second-order built-ins against adam, adamw, sgd and sign-sgd.

    flock /work/measure.lock python benchmarks/builtins.py [--out benchmarks/results/builtins]

Every optimizer is one ordinary `symdisc bench` step run by this checkout's interpreter. For a given
seed every optimizer trains the same model from the same initial weights on the same noisy labels
and mini-batches, so steps run one at a time are as paired as one bench run of all of them; one step
per optimizer makes the journal fine-grained. A step's --json answer is written to
OUT/PROTOCOL/NAME.json when it finishes (stderr to NAME.log), and a step whose answer is there is
skipped: after a stop, run the same command again and it carries on (a stopped step resumes its
bench run, keeping every finished tuning trial and seed).
PROTOCOL names the options that change the numbers, so another size never reuses an answer.

L-BFGS steps on the whole training set, so it runs in its own full-batch protocol (--lbfgs-subset
examples, the batch as large), beside adam and sgd trained the same way. One L-BFGS step makes up to
LBFGS_ITERATIONS iterations (each a gradient, plus line-search evaluations), so adam and sgd get that
many times as many steps: about the same number of gradients for all three.

The defaults are the issue's protocol: fmnist-noisy, whole training set, 10 epochs, warmup-cosine,
5 seeds, every optimizer tuned alike by bench's learning-rate grid (on --tune-epochs-long runs when
given). Paired differences against adam and sign-sgd, with Holm's correction over the table. A smoke test of the script itself:

    python benchmarks/builtins.py --only muon,adam --epochs 1 --seeds 1 --subset 2048 --tuner none \\
        --lbfgs-steps 3 --out benchmarks/results/builtins/smoke

OUT/PROTOCOL/summary.md (and .json): accuracy over seeds, the gap to adam, state bytes per
parameter, steps per second and the learning rate each optimizer trained with.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEW = ["normalized-sgd", "lars", "adam-mini-v", "orthogonal-sgd", "sinkhorn-sgd", "signum", "muon", "sophia"]
BASELINES = ["adam", "adamw", "sgd", "sign-sgd"]
FULL_BATCH = ["lbfgs", "adam", "sgd"]
LBFGS_ITERATIONS = 20  # the lbfgs built-in's max_iter


def say(message: str) -> None:
    print(f"builtins: {message}", file=sys.stderr, flush=True)


def run_step(name: str, argv: list[str], folder: Path, env: dict, home: Path) -> dict:
    """One `symdisc bench` command, or its saved answer. Each step has its own run database under
    ``home``; a step stopped part way is continued with `bench --resume latest` (bench keeps every
    finished tuning trial and seed)."""
    answer = folder / f"{name}.json"
    if answer.exists():
        return json.loads(answer.read_text())
    step_home = home / folder.name / name
    step_home.mkdir(parents=True, exist_ok=True)
    if stopped_bench(step_home):
        argv = ["bench", "--resume", "latest", "--json"]
    say(f"{folder.name}/{name}: symdisc {' '.join(argv)}")
    t0 = time.time()
    with open(folder / f"{name}.log", "a") as log:
        log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} symdisc {' '.join(argv)}\n")
        log.flush()
        proc = subprocess.run([sys.executable, "-m", "symdisc.cli.app", *argv], stdout=subprocess.PIPE, stderr=log,
                              env=dict(env, SYMDISC_HOME=str(step_home)), cwd=ROOT, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"builtins: step {name} failed (exit {proc.returncode}); see {folder / (name + '.log')}")
    data = json.loads(proc.stdout)
    data["step_wall_s"] = round(time.time() - t0, 1)
    data["step_command"] = "symdisc " + " ".join(argv)
    tmp = answer.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.rename(answer)
    say(f"{folder.name}/{name}: done in {data['step_wall_s']:.0f} s")
    return data


def stopped_bench(home: Path) -> bool:
    """Whether ``home``'s run database holds a bench run that did not finish."""
    db = home / "symdisc.db"
    if not db.exists():
        return False
    from symdisc.store import Store

    with Store(db) as store:
        return store.db.execute("SELECT COUNT(*) FROM runs WHERE kind = 'bench' AND status != 'finished'").fetchone()[0] > 0


def parameter_count(model_kind: str = "cnn28") -> int:
    from symdisc.judge.training import make_model

    return sum(p.numel() for p in make_model(model_kind).parameters())


def summarize(answers: dict, task: str, n_params: int) -> list[dict]:
    rows = []
    for name, data in answers.items():
        s = data["tasks"][task]["summary"].get(name)
        if s is None:
            rows.append({"optimizer": name, "failed": data["tasks"][task].get("failed")})
            continue
        rows.append({"optimizer": name, "seeds": s["seeds"], "lr": s["lr"], "final_mean": s["final_mean"],
                     "final_std": s["final_std"], "memory_class": s["memory_class"],
                     "declared_class": s.get("declared_class"), "state_bytes": s["state_bytes"],
                     "state_bytes_per_param": s["state_bytes"] / n_params, "steps_per_s": s["steps_per_s"],
                     "diverged": s["diverged"], "wall_s": data.get("step_wall_s"),
                     "final_by_seed": {int(k): v for k, v in (s.get("final_by_seed") or {}).items()},
                     "early_mean": s.get("early_mean")})
    paired_against(rows, ["adam", "sign-sgd"])
    return sorted(rows, key=lambda r: -r.get("final_mean", -1.0))


def paired_against(rows: list[dict], references: list[str]) -> None:
    """Each optimizer against each reference on their shared seeds (every step trains seed k from the
    same weights, labels and batches): mean difference, 95% t-interval, paired t p, and Holm's
    adjustment over the whole family of comparisons in this protocol."""
    from symdisc.bench.stats import holm, paired

    by_name = {r["optimizer"]: r for r in rows if r.get("final_by_seed")}
    family = []
    for r in rows:
        for ref in references:
            other = by_name.get(ref)
            if other is None or r["optimizer"] == ref or not r.get("final_by_seed"):
                continue
            if r["optimizer"] in references and references.index(r["optimizer"]) < references.index(ref):
                continue  # two references: compared once (the later against the earlier)
            seeds = sorted(set(r["final_by_seed"]) & set(other["final_by_seed"]))
            result = paired([r["final_by_seed"][k] for k in seeds], [other["final_by_seed"][k] for k in seeds])
            r.setdefault("paired", {})[ref] = result
            family.append(result)
    for result, adjusted in zip(family, holm([f["p_t"] for f in family])):
        result["p_holm"] = adjusted


def _versus(r: dict, ref: str) -> str:
    c = (r.get("paired") or {}).get(ref)
    if not c or c["ci_low"] is None:
        return ""
    p = f"p {c['p_t']:.3g}, Holm {c['p_holm']:.3g}" if c.get("p_t") is not None else "no spread"
    return f"{c['mean_diff']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] ({p})"


def table(rows: list[dict], title: str) -> str:
    lines = [f"### {title}", "",
             "| optimizer | class | final test acc (mean ± sd) | early-stopped | vs adam (paired, 95% CI) | "
             "vs sign-sgd (paired, 95% CI) | state bytes / param | steps/s | lr |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "final_mean" not in r:
            lines.append(f"| {r['optimizer']} | failed: {r.get('failed')} | | | | | | | |")
            continue
        early = f"{r['early_mean']:.4f}" if r.get("early_mean") is not None else ""
        lines.append(f"| {r['optimizer']} | {r['memory_class']} | {r['final_mean']:.4f} ± {r['final_std']:.4f} "
                     f"({r['seeds']} seeds) | {early} | {_versus(r, 'adam')} | {_versus(r, 'sign-sgd')} | "
                     f"{r['state_bytes_per_param']:.3g} | {r['steps_per_s']:.3g} | {r['lr']:.3g} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "builtins"))
    ap.add_argument("--home", default=str(ROOT / "runs" / "builtins"), help="SYMDISC_HOME of the bench runs")
    ap.add_argument("--only", default=None, help="comma-separated optimizers (default: the new built-ins, "
                    f"{', '.join(BASELINES)} and lbfgs)")
    ap.add_argument("--task", default="fmnist-noisy")
    ap.add_argument("--epochs", type=float, default=10)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--subset", type=int, default=None, help="training examples (default: the whole training set)")
    ap.add_argument("--schedule", default="warmup-cosine")
    ap.add_argument("--tuner", default="grid", help="bench's tuner, the same for every optimizer: grid (a widening "
                    "log grid of the learning rate), tpe, or none (documented defaults)")
    ap.add_argument("--tune-epochs", type=float, default=None, help="epochs per tuning trial (default: as the run)")
    ap.add_argument("--lbfgs-subset", type=int, default=4096, help="training examples of the full-batch protocol")
    ap.add_argument("--lbfgs-steps", type=int, default=25, help="L-BFGS steps (adam and sgd: LBFGS_ITERATIONS "
                    "times as many); every step also evaluates the test set")
    args = ap.parse_args()

    out = Path(args.out)
    home = Path(args.home)
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SYMDISC_HOME=str(home), OMP_WAIT_POLICY="PASSIVE")
    chosen = [n for n in (args.only.split(",") if args.only else NEW + BASELINES + ["lbfgs"]) if n]
    n_params = parameter_count()
    tune = ["--tuner", args.tuner] + (["--tune-epochs", f"{args.tune_epochs:g}"] if args.tune_epochs else [])
    report: dict = {"parameters": n_params, "protocols": {}}
    md = ["# Built-in optimizers on " + args.task, ""]

    mini = [n for n in chosen if n != "lbfgs"]
    if mini:
        tag = (f"{args.task}-{'full' if not args.subset else args.subset}-e{args.epochs:g}-s{args.seeds}-"
               f"{args.schedule}-{args.tuner}" + (f"x{args.tune_epochs:g}" if args.tune_epochs else ""))
        folder = out / tag
        folder.mkdir(parents=True, exist_ok=True)
        common = ["--task", args.task, "--epochs", f"{args.epochs:g}", "--seeds", str(args.seeds), "--schedule",
                  args.schedule, *tune, *(["--subset", str(args.subset)] if args.subset else []), "--json"]
        answers = {n: run_step(n, ["bench", n, "--against", "", *common, "--out", str(folder / n)], folder, env, home)
                   for n in mini}
        rows = summarize(answers, args.task, n_params)
        report["protocols"][tag] = rows
        md.append(table(rows, f"{tag}: mini-batches of 128"))
    if "lbfgs" in chosen:
        tag = f"{args.task}-fullbatch{args.lbfgs_subset}-steps{args.lbfgs_steps}-s{args.seeds}-{args.tuner}"
        folder = out / tag
        folder.mkdir(parents=True, exist_ok=True)
        common = ["--task", args.task, "--subset", str(args.lbfgs_subset), "--batch", str(args.lbfgs_subset),
                  "--seeds", str(args.seeds), *tune, "--json"]
        answers = {}
        for n in FULL_BATCH:
            steps = args.lbfgs_steps * (1 if n == "lbfgs" else LBFGS_ITERATIONS)
            answers[n] = run_step(n, ["bench", n, "--against", "", "--steps", str(steps), *common, "--out",
                                      str(folder / n)], folder, env, home)
        rows = summarize(answers, args.task, n_params)
        report["protocols"][tag] = rows
        md.append(table(rows, f"{tag}: every step on the whole {args.lbfgs_subset}-example training subset "
                               f"({args.lbfgs_steps} L-BFGS steps, {args.lbfgs_steps * LBFGS_ITERATIONS} for the others)"))
    (out / "summary.json").write_text(json.dumps(report, indent=1))
    (out / "summary.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
