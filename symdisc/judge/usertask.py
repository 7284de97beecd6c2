"""Task files: a user's own training task, imported and prepared before the lock-down, trained after.

A task file is plain Python with ``train(make_optimizer, data, seed, lr, steps)`` (and optionally
``prepare(seed)``, ``NAME``, ``STEPS``). It is the user's trusted code; the candidate is not. In
the sandbox worker the file is imported and ``prepare`` runs for every seed a run needs while files
can still be read; ``train`` runs after the lock-down and reaches the candidate only through
``CheckedOptimizer``: the compiled rule behind the harness's checks, plus a finiteness check of
every step. Outside the worker (``symdisc bench`` with torch's optimizers, ``task check``'s parent)
the same import and validation apply.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import math
import sys
import time
from pathlib import Path
from typing import Callable

TRAIN_SHAPE = "train(make_optimizer, data, seed, lr, steps)"
PREPARE_SHAPE = "prepare(seed)"


class TaskError(Exception):
    """A task file that breaks the contract, or whose own code (prepare, train) raised."""


# -- import and validation ------------------------------------------------------------------------
def import_task(path: str):
    """The task file as a module (registered in sys.modules so pickling and dataclasses work),
    validated; TaskError with one line for a broken file."""
    p = Path(path)
    try:
        source = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskError(f"cannot read {path}: {exc.strerror}") from None
    try:
        ast.parse(source, filename=str(p))
    except SyntaxError as exc:
        raise TaskError(f"{p.name}, line {exc.lineno}: syntax error: {exc.msg}") from None
    digest = hashlib.sha256(str(p.resolve()).encode()).hexdigest()[:10]
    modname = f"symdisc_task_{''.join(c if c.isalnum() else '_' for c in p.stem)}_{digest}"
    if modname in sys.modules:
        return sys.modules[modname]
    spec = importlib.util.spec_from_file_location(modname, str(p))
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's module-level code
        del sys.modules[modname]
        raise TaskError(f"{p.name}: importing it raised {type(exc).__name__}: {exc}".splitlines()[0]) from None
    try:
        validate(module, p.name)
    except TaskError:
        del sys.modules[modname]
        raise
    return module


def _takes(fn: Callable, n: int) -> bool:
    try:
        inspect.signature(fn).bind(*range(n))
    except TypeError:
        return False
    except ValueError:  # a builtin without a signature: let the call decide
        return True
    return True


def validate(module, filename: str) -> None:
    train = getattr(module, "train", None)
    if train is None:
        raise TaskError(f"{filename} defines no {TRAIN_SHAPE}")
    if not callable(train) or not _takes(train, 5):
        raise TaskError(f"{filename}: train must be {TRAIN_SHAPE}; it is {_shape(train)}")
    prepare = getattr(module, "prepare", None)
    if prepare is not None and (not callable(prepare) or not _takes(prepare, 1)):
        raise TaskError(f"{filename}: prepare must be {PREPARE_SHAPE}; it is {_shape(prepare)}")
    name = getattr(module, "NAME", None)
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise TaskError(f"{filename}: NAME must be a non-empty string, not {name!r}")
    steps = getattr(module, "STEPS", None)
    if steps is not None and (type(steps) is not int or steps < 1):
        raise TaskError(f"{filename}: STEPS must be a positive int, not {steps!r}")


def _shape(fn) -> str:
    if not callable(fn):
        return f"a {type(fn).__name__}"
    try:
        return f"{getattr(fn, '__name__', 'it')}{inspect.signature(fn)}"
    except (TypeError, ValueError):
        return repr(fn)


# -- the candidate as a torch optimizer -----------------------------------------------------------
def rule_optimizer_factory(update: Callable, memory: str) -> Callable:
    """``make_optimizer(params, lr)`` for a task's train: a fresh checked rule per optimizer."""
    from symdisc.judge.harness import CheckedRule
    from symdisc.judge.training import CheckedOptimizer

    def make_optimizer(params, lr):
        rule = CheckedRule(update, memory, check_mutation=False, check_finite=False)
        return CheckedOptimizer(params, rule, lr)

    return make_optimizer


# -- one training run and its numbers ------------------------------------------------------------
def numbers_of(returned) -> dict:
    """train's return value as {"score": float, other numbers...}; TaskError for anything else."""
    def number(value):
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return float(value)
        if hasattr(value, "item") and getattr(value, "numel", lambda: 0)() == 1:
            return float(value.item())
        return None

    if isinstance(returned, dict):
        if "score" not in returned:
            raise TaskError(f"train returned a dict without \"score\" (keys: {', '.join(map(str, returned))})")
        out = {}
        for key, value in returned.items():
            v = number(value)
            if v is not None:
                out[str(key)] = v
        if "score" not in out:
            raise TaskError(f"train returned a score that is not a number: {returned['score']!r}"[:200])
        return out
    v = number(returned)
    if v is None:
        raise TaskError(f"train returned {type(returned).__name__}; return a float or a dict with \"score\"")
    return {"score": v}


