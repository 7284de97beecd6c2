"""Every fidelity a run can use, on every library rule, in the sandbox worker (as a run does).

Fidelities: the original proxy with its decade grid and held-out stage with its decade
grid (its validation now comes from training images: the test-image version is gone), the new
proxy (half-decade grid), held-out and long stages, and the audit task; the cascade itself (the
run's selection fitness) is simulated from them by ``cascade_order``.
"""

from __future__ import annotations

import random
from dataclasses import asdict

from symdisc.calibration.truth import Journal
from symdisc.config import CascadeConfig, HeldoutConfig, ProxyConfig
from symdisc.judge.realdata import neighbour_lrs
from symdisc.store import FIDELITY, best_key

OLD_PROXY = dict(asdict(ProxyConfig()), lrs=(1e-3, 1e-2, 1e-1))
OLD_HELDOUT = dict(asdict(HeldoutConfig()), lrs=(1e-4, 1e-3, 1e-2, 1e-1))
FIDELITIES = ("proxy_old", "heldout_old", "proxy", "heldout", "long", "audit")


def run_fidelities(journal: Journal, rules: list[dict], say=print, timeout_s: float = 300.0) -> dict:
    from symdisc.judge.sandbox import Sandbox

    cascade = CascadeConfig()
    specs = dict(cascade.worker_specs(), heldout_old=OLD_HELDOUT)
    out: dict = {}
    todo = [r for r in rules if any(journal.get(f"fid|{f}|{r['name']}") is None for f in FIDELITIES)]
    if not todo:
        return {r["name"]: {f: journal.get(f"fid|{f}|{r['name']}") for f in FIDELITIES} for r in rules}
    worker_specs = {"heldout": specs["heldout"], "long": specs["long"], "audit": specs["audit"],
                    "heldout_old": OLD_HELDOUT}
    with Sandbox(timeout_s=timeout_s, heldout=True, cascade=worker_specs) as sandbox:
        for rule in rules:
            name, memory, code = rule["name"], rule["memory"], rule["code"]
            from symdisc.judge.gate import check_code

            code = check_code(code, memory).normalized

            def one(fid, stage, **kw):
                key = f"fid|{fid}|{name}"
                row = journal.get(key)
                if row is not None:
                    return row
                answer = sandbox.evaluate(code, memory, stages=(stage,), timeout_s=timeout_s, **kw)
                detail = answer.get(stage) or {}
                ok = bool(answer.get("ok") and detail)
                row = journal.put(key, {"rule": name, "fidelity": fid, "ok": ok,
                                        "score": detail.get("fitness", 0.0) if ok else 0.0,
                                        "per_seed": detail.get("per_seed"), "best_lr": detail.get("best_lr"),
                                        "s": (answer.get("ms", {}).get(stage) or 0.0) / 1e3,
                                        "reason": answer.get("reason")})
                say(f"{fid:12s} {name:22s} {row['score']:.4f} lr {row['best_lr']} ({row['s']:.2f} s)")
                return row

            one("proxy_old", "proxy", proxy=OLD_PROXY)
            one("heldout_old", "heldout", cascade={"heldout": OLD_HELDOUT})
            p = one("proxy", "proxy", proxy=asdict(ProxyConfig()))
            h = one("heldout", "heldout", cascade={"heldout": specs["heldout"]})
            lr = h.get("best_lr") or p.get("best_lr") or 1e-2
            lg = one("long", "long", cascade={"long": dict(specs["long"], lrs_override=list(neighbour_lrs(lr)))})
            one("audit", "audit", cascade={"audit": dict(specs["audit"],
                                                         lrs_override=list(neighbour_lrs(lg.get("best_lr") or lr)))})
    return {r["name"]: {f: journal.get(f"fid|{f}|{r['name']}") for f in FIDELITIES} for r in rules}


def cascade_order(scores: dict, order: list[str], cascade: CascadeConfig) -> tuple[list[str], float, dict]:
    """Simulate a run's cascade over rules arriving in ``order``: promote within each stage's margin
    of its best so far; rank by best_key. Returns the ranking, the mean seconds per candidate and how
    many reached each stage."""
    best = {"proxy": None, "heldout": None}
    rows, seconds = [], 0.0
    reached = {"proxy": 0, "heldout": 0, "long": 0}
    for seq, name in enumerate(order):
        s = scores[name]
        got = {"proxy": s["proxy"]["score"]}
        row = {"name": name, "seq": seq, "fitness": s["proxy"]["score"], "fidelity": 1,
               "rank_score": cascade.combine(got)[0]}
        seconds += s["proxy"]["s"]
        reached["proxy"] += 1
        if best["proxy"] is None or row["fitness"] >= best["proxy"] - cascade.proxy_margin:
            seconds += s["heldout"]["s"]
            reached["heldout"] += 1
            got["heldout"] = s["heldout"]["score"]
            row.update(fidelity=FIDELITY["heldout"], rank_score=cascade.combine(got)[0], heldout=s["heldout"]["score"])
            if best["heldout"] is None or s["heldout"]["score"] >= best["heldout"] - cascade.heldout_margin:
                seconds += s["long"]["s"]
                reached["long"] += 1
                got["long"] = s["long"]["score"]
                row.update(fidelity=FIDELITY["long"], rank_score=cascade.combine(got)[0])
            best["heldout"] = max(best["heldout"] or 0.0, s["heldout"]["score"])
        best["proxy"] = max(best["proxy"] or 0.0, row["fitness"])
        rows.append(row)
    ranking = [r["name"] for r in sorted(rows, key=best_key)]
    return ranking, seconds / max(1, len(order)), reached


def random_orders(names: list[str], n: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        order = list(names)
        rng.shuffle(order)
        out.append(order)
    return out
