"""`symdisc calibrate --task FILE.py`: do the cascade's fidelities predict the user's own task?

The ground truth per task: each library rule through the task at its full STEPS, on the whole
half-decade lr grid, with seeds 2000, 2001, 2002 (disjoint from the search's 1000, 1001: what the
truth measures is never what a search selected on). The fidelities: the proxy, and the task
stages a search on the task uses (a quarter of STEPS on the grid; full STEPS on the half-decades
around the quarter's best lr), in the sandbox worker as a run does. With several tasks the truth
is also the mean over tasks of each rule's standardized score (centre: the library's median, scale:
its standard deviation). Journaled: a stopped calibration resumes.
"""

from __future__ import annotations

from dataclasses import asdict

from symdisc.calibration.truth import Journal

TRUTH_SEEDS = (2000, 2001, 2002)


def _truth_spec(task: dict) -> dict:
    from symdisc.config import HALF_DECADE

    return {"tasks": [{"name": task["name"], "steps": task["steps"], "seeds": list(TRUTH_SEEDS),
                       "lrs": list(HALF_DECADE)}]}


def calibrate_tasks(tasks: list[dict], journal: Journal, rules: list[dict], say=print, timeout_s: float = 3600.0) -> dict:
    from symdisc.calibration.run import _noise
    from symdisc.config import ProxyConfig
    from symdisc.judge.gate import check_code
    from symdisc.judge.realdata import neighbour_lrs
    from symdisc.judge.sandbox import Sandbox
    from symdisc.search.funnel import spearman
    from symdisc.tasks import norm_of, stage_spec, worker_specs

    specs = worker_specs(tasks)
    for spec in specs:
        spec["seeds"] = sorted(set(spec["seeds"]) | set(TRUTH_SEEDS))
    names = [r["name"] for r in rules]
    scores: dict = {}  # rule -> {fidelity: {"score", "per_seed", "s"}}
    with Sandbox(timeout_s=timeout_s, tasks=specs) as sandbox:
        for rule in rules:
            code = check_code(rule["code"], rule["memory"]).normalized

            def one(key, stage, **kw):
                row = journal.get(f"task|{key}|{rule['name']}")
                if row is None:
                    answer = sandbox.evaluate(code, rule["memory"], stages=(stage,), timeout_s=timeout_s, **kw)
                    detail = answer.get(stage) or {}
                    row = journal.put(f"task|{key}|{rule['name']}", {
                        "ok": bool(answer.get("ok") and detail), "detail": detail, "reason": answer.get("reason"),
                        "s": (answer.get("ms", {}).get(stage) or 0.0) / 1e3})
                    say(f"{key:32s} {rule['name']:22s} {'ok' if row['ok'] else row['reason']} ({row['s']:.2f} s)")
                return row

            got = {"proxy": one("proxy", "proxy", proxy=asdict(ProxyConfig()))}
            for t in tasks:
                held = one(f"{t['name']}|heldout", "heldout", cascade={"heldout": stage_spec([t], "heldout")})
                lr = (held["detail"].get("tasks", {}).get(t["name"]) or {}).get("best_lr") or 1e-2
                got[f"{t['name']}|heldout"] = held
                got[f"{t['name']}|long"] = one(f"{t['name']}|long", "long", cascade={
                    "long": stage_spec([t], "long", {t["name"]: list(neighbour_lrs(lr))})})
                got[f"{t['name']}|truth"] = one(f"{t['name']}|truth", "long", cascade={"long": _truth_spec(t)})
            scores[rule["name"]] = got

    def value(row, task=None):
        if not row["ok"]:
            return None
        d = row["detail"]
        return d["fitness"] if task is None else d["tasks"][task]["fitness"]

    def per_seed(row, task=None):
        if not row["ok"]:
            return None
        return row["detail"].get("per_seed") if task is None else row["detail"]["tasks"][task]["per_seed"]

    out: dict = {"rules": names, "tasks": [t["name"] for t in tasks], "truth": {}, "fidelities": {}}
    truth: dict = {}
    for t in tasks:
        vals = {n: value(scores[n][f"{t['name']}|truth"], t["name"]) for n in names}
        truth[t["name"]] = vals
        band, rho = _noise([per_seed(scores[n][f"{t['name']}|truth"], t["name"]) for n in names
                            if vals[n] is not None])
        out["truth"][t["name"]] = {"scores": vals, "noise_band": band, "seed_to_seed_spearman": rho}
    if len(tasks) > 1:
        zs = {}
        for t in tasks:
            centre, scale = norm_of([v for v in truth[t["name"]].values() if v is not None])
            zs[t["name"]] = {n: None if v is None else (v - centre) / scale for n, v in truth[t["name"]].items()}
        truth["mean"] = {n: (sum(zs[t][n] for t in zs) / len(zs)) if all(zs[t][n] is not None for t in zs) else None
                         for n in names}

    fidelities = [("proxy", None)] + [(f"{t['name']}|{s}", t["name"]) for t in tasks for s in ("heldout", "long")]
    for key, task in fidelities:
        vals = {n: value(scores[n][key], task) for n in names}
        row = {"s_per_candidate": sum(scores[n][key]["s"] for n in names) / len(names)}
        for tname, tvals in truth.items():
            both = [n for n in names if vals[n] is not None and tvals[n] is not None]
            row[f"vs {tname}"] = spearman([vals[n] for n in both], [tvals[n] for n in both])
        band, _ = _noise([per_seed(scores[n][key], task) for n in names if vals[n] is not None])
        row["noise_band"] = band
        out["fidelities"][key] = row
    say(render(out))
    return out


def render(out: dict) -> str:
    truths = list(next(iter(out["fidelities"].values()), {}).keys())
    truths = [k for k in truths if k.startswith("vs ")]
    head = "| fidelity | " + " | ".join(f"Spearman {k}" for k in truths) + " | noise band | s/candidate |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    fmt = lambda v: "" if v is None else f"{v:+.2f}"  # noqa: E731
    for name, row in out["fidelities"].items():
        band = "" if row.get("noise_band") is None else f"{row['noise_band']:.4g}"
        lines.append(f"| {name} | " + " | ".join(fmt(row.get(k)) for k in truths) + f" | {band} | "
                     f"{row['s_per_candidate']:.2f} |")
    return "\n".join(lines)