def run_train(module, make_optimizer: Callable, data, seed: int, lr: float, steps: int) -> dict:
    """One call of the task's train: its numbers plus ``seconds``. Candidate faults propagate as
    CandidateError; the task's own exceptions become TaskError."""
    from symdisc.judge.harness import classify_exception
    from symdisc.judge.restricted import CandidateError

    t0 = time.perf_counter()
    try:
        returned = module.train(make_optimizer, data, int(seed), float(lr), int(steps))
    except CandidateError:
        raise
    except (MemoryError, RecursionError) as exc:
        raise classify_exception(exc) from None
    except Exception as exc:
        raise TaskError(f"train raised {type(exc).__name__}: {exc}".splitlines()[0][:300]) from None
    out = numbers_of(returned)
    out["seconds"] = time.perf_counter() - t0
    return out


# -- the worker's prepared tasks -----------------------------------------------------------------
_PREPARED: dict = {}  # name -> {"module", "data": {seed: data}, "error": str | None}


def prepare_tasks(specs: list) -> None:
    """In the worker, before the lock-down: import every task, run prepare for its seeds, and train
    one step with a plain rule so that every lazy import and kernel exists before files and
    threads are refused. A task that fails here is kept with its error (its stages fail)."""
    from symdisc.judge.restricted import compile_candidate

    plain = compile_candidate("def update(grad, param, state, lr, t):\n    return lr * grad\n")
    for spec in specs:
        name = spec["name"]
        entry = {"module": None, "data": {}, "error": None}
        _PREPARED[name] = entry
        try:
            module = import_task(spec["path"])
            entry["module"] = module
            prepare = getattr(module, "prepare", None)
            seeds = [int(s) for s in spec.get("seeds") or [0]]
            for seed in seeds:
                try:
                    entry["data"][seed] = prepare(seed) if prepare is not None else None
                except Exception as exc:
                    raise TaskError(f"prepare({seed}) raised {type(exc).__name__}: {exc}".splitlines()[0][:300]) from None
            run_train(module, rule_optimizer_factory(plain, "scalar"), entry["data"][seeds[0]], seeds[0], 1e-3, 1)
        except Exception as exc:
            entry["error"] = f"task {name}: {exc}"[:400]


def _prepared(name: str, seed: int):
    entry = _PREPARED.get(name)
    if entry is None:
        raise TaskError(f"task {name} was not loaded by this worker")
    if entry["error"]:
        raise TaskError(entry["error"])
    if seed not in entry["data"]:
        raise TaskError(f"task {name}: seed {seed} was not prepared before the lock-down")
    return entry["module"], entry["data"][seed]


def train_one(update: Callable, memory: str, name: str, seed: int, lr: float, steps: int) -> dict:
    """The worker's op ``task_train``: one run of a prepared task with the candidate's rule."""
    module, data = _prepared(name, seed)
    try:
        return run_train(module, rule_optimizer_factory(update, memory), data, seed, lr, steps)
    except TaskError as exc:
        raise TaskError(f"task {name}: {exc}") from None


def task_fitness(update: Callable, memory: str, spec: dict) -> dict:
    """A cascade stage on user tasks. ``spec["tasks"]``: [{name, steps, seeds, lrs}]. Per task, every
    (lr, seed) trains; an lr where any seed diverged or scored NaN/inf is out; the task's fitness is
    the best lr's mean score. The stage's ``fitness`` is left to the parent (it standardizes)."""
    from symdisc.judge.restricted import CandidateError

    out: dict = {}
    for entry in spec["tasks"]:
        name, steps = entry["name"], int(entry["steps"])
        seeds = [int(s) for s in entry["seeds"]]
        lrs = [float(v) for v in entry["lrs"]]
        per_lr, runs, failures = {}, {}, []
        for lr in lrs:
            got = []
            for seed in seeds:
                try:
                    numbers = train_one(update, memory, name, seed, lr, steps)
                except CandidateError as err:
                    if err.reason != "diverged":
                        raise CandidateError(err.reason, f"task {name}, lr {lr:g}, seed {seed}: {err.message}") from None
                    failures.append(f"lr {lr:g}: {err.message}")
                    got = None
                    break
                if not math.isfinite(numbers["score"]):
                    failures.append(f"lr {lr:g}: score {numbers['score']}")
                    got = None
                    break
                got.append(numbers)
            if got:
                per_lr[f"{lr:g}"] = sum(n["score"] for n in got) / len(got)
                runs[f"{lr:g}"] = got
        if not per_lr:
            raise CandidateError("diverged", f"task {name}: no finite score at any learning rate ({'; '.join(failures)})"[:300])
        best = max(per_lr, key=lambda k: per_lr[k])
        got = runs[best]
        per_seed = [n["score"] for n in got]
        mean = per_lr[best]
        sem = ((sum((v - mean) ** 2 for v in per_seed) / (len(per_seed) - 1)) ** 0.5 / len(per_seed) ** 0.5
               if len(per_seed) > 1 else 0.0)
        keys = [k for k in got[0] if k not in ("score",) and all(k in n for n in got)]
        out[name] = {"fitness": mean, "best_lr": float(best), "per_lr": per_lr, "per_seed": per_seed, "sem": sem,
                     "steps": steps, "diverged_lrs": len(lrs) - len(per_lr),
                     "numbers": {k: sum(n[k] for n in got) / len(got) for k in keys}}
    return {"tasks": out, "fitness": None}
