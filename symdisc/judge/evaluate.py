"""What the sandbox worker does with one candidate: re-gate, compile, probe, then (optionally)
score on the proxy tasks. Runs inside the locked-down worker only; returns plain JSON data."""

from __future__ import annotations

import hashlib
import time

import torch

from symdisc.contract import SCALAR
from symdisc.judge.gate import check_code
from symdisc.judge.harness import CheckedRule
from symdisc.judge.probes import PROBE_REASONS, run_probes
from symdisc.judge.restricted import CandidateError, compile_candidate


def fingerprint(update, memory: str) -> str:
    """A hash of the steps the rule takes on fixed probe tensors: equal hashes, equal behaviour."""
    rule = CheckedRule(update, memory, check_mutation=False)
    g = torch.Generator().manual_seed(12345)
    steps = []
    for shape, scale in (((32,), 1.0), ((4, 8), 1e-3), ((3, 5), 10.0)):
        grad, param, state = torch.randn(shape, generator=g) * scale, torch.randn(shape, generator=g), {}
        for t in range(1, 4):
            steps.append(rule(grad * t, param, state, 0.01, t).flatten())
    values = torch.cat(steps).tolist()
    return hashlib.sha256(",".join(f"{v:.4g}" for v in values).encode()).hexdigest()[:16]


def _failure(stage: str, err: CandidateError, ms: dict) -> dict:
    return {"ok": False, "stage": stage, "reason": err.reason, "message": err.message, "ms": ms}


def evaluate(code: str, memory: str = SCALAR, stages=("probe",), proxy: dict | None = None,
             heldout: dict | None = None, cascade: dict | None = None, max_buffers: int | None = None) -> dict:
    """``heldout``: the held-out stage's config (a HeldoutConfig dict); ``cascade``: per real-data
    stage (heldout, long, audit) its config dict, plus ``lrs_override`` to search instead of the
    stage's grid (the half-decades around a lower stage's best); ``max_buffers``: the most
    parameter-shaped tensors the state may hold at once (None: as many as the memory class allows),
    checked on the probes' calls."""
    cascade = dict(cascade or {})
    if heldout and "heldout" not in cascade:
        cascade["heldout"] = heldout
    ms: dict = {}
    t0 = time.perf_counter()
    # Never trust the parent: the worker runs the gate again on exactly what it will execute.
    gated = check_code(code, memory)
    if not gated.verdict.ok:
        v = gated.verdict
        return {"ok": False, "stage": "gate", "reason": v.reason, "message": v.message, "line": v.line, "ms": ms}
    try:
        update = compile_candidate(gated.normalized)
    except CandidateError as err:
        return _failure("sandbox", err, ms)
    ms["compile"] = (time.perf_counter() - t0) * 1e3

    result: dict = {"ok": True, "stage": "probe", "reason": None, "message": None, "ms": ms}
    if "probe" in stages:
        t1 = time.perf_counter()
        rule = CheckedRule(update, memory, check_mutation=True)
        try:
            report = run_probes(rule)
        except CandidateError as err:
            ms["probe"] = (time.perf_counter() - t1) * 1e3
            stage = "sandbox" if err.reason not in PROBE_REASONS else "probe"
            return _failure(stage, err, ms)
        ms["probe"] = (time.perf_counter() - t1) * 1e3
        result["probe"] = report.as_dict()
        if max_buffers is not None and report.buffers > max_buffers:
            return _failure("probe", CandidateError(
                "state_rule", f"the state kept {report.buffers} tensors shaped like the parameter; this run "
                f"allows at most {max_buffers}"), ms)
        try:
            result["fingerprint"] = fingerprint(update, memory)
        except CandidateError:
            result["fingerprint"] = None  # probes passed; a fingerprint is a convenience
        result["state_scalars"] = report.state_scalars
        result["state_bytes"] = report.state_bytes
        result["buffers"] = report.buffers
    if "proxy" in stages:
        from symdisc.config import ProxyConfig
        from symdisc.judge.proxy import proxy_fitness

        t2 = time.perf_counter()
        config = ProxyConfig(**(proxy or {}))
        try:
            result["proxy"] = proxy_fitness(update, memory, config)
        except CandidateError as err:
            ms["proxy"] = (time.perf_counter() - t2) * 1e3
            return _failure("proxy", err, ms)
        ms["proxy"] = (time.perf_counter() - t2) * 1e3
        result["stage"] = "proxy"
        result["fitness"] = result["proxy"]["fitness"]
    for stage in REAL_STAGES:
        if stage not in stages:
            continue
        failed = _real_stage(stage, update, memory, cascade.get(stage), result, ms)
        if failed is not None:
            return failed
    return result


REAL_STAGES = ("heldout", "long", "audit")


def _real_stage(stage: str, update, memory: str, spec: dict | None, result: dict, ms: dict) -> dict | None:
    """One real-data stage of the cascade; None when it went well (its result is in ``result``)."""
    from symdisc.judge.realdata import RealStage, real_fitness
    from symdisc.judge.usertask import TaskError, task_fitness

    spec = dict(spec or {})
    lrs = spec.pop("lrs_override", None)
    t = time.perf_counter()
    try:
        if "tasks" in spec:  # the run's own task files (symdisc.tasks), prepared before the lock-down
            result[stage] = task_fitness(update, memory, spec)
        else:
            result[stage] = real_fitness(update, memory, RealStage(**spec), lrs)
    except CandidateError as err:
        ms[stage] = (time.perf_counter() - t) * 1e3
        return _failure(stage, err, ms)
    except TaskError as exc:  # the task's own code failed: a verdict with the task's message
        ms[stage] = (time.perf_counter() - t) * 1e3
        return {"ok": False, "stage": stage, "reason": "task_error", "message": str(exc)[:400], "ms": ms}
    except Exception as exc:  # the data set went missing: not the candidate's fault
        return {"ok": False, "stage": stage, "reason": "crash", "message": f"{stage} stage: {exc}"[:300], "ms": ms}
    ms[stage] = (time.perf_counter() - t) * 1e3
    result["stage"] = stage
    return None
