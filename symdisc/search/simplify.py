"""`symdisc simplify`: drop statements and simplify constants while the held-out score holds.

The Lion authors simplified their discovered program by hand; this does it greedily: try removing
each statement of ``update`` (but the final return) and replacing each numeric constant by a
rounder one (one significant digit, then 1 when within a decade of it, then 0); keep a change when the candidate still passes
every stage and its held-out score stays within the noise band of the original's. Repeat until a
whole pass changes nothing. The result is stored as a new candidate (origin ``simplify``).
"""

from __future__ import annotations

import ast
import math
import statistics
from dataclasses import asdict
from typing import Callable, Iterator, Optional

from symdisc.contract import UPDATE_NAME
from symdisc.errors import SymdiscError

MIN_BAND = 0.005  # never demand more precision than this from a few-seed score
MAX_CHANGES = 40


def _update_fn(tree: ast.Module) -> ast.FunctionDef:
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == UPDATE_NAME)


def _size(code: str) -> int:
    return sum(1 for _ in ast.walk(ast.parse(code)))


def _rounder(value: float) -> list[float]:
    """The rounder values to try for a constant: one significant digit, then 1 of its sign (only for
    a constant within a decade of it: 1e-8 -> 1 is another rule, not a rounder one), then 0 (the term dropped;
    a guard that the probes need, such as a denominator's eps, fails them and stays)."""
    options = []
    if value not in (0, 1):
        one_digit = float(f"{value:.1g}")
        if one_digit != value:
            options.append(one_digit)
        if 0.1 <= abs(value) <= 10.0:
            options.append(math.copysign(1.0, value))
        options.append(0.0)
    return [o for o in options if o != value]


def variants(code: str) -> Iterator[tuple[str, str]]:
    """(description, code) for every single simplification of ``code``, smallest change first."""
    tree = ast.parse(code)
    body = _update_fn(tree).body
    for i, stmt in enumerate(body):
        if isinstance(stmt, ast.Return) or (i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
            continue
        t = ast.parse(code)
        fn = _update_fn(t)
        del fn.body[i]
        if fn.body:
            yield f"drop line {stmt.lineno}: {ast.unparse(stmt)[:60]}", ast.unparse(t) + "\n"
    constants = [n for n in ast.walk(_update_fn(tree)) if isinstance(n, ast.Constant)
                 and isinstance(n.value, (int, float)) and not isinstance(n.value, bool)]
    for index, node in enumerate(constants):
        for new in _rounder(float(node.value)):
            t = ast.parse(code)
            target = [n for n in ast.walk(_update_fn(t)) if isinstance(n, ast.Constant)
                      and isinstance(n.value, (int, float)) and not isinstance(n.value, bool)][index]
            target.value = int(new) if isinstance(node.value, int) and new == int(new) else new
            yield f"constant {node.value!r} -> {target.value!r} (line {node.lineno})", ast.unparse(t) + "\n"


def simplify_code(code: str, score: Callable[[str], Optional[dict]], say=None) -> dict:
    """Greedy simplification. ``score(code)`` returns the sandbox answer (with ``heldout``) or None
    when the variant fails any stage."""
    say = say or (lambda message: None)
    base = score(code)
    if base is None:
        raise ValueError("the original candidate does not pass every stage")
    per_seed = base["heldout"].get("per_seed") or [base["heldout"]["fitness"]]
    band = max(MIN_BAND, statistics.stdev(per_seed) if len(per_seed) > 1 else MIN_BAND)
    floor = base["heldout"]["fitness"] - band
    current, current_answer, steps = code, base, []
    while len(steps) < MAX_CHANGES:
        for description, candidate in variants(current):
            answer = score(candidate)
            if answer is None or answer["heldout"]["fitness"] < floor:
                continue
            say(f"kept: {description} (held-out {answer['heldout']['fitness']:.4f})")
            steps.append(description)
            current, current_answer = candidate, answer
            break  # start again from the simpler program
        else:
            break  # a whole pass without an accepted change
    return {"code": current, "answer": current_answer, "original": base, "band": band, "steps": steps,
            "size_before": _size(code), "size_after": _size(current)}


def simplify_candidate(store, candidate_id: int, gate, sandbox, say=None) -> dict:
    """Simplify an evaluated candidate of a run and store the result as a new candidate of that run.

    Every variant is gated by ``gate`` and scored in ``sandbox`` (a worker that loaded the held-out
    data): model-written code never runs in this process."""
    from symdisc.config import ProxyConfig

    row = store.get_candidate(candidate_id)
    if row["status"] not in ("evaluated", "duplicate") or not row.get("normalized"):
        raise SymdiscError(f"candidate {candidate_id} did not pass evaluation ({row['status']}: {row['reason']})")
    config = store.get_run(row["run_id"])["config"] or {}
    memory = config.get("memory", "scalar")
    proxy = config.get("proxy") or asdict(ProxyConfig())

    def score(code):
        gated = gate.check(code, memory)
        if not gated.verdict.ok:
            return None
        answer = sandbox.evaluate(gated.normalized, memory, stages=("probe", "proxy", "heldout"), proxy=proxy,
                                  heldout=config.get("heldout"), timeout_s=120)
        return answer if answer.get("ok") and answer.get("heldout") else None

    result = simplify_code(row["normalized"], score, say=say)
    answer = result["answer"]
    new_id = store.add_candidate(
        row["run_id"], store.next_seq(row["run_id"]), "simplify", status="evaluated", parent_id=candidate_id,
        name=f"simplified-{candidate_id}", code=result["code"], normalized=result["code"], response=result["code"],
        fitness=answer["fitness"], best_lr=answer["proxy"]["best_lr"], heldout=answer["heldout"]["fitness"],
        state_scalars=answer.get("state_scalars"), state_bytes=answer.get("state_bytes"),
        fingerprint=answer.get("fingerprint"), eval_ms=answer["ms"].get("sandbox"))
    return {"id": new_id, "parent_id": candidate_id, "steps": result["steps"], "band": result["band"],
            "heldout_before": result["original"]["heldout"]["fitness"], "heldout_after": answer["heldout"]["fitness"],
            "size_before": result["size_before"], "size_after": result["size_after"], "code": result["code"]}
