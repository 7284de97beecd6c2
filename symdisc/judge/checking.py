"""`symdisc check`: one candidate through the gate process, the sandbox worker and stage 0."""

from __future__ import annotations

import time

from symdisc.judge.gateproc import GateClient
from symdisc.judge.sandbox import Sandbox


def check_candidate(source: str, memory: str, timeout_s: float = 30.0) -> dict:
    """The JSON object documented for ``symdisc check --json``."""
    outcome = {"ok": False, "stage": "gate", "reason": None, "message": None, "line": None,
               "memory_class": memory, "state_scalars": None, "ms": {"gate": None, "sandbox": None}}
    with GateClient() as gate:
        t0 = time.perf_counter()
        gated = gate.check(source, memory)
        outcome["ms"]["gate"] = (time.perf_counter() - t0) * 1e3
    verdict = gated.verdict
    if not verdict.ok:
        outcome.update(reason=verdict.reason, message=verdict.message, line=verdict.line)
        return outcome
    with Sandbox(timeout_s=timeout_s) as sandbox:
        answer = sandbox.evaluate(gated.normalized, memory, stages=("probe",), timeout_s=timeout_s)
    outcome["ms"]["sandbox"] = answer.get("ms", {}).get("sandbox")
    outcome.update(ok=bool(answer.get("ok")), stage=answer.get("stage", "sandbox"),
                   reason=answer.get("reason"), message=answer.get("message"), line=answer.get("line"),
                   state_scalars=answer.get("state_scalars"))
    if answer.get("probe"):
        outcome["probe"] = answer["probe"]
    return outcome


def score_candidate(source: str, memory: str, timeout_s: float = 120.0, cascade=None, proxy=None,
                    heldout=None, tasks=None, task_timeout_s: float = 600.0) -> dict:
    """``symdisc check --score``: a rule through every stage a run would take it (a lone candidate is
    its own stage's best, so the cascade promotes it all the way), each stage's score, noise band,
    lr and seconds, and ``rank_score``: the score a run would rank it by (at its highest stage, the
    mean of its standardized scores at every stage: CascadeConfig.combine).

    ``tasks`` (symdisc.tasks.Task dicts): the held-out and long stages train those task files
    instead; each stage reports every task's raw score and the mean of them (a run standardizes
    them against its seed rules, so a lone candidate has no rank score beyond the proxy)."""
    from dataclasses import asdict

    from symdisc.config import CascadeConfig, HeldoutConfig, ProxyConfig
    from symdisc.data import locate
    from symdisc.judge.realdata import neighbour_lrs
    from symdisc.contract import FIDELITY

    cascade = cascade or CascadeConfig()
    proxy = proxy or ProxyConfig()
    heldout = asdict(heldout or HeldoutConfig())
    outcome = check_candidate(source, memory, timeout_s=timeout_s)
    outcome.update(stages={}, rank_score=None, rank_stage=None, rank_band=None)
    if not outcome["ok"]:
        return outcome
    with GateClient() as gate:
        normalized = gate.check(source, memory).normalized
    if tasks:
        return _score_on_tasks(outcome, normalized, memory, timeout_s, proxy, tasks, task_timeout_s)
    real = locate("fashion-mnist") is not None
    reached: dict = {}
    with Sandbox(timeout_s=timeout_s, heldout=real, cascade=cascade.worker_specs(heldout)) as sandbox:
        def stage(name, stages, **kw):
            answer = sandbox.evaluate(normalized, memory, stages=stages, timeout_s=timeout_s, **kw)
            detail = answer.get(name)
            seconds = (answer.get("ms", {}).get(name) or 0.0) / 1e3
            if not answer.get("ok") or not detail:
                outcome["stages"][name] = {"ok": False, "reason": answer.get("reason"), "message": answer.get("message"),
                                           "s": seconds}
                return None
            per_seed = detail.get("per_seed") or []
            band = float(cascade.min_band.get(name, 0.0))  # the calibrated band (symdisc calibrate)
            outcome["stages"][name] = {"ok": True, "score": detail["fitness"], "band": band, "best_lr": detail["best_lr"],
                                       "per_seed": per_seed, "s": seconds}
            if name in FIDELITY:
                reached[name] = detail["fitness"]
                score, rank_band = cascade.combine(reached)
                outcome.update(rank_score=score, rank_stage=name, rank_band=rank_band)
            return detail

        got = stage("proxy", ("proxy",), proxy=asdict(proxy))
        if got is None or not real:
            return outcome
        held = stage("heldout", ("heldout",), cascade={"heldout": heldout})
        if held is None:
            return outcome
        if cascade.long:
            stage("long", ("long",), cascade={"long": dict(cascade.long, lrs_override=list(neighbour_lrs(held["best_lr"])))})
        if cascade.audit and locate(cascade.audit.get("dataset", "mnist")) is not None:
            lr = outcome["stages"].get("long", {}).get("best_lr") or held["best_lr"]
            stage("audit", ("audit",), cascade={"audit": dict(cascade.audit, lrs_override=list(neighbour_lrs(lr)))})
            outcome["stages"].get("audit", {})["report_only"] = True
    return outcome


def _score_on_tasks(outcome: dict, code: str, memory: str, timeout_s: float, proxy, tasks: list,
                    task_timeout_s: float) -> dict:
    """The proxy, then the task files' held-out and long stages (the run's cascade on --task)."""
    from dataclasses import asdict

    from symdisc.judge.realdata import neighbour_lrs
    from symdisc.tasks import stage_spec, worker_specs

    with Sandbox(timeout_s=timeout_s, tasks=worker_specs(tasks)) as sandbox:
        answer = sandbox.evaluate(code, memory, stages=("proxy",), proxy=asdict(proxy), timeout_s=timeout_s)
        detail = answer.get("proxy")
        seconds = (answer.get("ms", {}).get("proxy") or 0.0) / 1e3
        if not answer.get("ok") or not detail:
            outcome["stages"]["proxy"] = {"ok": False, "reason": answer.get("reason"), "message": answer.get("message"),
                                          "s": seconds}
            return outcome
        outcome["stages"]["proxy"] = {"ok": True, "score": detail["fitness"], "band": 0.027, "best_lr": detail["best_lr"],
                                      "per_seed": detail.get("per_seed") or [], "s": seconds}
        outcome.update(rank_score=None, rank_stage="proxy")
        lower = None
        for stage in ("heldout", "long"):
            lrs = {n: list(neighbour_lrs(d["best_lr"])) for n, d in (lower or {}).get("tasks", {}).items()}
            answer = sandbox.evaluate(code, memory, stages=(stage,), timeout_s=task_timeout_s,
                                      cascade={stage: stage_spec(tasks, stage, lrs)})
            detail = answer.get(stage)
            seconds = (answer.get("ms", {}).get(stage) or answer.get("ms", {}).get("sandbox") or 0.0) / 1e3
            if not answer.get("ok") or not detail:
                outcome["stages"][stage] = {"ok": False, "reason": answer.get("reason"),
                                            "message": answer.get("message"), "s": seconds}
                return outcome
            per_task = detail["tasks"]
            n = len(per_task)
            outcome["stages"][stage] = {
                "ok": True, "score": sum(d["fitness"] for d in per_task.values()) / n,
                "band": 2 * sum(d["sem"] ** 2 for d in per_task.values()) ** 0.5 / n,
                "best_lr": next(iter(per_task.values()))["best_lr"], "s": seconds, "tasks": per_task,
                "per_seed": [], "raw": True}
            lower = detail
    return outcome
