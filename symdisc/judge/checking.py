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
