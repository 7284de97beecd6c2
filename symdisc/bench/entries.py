"""Which optimizer a bench entry names: a built-in, a run's best, a candidate, or a .py file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from symdisc.errors import UsageError
from symdisc.bench.optimizers import BUILTINS, rule_optimizer_class


@dataclass
class Entry:
    """One optimizer in the comparison."""

    label: str
    make: Optional[Callable]  # (params, lr, total_steps) -> Optimizer; None while it trains sandboxed
    default_lr: float
    declared_class: Optional[str]
    source: str
    runs: str = "in-process (torch's own optimizer or a built-in rule)"  # where the code executes
    code: Optional[str] = None  # a gated contract-form rule: trained in the sandbox worker
    memory: str = "scalar"
    runner: Optional[object] = field(default=None, repr=False)  # the TrainingSandbox, set by run_bench
    full_batch: bool = False  # steps with a closure; trains only when the batch is the whole training set

    @property
    def sandboxed(self) -> bool:
        return self.code is not None and self.make is None


SANDBOXED = "sandbox worker (gated, RestrictedPython, rlimits, no network, unprivileged uid)"
UNSANDBOXED = "in-process, UNSANDBOXED (--unsandboxed): the rule runs with your privileges"
USER_CODE = "in-process: your own torch.optim.Optimizer class, run as your code (not sandboxed)"


def _rule_entry(label: str, code: str, memory: str, lr_default: float, source: str, unsandboxed: bool) -> Entry:
    """A gated contract-form rule: trained in the sandbox worker, or here with --unsandboxed."""
    if unsandboxed:
        cls = rule_optimizer_class(code, label, memory)
        return Entry(label, lambda params, lr, total: cls(params, lr=lr), lr_default, memory, source,
                     runs=UNSANDBOXED, code=code, memory=memory)
    return Entry(label, None, lr_default, memory, source, runs=SANDBOXED, code=code, memory=memory)


def resolve_entry(spec: str, store=None, lr_default: float = 1e-3, unsandboxed: bool = False) -> Entry:
    """A built-in name, an exported or contract-form .py file, a candidate id, or a run id."""
    if spec in BUILTINS:
        b = BUILTINS[spec]
        return Entry(spec, b.make, b.default_lr, b.memory_class, b.description, full_batch=b.full_batch)
    path = Path(spec)
    if spec.endswith(".py"):
        if not path.exists():
            raise UsageError(f"no such file: {spec}")
        return _entry_from_file(path, lr_default, unsandboxed)
    if store is None:
        raise UsageError(f"{spec!r} is not a built-in ({', '.join(BUILTINS)}) or a .py file")
    if spec.isdigit():
        row = store.get_candidate(int(spec))
    else:
        run = store.get_run(spec, kind="evolve")
        row = store.best(run["id"])
        if row is None:
            raise UsageError(f"run {run['id']} has no evaluated candidate")
    memory = (store.get_run(row["run_id"])["config"] or {}).get("memory", "scalar")
    code, memory = _gated(row.get("normalized") or row.get("code") or "", memory, f"candidate {row['id']}")
    return _rule_entry(f"candidate-{row['id']}", code, memory, lr_default,
                       f"run {row['run_id']}, candidate {row['id']} (proxy fitness {row.get('fitness')})", unsandboxed)


def _gated(code: str, memory: str, what: str) -> tuple[str, str]:
    """The normalized code and the memory class it passes the gate in."""
    from symdisc.judge.gate import check_code

    result = check_code(code, memory)
    if not result.verdict.ok:
        from symdisc.contract import BUFFERS

        relaxed = check_code(code, BUFFERS) if memory != BUFFERS else None
        if relaxed is not None and relaxed.verdict.ok:
            return relaxed.normalized, BUFFERS
        raise UsageError(f"{what} does not pass the gate: {result.verdict.one_line()}")
    return result.normalized, memory


def _entry_from_file(path: Path, lr_default: float, unsandboxed: bool = False) -> Entry:
    text = path.read_text()
    if "class " in text and "Optimizer" in text:
        # An exported optimizer (or any file defining one): the user's own code, run as such.
        namespace: dict = {"__name__": f"bench_{path.stem}"}
        exec(compile(text, str(path), "exec"), namespace)
        classes = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, torch.optim.Optimizer)
                   and v.__module__ == namespace["__name__"]]
        if not classes:
            raise UsageError(f"{path} defines no torch.optim.Optimizer subclass")
        cls = classes[0]
        return Entry(path.stem, lambda params, lr, total: cls(params, lr=lr), lr_default, None, str(path),
                     runs=USER_CODE)
    code, memory = _gated(text, "scalar", str(path))
    entry = _rule_entry(path.stem, code, memory, lr_default, str(path), unsandboxed)
    entry.declared_class = None
    return entry
